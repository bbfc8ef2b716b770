"""Early refresh, XFetch (issue 23 item 2): with ``early=True`` (or a beta), a fresh entry is
refreshed in the background with probability ``exp(-remaining / (compute * beta))``, from the
compute time recorded with it and its ttl left on the server's clock; the caller never waits, and
a stampede of readers starts one refresh."""

from __future__ import annotations

import asyncio
import math
import random
import time
from typing import Any

import pytest

from s3cache import AsyncS3Cache, S3Cache, _loop
from s3cache._freshness import Verdict, policy, xfetch_probability
from tests.test_refresh import Held, _settled


@pytest.mark.parametrize("beta", [1.0, 2.0])
async def test_early_refresh_probability_follows_the_formula(
    cache_kwargs: dict[str, Any], beta: float
) -> None:
    """400 reads (seeded) of an entry with ttl 60 s and compute time 59 s: the share drawn
    early is exp(-remaining / (59 * beta)) within four standard deviations, remaining read on
    the server's clock (58-59 s here)."""
    async with AsyncS3Cache(**cache_kwargs, on_error="raise") as cache:
        okey = cache._object_key("k")
        await cache._writes.store(okey, "v", 60.0, compute=59.0)
        cache._reads.rng = random.Random(23)
        rules = policy(early=beta)
        verdicts = [(await cache._reads.lookup(okey, rules))[1] for _ in range(400)]
        early = sum(v is Verdict.EARLY for v in verdicts)
        assert {v for v in verdicts} <= {Verdict.EARLY, Verdict.FRESH}
        # remaining errs towards expired by up to 1 s: 58 to 59 s, over these few seconds
        low, high = xfetch_probability(59, 59, beta), xfetch_probability(57, 59, beta)
        spread = 4 * math.sqrt(400 * high * (1 - low))
        assert 400 * low - spread <= early <= 400 * high + spread
        assert abs(early / 400 - math.exp(-58 / (59 * beta))) < 0.1


async def test_a_stampede_starts_one_background_refresh_and_nobody_waits(
    cache_kwargs: dict[str, Any],
) -> None:
    """Twenty readers of an entry whose compute time dwarfs its ttl left (each draws early):
    all get the old value at once, one factory call runs in the background, then the new value
    is stored with its own compute time."""
    async with AsyncS3Cache(**cache_kwargs, on_error="raise") as cache:
        okey = cache._object_key("k")
        await cache._writes.store(okey, "old", 60.0, compute=1e6)
        slow = Held("new")
        got = await asyncio.gather(
            *(cache.get_or_set("k", slow, ttl=60, early=True) for _ in range(20))
        )
        assert got == ["old"] * 20  # nobody waited for the held factory
        await slow.let_go(cache)
        assert slow.calls == 1
        assert await cache.get("k") == "new"
        assert cache.stats().refreshes == 1


async def test_off_by_default_and_bad_values(cache_kwargs: dict[str, Any]) -> None:
    """Without early= a fresh entry is never refreshed early; early=0, -1 or "yes" raise before
    any request (also through cached)."""
    async with AsyncS3Cache(**cache_kwargs, on_error="raise") as cache:
        okey = cache._object_key("k")
        await cache._writes.store(okey, "old", 60.0, compute=1e6)
        assert await cache.get_or_set("k", lambda: "new", ttl=60) == "old"
        assert cache._refresher._tasks == {}
        with pytest.raises(ValueError, match="early"):
            await cache.get_or_set("k", lambda: 1, early=-1)
        with pytest.raises(TypeError, match="early"):
            cache.cached(early="yes")  # type: ignore[arg-type]


def test_sync_facade_cached_early(cache_kwargs: dict[str, Any]) -> None:
    """S3Cache's @cached(early=...) refreshes in the background too (its sync function in a
    worker thread), returning the old value at once."""
    with S3Cache(**cache_kwargs, on_error="raise") as cache:
        cache._core._reads.rng = random.Random(0)  # its first draw (0.84) is early here
        calls = 0

        @cache.cached(ttl=60, early=1e6)
        def compute(x: int) -> int:
            nonlocal calls
            calls += 1
            time.sleep(0.01)  # the work: a compute time of 10 ms is recorded
            return x * calls

        assert compute(3) == 3  # a miss: computed
        assert compute(3) == 3  # fresh, drawn early: served at once, refreshed behind
        _loop.run(_settled(cache._core))
        assert calls == 2
        assert cache.stats().refreshes == 1
