"""Listing and inspecting the entries under a cache's prefix: ``scan`` and ``storage_stats``."""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import aclosing
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Final

from s3cache import _expiry, _keys
from s3cache._concurrency import paced
from s3cache._core import AsyncS3Cache
from s3cache._tags import parse_tags, written_at
from s3cache._transport import ListedObject
from s3cache.errors import S3CacheError

__all__ = [
    "AGE_BUCKETS",
    "DEFAULT_BATCH",
    "DEFAULT_SAMPLE",
    "Entry",
    "Inspection",
    "StorageStats",
    "check_positive",
    "inspect",
    "listed_time",
    "object_prefix",
    "pages",
    "scan",
    "split_own",
    "storage_stats",
]

#: Entries inspected per batch (HEADs, paced through the cache's ``max_concurrency`` as
#: ``get_many`` paces them), before the batch's expired entries are deleted.
DEFAULT_BATCH: Final = 250
#: ``storage_stats`` inspects at most this many entries to estimate the expired share.
DEFAULT_SAMPLE: Final = 1000


@dataclass(frozen=True, slots=True)
class Entry:
    """One object under the prefix, with its expiry judged as a read would judge it."""

    key: str  #: the object key without the cache prefix
    object_key: str
    size: int
    age_s: float  #: seconds since it was written, on the server's clock
    ttl_s: float | None  #: the s3cache ttl it was written with (None: none, or a foreign entry)
    remaining_s: float | None  #: seconds left; None when it never expires
    expired: bool
    #: its tags (see "Invalidation"); None when they cannot be read (it is then invalidated)
    tags: tuple[str, ...] | None = ()
    #: its ``Last-Modified`` (epoch seconds; None when unreadable)
    written: float | None = None

    @classmethod
    def from_headers(
        cls, prefix: str, okey: str, size: int, headers: Mapping[str, str], now: float
    ) -> Entry:
        """The entry described by HEAD ``headers``; unreadable expiry metadata is expired."""
        remaining = _expiry.safe_remaining_ttl(headers, now)
        return cls(
            key=okey[len(prefix) :],
            object_key=okey,
            size=_content_length(headers, size),
            age_s=_age(headers, now),
            ttl_s=_ttl(headers),
            remaining_s=remaining,
            expired=_expiry.is_expired(remaining),
            tags=parse_tags(headers),
            written=written_at(headers),
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def _age(headers: Mapping[str, str], now: float) -> float:
    """Seconds since the object was written, on the server's clock (0 when unknown)."""
    date_raw = headers.get("date")
    modified_raw = headers.get("last-modified")
    try:
        server_now = _expiry.parse_http_date(date_raw) if date_raw else now
        age = server_now - _expiry.parse_http_date(modified_raw) if modified_raw else 0.0
    except ValueError:
        age = 0.0
    return max(age, 0.0)


def _ttl(headers: Mapping[str, str]) -> float | None:
    ttl_raw = headers.get(_expiry.TTL_HEADER)
    try:
        return float(ttl_raw) if ttl_raw is not None else None
    except ValueError:
        return None


def _content_length(headers: Mapping[str, str], listed: int) -> int:
    length = headers.get("content-length")
    return int(length) if length and length.isdigit() else listed


def object_prefix(cache: AsyncS3Cache, prefix: str = "") -> str:
    """The object-key prefix of ``prefix`` under the cache's own (``:`` counts as ``/``).

    Raises before any request for a prefix no key could start with.
    """
    return _keys.sub_prefix(cache.prefix, prefix)


async def pages(cache: AsyncS3Cache, full_prefix: str) -> AsyncGenerator[list[ListedObject], None]:
    """Listing pages under ``full_prefix``; the next page is fetched while this one is used.

    Every key is checked against the cache prefix: a listing is never trusted to stay inside.
    """
    transport = cache.transport
    pending = asyncio.ensure_future(transport.list_page(full_prefix, None))
    try:
        while True:
            page, token = await pending
            if token is not None:
                pending = asyncio.ensure_future(transport.list_page(full_prefix, token))
            yield [
                o for o in page if o.key.startswith(cache.prefix) and o.key.startswith(full_prefix)
            ]
            if token is None:
                return
    finally:
        if not pending.done():
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)


def split_own(
    cache: AsyncS3Cache, page: list[ListedObject]
) -> tuple[list[ListedObject], list[str]]:
    """A page's entries, and the keys of s3cache's own objects (leases, locks) among it."""
    entries: list[ListedObject] = []
    own: list[str] = []
    for o in page:
        if _keys.is_reserved(cache.prefix, o.key):
            own.append(o.key)
        else:
            entries.append(o)
    return entries, own


@dataclass(slots=True)
class Inspection:
    """What one batch of HEADs found: the entries, the objects whose HEAD failed, and the
    failure that ``stop`` said should end the run (the HEADs not yet started were not sent)."""

    entries: list[Entry] = field(default_factory=list)
    failed: dict[str, S3CacheError] = field(default_factory=dict)
    stopped: S3CacheError | None = None

    def raise_first(self) -> None:
        """Raise the first failure, if any (for callers that cannot report holes)."""
        if self.stopped is not None:
            raise self.stopped
        if self.failed:
            raise next(iter(self.failed.values()))


