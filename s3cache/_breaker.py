"""A circuit breaker per endpoint, sans-IO: fail fast while the store is down, probe it back.

closed → open after a run of consecutive transport failures, or a failure ratio over a sliding
window → every request fails at once with :class:`CircuitOpenError` (kind ``circuit_open``)
for a cool-down → half-open: exactly one probe request at a time goes through → closed on its
success, open again on its failure (the cool-down doubles, up to a cap).

Only transport failures count (:data:`TRANSPORT_KINDS`: timeouts, connection errors, 5xx and
SlowDown). Every other outcome means the server answered (a miss, ``no_such_bucket``,
``access_denied``, ``credentials``, ``corrupt``...) and counts as a success; bad input never
reaches it. The caller brackets each store operation (not each HTTP attempt: retries happen
inside it)::

    ticket = breaker.allow()              # None: fail fast
    if ticket is None:
        raise breaker.rejection("GetObject", okey)
    ...send...
    breaker.record(ticket, kind)          # kind None on success; abandon() when cancelled

The ticket is the breaker's epoch when the request was admitted: outcomes of requests admitted
before the latest change of state (a request sent into a black hole that times out after the
breaker closed again) change nothing.

Thread-safety: a cache may be used from several event loops in several threads, so state
changes take a ``threading.Lock``. The fast paths take none: :meth:`allow` while closed reads two
attributes, and :meth:`record` of a success while closed and healthy updates at most two
counters (under threads a concurrent success may be lost from the ratio's estimate; no state
change is).
"""

from __future__ import annotations

import enum
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from s3cache._numbers import whole_number
from s3cache.errors import CircuitOpenError

__all__ = [
    "NEUTRAL_KINDS",
    "TRANSPORT_KINDS",
    "Breaker",
    "BreakerEvent",
    "BreakerState",
    "BreakerStats",
    "CircuitBreaker",
    "CircuitOpenError",
    "breaker_config",
    "counts_as_failure",
]

#: Error kinds that count against the store: it did not answer, or answered 5xx/SlowDown.
TRANSPORT_KINDS: Final = frozenset({"timeout", "connection", "server"})
#: Outcomes that say nothing about the store (no request was answered or refused by it): the
#: cache was closed, an unclassified failure, or the breaker itself. A probe ending so frees the
#: probe slot; nothing is counted.
NEUTRAL_KINDS: Final = frozenset({"closed", "other", "circuit_open"})


def counts_as_failure(kind: str | None) -> bool:
    """Whether an outcome of ``kind`` (None: success) counts against the store."""
    return kind in TRANSPORT_KINDS


@dataclass(frozen=True, slots=True)
class Breaker:
    """Circuit-breaker settings: ``breaker=Breaker(...)``; ``breaker=None`` or ``False``: off.

    The defaults, and why. A black-holed store costs every caller its whole ``timeout``, while
    a false open costs a miss (or a stale value) for one short cool-down, so the breaker opens
    readily and recovers fast. Five operations in a row failing with a transport error
    (``failures=5``; each is already up to three attempts inside botocore's retries) does not
    happen to a healthy S3, and under concurrency it takes one timeout: 64 callers stuck in a
    black hole fail together. A brown-out, where only some requests fail, opens it through the
    ratio: half of at least 20 operations within the last 10 s (``ratio=0.5``, ``min_calls=20``,
    ``window=10``), so that a sporadic 503 never does. Open, it fails fast for ``cooldown=2`` s,
    then lets one probe through; each failed probe doubles the cool-down up to
    ``max_cooldown=30`` s, so a long outage costs one probe per 30 s per process, and service
    resumes within one cool-down of the store coming back.

    ``failures``: consecutive transport failures that open it (None: only the ratio).
    ``ratio``: the failure ratio that opens it (None: only the run). ``window``: seconds the
    ratio looks back. ``min_calls``: operations in the window before the ratio is judged.
    ``cooldown``: seconds of the first cool-down. ``max_cooldown``: the largest cool-down.
    """

    failures: int | None = 5
    ratio: float | None = 0.5
    window: float = 10.0
    min_calls: int = 20
    cooldown: float = 2.0
    max_cooldown: float = 30.0

    def __post_init__(self) -> None:
        if self.failures is None and self.ratio is None:
            raise ValueError("Breaker needs failures or ratio (or use breaker=None to turn it off)")
        if self.failures is not None:
            _whole("failures", self.failures)
        if self.ratio is not None:
            _number("ratio", self.ratio)
            if not 0 < self.ratio <= 1:
                raise ValueError(f"Breaker.ratio must be in (0, 1], not {self.ratio!r}")
        _whole("min_calls", self.min_calls)
        for name in ("window", "cooldown", "max_cooldown"):
            value = _number(name, getattr(self, name))
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"Breaker.{name} must be positive seconds, not {value!r}")
        if self.max_cooldown < self.cooldown:
            raise ValueError(
                f"Breaker.max_cooldown ({self.max_cooldown!r}) is below cooldown "
                f"({self.cooldown!r})"
            )


