"""Stale-while-revalidate (issue 23): a stale entry is served at once and refreshed once in the
background, failures back off, close() settles refreshes, and old readers see it expired."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import pytest

from harness.expiry import until_expired
from harness.faultproxy import Fault, FaultProxy
from s3cache import AsyncS3Cache, S3Cache
from tests.conftest import CREDENTIALS


async def _settled(cache: AsyncS3Cache) -> None:
    """Wait for the cache's background refreshes to end."""
    await asyncio.gather(*cache._refresher._tasks.values(), return_exceptions=True)


class Held:
    """A factory that counts its calls, tells when one starts, and holds each until released."""

    def __init__(self, value: str) -> None:
        self.value, self.calls = value, 0
        self.started, self.release = asyncio.Event(), asyncio.Event()

    async def __call__(self) -> str:
        self.calls += 1
        self.started.set()
        await self.release.wait()
        return self.value

    async def let_go(self, cache: AsyncS3Cache) -> None:
        """Once a call has started, release it and wait for the cache's refreshes to end."""
        await self.started.wait()
        self.release.set()
        await _settled(cache)


@pytest.mark.parametrize("fast_path", [True, False])
async def test_stale_entry_is_served_at_once_and_refreshed_once(
    cache_kwargs: dict[str, Any], fast_path: bool
) -> None:
    """Ten callers of a stale key get the old value while one refresh (held) runs."""
    async with AsyncS3Cache(**cache_kwargs, on_error="raise", fast_path=fast_path) as cache:
        assert await cache.get_or_set("k", lambda: "v1", ttl=1, stale_ttl=30) == "v1"
        await until_expired(cache, "k")
        slow = Held("v2")
        got = await asyncio.gather(
            *(cache.get_or_set("k", slow, ttl=30, stale_ttl=30) for _ in range(10))
        )
        assert got == ["v1"] * 10  # nobody waited for the held factory
        await slow.let_go(cache)
        assert slow.calls == 1
        assert await cache.get("k") == "v2"
        stats = cache.stats()
        assert stats.stale_served == {"revalidating": 10}
        assert (stats.refreshes, stats.refresh_failed) == (1, 0)


async def test_no_stale_window_recorded_means_a_blocking_miss(
    cache_kwargs: dict[str, Any],
) -> None:
    """An entry written without a window (set() on a cache without stale_ttl) is never stale."""
    async with AsyncS3Cache(**cache_kwargs, on_error="raise") as cache:
        await cache.set("k", "old", ttl=1)
        await until_expired(cache, "k")
        assert await cache.get_or_set("k", lambda: "new", stale_ttl=30) == "new"
        assert cache.stats().stale_served == {}


async def test_constructor_default_is_recorded_by_set(cache_kwargs: dict[str, Any]) -> None:
    """The constructor's stale_ttl is written with set() and used by get_or_set."""
    async with AsyncS3Cache(**cache_kwargs, on_error="raise", stale_ttl=30) as cache:
        await cache.set("k", "old", ttl=1)
        await until_expired(cache, "k")
        assert await cache.get_or_set("k", lambda: "new") == "old"
        await _settled(cache)
        assert await cache.get("k") == "new"


