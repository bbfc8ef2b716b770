"""The operation recorder: every public operation of a cache records itself here, once.

``with recorder.op("get", okey) as op: ... op.hit(nbytes)``: the operation's outcome (hit,
miss, stored, deleted, error...) is set on the way; when the block ends, the recorder counts it
(:class:`~s3cache._stats.Counters`, read by ``stats()``), times it, and hands the finished
record to every sink (the observer is one; telemetry attaches as another). An operation left by
an exception without an outcome (a cancellation, a bug) is not recorded. The recorder also owns
what ``on_error`` decides (raise, or log and fall back) and the rate-limited error log.

It is the transport's request log too (:class:`~s3cache._metering.RequestLog`): every attempt
sent is counted by S3 operation (what the store bills), retries and throttling replies among
them, and handed with each request's end to every request sink. ``with recorder.phase("factory")``
counts and times a ``get_or_set`` factory's run; a :class:`Tracer` (telemetry's spans, opt-in)
hears when each operation and phase opens and closes, so that spans nest.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping
from typing import Any, Final, Protocol, TypeVar

from s3cache._breaker import BreakerEvent, BreakerState, CircuitBreaker
from s3cache._config_errors import ConfigAlarm
from s3cache._operation import Op
from s3cache._pacing import is_throttling
from s3cache._pricing import S3_STANDARD, Avoided, Cost, PriceTable, SavingsLedger, spend
from s3cache._settings import Settings
from s3cache._sinks import Phase, RequestSink, Tracer
from s3cache._stats import CacheEvent, CacheObserver, CacheStats, Counters
from s3cache.errors import BatchError, CacheClosedError, S3CacheError

__all__ = ["ErrorLog", "Op", "Paced", "Phase", "Recorder", "RequestSink", "Sink", "Tracer"]

logger = logging.getLogger("s3cache")

T = TypeVar("T")

_LOG_INTERVAL: Final = 10.0  # seconds between two log lines about the same kind of failure
#: What each reason an entry failed verification means, for the log line.
_UNVERIFIED: Final[Mapping[str, str]] = {
    "unsigned": "not signed",
    "unknown_key": "signed with a key this cache does not hold",
    "altered": "altered since it was signed (key, body, type, encoding or ttl)",
}
#: Operations that store something other than entries (not counted in ``sets``).
_NOT_ENTRIES: Final = frozenset({"invalidate"})
_monotonic = time.monotonic


class ErrorLog:
    """Logs store failures at most once per interval and kind, with the count it held back."""

    __slots__ = ("_last", "_suppressed")

    def __init__(self) -> None:
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def __call__(self, exc: S3CacheError) -> None:
        self.note(exc.kind, f"s3cache {exc.kind} failure: {exc}")

    def note(self, kind: str, text: str, level: int = logging.WARNING) -> None:
        """Log ``text`` (a warning by default), unless a line of its ``kind`` went out within
        the interval."""
        now = time.monotonic()
        last = self._last.get(kind)
        if last is not None and now - last < _LOG_INTERVAL:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return
        self._last[kind] = now
        held = self._suppressed.pop(kind, 0)
        more = f" ({held} more like it since the last report)" if held else ""
        logger.log(level, "%s%s", text, more)


class Sink(Protocol):
    """Receives every finished operation (:class:`Op`: name, key, outcome, duration, nbytes,
    error_kind, tier). Called on the event loop that ran it: keep it fast; what it raises is
    logged and otherwise ignored."""

    def finished(self, op: Op) -> None:
        """``op`` has ended (its outcome, duration and bytes are set)."""
        ...


class _ObserverSink:
    """Tells a user's :class:`~s3cache.CacheObserver` of each operation, as a CacheEvent."""

    __slots__ = ("_observer",)

    def __init__(self, observer: CacheObserver) -> None:
        self._observer = observer

    def finished(self, op: Op) -> None:
        """Hand ``op`` to the observer as a :class:`~s3cache.CacheEvent`."""
        self._observer.on_event(
            CacheEvent(
                op.name, op.key, op.outcome or "error", op.duration, op.nbytes, op.error_kind
            )
        )

    def __repr__(self) -> str:
        return repr(self._observer)


