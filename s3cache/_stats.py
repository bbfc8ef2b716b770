"""Counters, latency samples, the ``stats()`` snapshot, and the observer protocol for exporters."""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, Literal, Protocol, runtime_checkable

__all__ = ["CacheEvent", "CacheObserver", "CacheStats", "Counters", "LatencySummary", "Outcome"]

#: How many recent latencies are kept per operation for the percentiles.
LATENCY_SAMPLES: Final = 4096

Outcome = Literal[
    "hit", "local_hit", "miss", "expired", "unverified", "stored", "rejected", "deleted", "error"
]


@dataclass(frozen=True, slots=True)
class CacheEvent:
    """One finished cache operation, as an observer sees it.

    ``op`` is the public method (``get``, ``set``, ``add``, ``delete``, ``exists``, ``clear``),
    ``key`` the object key (None for ``clear``), ``nbytes`` the body bytes moved, and
    ``error_kind`` the :attr:`S3CacheError.kind` when ``outcome`` is ``"error"``.
    ``"unverified"``: with a signing key, an entry whose signature did not verify (a miss).
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
    """A point-in-time snapshot of one cache's counters.

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

    @property
    def error_count(self) -> int:
        """All store failures, whatever their kind."""
        return sum(self.errors.values())

    @property
    def hit_rate(self) -> float:
        """Hits over lookups (0.0 before the first lookup)."""
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else 0.0


class Counters:
    """Mutable counters; plain ints, touched from event-loop threads."""

    __slots__ = (
        "bytes_in",
        "bytes_out",
        "deletes",
        "errors",
        "expired",
        "hits",
        "latencies",
        "local_hits",
        "misses",
        "sets",
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
            errors=MappingProxyType(dict(self.errors)),
            latency=MappingProxyType(
                {op: _summary(list(s)) for op, s in self.latencies.items() if s}
            ),
            recovered=MappingProxyType(dict(recovered or {})),
            clock_offset_s=clock_offset_s,
            unverified=MappingProxyType(dict(self.unverified)),
        )


def _summary(samples: list[float]) -> LatencySummary:
    ordered = sorted(samples)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))]

    return LatencySummary(len(ordered), pct(0.50), pct(0.90), pct(0.99), ordered[-1])
