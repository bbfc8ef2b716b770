"""Counters, latency samples, the ``stats()`` snapshot, and the observer protocol for exporters."""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Final, Literal, Protocol, runtime_checkable

from s3cache._breaker import BreakerStats
from s3cache._pricing import Savings, Spend
from s3cache._pricing import spend as price_requests

__all__ = ["CacheEvent", "CacheObserver", "CacheStats", "Counters", "LatencySummary", "Outcome"]

#: How many recent latencies are kept per operation for the percentiles.
LATENCY_SAMPLES: Final = 4096

Outcome = Literal[
    "hit",
    "local_hit",
    "miss",
    "expired",
    "invalidated",
    "unverified",
    "stored",
    "rejected",
    "deleted",
    "error",
]


@dataclass(frozen=True, slots=True)
class CacheEvent:
    """One finished cache operation, as an observer sees it.

    ``op`` is the public method (``get``, ``set``, ``add``, ``delete``, ``exists``, ``clear``),
    ``key`` the object key (None for ``clear``), ``nbytes`` the body bytes moved, and
    ``error_kind`` the :attr:`S3CacheError.kind` when ``outcome`` is ``"error"``.
    ``"unverified"``: with a signing key, an entry whose signature did not verify (a miss).
    ``"invalidated"``: an entry one of whose tags was invalidated after it was written (a
    miss); ``op`` ``invalidate`` is an invalidation stored (``outcome`` ``"stored"``).
    """

    op: str
    key: str | None
    outcome: Outcome
    duration_s: float
    nbytes: int = 0
    error_kind: str | None = None


@runtime_checkable
class CacheObserver(Protocol):
    """Receives every finished operation: export to Prometheus, OpenTelemetry, logs...

    Called on the event loop that ran the operation; keep it fast and non-blocking. Exceptions
    it raises are logged and otherwise ignored.
    """

    def on_event(self, event: CacheEvent) -> None: ...


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """Latency percentiles (seconds) over the most recent operations of one kind."""

    count: int
    p50: float
    p90: float
    p99: float
    max: float