class Paced(Protocol):
    """What ``stats()`` reads of the transport's adaptive pacing (:mod:`s3cache._paced`)."""

    @property
    def throttles(self) -> int:
        """Throttling replies this cache received."""

    @property
    def rate(self) -> float | None:
        """The send rate allowed now, requests per second (None: unpaced)."""


class Recorder:
    """The counters, sinks, error log and ``on_error`` policy (``raise_errors``) of one cache."""

    __slots__ = (
        "_alarm",
        "_breaker",
        "_log",
        "_raise",
        "counters",
        "pricing",
        "request_sinks",
        "savings",
        "sinks",
        "tracer",
    )

    def __init__(
        self,
        observer: CacheObserver | None,
        raise_errors: bool,
        where: tuple[str, str | None, str | None] | None = None,
        pricing: PriceTable = S3_STANDARD,
    ) -> None:
        """Counters for a cache with this ``observer`` and ``on_error`` (``raise_errors``);
        ``where`` (bucket, endpoint, region) turns on the explaining of configuration errors;
        ``pricing``: the prices its spend is reported at."""
        self.counters = Counters()
        self.pricing = pricing
        #: The factory calls ``get_or_set(cost=...)`` avoided, and their dollars.
        self.savings = SavingsLedger()
        #: Configuration errors (issue 26): explained with their fix, the first of each kind
        #: logged at ERROR.
        self._alarm = None if where is None else ConfigAlarm(*where)
        self._log = ErrorLog()
        self._raise = raise_errors
        #: Who hears of each finished operation: the observer, if any, then any added sink.
        self.sinks: list[Sink] = [] if observer is None else [_ObserverSink(observer)]
        self._breaker: CircuitBreaker | None = None
        #: Who hears of each attempt, request and phase (telemetry's metrics).
        self.request_sinks: list[RequestSink] = []
        #: Who opens a span for each operation and phase (telemetry with spans on), if any.
        self.tracer: Tracer | None = None

    @classmethod
    def of(cls, settings: Settings) -> Recorder:
        """The recorder of a cache with these ``settings`` (configuration errors explained)."""
        return cls(settings.observer, settings.raise_errors, settings.where, settings.pricing)

    def op(self, name: str, key: str | None) -> Op:
        """Record the operation ``name`` on ``key``: ``with recorder.op(...) as op:``."""
        op = Op(self, name, key)
        if self.tracer is not None:
            self._traced(op)
        return op

    def phase(self, name: str) -> Phase:
        """Record the phase ``name`` (``factory``, ``get_or_set``): ``with recorder.phase(...)``."""
        phase = Phase(name, self.phase_ended)
        if self.tracer is not None:
            self._traced(phase)
        return phase

    def phase_ended(self, phase: Phase) -> None:
        """Count a factory's run (and its failure), tell the request sinks, close its span."""
        if phase.name == "factory":
            counters = self.counters
            counters.factory_calls += 1
            counters.factory_failed += phase.failed
            counters.latency("factory", phase.duration)
        for sink in self.request_sinks:
            try:
                sink.phased(phase, phase.failed)
            except Exception:
                logger.exception("s3cache telemetry %r failed on %s", sink, phase.name)
        if phase.trace is not None:
            self.close_trace(phase)

    def _traced(self, item: Op | Phase) -> None:
        try:
            self.tracer.opened(item)  # type: ignore[union-attr]  # checked by the caller
        except Exception:
            logger.exception("s3cache tracer %r failed opening %s", self.tracer, item.name)

    def close_trace(self, item: Op | Phase) -> None:
        """Close the span the tracer opened for ``item``."""
        try:
            if self.tracer is not None:
                self.tracer.closed(item)
        except Exception:
            logger.exception("s3cache tracer %r failed closing %s", self.tracer, item.name)
        item.trace = None

    # -- the transport's request log --------------------------------------------------------

    def attempted(self, op: str, attempt: int, status: int, code: str | None) -> None:
        """One attempt sent (see :class:`~s3cache._metering.RequestLog`): counted by S3
        operation, as a retry after the first, as a throttle when the reply is one."""
        counters = self.counters
        counters.requests[op] += 1
        if attempt > 1:
            counters.retries += 1
        if status >= 400 and is_throttling(status, code):
            counters.slowdowns += 1
        for sink in self.request_sinks:
            try:
                sink.attempted(op, attempt, status, code)
            except Exception:
                logger.exception("s3cache telemetry %r failed on %s", sink, op)

    def saved(self, how: Avoided, cost: Cost, value: Any) -> None:
        """A ``get_or_set(cost=...)`` call avoided its factory (``how``): priced at ``cost``
        for ``value``, told to the sinks; a cost callable that fails is logged (rate-limited)."""
        dollars = self.savings.record(how, cost, value)
        if dollars is None:
            self._log.note("cost", "s3cache: a cost= function raised or gave no dollars >= 0")
            return
        for sink in self.request_sinks:
            try:
                sink.saved(how, dollars)
            except Exception:
                logger.exception("s3cache telemetry %r failed on a saving", sink)

    def leased(self, result: str, seconds: float) -> None:
        """A lease contended for (see :meth:`RequestSink.leased`): counted, told to the sinks."""
        self.counters.leases[result] += 1
        for sink in self.request_sinks:
            try:
                sink.leased(result, seconds)
            except Exception:
                logger.exception("s3cache telemetry %r failed on a lease", sink)

    def sent(self, op: str, outcome: str, seconds: float) -> None:
        """A request ended (see :class:`~s3cache._metering.RequestLog`): told to the sinks."""
        for sink in self.request_sinks:
            try:
                sink.sent(op, outcome, seconds)
            except Exception:
                logger.exception("s3cache telemetry %r failed on %s", sink, op)

    def finish(self, op: Op) -> None:
        """Count and time a finished operation, then tell the sinks (which never break it)."""
        op.duration = duration = _monotonic() - op.started
        counters = self.counters
        counters.latency(op.name, duration)
        outcome = op.outcome
        if op.name == "get":  # lookups: every outcome is a hit or a miss
            if outcome == "hit":
                counters.hits += 1
                counters.bytes_in += op.nbytes
            elif outcome == "local_hit":
                counters.hits += 1
                counters.local_hits += 1
            else:
                counters.misses += 1
                if outcome == "expired":
                    counters.expired += 1
        elif outcome == "stored" and op.name not in _NOT_ENTRIES:
            counters.sets += 1
            counters.bytes_out += op.nbytes
        if outcome == "invalidated":
            counters.invalidated += 1
        counters.deletes += op.removed
        if op.error is None and self._alarm is not None:  # the endpoint answered
            self._alarm.answered = True
        for sink in self.sinks:
            try:
                sink.finished(op)
            except Exception:
                logger.exception("s3cache observer %r failed on %s", sink, op.name)

    def failed(self, exc: S3CacheError, fallback: T) -> T:
        """Count and log a store failure; raise it or return ``fallback`` per ``on_error``
        (a closed cache always raises: nothing is dropped silently)."""
        self.counters.errors[exc.kind] += 1
        exc, first = self.explain(exc)
        if self._raise or isinstance(exc, CacheClosedError):
            raise exc
        self._told(exc, first)
        return fallback

    def note(self, exc: S3CacheError) -> None:
        """Count and log a failure that is not the caller's to handle, whatever ``on_error``
        says (a lease release, a lock renewal)."""
        self.counters.errors[exc.kind] += 1
        self._told(*self.explain(exc))

    def explain(self, exc: S3CacheError) -> tuple[S3CacheError, bool]:
        """``exc``, with its fix when it is a configuration error, and whether it is the first
        of its kind (see :mod:`s3cache._config_errors`)."""
        return (exc, False) if self._alarm is None else self._alarm.explain(exc)

    def _told(self, exc: S3CacheError, first: bool) -> None:
        if exc.kind == "circuit_open":  # counted; its opening was logged, once
            return
        if first:  # a configuration error, first of its kind: loud, once
            text = f"s3cache configuration error ({exc.kind}): {exc}"
            self._log.note(exc.kind, text, logging.ERROR)
        else:
            self._log(exc)

    def refreshed(self, okey: str, error: BaseException | None, backoff: float) -> None:
        """A background refresh of ``okey`` ended: counted; a failure (``error``, after which
        the key waits ``backoff`` seconds) also counted by kind and logged, rate-limited."""
        counters = self.counters
        counters.refreshes += 1
        if error is None:
            return
        counters.refresh_failed += 1
        kind = error.kind if isinstance(error, S3CacheError) else "factory"
        if isinstance(error, S3CacheError):
            counters.errors[kind] += 1
        self._log.note(
            f"refresh:{kind}",
            f"s3cache: background refresh of {okey!r} failed ({type(error).__name__}: {error});"
            f" the stale value stays, next try in {backoff:.1f} s at the earliest",
        )

    def served_stale(self, okey: str, error: BaseException) -> None:
        """``get_or_set`` of ``okey`` served its stale entry (``stale_if_error``) because its
        fill raised ``error``: counted in ``stale_served`` (``factory_error``, or
        ``store_error`` for a store failure, already counted where it happened), logged
        (rate-limited)."""
        reason = "store_error" if isinstance(error, S3CacheError) else "factory_error"
        self.counters.stale_served[reason] += 1
        self._log.note(
            f"stale:{reason}",
            f"s3cache: served a stale value of {okey!r} (stale_if_error): its refresh failed "
            f"({type(error).__name__}: {error})",
        )

    def watch(self, breaker: CircuitBreaker) -> None:
        """Count and log the changes of ``breaker`` (the transport's): its opening from closed
        and its closing again are logged once each (a failed probe that reopens it only at
        DEBUG); ``stats().breaker`` reads its counters."""
        self._breaker = breaker
        breaker.on_change = self._breaker_changed

    def _breaker_changed(self, event: BreakerEvent) -> None:
        if event.state is BreakerState.OPEN and event.previous is BreakerState.CLOSED:
            why = "a run of" if event.reason == "failures" else "a high ratio of"
            logger.warning(
                "s3cache: circuit breaker for %s opened after %s transport failures (timeouts, "
                "connection errors, 5xx): requests fail at once (circuit_open) for %.1f s, then "
                "one probe at a time",
                event.name,
                why,
                event.cooldown,
            )
        elif event.state is BreakerState.CLOSED:
            logger.warning("s3cache: circuit breaker for %s closed: the store answers", event.name)
        else:
            logger.debug("s3cache: circuit breaker for %s: %s", event.name, event.state.value)

    def unverified(self, okey: str | None, reason: str) -> None:
        """An entry refused for its signature: counted by ``reason``, logged (rate-limited)."""
        self.counters.unverified[reason] += 1
        self._log.note(
            f"unverified:{reason}",
            f"s3cache: entry {okey!r} is {_UNVERIFIED[reason]}: not served (a miss)",
        )

    def batch_failed(
        self,
        op: str,
        failed: Mapping[str, S3CacheError],
        total: int,
        done: int,
        stopped: S3CacheError | None = None,
        stopped_after: str | None = None,
    ) -> None:
        """Count each failed key (and the error that ``stopped`` the batch) by its kind; then
        raise or log one :class:`BatchError` carrying ``done`` (always raised when the cache was
        closed under the batch: nothing is dropped silently)."""
        if not failed and stopped is None:
            return
        errors = [*failed.values(), *([stopped] if stopped is not None else [])]
        for error in errors:
            self.counters.errors[error.kind] += 1
        summary = BatchError(op, failed, total, done, stopped, stopped_after)
        if self._raise or any(isinstance(e, CacheClosedError) for e in errors):
            raise summary
        cause, first = self.explain(errors[0])
        if first:
            self._told(cause, first)
        self._log(summary)

    def snapshot(
        self, recovered: Mapping[str, int], clock_offset_s: float, pacing: Paced | None = None
    ) -> CacheStats:
        """The counters now, with the transport's ``recovered`` writes, clock offset and
        ``pacing`` (its throttling replies and the send rate allowed now)."""
        counters = self.counters
        stats = counters.snapshot(recovered, clock_offset_s)
        spent = spend(
            counters.requests,
            self.pricing,
            bytes_read=counters.bytes_in,
            bytes_written=counters.bytes_out,
        )
        saved = self.savings.snapshot()
        stats = dataclasses.replace(  # plain dicts, as every field of a snapshot (as_dict)
            stats,
            spend=dataclasses.replace(spent, requests=dict(spent.requests)),
            savings=dataclasses.replace(saved, avoided=dict(saved.avoided)),
        )
        if self._breaker is not None:
            stats = dataclasses.replace(stats, breaker=self._breaker.stats())
        if pacing is None:
            return stats
        return dataclasses.replace(stats, throttles=pacing.throttles, send_rate=pacing.rate)
