"""The transport's per-request hook: every attempt sent, and the end of every request, reach
one :class:`RequestLog` (the cache's recorder), on the wire path and through aiobotocore alike.

The wire path tells the log of each attempt itself (:mod:`s3cache._send`); aiobotocore's
attempts, its own retries and the requests it makes on its own (CreateSession) included, reach
it through the client's ``response-received`` event (:func:`meter_client`). An attempt without
a reply (a connection failure) is told with status 0.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["UNLOGGED", "RequestLog", "meter_client"]


class RequestLog(Protocol):
    """Hears of the requests of one cache (see the module docstring)."""

    def attempted(self, op: str, attempt: int, status: int, code: str | None) -> None:
        """Attempt number ``attempt`` (1: the first; more: a retry) of the S3 operation ``op``
        got HTTP ``status`` (0: no reply), with the S3 error ``code`` of an error reply."""

    def sent(self, op: str, outcome: str, seconds: float) -> None:
        """A request of ``op`` ended after ``seconds``, its retries included: ``outcome`` is
        what its reply meant (``ok``, ``missing``...) or the kind of its error."""


class _Unlogged:
    """The log of a transport no cache records: hears nothing."""

    def attempted(self, op: str, attempt: int, status: int, code: str | None) -> None:
        """Nothing."""

    def sent(self, op: str, outcome: str, seconds: float) -> None:
        """Nothing."""


UNLOGGED: RequestLog = _Unlogged()


def meter_client(client: Any, log_of: Callable[[], RequestLog]) -> None:
    """Tell the log that ``log_of()`` gives (read at each reply) of every attempt of
    ``client`` (one aiobotocore client)."""

    def received(
        event_name: str = "",
        response_dict: dict[str, Any] | None = None,
        parsed_response: dict[str, Any] | None = None,
        context: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        op = event_name.rpartition(".")[2]
        attempt = int(((context or {}).get("retries") or {}).get("attempt") or 1)
        if response_dict is None:  # no reply: a connection failure
            log_of().attempted(op, attempt, 0, None)
            return
        status = int(response_dict.get("status_code") or 0)
        code = ((parsed_response or {}).get("Error") or {}).get("Code") if status >= 400 else None
        log_of().attempted(op, attempt, status, code)

    client.meta.events.register(
        "response-received.s3", received, unique_id="s3cache-metering-reply"
    )
