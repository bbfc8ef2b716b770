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

from benchmarks.faultproxy import Fault, FaultProxy
from s3cache import AsyncS3Cache, LocalTier
from s3cache._local import _MARKS, LocalLRU
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
    async with AsyncS3Cache(
        **dict(cache_kwargs, endpoint_url=proxy.endpoint), prefix="local", on_error="raise"
    ) as cache:
        """A get started after add() returned True never joins the GET sent before it."""
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
    lru.put("k", b"old", None, None, 0.0, None, read_sent)
    assert lru.get("k", 0.0) is None, "a read overtaken by untracked writes is refused"
    lru.put("k", b"new", None, None, 0.0, None, lru.generation)
    entry = lru.get("k", 0.0)
    assert entry is not None
    assert entry.body == b"new"


def test_a_write_keeps_its_value_only_when_no_other_write_overlapped() -> None:
    lru = LocalLRU(LocalTier(max_items=10, max_bytes=1000, ttl=60))
    first = lru.begin_write("k")
    second = lru.begin_write("k")
    lru.end_write("k", second, b"second")
    lru.end_write("k", first, b"first")
    assert lru.get("k", 0.0) is None
    alone = lru.begin_write("k")
    lru.end_write("k", alone, b"alone")
    entry = lru.get("k", 0.0)
    assert entry is not None
    assert entry.body == b"alone"