def _whole(name: str, value: object) -> None:
    whole_number(value, f"Breaker.{name}")


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"Breaker.{name} must be a number, not {type(value).__name__}")
    return float(value)


def breaker_config(value: Breaker | bool | None) -> Breaker | None:
    """The settings for ``breaker=``: a :class:`Breaker`, True (the defaults), None or False
    (off)."""
    if value is None or value is False:
        return None
    if value is True:
        return Breaker()
    if not isinstance(value, Breaker):
        raise TypeError(
            f"breaker must be a Breaker(...), True, False or None, not {type(value).__name__}"
        )
    return value


class BreakerState(enum.Enum):
    """Where a breaker is."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerEvent:
    """A change of state, for ``on_change``: log once when ``previous`` is closed (opened) and
    when ``state`` is closed (closed again); ``reason`` is ``failures``, ``ratio``,
    ``probe_failed``, ``cooldown_over`` or ``probe_succeeded``; ``cooldown``: seconds, when
    opening."""

    name: str
    state: BreakerState
    previous: BreakerState
    reason: str
    cooldown: float


@dataclass(frozen=True, slots=True)
class BreakerStats:
    """Counters for ``stats()``: times opened from closed, reopened by a failed probe, closed
    again; requests failed fast; probes admitted; transport failures counted; and the state."""

    state: str
    opened: int
    reopened: int
    closed: int
    rejected: int
    probes: int
    failures: int


_CLOSED: Final = BreakerState.CLOSED
_OPEN: Final = BreakerState.OPEN
_HALF_OPEN: Final = BreakerState.HALF_OPEN
_BUCKETS: Final = 10


class _Window:
    """Operations and transport failures over the last ``span`` seconds, in ten buckets.

    Counted with the clock only while a failure is within the window (an incident). Successes in
    between cost no clock read: they are counted in ``quiet``, and when an incident starts the
    share of them within the window is estimated from their average rate since ``quiet_since``.
    """

    __slots__ = ("_buckets", "_span", "_width", "calls", "failures", "quiet", "quiet_since")

    def __init__(self, span: float, now: float) -> None:
        self._span = span
        self._width = span / _BUCKETS
        self._buckets: deque[list[float]] = deque()  # [start, calls, failures]
        self.calls = 0.0
        self.failures = 0
        self.quiet = 0
        self.quiet_since = now

    def add(self, now: float, failed: bool) -> None:
        """Count one operation at ``now`` (monotonic seconds)."""
        if not self.failures:
            if not failed:
                self.quiet += 1
                return
            self._start(now)
        self._expire(now)
        start = now - now % self._width
        if not self._buckets or self._buckets[-1][0] != start:
            self._buckets.append([start, 0.0, 0.0])
        bucket = self._buckets[-1]
        bucket[1] += 1
        self.calls += 1
        if failed:
            bucket[2] += 1
            self.failures += 1
        elif not self.failures:  # the incident aged out: back to counting without a clock
            self.reset(now)

    def _start(self, now: float) -> None:
        """An incident begins: seed the window with the quiet successes' estimated share."""
        elapsed = now - self.quiet_since
        share = 1.0 if elapsed <= self._span else self._span / elapsed
        self._buckets.append([now - now % self._width, self.quiet * share, 0.0])
        self.calls = self.quiet * share
        self.quiet = 0

    def _expire(self, now: float) -> None:
        horizon = now - self._span
        while self._buckets and self._buckets[0][0] + self._width <= horizon:
            _, calls, failures = self._buckets.popleft()
            self.calls -= calls
            self.failures -= int(failures)

    def reset(self, now: float) -> None:
        """Forget everything (on a change of state)."""
        self._buckets.clear()
        self.calls = 0.0
        self.failures = 0
        self.quiet = 0
        self.quiet_since = now