async def inspect(
    cache: AsyncS3Cache,
    objects: list[ListedObject],
    *,
    on_entry: Callable[[Entry], None] | None = None,
    stop: Callable[[S3CacheError], bool] = lambda error: True,
) -> Inspection:
    """HEAD ``objects``, paced as ``get_many`` paces its GETs: at most ``max_concurrency`` at a
    time, so each deadline covers one request however many objects there are.

    ``on_entry`` is called as each entry is judged; objects gone since the listing are left
    out. A failure is recorded by object key; once one makes ``stop`` true (default: any), no
    further HEAD is sent.
    """
    result = Inspection()

    async def one(obj: ListedObject) -> None:
        if result.stopped is not None:
            return
        try:
            headers = await cache.transport.head(obj.key)
        except S3CacheError as exc:
            result.failed[obj.key] = exc
            if result.stopped is None and stop(exc):
                result.stopped = exc
            return
        if headers is not None:
            found = Entry.from_headers(cache.prefix, obj.key, obj.size, headers, time.time())
            result.entries.append(found)
            if on_entry is not None:
                on_entry(found)

    await paced(one, objects, cache.transport.max_concurrency)
    order = {o.key: i for i, o in enumerate(objects)}
    result.entries.sort(key=lambda e: order[e.object_key])  # the listing's order
    return result


async def scan(
    cache: AsyncS3Cache,
    prefix: str = "",
    *,
    batch: int = DEFAULT_BATCH,
    on_progress: Callable[[int], None] | None = None,
) -> AsyncGenerator[Entry, None]:
    """Every entry under the cache prefix (+ ``prefix``), with size, age, ttl and expiry.

    One HEAD per entry (a listing carries no metadata), ``batch`` entries at a time, paced
    through ``max_concurrency``; ``on_progress`` gets the count of entries inspected so far as
    each HEAD returns. s3cache's own objects (leases, locks) are not entries and are left
    out. A failed HEAD raises (after the HEADs already in flight).
    """
    check_positive("batch", batch)
    inspected = 0

    def count(_: Entry) -> None:
        nonlocal inspected
        inspected += 1
        if on_progress is not None:
            on_progress(inspected)

    async with aclosing(pages(cache, object_prefix(cache, prefix))) as listing:
        async for listed in listing:
            page = split_own(cache, listed)[0]
            for start in range(0, len(page), batch):
                found = await inspect(cache, page[start : start + batch], on_entry=count)
                found.raise_first()
                for entry in found.entries:
                    yield entry


def listed_time(value: Any) -> float:
    """A listing's ``LastModified`` (a datetime, or ISO 8601 text) as whole epoch seconds;
    unreadable: infinity (every entry of the tag counts as invalidated, as reads judge it)."""
    try:
        when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        return float(math.floor(when.timestamp()))
    except (ValueError, TypeError, OverflowError):
        return math.inf


#: The age histogram's buckets: (label, upper bound in seconds since the entry was written).
AGE_BUCKETS: Final = (
    ("< 1 min", 60.0),
    ("< 1 h", 3600.0),
    ("< 1 day", 86400.0),
    ("< 7 days", 7 * 86400.0),
    ("older", math.inf),
)


_AGE_LABELS: Final = tuple(label for label, _ in AGE_BUCKETS)


def age_bucket(age: float) -> str:
    """The :data:`AGE_BUCKETS` label of an entry written ``age`` seconds ago."""
    return next(label for label, bound in AGE_BUCKETS if age < bound)


@dataclass(slots=True)
class StorageStats:
    """Entries and bytes under the prefix, the expired share of the entries inspected, and
    entries by age since written (``ages``, by :data:`AGE_BUCKETS`: from the listing's
    ``LastModified`` and this machine's clock, a picture of the cache, never an expiry)."""

    entries: int = 0
    bytes: int = 0
    inspected: int = 0  #: entries HEAD-ed to judge expiry (all, or a uniform sample)
    expired_inspected: int = 0
    ages: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_AGE_LABELS, 0))

    @property
    def sampled(self) -> bool:
        """True when the expired share is an estimate from a sample."""
        return self.inspected < self.entries

    @property
    def expired_share(self) -> float | None:
        """Expired fraction of the inspected entries (None when there is none)."""
        return self.expired_inspected / self.inspected if self.inspected else None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict, with the derived share and whether it was sampled."""
        return {**asdict(self), "expired_share": self.expired_share, "sampled": self.sampled}


async def storage_stats(
    cache: AsyncS3Cache,
    *,
    sample: int = DEFAULT_SAMPLE,
    rng: random.Random | None = None,
    on_progress: Callable[[StorageStats], None] | None = None,
) -> StorageStats:
    """Count entries and bytes (the whole listing) and estimate the expired share.

    Expiry needs one HEAD per entry, so at most ``sample`` entries, drawn uniformly
    (reservoir sampling over the listing), are inspected, paced through ``max_concurrency``;
    all of them on small caches. ``on_progress`` gets the figures after each listing page and
    as each HEAD returns. s3cache's own objects (leases, locks) are not counted.
    """
    check_positive("sample", sample)
    rng = rng or random.Random()
    result = StorageStats()
    reservoir: list[ListedObject] = []
    async with aclosing(pages(cache, cache.prefix)) as listing:
        async for page in listing:
            now = time.time()
            for obj in split_own(cache, page)[0]:
                result.entries += 1
                result.bytes += obj.size
                written = listed_time(obj.last_modified)
                age = max(0.0, now - written) if written < math.inf else math.inf
                result.ages[age_bucket(age)] += 1
                if len(reservoir) < sample:
                    reservoir.append(obj)
                else:
                    slot = rng.randrange(result.entries)
                    if slot < sample:
                        reservoir[slot] = obj
            if on_progress is not None:
                on_progress(result)

    def judged(entry: Entry) -> None:
        result.inspected += 1
        result.expired_inspected += int(entry.expired)
        if on_progress is not None:
            on_progress(result)

    found = await inspect(cache, reservoir, on_entry=judged)
    found.raise_first()
    return result


def check_positive(name: str, value: int) -> None:
    """Raise unless ``value`` is a whole number of at least 1."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, not {value}")
