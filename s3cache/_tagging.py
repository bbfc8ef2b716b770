"""Invalidation by tag, wired into one cache: the tag checks of its reads, ``invalidate``, and
the tags of ``@cached`` calls.

The rules are pure, in :mod:`s3cache._tags` (records, metadata, the one-second tie, what a
process knows); this module sends their requests. A read of a tagged entry asks
:class:`~s3cache._tags.TagChecks` (kept by :class:`~s3cache._coherence.Coherence`) which of its
tags need a GET of their record, sends those (one flight per tag and event loop), and judges the
entry on the server's times. ``invalidate`` PUTs each tag's record, learns its time at once
(the PUT's ``Date``) and drops the local tier's entries carrying it. Untagged entries never get
here: no request, no metadata.
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from s3cache._concurrency import paced
from s3cache._expiry import parse_http_date
from s3cache._parts import Parts
from s3cache._tags import (
    normalize_tags,
    parse_tags,
    record_time,
    tag_record,
    tag_record_key,
    written_at,
)
from s3cache.errors import S3CacheError

__all__ = ["Tagging", "Tags", "TagsOf", "call_tags"]

#: The tags of a write: an iterable of str (validated by :func:`~s3cache._tags.normalize_tags`).
Tags = Iterable[str]
#: The tags of ``@cached``: fixed, or a callable of each call's arguments returning them.
TagsOf = Iterable[str] | Callable[..., Iterable[str]]
_monotonic = time.monotonic


class Tagging:
    """The tag checks and invalidations of one cache (under its ``prefix``)."""

    __slots__ = ("_check_open", "_coherence", "_prefix", "_recorder", "_transport")

    def __init__(self, parts: Parts, prefix: str, check_open: Callable[[], None]) -> None:
        """``check_open``: raises ``CacheClosedError`` once the cache is closed."""
        self._check_open = check_open
        self._transport = parts.transport
        self._coherence = parts.coherence
        self._recorder = parts.recorder
        self._prefix = prefix

    async def entry_invalidated(self, headers: Mapping[str, str]) -> bool:
        """Whether the tagged entry these (GET or HEAD) headers describe was invalidated; an
        entry whose tags or date cannot be read counts as invalidated (never a wrong value).
        Raises the :class:`S3CacheError` of a tag record's GET that failed."""
        tags, written = parse_tags(headers), written_at(headers)
        if tags is None or written is None:
            return True
        return bool(tags) and await self.invalidated(tags, written)

    async def invalidated(self, tags: tuple[str, ...], written: float) -> bool:
        """Whether an entry written at ``written`` (its ``Last-Modified``) with ``tags`` was
        invalidated, after a GET of each tag record whose check is older than the interval."""
        checks = self._coherence.tags
        due = checks.due(tags, written)
        if len(due) == 1:
            await self._coherence.tag_reads.join(due[0], functools.partial(self._check, due[0]))
        elif due:
            flights = self._coherence.tag_reads
            await asyncio.gather(*(flights.join(t, functools.partial(self._check, t)) for t in due))
        return checks.invalidated(tags, written)

    async def _check(self, tag: str) -> None:
        """GET ``tag``'s record and learn its time (no record: never invalidated)."""
        sent = _monotonic()
        found = await self._transport.get(tag_record_key(self._prefix, tag))
        self._coherence.tags.learn(tag, None if found is None else record_time(found[1]), sent)

    async def invalidate(self, tags: tuple[str, ...]) -> bool:
        """``invalidate(*tags)``: each tag validated before any request, then one PUT of each
        record (at most ``max_concurrency`` at a time); True once all are stored. A failure is
        counted, then raised or logged (False) per ``on_error``."""
        self._check_open()
        if not tags:
            raise TypeError("invalidate() needs at least one tag: invalidate('user:42')")
        for tag in tags:
            normalize_tags([tag], "invalidate()")
        unique = sorted(set(tags))
        with self._recorder.op("invalidate", None) as op:
            results = await paced(self._store, unique, self._transport.max_concurrency)
            for result in results:
                if isinstance(result, S3CacheError):
                    return op.failed(result, False)
            op.stored(sum(r for r in results if isinstance(r, int)))
            return True

    async def _store(self, tag: str) -> int:
        """PUT ``tag``'s record; this process knows it at once (its time: the PUT's ``Date``,
        never before the record's ``Last-Modified``, else a HEAD of the record), the local
        tier drops the tag's entries, and the newest values seen (``stale_if_error``) go.
        Returns the record's body size."""
        key, record = tag_record_key(self._prefix, tag), tag_record(tag)
        sent = _monotonic()
        headers = await self._transport.put(key, record)
        try:
            when = parse_http_date(headers["date"])
        except (KeyError, ValueError):
            found = await self._transport.head(key)
            when = math.inf if found is None else record_time(found)
        self._coherence.tags.learn(tag, when, sent)
        self._coherence.seen.clear()  # stale_if_error never serves an invalidated value
        if self._coherence.local is not None:
            self._coherence.local.drop_tagged(tag)
        return len(record.body)


def call_tags(tags: TagsOf) -> Callable[[tuple[Any, ...], dict[str, Any]], tuple[str, ...]]:
    """``@cached(tags=...)`` validated at decoration (fixed tags) and made a function of each
    call's ``(args, kwargs)`` (a callable's tags are validated at each call, before any
    request)."""
    if callable(tags):
        return lambda args, kwargs: normalize_tags(tags(*args, **kwargs), "cached(tags=...)")
    fixed = normalize_tags(tags, "cached(tags=...)")
    return lambda args, kwargs: fixed