class CircuitBreaker:
    """The breaker for one endpoint (see the module docstring for the protocol).

    ``config``: the :class:`Breaker` settings. ``name``: the endpoint, for messages and events.
    ``probe_timeout``: seconds after which a probe that never reported (its caller vanished)
    no longer holds the probe slot; pass the operation deadline. ``clock``: monotonic seconds.
    ``on_change``: called with a :class:`BreakerEvent` after each change of state, outside
    the lock; it must not raise (the core's recorder logs and counts).
    """

    __slots__ = (
        "_clock",
        "_config",
        "_cooldown",
        "_counts",
        "_lock",
        "_probe_sent",
        "_probe_timeout",
        "_run",
        "_state",
        "_until",
        "_window",
        "epoch",
        "name",
        "on_change",
    )

    def __init__(
        self,
        config: Breaker,
        *,
        name: str = "the store",
        probe_timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerEvent], None] | None = None,
    ) -> None:
        self._config = config
        self.name = name
        self._probe_timeout = probe_timeout
        self._clock = clock
        #: Told of each change of state (the core's recorder logs and counts).
        self.on_change = on_change
        self._lock = threading.Lock()
        self._state = _CLOSED
        #: Bumped on every change of state and every probe admitted: tickets older than it
        #: report on requests admitted under a state that is over.
        self.epoch = 0
        self._run = 0
        self._window = _Window(config.window, clock()) if config.ratio is not None else None
        self._cooldown = config.cooldown
        self._until = 0.0
        self._probe_sent: float | None = None
        #: opened, reopened, closed, rejected, probes, failures (see :class:`BreakerStats`)
        self._counts = [0, 0, 0, 0, 0, 0]

    @property
    def state(self) -> BreakerState:
        """Closed, open or half-open (an open breaker past its cool-down turns half-open at the
        next :meth:`allow`)."""
        return self._state

    def allow(self) -> int | None:
        """A ticket to send one request (pass it to :meth:`record`), or None: fail fast."""
        if self._state is _CLOSED:
            return self.epoch
        return self._admit()

    def _admit(self) -> int | None:
        events: list[BreakerEvent] = []
        with self._lock:
            ticket = self._admit_locked(self._clock(), events)
        self._emit(events)
        return ticket

    def _admit_locked(self, now: float, events: list[BreakerEvent]) -> int | None:
        if self._state is _CLOSED:
            return self.epoch
        if self._state is _OPEN:
            if now < self._until:
                self._counts[3] += 1
                return None
            self._move(_HALF_OPEN, "cooldown_over", events)
        probe = self._probe_sent
        if probe is not None and now < probe + self._probe_timeout:
            self._counts[3] += 1
            return None
        self.epoch += 1
        self._probe_sent = now
        self._counts[4] += 1
        return self.epoch

    def retry_after(self) -> float:
        """Seconds until a request may be admitted again (0 while closed)."""
        if self._state is _CLOSED:
            return 0.0
        now = self._clock()
        if self._state is _OPEN:
            return max(0.0, self._until - now)
        probe = self._probe_sent
        return 0.0 if probe is None else max(0.0, probe + self._probe_timeout - now)

    def rejection(self, op: str, key: str) -> CircuitOpenError:
        """The error for a request :meth:`allow` refused, naming the operation and object key."""
        wait = self.retry_after()
        return CircuitOpenError(
            f"{op} {key!r}: not sent, the circuit breaker for {self.name} is open after repeated "
            f"transport failures; next probe in {wait:.1f} s",
            wait,
        )

    def record(self, ticket: int, kind: str | None = None) -> None:
        """The outcome of a request admitted with ``ticket``: ``kind`` None for success (any
        answer of the server), else the error's kind; neutral kinds are :meth:`abandon`."""
        if kind is None or (kind not in TRANSPORT_KINDS and kind not in NEUTRAL_KINDS):
            if self._state is _CLOSED:
                if self._run:
                    self._run = 0
                window = self._window
                if window is not None:
                    if window.failures:
                        with self._lock:
                            window.add(self._clock(), False)
                    else:
                        window.quiet += 1
                return
            self._settle(ticket, True)
        elif kind in TRANSPORT_KINDS:
            self._settle(ticket, False)
        else:
            self.abandon(ticket)

    def abandon(self, ticket: int) -> None:
        """A request admitted with ``ticket`` ended with no verdict on the store (cancelled)."""
        with self._lock:
            if self._state is _HALF_OPEN and ticket == self.epoch:
                self._probe_sent = None

    def _settle(self, ticket: int, ok: bool) -> None:
        events: list[BreakerEvent] = []
        with self._lock:
            if not ok:
                self._counts[5] += 1
            if ticket == self.epoch:
                if self._state is _CLOSED:
                    if not ok:
                        self._failed_closed(events)
                elif self._state is _HALF_OPEN:
                    if ok:
                        self._move(_CLOSED, "probe_succeeded", events)
                    else:
                        self._cooldown = min(self._cooldown * 2, self._config.max_cooldown)
                        self._move(_OPEN, "probe_failed", events)
        self._emit(events)

    def _failed_closed(self, events: list[BreakerEvent]) -> None:
        self._run += 1
        config = self._config
        if config.failures is not None and self._run >= config.failures:
            self._move(_OPEN, "failures", events)
            return
        window = self._window
        if window is None or config.ratio is None:
            return
        window.add(self._clock(), True)
        if window.calls >= config.min_calls and window.failures >= config.ratio * window.calls:
            self._move(_OPEN, "ratio", events)

    def _move(self, state: BreakerState, reason: str, events: list[BreakerEvent]) -> None:
        """Change state (under the lock); the event is emitted once the lock is released."""
        previous, now = self._state, self._clock()
        self._state = state
        self.epoch += 1
        self._probe_sent = None
        self._run = 0
        if self._window is not None:
            self._window.reset(now)
        if state is _OPEN:
            if previous is _CLOSED:
                self._cooldown = self._config.cooldown
                self._counts[0] += 1
            else:
                self._counts[1] += 1
            self._until = now + self._cooldown
        elif state is _CLOSED:
            self._cooldown = self._config.cooldown
            self._counts[2] += 1
        cooldown = self._cooldown if state is _OPEN else 0.0
        events.append(BreakerEvent(self.name, state, previous, reason, cooldown))

    def _emit(self, events: list[BreakerEvent]) -> None:
        if self.on_change is not None:
            for event in events:
                self.on_change(event)

    def stats(self) -> BreakerStats:
        """A snapshot of the counters and the state."""
        opened, reopened, closed, rejected, probes, failures = self._counts
        return BreakerStats(self._state.value, opened, reopened, closed, rejected, probes, failures)

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, {self._state.value})"
