"""Feature cell: invalidation by tag (issue 24), counted at a proxy on the wire.

One cache (no local tier, so every read is a GET) talks to the run's server through a
:class:`harness.faultproxy.FaultProxy` that counts requests by method and path, where no
client-side shortcut can hide one:

- ``HOT`` hot keys with the same 3 tags are read ``READS`` times in all (``HOT`` at once, each
  of its own key, so that single flight merges none) with ``tag_check_interval=INTERVAL_S``:
  the GETs of tag records must stay within 3 per interval (plus the first check), however many
  reads and keys;
- ``ENTRIES`` entries share one tag; ``invalidate`` of it must cost 1 PUT whatever their
  number, and every one of them is then a miss (checked through a second cache, which learns
  of the invalidation from the record itself).
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Final
from urllib.parse import urlsplit

from benchmarks.contenders import Setup, _s3cache_kwargs
from benchmarks.features import FeatureResult, MethodCounter
from harness.faultproxy import FaultProxy

__all__ = ["ENTRIES", "HOT", "INTERVAL_S", "READS", "tag_invalidation"]

NAME: Final = "tag invalidation"
READS: Final = 600  # reads of the hot keys, in all
HOT: Final = 20  # hot keys, read at once
INTERVAL_S: Final = 0.25  # tag_check_interval of the reading cache
TAGS: Final = ("doc:42", "user:7", "model=small")
ENTRIES: Final = 200  # entries sharing the invalidated tag


async def tag_invalidation(setup: Setup) -> FeatureResult:
    """The hot tagged keys' record GETs per interval, and ``invalidate``'s cost (see module)."""
    from s3cache import AsyncS3Cache

    parts = urlsplit(setup.target.endpoint_url)
    with FaultProxy((parts.hostname or "127.0.0.1", parts.port or 80)) as proxy:
        prefix = f"{setup.prefix}features/tags/"
        kwargs = {**_s3cache_kwargs(setup, prefix, MethodCounter()), "endpoint_url": proxy.endpoint}
        async with AsyncS3Cache(**kwargs, tag_check_interval=INTERVAL_S) as cache:
            hot = [f"hot/{i}" for i in range(HOT)]
            await cache.set_many({key: {"answer": 42} for key in hot}, tags=TAGS)
            proxy.reset_counts()
            started = time.monotonic()
            for _ in range(READS // HOT):
                await asyncio.gather(*(cache.get(key) for key in hot))
            took = time.monotonic() - started
            record_gets = _gets(proxy, record=True)
            entry_gets = _gets(proxy, record=False)
            await cache.set_many({f"doc/{i}": i for i in range(ENTRIES)}, tags=["doc:42"])
            # (S3 dates are whole seconds: an entry written in the invalidation's second counts
            # as invalidated too, so none of them may be served either way.)
            proxy.reset_counts()
            began = time.perf_counter()
            assert await cache.invalidate("doc:42")
            invalidate_ms = (time.perf_counter() - began) * 1000
            invalidate_requests = sum(proxy.methods.values())
        async with AsyncS3Cache(**kwargs) as other:  # learns it from the record, as a fleet does
            found = await other.get_many([f"doc/{i}" for i in range(ENTRIES)])
    bound = len(TAGS) * (math.floor(took / INTERVAL_S) + 1)
    met = record_gets <= bound and invalidate_requests == 1 and not found
    return FeatureResult(
        NAME,
        f"{READS:,} reads of {HOT} keys with the same {len(TAGS)} tags: {entry_gets:,} entry "
        f"GETs and "
        f"{record_gets} tag-record GETs in {took:.1f} s (bound {bound}: {len(TAGS)} per "
        f"{INTERVAL_S:g} s interval); invalidate of a tag on {ENTRIES} entries: "
        f"{invalidate_requests} request(s), {invalidate_ms:.1f} ms, {len(found)} still served",
        {
            "reads": READS,
            "record_gets": record_gets,
            "record_get_bound": bound,
            "entry_gets": entry_gets,
            "invalidate_requests": invalidate_requests,
            "invalidate_ms": invalidate_ms,
            "served_after": len(found),
        },
        f"<= {len(TAGS)} record GETs per interval; 1 PUT per invalidate; 0 served after it",
        met,
    )


def _gets(proxy: FaultProxy, *, record: bool) -> int:
    """GETs the proxy saw of tag records (``record``) or of anything else."""
    return sum(
        n
        for (method, path), n in proxy.paths.items()
        if method == "GET" and (".s3cache/tags/" in path) is record
    )
