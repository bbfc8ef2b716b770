"""Adaptive pacing wired into sending: one :class:`~s3cache._pacing.Pacer` per bucket per
process, a wait before every attempt (never past the operation's deadline) and the reply
observed after it, on the wire path and through aiobotocore alike.

The sender (:mod:`s3cache._send`) opens a :class:`Send` for each operation, with its deadline,
and calls :meth:`Pacing.before` and :meth:`Pacing.after` around each attempt of the wire path;
aiobotocore's attempts (its own retries included) reach the same two calls through the client's
``before-send`` and ``response-received`` events (:func:`pace_client`), which find the
operation's :class:`Send` in a context variable. A send whose wait would pass the deadline is
not sent: :class:`PaceRefused`, which the sender reports as a timeout.

The pacing is per process (the caches of one process on one bucket share its pacer): a
fleet-wide rate is out of scope.
"""

from __future__ import annotations

import asyncio
import os
import threading
from contextvars import ContextVar, Token
from typing import Any, Final

from s3cache._pacing import Pacer, is_throttling

__all__ = [
    "PaceRefused",
    "Pacing",
    "Send",
    "current_send",
    "end_send",
    "pace_client",
    "start_send",
]


class PaceRefused(Exception):
    """The wait for a send slot would pass the operation's deadline: nothing was sent."""


class Send:
    """One operation being sent: its deadline (the event loop's time) and the pacer's epoch
    when its latest attempt went out (so that a burst of throttles backs off once)."""

    __slots__ = ("deadline", "epoch", "pacing")

    def __init__(self, pacing: Pacing, deadline: float) -> None:
        self.pacing = pacing
        self.deadline = deadline
        self.epoch = 0


#: The operation the running task is sending (read by the aiobotocore event handlers).
_CURRENT: Final[ContextVar[Send | None]] = ContextVar("s3cache_send", default=None)


def start_send(send: Send | None) -> Token[Send | None]:
    """Make ``send`` the running task's operation (None: pacing off); undo with :func:`end_send`."""
    return _CURRENT.set(send)


def current_send() -> Send | None:
    """The running task's operation, if pacing is on."""
    return _CURRENT.get()


def end_send(token: Token[Send | None]) -> None:
    """The operation that :func:`start_send` gave ``token`` for has ended."""
    _CURRENT.reset(token)


class _Shared:
    """The pacer of one bucket in this process, and the lock that lets several event-loop
    threads share it."""

    __slots__ = ("lock", "pacer")

    def __init__(self) -> None:
        self.pacer = Pacer()
        self.lock = threading.Lock()


_SHARED: Final[dict[tuple[int, str | None, str], _Shared]] = {}
_SHARED_LOCK: Final = threading.Lock()


def _shared(endpoint: str | None, bucket: str) -> _Shared:
    """The pacer of ``bucket`` at ``endpoint`` in this process (a forked child gets its own)."""
    key = (os.getpid(), endpoint, bucket)
    with _SHARED_LOCK:
        found = _SHARED.get(key)
        if found is None:
            found = _SHARED[key] = _Shared()
        return found


class Pacing:
    """One cache's use of its bucket's pacer, and the throttling replies this cache received."""

    __slots__ = ("_shared", "throttles")

    def __init__(self, endpoint: str | None, bucket: str) -> None:
        """The pacing of a cache on ``bucket`` at ``endpoint`` (None: AWS)."""
        self._shared = _shared(endpoint, bucket)
        #: Throttling replies (503 SlowDown and its kin) this cache received, retries included.
        self.throttles = 0

    @property
    def rate(self) -> float | None:
        """The bucket's allowed send rate now, requests per second; None while unpaced."""
        return self._shared.pacer.rate

    def start(self, deadline: float) -> Send:
        """An operation due by ``deadline`` (the running loop's time) begins."""
        return Send(self, deadline)

    async def before(self, send: Send) -> None:
        """Wait for the send slot of one attempt of ``send``; :class:`PaceRefused` at once,
        with nothing taken, if that wait would pass its deadline."""
        shared = self._shared
        pacer = shared.pacer
        if pacer.limited:  # unthrottled: one attribute read, no clock, no lock
            left = send.deadline - asyncio.get_running_loop().time()
            with shared.lock:
                wait = pacer.reserve(left)
            if wait is None:
                raise PaceRefused
            if wait > 0:
                await asyncio.sleep(wait)
        send.epoch = pacer.epoch

    def after(self, send: Send, status: int, code: str | None) -> None:
        """Account for the reply (HTTP ``status``, S3 error ``code``) to an attempt of ``send``."""
        throttled = status >= 400 and is_throttling(status, code)
        if throttled:
            self.throttles += 1
        shared = self._shared
        with shared.lock:
            shared.pacer.observe(throttled, send.epoch)


async def _before_send(**kwargs: Any) -> None:
    """aiobotocore's ``before-send`` event: pace the attempt of the running operation."""
    send = _CURRENT.get()
    if send is not None:
        await send.pacing.before(send)


def _response_received(
    response_dict: dict[str, Any] | None = None,
    parsed_response: dict[str, Any] | None = None,
    **kwargs: Any,
) -> None:
    """aiobotocore's ``response-received`` event: observe the reply to that attempt."""
    send = _CURRENT.get()
    if send is None or response_dict is None:  # no reply (a connection failure)
        return
    error = (parsed_response or {}).get("Error") or {}
    send.pacing.after(send, int(response_dict.get("status_code") or 0), error.get("Code"))


def pace_client(client: Any) -> None:
    """Let the attempts of ``client`` (one aiobotocore client; its events are its own) be paced
    by the operation that sends them, if any."""
    events = client.meta.events
    events.register("before-send.s3", _before_send, unique_id="s3cache-pacing-send")
    events.register("response-received.s3", _response_received, unique_id="s3cache-pacing-reply")
