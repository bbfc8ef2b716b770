"""AWS Signature Version 4 for S3 requests, as botocore's ``S3SigV4Auth`` computes it.

Pure and sans-IO (standard library only). The derived signing key, an HMAC chain over the
date, region and service, is cached per (access key, date, region, service), so that signing
a request costs two SHA-256 passes instead of six. The wire path signs with it; a conformance
test holds its ``Authorization`` header byte-for-byte equal to botocore's.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, MutableMapping
from typing import Final, NamedTuple, Protocol
from urllib.parse import quote, urlsplit

__all__ = [
    "ALGORITHM",
    "EMPTY_SHA256",
    "UNSIGNED_PAYLOAD",
    "AmzDate",
    "CredentialSet",
    "Credentials",
    "Signer",
    "quote_key",
    "signed_host",
]

ALGORITHM: Final = "AWS4-HMAC-SHA256"
#: The payload hash of an empty body.
EMPTY_SHA256: Final = hashlib.sha256(b"").hexdigest()
#: The payload hash S3 accepts instead of the body's SHA-256.
UNSIGNED_PAYLOAD: Final = "UNSIGNED-PAYLOAD"
#: Headers botocore never signs (``botocore.auth.SIGNED_HEADERS_BLACKLIST``): proxies and
#: the HTTP layer may change them.
UNSIGNED_HEADERS: Final = frozenset(
    {
        "baggage",
        "connection",
        "expect",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "traceparent",
        "tracestate",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "x-amzn-trace-id",
    }
)
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_MAX_KEYS: Final = 16  # derived keys kept (a new one a day per credential and region)


class CredentialSet(Protocol):
    """What signing needs from credentials; botocore's ``ReadOnlyCredentials`` is one."""

    @property
    def access_key(self) -> str: ...
    @property
    def secret_key(self) -> str: ...
    @property
    def token(self) -> str | None: ...


class Credentials(NamedTuple):
    """A plain :class:`CredentialSet`."""

    access_key: str
    secret_key: str
    token: str | None = None


def quote_key(key: str) -> str:
    """An object key as it appears in a request path: UTF-8, percent-encoded once, ``/`` kept.

    botocore's ``percent_encode(key, safe="/~")``; S3 signs this path as it is sent.
    """
    return quote(key, safe="/~")


def signed_host(url: str) -> str:
    """The ``Host`` value botocore signs for ``url``: lower-case, default port left out."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    if parts.port is not None and parts.port != _DEFAULT_PORTS.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return host


class AmzDate:
    """``X-Amz-Date`` for the current second (``20240131T120000Z``) of ``clock`` (epoch seconds;
    the signing clock, corrected for the server's), formatted once a second."""

    __slots__ = ("_clock", "_second", "_text")

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._second = -1
        self._text = ""

    def __call__(self, now: float | None = None) -> str:
        second = int(self._clock() if now is None else now)
        if second != self._second:
            self._text = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second))
            self._second = second
        return self._text


class Signer:
    """Signs S3 requests for one region and service with SigV4, caching derived keys."""

    __slots__ = ("_keys", "region", "service")

    def __init__(self, region: str, service: str = "s3") -> None:
        self.region = region
        self.service = service
        self._keys: dict[tuple[str, str], tuple[str, bytes]] = {}

    def signing_key(self, access_key: str, secret_key: str, datestamp: str) -> bytes:
        """The derived key for ``datestamp`` (``YYYYMMDD``), computed once per day and key."""
        cached = self._keys.get((access_key, datestamp))
        if cached is not None and cached[0] == secret_key:
            return cached[1]
        key = _hmac(f"AWS4{secret_key}".encode(), datestamp)
        for part in (self.region, self.service, "aws4_request"):
            key = _hmac(key, part)
        if len(self._keys) >= _MAX_KEYS:
            self._keys.clear()
        self._keys[(access_key, datestamp)] = (secret_key, key)
        return key

    def sign(
        self,
        method: str,
        path: str,
        headers: MutableMapping[str, str],
        payload_hash: str,
        credentials: CredentialSet,
        amz_date: str,
    ) -> None:
        """Add ``x-amz-date``, ``x-amz-content-sha256``, the session token and ``authorization``.

        ``headers`` has lower-case names and must hold ``host``; every header in it except
        :data:`UNSIGNED_HEADERS` is signed. ``path`` is the request path exactly as sent
        (already percent-encoded; S3 paths are not normalised) and the query string is empty.
        """
        headers["x-amz-date"] = amz_date
        headers["x-amz-content-sha256"] = payload_hash
        if credentials.token:
            headers["x-amz-security-token"] = credentials.token
        names = sorted(n for n in headers if n not in UNSIGNED_HEADERS)
        signed = ";".join(names)
        canonical = "".join(
            [
                f"{method}\n{path}\n\n",
                *[f"{n}:{' '.join(headers[n].split())}\n" for n in names],
                f"\n{signed}\n{payload_hash}",
            ]
        )
        datestamp = amz_date[:8]
        scope = f"{datestamp}/{self.region}/{self.service}/aws4_request"
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        to_sign = f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"
        key = self.signing_key(credentials.access_key, credentials.secret_key, datestamp)
        signature = hmac.digest(key, to_sign.encode(), "sha256").hex()
        headers["authorization"] = (
            f"{ALGORITHM} Credential={credentials.access_key}/{scope}, "
            f"SignedHeaders={signed}, Signature={signature}"
        )


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.digest(key, message.encode(), "sha256")
