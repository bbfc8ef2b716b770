"""The signing clock: this machine's clock, corrected by the offset a server's refusal revealed.

S3 refuses a SigV4 request whose ``X-Amz-Date`` is more than 15 minutes from its own clock
(403 ``RequestTimeTooSkewed``). As the AWS SDKs for Java, JavaScript and Go do, the transport
then reads the server's time from the refusal (the ``ServerTime`` of its error body, else its
``Date``), keeps the offset for the endpoint, re-signs and retries once; every later request is
signed with the offset: on the wire path through :class:`SigningClock`, through aiobotocore
through :func:`correct_signing`, which gives one client a signer that reads the same clock.
Expiry never depends on it: TTLs are judged on the server's clock alone.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final

from botocore.auth import AUTH_TYPE_MAPS, S3SigV4Auth

from s3cache._expiry import parse_http_date

__all__ = ["SKEW_CODES", "SUSPECT_SKEW_S", "SigningClock", "correct_signing", "describe"]

#: Error codes of a request refused for its time.
SKEW_CODES: Final = frozenset({"RequestTimeTooSkewed", "RequestExpired"})
#: A 403 whose ``Date`` is this far from the signing clock is taken as a refusal of the clock too
#: (a HEAD's 403 has no body, so no code): S3 allows 15 minutes.
SUSPECT_SKEW_S: Final = 300.0
_AMZ_DATE: Final = "%Y%m%dT%H%M%SZ"


class SigningClock:
    """The time requests are signed with: ``source()`` (this machine's clock, injectable for
    tests) plus ``offset``, the server's clock minus ours, learnt from a refusal (0.0: none)."""

    __slots__ = ("offset", "source")

    def __init__(self, source: Callable[[], float] = time.time) -> None:
        self.source = source
        self.offset = 0.0

    def now(self) -> float:
        """Epoch seconds on the server's clock, as far as we know it."""
        return self.source() + self.offset

    def refusal_offset(
        self,
        code: str,
        status: int,
        error: Mapping[str, Any],
        headers: Mapping[str, str],
        signed_offset: float | None = None,
    ) -> float | None:
        """The offset (server minus this machine) when an error reply refused the request's
        time, None when it did not (or says nothing of the server's time).

        A refusal is one of :data:`SKEW_CODES`, or a 403 whose server time is more than
        :data:`SUSPECT_SKEW_S` from the time we signed with: this machine's clock plus
        ``signed_offset``, the offset when the request was signed (default: the offset now;
        a request signed before a concurrent one corrected the clock was signed without it).
        """
        if code not in SKEW_CODES and status != 403:
            return None
        server = _server_time(error, headers)
        if server is None:
            return None
        signed = self.source() + (self.offset if signed_offset is None else signed_offset)
        if code not in SKEW_CODES and abs(server - signed) <= SUSPECT_SKEW_S:
            return None
        return server - self.source()


def describe(offset: float) -> str:
    """The offset in words: ``the client clock is 3,600 s ahead of the server``."""
    where = "ahead of" if offset < 0 else "behind"
    return f"the client clock is {abs(offset):,.0f} s {where} the server"


def _server_time(error: Mapping[str, Any], headers: Mapping[str, str]) -> float | None:
    """The server's time from an error reply: ``ServerTime`` (ISO 8601), else ``Date``."""
    text = error.get("ServerTime")
    if isinstance(text, str) and text:
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    date = headers.get("date")
    if date:
        try:
            return parse_http_date(date)
        except ValueError:
            return None
    return None


class _ClockedS3SigV4Auth(S3SigV4Auth):  # type: ignore[misc]
    """botocore's S3 SigV4 signer, signing at the time of a :class:`SigningClock`.

    ``add_auth`` stamps the request with botocore's clock and then calls this method before it
    reads the stamp for the date headers, the scope and the signature: replacing the stamp here
    is all it takes.
    """

    def __init__(
        self, credentials: Any, service_name: str, region_name: str, clock: SigningClock
    ) -> None:
        super().__init__(credentials, service_name, region_name)
        self._clock = clock

    def _modify_request_before_signing(self, request: Any) -> None:
        request.context["timestamp"] = time.strftime(_AMZ_DATE, time.gmtime(self._clock.now()))
        super()._modify_request_before_signing(request)


def correct_signing(client: Any, clock: SigningClock) -> bool:
    """Let ``client`` (one aiobotocore client) sign S3 SigV4 requests at ``clock``'s time once
    it has an offset. Touches that client's own signer only, never botocore's classes: its plain
    S3 SigV4 signer (botocore's, or awscrt's, which takes its time from no hook) is then
    botocore's own Python one reading ``clock``; any other signer (S3 Express, SigV4a, a custom
    one) is left as it is. False when the client's signer is not as expected: its requests are
    then signed on this machine's clock."""
    signer: Any = getattr(client, "_request_signer", None)
    original = getattr(signer, "get_auth_instance", None)
    if original is None or not inspect.iscoroutinefunction(original):
        return False

    plain = (S3SigV4Auth, AUTH_TYPE_MAPS.get("s3v4"))  # the latter is awscrt's, when installed

    async def get_auth_instance(*args: Any, **kwargs: Any) -> Any:
        auth = await original(*args, **kwargs)
        if clock.offset and type(auth) in plain:
            return _ClockedS3SigV4Auth(
                auth.credentials, auth._service_name, auth._region_name, clock
            )
        return auth

    signer.get_auth_instance = get_auth_instance
    return True
