"""Single-flight, get_or_set, add, @cached, the local tier, observers, compression."""

from __future__ import annotations

import asyncio
import gzip
import subprocess
import sys
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from aiobotocore.session import AioSession

from benchmarks.faultproxy import Fault, FaultProxy
from s3cache import (
    AsyncS3Cache,
    CacheEvent,
    LocalTier,
    NotSupportedError,
    S3Cache,
)
from s3cache._callkey import function_key
from s3cache._local import LocalLRU

MISSING = object()


#: What each HTTP method of an object request is, as botocore names the operation.
_OPERATIONS = {
    "GET": "GetObject",
    "PUT": "PutObject",
    "HEAD": "HeadObject",
    "DELETE": "DeleteObject",
}


class Requests:
    """Counts a cache's requests by operation at a proxy in front of the server, where neither
    the wire path nor botocore's hooks can hide one; can hold GETs there until released."""

    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy
        self._before_hold = 0

    @property
    def sent(self) -> Counter[str]:
        return Counter({_OPERATIONS.get(m, m): n for m, n in self.proxy.methods.items()})

    def clear(self) -> None:
        self.proxy.reset_counts()

    def hold_gets(self) -> None:
        self._before_hold = self.proxy.held
        self.proxy.set_fault(Fault.HOLD, methods={"GET"})

    async def arrived(self) -> None:
        """Return once a GET since :meth:`hold_gets` was answered (its answer held back)."""
        assert await asyncio.to_thread(self.proxy.wait_held, self._before_hold + 1)

    def release(self) -> None:
        self.proxy.clear()
        self.proxy.release()


@pytest.fixture
def requests(proxy: FaultProxy) -> Requests:
    return Requests(proxy)


@pytest.fixture
async def counted(cache_kwargs: dict[str, Any], requests: Requests) -> Any:
    kwargs = {**cache_kwargs, "endpoint_url": requests.proxy.endpoint}
    async with AsyncS3Cache(**kwargs, on_error="raise", prefix="f") as cache:
        yield cache


# -- single-flight --------------------------------------------------------------------------


async def test_concurrent_gets_of_one_key_send_one_request(
    counted: AsyncS3Cache, requests: Requests
) -> None:
    await counted.set("hot", {"v": 1})
    requests.clear()
    values = await asyncio.gather(*(counted.get("hot") for _ in range(100)))
    assert values == [{"v": 1}] * 100
    assert requests.sent == {"GetObject": 1}
    assert counted.stats().hits == 100


async def test_a_cancelled_caller_does_not_cancel_the_shared_get(
    counted: AsyncS3Cache, requests: Requests
) -> None:
    await counted.set("k", "v")
    requests.clear()
    requests.hold_gets()
    first = asyncio.create_task(counted.get("k"))
    others = [asyncio.create_task(counted.get("k")) for _ in range(3)]
    await requests.arrived()  # the shared request is on the wire
    first.cancel()
    requests.release()
    assert await asyncio.gather(*others) == ["v", "v", "v"]
    assert first.cancelled()
    assert requests.sent["GetObject"] == 1


async def test_a_read_in_flight_never_hides_a_later_write(
    counted: AsyncS3Cache, requests: Requests
) -> None:
    await counted.set("k", "old")
    requests.hold_gets()
    stale = asyncio.create_task(counted.get("k"))
    await requests.arrived()
    requests.release()
    await counted.set("k", "new")
    assert await counted.get("k") == "new"
    assert await stale in ("old", "new")


# -- get_or_set -----------------------------------------------------------------------------


async def test_get_or_set_runs_the_factory_once_for_a_stampede(
    counted: AsyncS3Cache, requests: Requests
) -> None:
    calls = 0

    async def factory() -> dict[str, int]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)  # long enough for all callers to pile up
        return {"made": calls}

    values = await asyncio.gather(*(counted.get_or_set("k", factory, ttl=60) for _ in range(100)))
    assert values == [{"made": 1}] * 100
    assert calls == 1
    assert requests.sent["PutObject"] == 1
    assert await counted.get_or_set("k", factory) == {"made": 1}  # now a plain hit
    assert calls == 1


