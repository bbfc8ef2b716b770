"""What hears of a cache's operations besides its counters: request sinks (every attempt,
request, phase and lease, for telemetry's metrics), the tracer (spans, opt-in), and the
:class:`Phase` a ``get_or_set`` factory's run is recorded as (see :mod:`s3cache._recorder`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["Phase", "RequestSink", "Tracer", "install", "instrument"]

_monotonic = time.monotonic


class RequestSink(Protocol):
    """Receives every attempt and request the transport sends, and every phase that ends
    (see :class:`~s3cache._metering.RequestLog`; called as :class:`Sink` is)."""

    def attempted(self, op: str, attempt: int, status: int, code: str | None) -> None:
        """Attempt ``attempt`` of the S3 operation ``op`` got ``status`` (0: no reply)."""

    def sent(self, op: str, outcome: str, seconds: float) -> None:
        """A request of ``op`` ended: ``outcome`` (``ok``, ``missing``..., or an error kind)."""

    def phased(self, phase: Phase, failed: bool) -> None:
        """``phase`` (its name and duration set) ended; ``failed``: by an exception."""

    def saved(self, how: str, dollars: float) -> None:
        """A ``get_or_set(cost=...)`` call avoided its factory (``how``: ``hit``, ``joined``,
        ``waited``), saving ``dollars``."""

    def leased(self, result: str, seconds: float) -> None:
        """A ``get_or_set(lease=...)`` miss contended for its lease for ``seconds``: ``result``
        is ``acquired``, ``takeover`` (after waiting on a holder), ``waited`` (the holder's
        value came) or ``gave_up`` (computed here after waiting too long)."""


class Tracer(Protocol):
    """Opens a span when an operation or phase opens (``item.trace``: its own, e.g. a span
    and a context token), and closes it when it ends (its outcome set, if it has one)."""

    def opened(self, item: Any) -> None:
        """``item`` (an :class:`~s3cache._recorder.Op` or a :class:`Phase`: its ``name`` and
        ``trace``) has begun, in the running task's context."""

    def closed(self, item: Any) -> None:
        """``item`` has ended, in the context it began in."""


class Phase:
    """A part of an operation recorded for its own sake: ``factory`` (a ``get_or_set``
    factory's run: counted, timed) or ``get_or_set`` (the whole call, for its span)."""

    __slots__ = ("_ended", "duration", "failed", "name", "started", "trace")

    def __init__(self, name: str, ended: Callable[[Phase], None]) -> None:
        self._ended = ended
        self.name = name
        self.started = _monotonic()
        self.duration = 0.0
        self.failed = False
        self.trace: Any = None

    def __enter__(self) -> Phase:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.duration = _monotonic() - self.started
        self.failed = exc_type is not None
        self._ended(self)


#: How ``telemetry=True`` instruments a cache: installed by the package (``s3cache``, on top),
#: which imports :mod:`s3cache.telemetry`, and so OpenTelemetry, only when it is called.
_INSTRUMENT: list[Callable[[Any], object]] = []


def install(instrument: Callable[[Any], object]) -> None:
    """Make ``instrument(cache)`` what ``telemetry=True`` calls."""
    _INSTRUMENT[:] = [instrument]


def instrument(cache: Any) -> None:
    """Instrument ``cache`` as ``telemetry=True`` asks (see :func:`install`)."""
    for instrument in _INSTRUMENT:
        instrument(cache)
