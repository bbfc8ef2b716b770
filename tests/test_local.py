"""The local tier (s3cache._local) in front of S3: coherence with writes through the same cache,
and never outliving the entry's expiry on S3.

A read "in flight" is held at a fault proxy after the server has answered it, so that it lands
after a write, deterministically.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from harness.faultproxy import Fault, FaultProxy
from s3cache import (
    AsyncS3Cache,
    LocalTier,
)
from s3cache._local import _MARKS, LocalLRU
from tests.conftest import Requests
from tests.faults.conftest import address

MISSING = object()


@pytest.fixture
def proxy(s3_endpoint: str) -> Iterator[FaultProxy]:
    with FaultProxy(address(s3_endpoint)) as p:
        yield p


@pytest.fixture
async def writer(cache_kwargs: dict[str, Any]) -> AsyncIterator[AsyncS3Cache]:
    """Another cache on the same prefix, straight to the server: writes behind the reader's back."""
    async with AsyncS3Cache(**cache_kwargs, prefix="local", on_error="raise") as cache:
        yield cache


@pytest.fixture
async def reader(cache_kwargs: dict[str, Any], proxy: FaultProxy) -> AsyncIterator[AsyncS3Cache]:
    """A cache with a local tier, through the proxy."""
    async with AsyncS3Cache(
        **dict(cache_kwargs, endpoint_url=proxy.endpoint),
        prefix="local",
        on_error="raise",
        local=LocalTier(max_items=100, max_bytes=1 << 20, ttl=30),
    ) as cache:
        await cache.exists("warm-up")  # open the client before any fault
        yield cache


async def _held_get(cache: AsyncS3Cache, proxy: FaultProxy, key: str) -> asyncio.Task[Any]:
    """Start ``cache.get(key)`` and return once the server has answered it (the answer is held)."""
    held = proxy.held
    proxy.set_fault(Fault.HOLD, times=1, methods={"GET"})
    task = asyncio.create_task(cache.get(key, MISSING))
    assert await asyncio.to_thread(proxy.wait_held, held + 1)
    return task


def _writes(
    reader: AsyncS3Cache,
) -> dict[str, Callable[[], Awaitable[Any]]]:
    return {
        "set": lambda: reader.set("k", "new"),
        "set_many": lambda: reader.set_many({"k": "new"}),
        "delete": lambda: reader.delete("k"),
        "delete_many": lambda: reader.delete_many(["k"]),
        "clear": reader.clear,
    }


@pytest.mark.parametrize("write", ["set", "set_many", "delete", "delete_many", "clear"])
async def test_a_read_that_lands_after_a_write_never_fills_the_tier(
    reader: AsyncS3Cache, writer: AsyncS3Cache, proxy: FaultProxy, write: str
) -> None:
    """The GET is answered with the old value, the write completes, then the old answer lands:
    it must not go into the tier, so the write is visible at once through get and exists."""
    await writer.set("k", "old")
    stale = await _held_get(reader, proxy, "k")
    await _writes(reader)[write]()
    await asyncio.to_thread(proxy.release)
    assert await stale == "old"  # it started before the write: either answer would do
    expected = "new" if write.startswith("set") else MISSING
    assert await reader.get("k", MISSING) == expected
    assert await reader.exists("k") is (expected is not MISSING)


async def test_add_invalidates_a_get_already_in_flight(
    cache_kwargs: dict[str, Any], proxy: FaultProxy
) -> None:
    """A get started after add() returned True never joins the GET sent before it."""
    async with AsyncS3Cache(
        **dict(cache_kwargs, endpoint_url=proxy.endpoint), prefix="local", on_error="raise"
    ) as cache:
        await cache.exists("warm-up")
        stale = await _held_get(cache, proxy, "k")
        assert await cache.add("k", "added") is True
        fresh = asyncio.create_task(cache.get("k", MISSING))
        await asyncio.sleep(0)
        await asyncio.to_thread(proxy.release)
        assert await stale is MISSING
        assert await fresh == "added"


async def test_a_write_that_lands_after_a_later_write_never_fills_the_tier(
    reader: AsyncS3Cache, proxy: FaultProxy
) -> None:
    """Two sets of one key overlap: which one S3 kept is unknown, so the tier keeps neither."""
    await reader.set("k", "first")
    proxy.set_fault(Fault.HOLD, times=1, methods={"PUT"})
    held = proxy.held
    first = asyncio.create_task(reader.set("k", "second"))
    assert await asyncio.to_thread(proxy.wait_held, held + 1)
    await reader.set("k", "third")  # stored after "second" on the server
    await asyncio.to_thread(proxy.release)
    await first
    assert await reader.get("k") == "third"


async def test_the_local_tier_never_outlives_the_entry_on_s3_under_response_latency(
    reader: AsyncS3Cache, writer: AsyncS3Cache, proxy: FaultProxy
) -> None:
    """The tier's deadline counts from when the GET was sent, not from when its 1.5 s late
    answer arrived: once S3 says expired, the tier does too."""
    await writer.set("k", "v", ttl=2.5)
    proxy.set_fault(Fault.DELAY, times=1, methods={"GET"}, delay=1.5)
    assert await reader.get("k", MISSING) == "v"
    for _ in range(100):  # until S3 calls it expired (within about 2 s)
        if not await writer.exists("k"):
            break
        await asyncio.sleep(0.05)
    assert await reader.get("k", MISSING) is MISSING
    assert await reader.exists("k") is False