@dataclass(frozen=True, slots=True)
class CacheStats:
    """A point-in-time snapshot of one cache's counters (its own copies: plain dicts).

    ``str()`` gives a short summary for people; :meth:`as_dict` plain dicts for JSON.

    ``hits`` includes ``local_hits``; ``misses`` includes ``expired`` entries and corrupt
    bodies; ``errors`` counts store failures by kind (see :mod:`s3cache.errors`); ``latency``
    summarises recent operations by method name. ``recovered`` counts writes whose response
    was lost and that proved done, by S3 request: ``PutObject`` (a conditional write refused
    by its own earlier attempt, found by its nonce) and ``DeleteObject`` (a delete answered
    404 NoSuchKey). ``clock_offset_s`` is the correction requests are signed with (the
    server's clock minus this machine's, in seconds; 0.0 until a server refused the clock).
    ``unverified`` counts, by reason
    (``unsigned``, ``unknown_key``, ``altered``), the entries a cache with a signing key
    refused to serve (each also a miss, or ``exists`` False).
    ``stale_served`` counts, by reason, the values served past their ttl: ``revalidating``
    (while one refresh runs; each also a hit), ``store_error`` (``stale_if_error``: the store
    failed; also a hit) and ``factory_error`` (``stale_if_error``: the factory raised);
    ``refreshes`` the background refreshes that ended, ``refresh_failed`` those that failed
    (the stale entry stays; the key backs off). With ``pacing=True``,
    ``throttles`` counts the throttling replies (503 SlowDown and its kin, retries included)
    this cache received (0 with pacing off: see ``errors["server"]``);
    ``send_rate`` is the rate, requests per second, its bucket's requests are paced at now in
    this process (None: not paced; see ``pacing=``). ``invalidated`` counts the reads (``get``
    and ``exists``) that found an entry invalidated by one of its tags (each also a miss).
    ``breaker``: the circuit breaker's state and counters (times opened, reopened by a failed
    probe, closed again; requests failed fast, also counted in ``errors["circuit_open"]``;
    probes; transport failures counted), None with ``breaker=False``.
    ``requests`` counts the requests sent, by S3 operation, every attempt included (what the
    store bills); ``retries`` the attempts after a request's first, ``slowdowns`` the
    throttling replies among them (whatever ``pacing``). ``factory_calls`` counts the runs of
    ``get_or_set`` factories (``factory_failed``: those that raised; their durations are
    ``latency["factory"]``). ``leases`` counts ``get_or_set(lease=...)`` misses by how their
    lease went: ``acquired``, ``takeover`` (taken after waiting on a holder), ``waited`` (the
    holder's value came), ``gave_up`` (computed here after waiting too long).
    ``spend`` is what ``requests`` (and the bytes moved) cost at the ``pricing=`` table's prices
    (``spend.requests`` by request class); ``savings`` the factory calls that
    ``get_or_set(cost=...)`` and ``cached(cost=...)`` avoided and their dollars (see
    :mod:`s3cache._pricing`; ``savings.net(spend)``: the saving less the spend).
    """

    hits: int = 0
    misses: int = 0
    expired: int = 0
    local_hits: int = 0
    sets: int = 0
    deletes: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    errors: Mapping[str, int] = field(default_factory=dict)
    latency: Mapping[str, LatencySummary] = field(default_factory=dict)
    recovered: Mapping[str, int] = field(default_factory=dict)
    clock_offset_s: float = 0.0
    unverified: Mapping[str, int] = field(default_factory=dict)
    stale_served: Mapping[str, int] = field(default_factory=dict)
    refreshes: int = 0
    refresh_failed: int = 0
    throttles: int = 0
    send_rate: float | None = None
    invalidated: int = 0
    breaker: BreakerStats | None = None
    requests: Mapping[str, int] = field(default_factory=dict)
    retries: int = 0
    slowdowns: int = 0
    factory_calls: int = 0
    factory_failed: int = 0
    leases: Mapping[str, int] = field(default_factory=dict)
    spend: Spend = field(default_factory=lambda: price_requests({}))
    savings: Savings = field(default_factory=Savings)

    @property
    def error_count(self) -> int:
        """All store failures, whatever their kind."""
        return sum(self.errors.values())

    @property
    def hit_rate(self) -> float:
        """Hits over lookups (0.0 before the first lookup)."""
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else 0.0

    def as_dict(self) -> dict[str, Any]:
        """Plain dicts and numbers, ready for ``json.dumps`` (latencies in seconds)."""
        return asdict(self)

    def __str__(self) -> str:
        """A short summary for people: hit ratio, counts, errors by kind, p50/p99 in ms."""
        lookups = self.hits + self.misses
        lines = [
            f"hit ratio {self.hit_rate:.1%} ({self.hits:,} hits, {self.local_hits:,} local; "
            f"{self.misses:,} misses, {self.expired:,} expired) of {lookups:,} gets",
            f"sets {self.sets:,}, deletes {self.deletes:,}; "
            f"bytes in {self.bytes_in:,}, out {self.bytes_out:,}",
            f"errors {_counts(self.errors)}",
        ]
        for op, summary in sorted(self.latency.items()):
            lines.append(
                f"{op}: p50 {summary.p50 * 1000:.1f} ms, p99 {summary.p99 * 1000:.1f} ms "
                f"({summary.count:,} recent)"
            )
        if self.invalidated:
            lines.append(f"invalidated by tag {self.invalidated:,}")
        if self.unverified:
            lines.append(f"unverified {_counts(self.unverified)}")
        if self.stale_served or self.refreshes:
            lines.append(
                f"stale served {_counts(self.stale_served)}; refreshes {self.refreshes:,}"
                f" ({self.refresh_failed:,} failed)"
            )
        if self.recovered:
            lines.append(f"recovered {_counts(self.recovered)}")
        if self.throttles or self.send_rate is not None:
            rate = "unpaced" if self.send_rate is None else f"paced at {self.send_rate:.1f}/s"
            lines.append(f"throttled {self.throttles:,} times, {rate}")
        if self.breaker is not None and (self.breaker.opened or self.breaker.state != "closed"):
            b = self.breaker
            lines.append(
                f"circuit breaker {b.state}: opened {b.opened:,} times, closed {b.closed:,}, "
                f"{b.rejected:,} requests failed fast"
            )
        if self.requests:
            lines.append(
                f"requests {_counts(self.requests)}; retries {self.retries:,}, "
                f"slowdowns {self.slowdowns:,}"
            )
        if self.requests:
            lines.append(f"spend ${self.spend.total_usd:.6f} at {self.spend.table} prices")
        if self.savings.calls:
            lines.append(
                f"saved ${self.savings.usd:.6f} ({self.savings.calls:,} factory calls avoided)"
            )
        if self.clock_offset_s:
            lines.append(f"signing clock offset {self.clock_offset_s:+.0f} s")
        return "\n".join(lines)


