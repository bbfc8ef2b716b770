"""Counters kept by a cache and the immutable snapshot that ``stats()`` returns."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = ["CacheStats", "Counters"]


@dataclass(frozen=True, slots=True)
class CacheStats:
    """A point-in-time snapshot of one cache's counters.

    ``misses`` includes ``expired`` (entries found but past their ttl) and corrupt bodies;
    ``errors`` counts store failures by kind (see :mod:`s3cache.errors`).
    """

    hits: int = 0
    misses: int = 0
    expired: int = 0
    sets: int = 0
    deletes: int = 0
    errors: Mapping[str, int] = field(default_factory=dict)

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
    """Mutable counters; only ever touched from event-loop threads, so plain ints suffice."""

    __slots__ = ("deletes", "errors", "expired", "hits", "misses", "sets")

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0
        self.expired = 0
        self.sets = 0
        self.deletes = 0
        self.errors: Counter[str] = Counter()

    def snapshot(self) -> CacheStats:
        return CacheStats(
            hits=self.hits,
            misses=self.misses,
            expired=self.expired,
            sets=self.sets,
            deletes=self.deletes,
            errors=MappingProxyType(dict(self.errors)),
        )