async def test_get_or_set_accepts_a_sync_factory(counted: AsyncS3Cache) -> None:
    assert await counted.get_or_set("k", lambda: [1, 2]) == [1, 2]
    assert await counted.get("k") == [1, 2]


async def test_a_factory_error_reaches_every_waiter_and_is_not_cached(
    counted: AsyncS3Cache,
) -> None:
    async def boom() -> None:
        await asyncio.sleep(0.01)
        raise LookupError("no such thing")

    results = await asyncio.gather(
        *(counted.get_or_set("k", boom) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, LookupError) for r in results)
    assert await counted.get("k", MISSING) is MISSING
    assert await counted.get_or_set("k", lambda: "recovered") == "recovered"


async def test_a_cancelled_waiter_does_not_cancel_the_factory(counted: AsyncS3Cache) -> None:
    release = asyncio.Event()
    entered = asyncio.Event()
    calls = 0

    async def factory() -> str:
        nonlocal calls
        calls += 1
        entered.set()
        await release.wait()
        return "made"

    first = asyncio.create_task(counted.get_or_set("k", factory))
    second = asyncio.create_task(counted.get_or_set("k", factory))
    await entered.wait()
    first.cancel()
    release.set()
    assert await second == "made"
    assert first.cancelled()
    assert calls == 1
    assert await counted.get("k") == "made"


# -- add ------------------------------------------------------------------------------------


async def test_add_stores_only_when_absent(counted: AsyncS3Cache) -> None:
    assert await counted.add("k", "first", ttl=60) is True
    assert await counted.add("k", "second", ttl=60) is False
    assert await counted.get("k") == "first"
    stats = counted.stats()
    assert stats.sets == 1


async def test_add_replaces_an_expired_entry(counted: AsyncS3Cache) -> None:
    await counted.set("k", "stale", ttl=1)
    await asyncio.sleep(1.1)  # a ttl needs real time to pass
    assert await counted.add("k", "fresh", ttl=60) is True
    assert await counted.get("k") == "fresh"


async def test_concurrent_adds_have_one_winner(counted: AsyncS3Cache) -> None:
    results = await asyncio.gather(*(counted.add("lock", i, ttl=60) for i in range(10)))
    assert results.count(True) == 1
    assert await counted.get("lock") == results.index(True)


async def test_add_refuses_a_server_that_ignores_conditional_writes(
    cache_kwargs: dict[str, Any],
) -> None:
    session = AioSession()

    def drop_condition(request: Any, **_: Any) -> None:  # what a non-conforming server does
        if "If-None-Match" in request.headers:
            del request.headers["If-None-Match"]

    session.register("before-sign.s3.PutObject", drop_condition)
    async with AsyncS3Cache(**cache_kwargs, session=session) as cache:
        await cache.set("k", "kept")
        with pytest.raises(NotSupportedError, match="If-None-Match"):
            await cache.add("k", "overwritten?")
        assert await cache.get("k") == "kept"
        assert (await cache.check()).conditional_writes is False


# -- @cached --------------------------------------------------------------------------------


async def test_cached_coroutine_function(counted: AsyncS3Cache) -> None:
    calls: list[tuple[int, int]] = []

    @counted.cached(ttl=60)
    async def add(a: int, b: int = 10) -> int:
        calls.append((a, b))
        return a + b

    assert await add(1) == 11
    assert await add(1, 10) == 11  # same call, spelled differently
    assert await add(a=1) == 11
    assert await add(2) == 12
    assert calls == [(1, 10), (2, 10)]
    assert add.__name__ == "add"


async def test_cached_methods_skip_self_and_custom_keys(counted: AsyncS3Cache) -> None:
    calls = 0

    class Service:
        def __init__(self, name: str) -> None:
            self.name = name

        @counted.cached(key=lambda self, user_id: f"user:{user_id}")
        async def profile(self, user_id: int) -> dict[str, int]:
            nonlocal calls
            calls += 1
            return {"id": user_id}

    assert await Service("a").profile(7) == {"id": 7}
    assert await Service("b").profile(7) == {"id": 7}
    assert calls == 1
    assert await counted.get("user:7") == {"id": 7}