def test_write_marks_stay_bounded_and_refuse_what_they_no_longer_track() -> None:
    lru = LocalLRU(LocalTier(max_items=10, max_bytes=1000, ttl=60))
    read_sent = lru.generation
    for i in range(_MARKS + 10):  # more writes of other keys than the tier remembers
        lru.end_write(f"other{i}", lru.begin_write(f"other{i}"))
    assert len(lru._marks) <= _MARKS
    lru.put("k", lru.entry(b"old", None, None, 0.0, None), read_sent)
    assert lru.get("k", 0.0) is None, "a read overtaken by untracked writes is refused"
    lru.put("k", lru.entry(b"new", None, None, 0.0, None), lru.generation)
    entry = lru.get("k", 0.0)
    assert entry is not None
    assert entry.body == b"new"


def test_a_write_keeps_its_value_only_when_no_other_write_overlapped() -> None:
    lru = LocalLRU(LocalTier(max_items=10, max_bytes=1000, ttl=60))
    first = lru.begin_write("k")
    second = lru.begin_write("k")
    lru.end_write("k", second, lru.entry(b"second", None, None, 0.0, None))
    lru.end_write("k", first, lru.entry(b"first", None, None, 0.0, None))
    assert lru.get("k", 0.0) is None
    alone = lru.begin_write("k")
    lru.end_write("k", alone, lru.entry(b"alone", None, None, 0.0, None))
    entry = lru.get("k", 0.0)
    assert entry is not None
    assert entry.body == b"alone"


# -- local tier -----------------------------------------------------------------------------


@pytest.fixture
async def local_cache(cache_kwargs: dict[str, Any], requests: Requests) -> Any:
    async with AsyncS3Cache(
        **{**cache_kwargs, "endpoint_url": requests.proxy.endpoint},
        on_error="raise",
        local=LocalTier(max_items=100, max_bytes=1 << 20, ttl=30),
    ) as cache:
        yield cache


async def test_local_tier_serves_repeat_reads_without_requests(
    local_cache: AsyncS3Cache, requests: Requests
) -> None:
    await local_cache.set("k", {"v": [1]})
    first = await local_cache.get("k")
    first["v"].append(2)  # callers get their own copy: mutating it must not leak
    assert await local_cache.get("k") == {"v": [1]}
    assert requests.sent["GetObject"] == 0
    stats = local_cache.stats()
    assert (stats.hits, stats.local_hits) == (2, 2)


async def test_local_tier_stays_coherent_with_writes_through_the_cache(
    local_cache: AsyncS3Cache, requests: Requests
) -> None:
    await local_cache.set("k", 1)
    await local_cache.set("k", 2)
    assert await local_cache.get("k") == 2
    assert await local_cache.delete("k") is True
    assert await local_cache.get("k", MISSING) is MISSING
    await local_cache.set("j", 3)
    assert await local_cache.clear() == 1
    assert await local_cache.get("j", MISSING) is MISSING


async def test_local_tier_never_outlives_the_s3_expiry(
    local_cache: AsyncS3Cache, requests: Requests
) -> None:
    await local_cache.exists("warm-up")  # open the client first: the 1 s below is the ttl's
    await local_cache.set("k", "v", ttl=2)  # S3 may expire it after 1 s: so does the tier
    assert await local_cache.get("k") == "v"
    assert requests.sent["GetObject"] == 0
    await asyncio.sleep(1.1)
    await local_cache.get("k", MISSING)
    assert requests.sent["GetObject"] == 1, "the local copy lapsed; S3 was asked"


def test_local_lru_bounds_items_and_bytes() -> None:
    lru = LocalLRU(LocalTier(max_items=3, max_bytes=10, ttl=60))
    for i in range(4):
        lru.put(f"k{i}", lru.entry(b"x", None, None, now=0.0, lifetime=None))
    assert len(lru) == 3
    assert lru.get("k0", now=1.0) is None  # least recently used went first
    assert lru.get("k1", now=1.0) is not None
    lru.put("big", lru.entry(b"y" * 9, None, None, now=0.0, lifetime=None))
    assert lru.size_bytes <= 10
    assert lru.get("big", now=1.0) is not None
    lru.put("huge", lru.entry(b"z" * 11, None, None, now=0.0, lifetime=None))
    assert lru.get("huge", now=1.0) is None
    lru.put("short", lru.entry(b"s", None, None, now=0.0, lifetime=0.5))
    assert lru.get("short", now=0.4) is not None
    assert lru.get("short", now=0.6) is None


@pytest.mark.parametrize(
    "tier",
    [{"max_items": 0}, {"max_bytes": -1}, {"ttl": 0}, {"ttl": float("nan")}],
)
def test_local_tier_settings_are_validated(tier: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="LocalTier"):
        LocalTier(**tier)