def _counts(counts: Mapping[str, int]) -> str:
    """``3 (timeout 2, server 1)``, or ``none``."""
    if not counts:
        return "none"
    each = ", ".join(f"{name} {n:,}" for name, n in sorted(counts.items()))
    return f"{sum(counts.values()):,} ({each})"


class Counters:
    """Mutable counters; plain ints, touched from event-loop threads."""

    __slots__ = (
        "bytes_in",
        "bytes_out",
        "deletes",
        "errors",
        "expired",
        "factory_calls",
        "factory_failed",
        "hits",
        "invalidated",
        "latencies",
        "leases",
        "local_hits",
        "misses",
        "refresh_failed",
        "refreshes",
        "requests",
        "retries",
        "sets",
        "slowdowns",
        "stale_served",
        "unverified",
    )

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0
        self.expired = 0
        self.local_hits = 0
        self.sets = 0
        self.deletes = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.errors: Counter[str] = Counter()
        self.latencies: dict[str, deque[float]] = {}
        self.unverified: Counter[str] = Counter()
        self.stale_served: Counter[str] = Counter()
        self.refreshes = 0
        self.refresh_failed = 0
        self.invalidated = 0
        self.requests: Counter[str] = Counter()
        self.retries = 0
        self.slowdowns = 0
        self.factory_calls = 0
        self.factory_failed = 0
        self.leases: Counter[str] = Counter()

    def latency(self, op: str, seconds: float) -> None:
        samples = self.latencies.get(op)
        if samples is None:
            samples = self.latencies[op] = deque(maxlen=LATENCY_SAMPLES)
        samples.append(seconds)

    def snapshot(
        self, recovered: Mapping[str, int] | None = None, clock_offset_s: float = 0.0
    ) -> CacheStats:
        """The counters now, with the transport's ``recovered`` writes and clock offset."""
        return CacheStats(
            hits=self.hits,
            misses=self.misses,
            expired=self.expired,
            local_hits=self.local_hits,
            sets=self.sets,
            deletes=self.deletes,
            bytes_in=self.bytes_in,
            bytes_out=self.bytes_out,
            errors=dict(self.errors),
            latency={op: _summary(list(s)) for op, s in self.latencies.items() if s},
            recovered=dict(recovered or {}),
            clock_offset_s=clock_offset_s,
            unverified=dict(self.unverified),
            stale_served=dict(self.stale_served),
            refreshes=self.refreshes,
            refresh_failed=self.refresh_failed,
            invalidated=self.invalidated,
            requests=dict(self.requests),
            retries=self.retries,
            slowdowns=self.slowdowns,
            factory_calls=self.factory_calls,
            factory_failed=self.factory_failed,
            leases=dict(self.leases),
        )


def _summary(samples: list[float]) -> LatencySummary:
    ordered = sorted(samples)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))]

    return LatencySummary(len(ordered), pct(0.50), pct(0.90), pct(0.99), ordered[-1])