async def test_cached_stampede_runs_once(counted: AsyncS3Cache) -> None:
    calls = 0

    @counted.cached()
    async def slow(x: int) -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return x * 2

    assert await asyncio.gather(*(slow(21) for _ in range(50))) == [42] * 50
    assert calls == 1


def test_cached_rejects_what_it_cannot_key(cache_kwargs: dict[str, Any]) -> None:
    cache = AsyncS3Cache(**cache_kwargs)

    def plain() -> int:
        return 1

    with pytest.raises(TypeError, match=r"S3Cache\.cached"):
        cache.cached()(plain)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ttl"):
        cache.cached(ttl=-1)

    async def takes(obj: object) -> None:
        return None

    with pytest.raises(TypeError, match="pass key="):
        function_key(takes, (object(),), {})


@dataclass
class Point:
    x: int
    y: int


def keyed(a: Any, *, b: Any = None) -> None:
    """A module-level function whose default keys are compared across processes."""


KEY_ARGS: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    ((1,), {}),
    (("text",), {"b": [1, 2.5, None]}),
    ((Point(1, 2),), {"b": {"z": 1, "a": b"\x00"}}),
    (({3, 1, 2},), {}),
]


def test_default_keys_are_stable_across_processes() -> None:
    here = [function_key(keyed, args, kwargs) for args, kwargs in KEY_ARGS]
    assert len(set(here)) == len(here)
    assert all(k.startswith("tests.test_features:keyed:") for k in here)
    code = (
        "from tests.test_features import KEY_ARGS, keyed\n"
        "from s3cache._callkey import function_key\n"
        "for a, k in KEY_ARGS: print(function_key(keyed, a, k))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.split() == here


def test_sync_cached_and_get_or_set_through_the_facade(cache_kwargs: dict[str, Any]) -> None:
    calls: list[int] = []
    caller_threads: set[int] = set()
    with S3Cache(**cache_kwargs, prefix="sync", on_error="raise") as cache:

        @cache.cached(ttl=60)
        def square(x: int) -> int:
            calls.append(x)
            caller_threads.add(threading.get_ident())
            return x * x

        assert square(4) == 16
        assert square(4) == 16
        assert calls == [4]
        assert caller_threads == {threading.get_ident()}, "a sync factory runs in its caller"

        def boom() -> None:
            raise KeyError("factory failed")

        with pytest.raises(KeyError, match="factory failed"):
            cache.get_or_set("boom", boom)
        assert cache.get("boom", MISSING) is MISSING


def test_sync_get_or_set_from_many_threads_runs_the_factory_once(
    cache_kwargs: dict[str, Any],
) -> None:
    threads = 8
    barrier = threading.Barrier(threads)
    entered = threading.Event()
    release = threading.Event()
    calls = 0

    def factory() -> str:
        nonlocal calls
        calls += 1
        entered.set()
        release.wait(10)
        return "shared"

    def worker(_: int) -> Any:
        barrier.wait()
        return cache.get_or_set("k", factory)

    with S3Cache(**cache_kwargs, on_error="raise") as cache, ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(worker, i) for i in range(threads)]
        assert entered.wait(10)
        release.set()
        results = [f.result(timeout=30) for f in futures]
    assert results == ["shared"] * threads
    assert calls == 1


def test_facade_cached_wraps_coroutine_functions_natively(cache_kwargs: dict[str, Any]) -> None:
    with S3Cache(**cache_kwargs, on_error="raise") as cache:

        @cache.cached()
        async def double(x: int) -> int:
            return 2 * x

        assert asyncio.run(double(5)) == 10
        assert asyncio.run(double(5)) == 10
        assert cache.stats().hits == 1


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
        lru.put(f"k{i}", b"x", None, None, now=0.0, lifetime=None)
    assert len(lru) == 3
    assert lru.get("k0", now=1.0) is None  # least recently used went first
    assert lru.get("k1", now=1.0) is not None
    lru.put("big", b"y" * 9, None, None, now=0.0, lifetime=None)
    assert lru.size_bytes <= 10
    assert lru.get("big", now=1.0) is not None
    lru.put("huge", b"z" * 11, None, None, now=0.0, lifetime=None)
    assert lru.get("huge", now=1.0) is None
    lru.put("short", b"s", None, None, now=0.0, lifetime=0.5)
    assert lru.get("short", now=0.4) is not None
    assert lru.get("short", now=0.6) is None


