"""Coherence of one cache's reads and writes in this process: single flight and the local tier.

Reads of a key on one event loop share one GET (:meth:`Coherence.fetch`), and an answer may
fill the local tier only if no write of its key through this cache began since it was sent
(:meth:`Coherence.keep`); a write (``with coherence.writing([okey]) as write:``) makes every
read in flight old and keeps its own value only if no other write of the key overlapped it.
Factory runs of ``get_or_set`` are shared the same way (:meth:`Coherence.fill`). Sans-IO as
:mod:`s3cache._local` is: the caller passes the coroutine functions that do the requests.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from s3cache._disabling import Switch
from s3cache._flight import Flights
from s3cache._format import Body, Payload
from s3cache._last_seen import LastSeen
from s3cache._local import LocalEntry, LocalLRU, LocalTier
from s3cache._tags import TAGS_HEADER, TAGS_METADATA, TagChecks, parse_tags, written_at

__all__ = ["Coherence", "Fetched", "Write"]

T = TypeVar("T")
Found = tuple[Body, Mapping[str, str]] | None

#: S3 may call an entry expired up to a second early (whole-second dates): a written entry is
#: kept locally no longer than its ttl minus that second.
_EARLY: Final = 1.0
_monotonic = time.monotonic


@dataclass(slots=True)  # not frozen: built on every GET, and never changed
class Fetched(Generic[T]):
    """One shared GET's answer, with when it was sent (the local tier's deadline counts from
    then) and the tier's generation then (an answer overtaken by a write never fills it)."""

    found: T
    sent: float
    generation: int


class Write:
    """A write (or delete) of ``okeys`` through the cache, from ``__enter__`` to ``__exit__``:
    no read in flight may answer for them from its start, nor fill the local tier; at its end
    the tier keeps what :meth:`stored` says, unless another write of the key overlapped."""

    __slots__ = ("_coherence", "_entry", "_okeys", "_since")

    def __init__(self, coherence: Coherence, okeys: Sequence[str]) -> None:
        self._coherence = coherence
        self._okeys = okeys
        self._since: list[int] = []
        self._entry: LocalEntry | None = None

    def __enter__(self) -> Write:
        coherence = self._coherence
        local = coherence.local
        for okey in self._okeys:
            coherence.reads.forget(okey)
            coherence.seen.forget(okey)
            self._since.append(local.begin_write(okey) if local is not None else 0)
        return self

    def stored(self, payload: Payload, seconds: float | None, started: float) -> None:
        """The (one) key now holds ``payload``, written with ``seconds`` of ttl from
        ``started`` (monotonic): the local tier may keep it (a bytearray body becomes bytes),
        unless it is tagged: its tag checks need its ``Last-Modified``, which only a read
        learns (so the next read fetches it)."""
        local = self._coherence.local
        if local is not None and TAGS_METADATA not in payload.metadata:
            lifetime = None if seconds is None else seconds - _EARLY
            self._entry = local.entry(
                payload.body, payload.content_type, payload.content_encoding, started, lifetime
            )

    def __exit__(self, *exc_info: object) -> None:
        coherence = self._coherence
        local = coherence.local
        for okey, since in zip(self._okeys, self._since, strict=False):
            coherence.reads.forget(okey)  # a get from now on sends a request of its own
            if local is not None:
                local.end_write(okey, since, self._entry)


class Coherence:
    """Single flight (reads and factory runs, per event loop), the optional local tier, and
    what this process knows of tag records (``tags``)."""

    __slots__ = ("fills", "local", "reads", "seen", "switch", "tag_reads", "tags")

    def __init__(self, tier: LocalTier | None, tag_check_interval: float = 1.0) -> None:
        #: The in-process tier, or None when the cache has none.
        self.local = LocalLRU(tier) if tier is not None else None
        self.reads: Flights = Flights()  # shared GETs
        self.fills: Flights = Flights()  # shared factory runs
        #: Tag-record times learned, each good for ``tag_check_interval`` seconds.
        self.tags = TagChecks(tag_check_interval)
        self.tag_reads: Flights = Flights()  # shared GETs of tag records
        #: ``cache.disabled()``: off in a context, reads miss and writes are skipped there.
        self.switch = Switch()
        #: The newest value seen per key, for ``stale_if_error`` (kept only once armed).
        self.seen = LastSeen()

    def cached(self, okey: str, now: float) -> LocalEntry | None:
        """The local tier's live entry for ``okey`` (None without one, or without a tier)."""
        return self.local.get(okey, now) if self.local is not None else None

    def discard(self, okey: str) -> None:
        """Drop ``okey``'s local entry (it would not decode)."""
        if self.local is not None:
            self.local.discard(okey)

    async def fetch(self, okey: str, get: Callable[[str], Awaitable[T]]) -> Fetched[T]:
        """``get(okey)``, shared by every reader of ``okey`` on this event loop."""
        return await self.reads.join(okey, functools.partial(self._fetch, okey, get))

    async def _fetch(self, okey: str, get: Callable[[str], Awaitable[T]]) -> Fetched[T]:
        generation = self.local.generation if self.local is not None else 0
        sent = _monotonic()
        return Fetched(await get(okey), sent, generation)

    def keep(
        self,
        okey: str,
        fetched: Fetched[Any],
        body: Body,
        headers: Mapping[str, str],
        remaining: float | None,
    ) -> None:
        """Let the local tier keep an entry read by ``fetched`` (``remaining``: its seconds
        left, as of the server's Date, which is after it was sent: never later), unless a write
        of ``okey`` began since. A bytearray body becomes bytes here, once."""
        local = self.local
        if local is None:
            return
        tags, written = (
            (parse_tags(headers), written_at(headers)) if TAGS_HEADER in headers else ((), 0.0)
        )
        if tags is None or written is None:  # unreadable: never kept
            return
        content_type, encoding = headers.get("content-type"), headers.get("content-encoding")
        entry = local.entry(
            bytes(body), content_type, encoding, fetched.sent, remaining, tags, written
        )
        local.put(okey, entry, fetched.generation)

    def writing(self, okeys: Sequence[str]) -> Write:
        """``with coherence.writing([okey]) as write:`` around a write or delete of ``okeys``."""
        return Write(self, okeys)

    async def fill(self, okey: str, start: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """``start()`` (a ``get_or_set`` factory run and its write), shared by every caller
        of ``okey`` on this event loop."""
        return await self.fills.join(okey, start)

    def forget_all(self) -> None:
        """No read in flight may answer for any key, or fill the local tier (a clear, which may
        also remove tag records: what was learned of them is forgotten)."""
        self.reads.forget_all()
        self.tags.forget()
        self.seen.clear()
        if self.local is not None:
            self.local.clear()
