"""The optional local tier: a bounded in-process LRU of encoded entries in front of S3.

Sans-IO: callers pass the monotonic time. Entries keep the bytes as stored (decoded on every
hit, so callers never share a mutable value) and a deadline that is never later than the
entry's expiry on S3.

Coherence with writes through the same cache: every write, delete and clear bumps a generation
and marks the keys it touches. A read notes the generation when it sends its request and may fill
the tier only if no write of its key began since, so an answer older than a write never lands
over it; a write keeps its own value only if no other write of the key overlapped it.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

from s3cache._numbers import whole_number

__all__ = ["LocalEntry", "LocalLRU", "LocalTier"]


#: Write marks remembered per key; past that the oldest are folded into one floor, so that reads
#: in flight across more than this many writes are refused (safe) rather than tracked.
_MARKS: Final = 4096


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
            whole_number(getattr(self, name), f"LocalTier.{name}")
        ttl = self.ttl
        if isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
            raise TypeError(f"LocalTier.ttl must be seconds, not {type(ttl).__name__}")
        if not math.isfinite(ttl) or ttl <= 0:
            raise ValueError(f"LocalTier.ttl must be positive and finite, not {ttl}")


@dataclass(frozen=True, slots=True)
class LocalEntry:
    """One entry as stored on S3: body, content type and encoding, plus a local deadline; a
    tagged entry also its ``tags`` and when it was ``written`` (its ``Last-Modified``), for
    its tag checks (:mod:`s3cache._tags`)."""

    body: bytes
    content_type: str | None
    content_encoding: str | None
    deadline: float
    tags: tuple[str, ...] = ()
    written: float = 0.0


class LocalLRU:
    """A thread-safe LRU bounded by item count and total body bytes, coherent with writes."""

    __slots__ = (
        "_bytes",
        "_entries",
        "_floor",
        "_lock",
        "_marks",
        "evictions",
        "generation",
        "tier",
    )

    def __init__(self, tier: LocalTier) -> None:
        self.tier = tier
        self._entries: OrderedDict[str, LocalEntry] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        #: Bumped by every write, delete and clear; a read notes it when it sends its request.
        self.generation = 0
        self._marks: OrderedDict[str, int] = OrderedDict()  # key -> generation of its last write
        self._floor = 0  # every generation below this counts as overtaken by a write
        #: Entries dropped to make room (the LRU's own state, read by telemetry).
        self.evictions = 0

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

    def entry(
        self,
        body: bytes,
        content_type: str | None,
        content_encoding: str | None,
        now: float,
        lifetime: float | None,
        tags: tuple[str, ...] = (),
        written: float = 0.0,
    ) -> LocalEntry | None:
        """The entry to keep for a body at ``now`` with ``lifetime`` seconds left on S3 (None:
        no expiry there): kept ``min(tier.ttl, lifetime)``; None when that is not positive."""
        keep = self.tier.ttl if lifetime is None else min(self.tier.ttl, lifetime)
        if keep <= 0:
            return None
        return LocalEntry(body, content_type, content_encoding, now + keep, tags, written)

    def put(self, key: str, entry: LocalEntry | None, since: int | None = None) -> None:
        """Keep ``entry`` for ``key`` (None: drop what is there), unless a write of ``key``
        began after generation ``since``."""
        with self._lock:
            if since is not None and not self._unwritten_since(key, since):
                return
            self._keep(key, entry)

    def begin_write(self, key: str) -> int:
        """A write or delete of ``key`` begins: drop its entry, and refuse every read already in
        flight. Returns the generation to pass to :meth:`end_write`."""
        with self._lock:
            self._remove(key)
            return self._mark(key)

    def end_write(self, key: str, since: int, entry: LocalEntry | None = None) -> None:
        """The write that began at ``since`` ended; ``entry``: what it stored (None: it deleted,
        or failed). Kept only if no other write of ``key`` overlapped it, since the order the
        server applied them in is unknown; reads still in flight are refused either way."""
        with self._lock:
            alone = self._unwritten_since(key, since)
            self._mark(key)
            self._keep(key, entry if alone else None)

    def discard(self, key: str) -> None:
        """Drop ``key``'s entry (one that would not decode)."""
        with self._lock:
            self._remove(key)

    def drop_tagged(self, tag: str) -> int:
        """Drop every entry carrying ``tag`` (this process invalidated it); how many went."""
        with self._lock:
            gone = [key for key, entry in self._entries.items() if tag in entry.tags]
            for key in gone:
                self._remove(key)
            return len(gone)

    def clear(self) -> None:
        """Drop every entry and refuse every read in flight (a clear begins or ends)."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0
            self._marks.clear()
            self.generation += 1
            self._floor = self.generation

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        """Total body bytes held."""
        return self._bytes

    def _unwritten_since(self, key: str, since: int) -> bool:
        """No write of ``key`` began after generation ``since`` (as far as the marks tell)."""
        return since >= self._floor and self._marks.get(key, since) <= since

    def _mark(self, key: str) -> int:
        self.generation += 1
        self._marks[key] = self.generation
        self._marks.move_to_end(key)
        if len(self._marks) > _MARKS:
            _, oldest = self._marks.popitem(last=False)
            self._floor = max(self._floor, oldest)
        return self.generation

    def _keep(self, key: str, entry: LocalEntry | None) -> None:
        """Hold ``entry`` (if any, and if it fits) in place of ``key``'s, evicting the oldest."""
        self._remove(key)
        if entry is None or len(entry.body) > self.tier.max_bytes:
            return
        self._entries[key] = entry
        self._bytes += len(entry.body)
        while len(self._entries) > self.tier.max_items or self._bytes > self.tier.max_bytes:
            oldest = next(iter(self._entries))
            self._remove(oldest)
            self.evictions += 1

    def _remove(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= len(entry.body)
