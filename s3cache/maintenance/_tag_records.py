"""The tag records under a cache's prefix: ``s3cache tags``, and what ``purge_expired`` judges
invalidated entries by (see "Invalidation" in the README).

A record's time is its ``Last-Modified``, as a read of a tagged entry judges it; from a listing
it is taken to the whole second below, as a HEAD reports it. A record whose key is a hash (a
prefix too long for the tag) is HEAD-ed for the tag it records.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from s3cache._core import AsyncS3Cache
from s3cache._tags import TAG_RECORD_HEADER, record_time, tag_record_scopes
from s3cache.maintenance._scan import listed_time, pages

__all__ = ["TagRecord", "invalidation_times", "tag_records"]


@dataclass(frozen=True, slots=True)
class TagRecord:
    """One tag record: the tag, its object key, and when the tag was last invalidated (epoch
    seconds on the server's clock)."""

    tag: str
    object_key: str
    invalidated_at: float

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict, with the time also as ISO 8601 (UTC)."""
        return {**asdict(self), "invalidated_at_iso": _iso(self.invalidated_at)}


async def tag_records(cache: AsyncS3Cache) -> list[TagRecord]:
    """Every tag record under the cache's prefix, sorted by tag: one LIST per 1,000 records
    (plus one HEAD per hashed record)."""
    plain, hashed = tag_record_scopes(cache.prefix)
    found: list[TagRecord] = []
    async for page in pages(cache, plain):
        for obj in page:
            tag = obj.key[len(plain) :]
            if tag:
                found.append(TagRecord(tag, obj.key, listed_time(obj.last_modified)))
    async for page in pages(cache, hashed):
        for obj in page:
            headers = await cache.transport.head(obj.key)
            recorded = None if headers is None else headers.get(TAG_RECORD_HEADER)
            if headers is not None and recorded:
                found.append(TagRecord(recorded, obj.key, record_time(headers)))
    return sorted(found, key=lambda r: r.tag)


def invalidation_times(records: list[TagRecord]) -> dict[str, float]:
    """Tag -> its record's time, for :func:`s3cache._tags.is_invalidated`."""
    return {r.tag: r.invalidated_at for r in records}


def _iso(epoch: float) -> str | None:
    if not math.isfinite(epoch):
        return None
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="seconds")