async def test_failed_refresh_keeps_stale_value_and_backs_off(
    cache_kwargs: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """A refresh that raises leaves the stale entry, is counted and logged, and is not retried
    on the next read (the key backs off)."""
    async with AsyncS3Cache(**cache_kwargs, on_error="raise", stale_ttl=30) as cache:
        await cache.set("k", "old", ttl=1)
        await until_expired(cache, "k")
        calls = 0

        def broken() -> str:
            nonlocal calls
            calls += 1
            raise RuntimeError("model down")

        assert await cache.get_or_set("k", broken) == "old"
        await _settled(cache)
        assert await cache.get_or_set("k", broken) == "old"
        await _settled(cache)
        assert calls == 1
        assert cache.stats().refresh_failed == 1
        assert cache._refresher.backoff.failures(cache._object_key("k")) == 1
        assert "background refresh" in caplog.text
        assert "model down" in caplog.text


async def test_close_settles_a_refresh_in_flight(cache_kwargs: dict[str, Any]) -> None:
    """close() waits for a refresh within the timeout, then cancels it: no task outlives it."""
    cache = AsyncS3Cache(**cache_kwargs, on_error="raise", stale_ttl=30, timeout=0.5)
    cache._transport.timeout = 10.0  # the clients open under a long deadline (a loaded machine)
    await cache.set("k", "old", ttl=1)
    cache._transport.timeout = 0.5  # close() allows the refresh the cache's 0.5 s
    await until_expired(cache, "k")
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def forever() -> str:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    assert await cache.get_or_set("k", forever) == "old"
    await started.wait()
    tasks = list(cache._refresher._tasks.values())
    await cache.close()
    assert cancelled.is_set()
    assert all(t.done() for t in tasks)


async def test_refresh_write_with_lost_response_lands(proxy: FaultProxy, bucket: str) -> None:
    """The refresh's PUT applied but its response lost: the retry stores it, the refresh
    counts as done, and the new value is served."""
    async with AsyncS3Cache(
        bucket, endpoint_url=proxy.endpoint, on_error="raise", stale_ttl=30, **CREDENTIALS
    ) as cache:
        await cache.set("k", "old", ttl=1)
        await until_expired(cache, "k")
        proxy.set_fault(Fault.RESET_BODY, times=1, methods={"PUT"})
        assert await cache.get_or_set("k", lambda: "new", ttl=30) == "old"
        await _settled(cache)
        assert await cache.get("k") == "new"
        assert (cache.stats().refreshes, cache.stats().refresh_failed) == (1, 0)


_FLEET_WORKER = """
import asyncio, json, sys, time
from s3cache import AsyncS3Cache, S3Cache

async def main(endpoint, bucket, calls_path, key_id, secret, options):
    def factory():
        with open(calls_path, "a") as f:
            f.write("call\\n")
        time.sleep(1.0)  # holds the lease while the other processes read
        return "new"

    async with AsyncS3Cache(
        bucket, endpoint_url=endpoint, on_error="raise", aws_access_key_id=key_id,
        aws_secret_access_key=secret, region_name="us-east-1",
    ) as cache:
        value = await cache.get_or_set("k", factory, ttl=30, lease=30, **json.loads(options))
        await asyncio.gather(*cache._refresher._tasks.values())
        print(json.dumps(value))

asyncio.run(main(*sys.argv[1:]))
"""


async def _fleet_refresh(
    cache_kwargs: dict[str, Any], tmp_path: Any, options: dict[str, Any]
) -> list[Any]:
    """Four worker processes call ``get_or_set("k", ..., lease=30, **options)`` at once; their
    values, after asserting that the fleet called the factory once."""
    calls = tmp_path / "calls"
    calls.touch()
    argv = [cache_kwargs["endpoint_url"], cache_kwargs["bucket"], str(calls)]
    argv += [CREDENTIALS["aws_access_key_id"], CREDENTIALS["aws_secret_access_key"]]
    argv.append(json.dumps(options))
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", _FLEET_WORKER, *argv, stdout=asyncio.subprocess.PIPE
        )
        for _ in range(4)
    ]
    outs = [await p.communicate() for p in procs]
    assert [p.returncode for p in procs] == [0] * 4
    assert calls.read_text().count("call") == 1
    return [json.loads(out) for out, _ in outs]


async def test_one_refresh_per_fleet_with_a_lease(
    cache_kwargs: dict[str, Any], tmp_path: Any
) -> None:
    """Four processes read one stale key with lease=: each is served at once, and the fleet
    calls the factory once (the others find the lease held, then the new value)."""
    async with AsyncS3Cache(**cache_kwargs, on_error="raise", stale_ttl=30) as cache:
        await cache.set("k", "old", ttl=1)
        await until_expired(cache, "k")
    values = await _fleet_refresh(cache_kwargs, tmp_path, {"stale_ttl": 30})
    assert set(values) <= {"old", "new"}


async def test_one_early_refresh_per_fleet_with_a_lease(
    cache_kwargs: dict[str, Any], tmp_path: Any
) -> None:
    """Four processes read one fresh key whose recorded compute time dwarfs its ttl left, so
    every read draws an early refresh (XFetch): with lease=, the fleet calls the factory once,
    in the background (no process waited for it: the first to read got the old value)."""
    async with AsyncS3Cache(**cache_kwargs, on_error="raise") as cache:
        await cache._writes.store(cache._object_key("k"), "old", 60.0, compute=1e6)
    values = await _fleet_refresh(cache_kwargs, tmp_path, {"early": True})
    assert "old" in values
    assert set(values) <= {"old", "new"}


async def test_bad_stale_ttl_raises_before_any_request(proxy: FaultProxy, bucket: str) -> None:
    """A negative or non-numeric stale_ttl names itself, on the constructor, get_or_set and
    cached, and nothing is sent."""
    with pytest.raises(ValueError, match="stale_ttl"):
        AsyncS3Cache(bucket, endpoint_url=proxy.endpoint, stale_ttl=-1, **CREDENTIALS)
    async with AsyncS3Cache(bucket, endpoint_url=proxy.endpoint, **CREDENTIALS) as cache:
        with pytest.raises((TypeError, ValueError), match="stale_ttl"):
            await cache.get_or_set("k", lambda: 1, stale_ttl="soon")
        with pytest.raises(ValueError, match="stale_ttl"):
            cache.cached(stale_ttl=-5)
    assert sum(proxy.methods.values()) == 0


def test_sync_cached_serves_stale(cache_kwargs: dict[str, Any]) -> None:
    """The facade's @cached on a sync function takes stale_ttl: a stale result is returned at
    once and refreshed in the background."""
    calls: list[int] = []
    with S3Cache(**cache_kwargs, on_error="raise", stale_ttl=30) as cache:

        @cache.cached(ttl=1, key=lambda n: f"sq:{n}")
        def square(n: int) -> int:
            calls.append(n)
            return n * n * len(calls)

        assert square(3) == 9
        for _ in range(100):
            if cache.get("sq:3", "gone") == "gone":
                break
            time.sleep(0.1)
        assert square(3) == 9  # stale, served at once
        for _ in range(100):
            if cache.get("sq:3") == 18:
                break
            time.sleep(0.1)
        assert cache.get("sq:3") == 18
        assert calls == [3, 3]