@pytest.mark.parametrize(
    "tier",
    [{"max_items": 0}, {"max_bytes": -1}, {"ttl": 0}, {"ttl": float("nan")}],
)
def test_local_tier_settings_are_validated(tier: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="LocalTier"):
        LocalTier(**tier)


# -- stats and observers --------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.events: list[CacheEvent] = []

    def on_event(self, event: CacheEvent) -> None:
        self.events.append(event)


async def test_observer_sees_every_operation(cache_kwargs: dict[str, Any]) -> None:
    recorder = Recorder()
    async with AsyncS3Cache(**cache_kwargs, observer=recorder) as cache:
        await cache.set("k", "value")
        await cache.get("k")
        await cache.get("absent")
        await cache.delete("k")
        stats = cache.stats()
    assert [(e.op, e.outcome) for e in recorder.events] == [
        ("set", "stored"),
        ("get", "hit"),
        ("get", "miss"),
        ("delete", "deleted"),
    ]
    assert recorder.events[0].nbytes == len(b'"value"')
    assert all(e.duration_s > 0 for e in recorder.events)
    assert (stats.bytes_out, stats.bytes_in) == (7, 7)
    assert stats.latency["get"].count == 2
    assert stats.latency["get"].p50 <= stats.latency["get"].max


async def test_a_failing_observer_never_breaks_the_cache(
    cache_kwargs: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        def on_event(self, event: CacheEvent) -> None:
            raise RuntimeError("exporter down")

    async with AsyncS3Cache(**cache_kwargs, observer=Broken(), on_error="raise") as cache:
        await cache.set("k", 1)
        assert await cache.get("k") == 1
    assert "exporter down" in caplog.text


# -- compression ----------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
async def test_compression_above_the_threshold(
    cache_kwargs: dict[str, Any], s3: Any, compression: Any
) -> None:
    if compression == "zstd":
        pytest.importorskip("zstandard")
    big = {"text": "abc" * 2000}
    async with AsyncS3Cache(
        **cache_kwargs, compression=compression, compression_threshold=1024, on_error="raise"
    ) as cache:
        await cache.set("big", big)
        await cache.set("small", "tiny")
        assert await cache.get("big") == big
        assert await cache.get("small") == "tiny"
    head = s3.head_object(Bucket=cache_kwargs["bucket"], Key="big")
    assert head["ContentEncoding"] == compression
    assert head["ContentLength"] < 1000
    assert "ContentEncoding" not in s3.head_object(Bucket=cache_kwargs["bucket"], Key="small")
    async with AsyncS3Cache(**cache_kwargs, on_error="raise") as plain_reader:
        assert await plain_reader.get("big") == big, "any reader decodes by Content-Encoding"


def test_a_gzip_bomb_is_refused() -> None:
    from s3cache import _format

    bomb = gzip.compress(b"\0" * (_format.MAX_DECOMPRESSED_BYTES + 1))
    with pytest.raises(ValueError, match="expands past"):
        _format.decompress(bomb, "gzip")
    with pytest.raises(ValueError, match="truncated"):
        _format.decompress(gzip.compress(b"abc" * 100)[:-12], "gzip")


async def test_reads_gzip_entries_written_by_others(cache_kwargs: dict[str, Any], s3: Any) -> None:
    s3.put_object(
        Bucket=cache_kwargs["bucket"],
        Key="gz",
        Body=gzip.compress(b'{"a": 1}'),
        ContentType="application/json",
        ContentEncoding="gzip",
    )
    async with AsyncS3Cache(**cache_kwargs, on_error="raise") as cache:
        assert await cache.get("gz") == {"a": 1}


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"compression": "lz4"}, "compression"),
        ({"compression": "gzip", "compression_threshold": -1}, "threshold"),
    ],
)
def test_compression_options_are_validated(options: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        AsyncS3Cache("bucket", **options)
