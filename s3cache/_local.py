"""The optional local tier: a bounded in-process LRU of encoded entries in front of S3.

Sans-IO: callers pass the monotonic time. Entries keep the bytes as stored (decoded on every
hit, so callers never share a mutable value) and a deadline that is never later than the
entry's expiry on S3.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["LocalEntry", "LocalLRU", "LocalTier"]


@dataclass(frozen=True, slots=True)
class LocalTier:
    """Settings of the in-process tier: ``local=LocalTier(max_items=..., max_bytes=..., ttl=...)``.

    ``ttl`` bounds how stale a local hit can be when another process rewrites or deletes the
    entry on S3; writes through the same cache object update the tier at once.
    """

    max_items: int = 1024
    max_bytes: int = 64 * 1024 * 1024
    ttl: float = 5.0

    def __post_init__(self) -> None:
        for name in ("max_items", "max_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"LocalTier.{name} must be a whole number >= 1, not {value!r}")
        ttl = self.ttl
        if isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
            raise TypeError(f"LocalTier.ttl must be seconds, not {type(ttl).__name__}")
        if not math.isfinite(ttl) or ttl <= 0:
            raise ValueError(f"LocalTier.ttl must be positive and finite, not {ttl}")


@dataclass(frozen=True, slots=True)
class LocalEntry:
    """One entry as stored on S3: body, content type and encoding, plus a local deadline."""

    body: bytes
    content_type: str | None
    content_encoding: str | None
    deadline: float


class LocalLRU:
    """A thread-safe LRU bounded by item count and total body bytes."""

    __slots__ = ("_bytes", "_entries", "_lock", "tier")

    def __init__(self, tier: LocalTier) -> None:
        self.tier = tier
        self._entries: OrderedDict[str, LocalEntry] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str, now: float) -> LocalEntry | None:
        """The live entry for ``key``, marked most recently used; expired ones are dropped."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry.deadline <= now:
                self._remove(key)
                return None
            self._entries.move_to_end(key)
            return entry

    def put(
        self,
        key: str,
        body: bytes,
        content_type: str | None,
        content_encoding: str | None,
        now: float,
        lifetime: float | None,
    ) -> None:
        """Keep an entry ``min(tier.ttl, lifetime)`` seconds (``lifetime``: its S3 time left)."""
        keep = self.tier.ttl if lifetime is None else min(self.tier.ttl, lifetime)
        with self._lock:
            self._remove(key)
            if keep <= 0 or len(body) > self.tier.max_bytes:
                return
            self._entries[key] = LocalEntry(body, content_type, content_encoding, now + keep)
            self._bytes += len(body)
            while len(self._entries) > self.tier.max_items or self._bytes > self.tier.max_bytes:
                oldest = next(iter(self._entries))
                self._remove(oldest)

    def discard(self, key: str) -> None:
        with self._lock:
            self._remove(key)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        """Total body bytes held."""
        return self._bytes

    def _remove(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= len(entry.body)
