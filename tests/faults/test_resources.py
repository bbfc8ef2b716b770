"""Resources: sockets stay within the pool, no descriptor leaks, close is final and idempotent.

The load test talks to moto in a subprocess so that every TCP socket counted in this process
(via ``/proc/self/fd`` and ``/proc/self/net/tcp``) is a client socket of the cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import boto3
import pytest

from harness.faultproxy import (
    Fault,
    FaultProxy,
    MotoProcess,
    client_sockets,
    tcp_census,
)
from s3cache import AsyncS3Cache, CacheClosedError, S3Cache

from .conftest import CREDENTIALS, warm_with_deadline

OPS = 10_000
CONCURRENCY = 256


@pytest.fixture(scope="module")
def moto_process() -> Iterator[MotoProcess]:
    """moto's server in a child process, for the module."""
    with MotoProcess() as server:
        yield server


@pytest.fixture
def far_bucket(moto_process: MotoProcess) -> str:
    """A bucket on the subprocess server."""
    client = boto3.client("s3", endpoint_url=moto_process.endpoint, **CREDENTIALS)
    try:
        client.create_bucket(Bucket="resources")
    except client.exceptions.BucketAlreadyOwnedByYou:
        pass
    finally:
        client.close()
    return "resources"


class SocketSampler:
    """Samples the client sockets to one port every 100 ms; keeps the maxima."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.peak_established = 0
        self.peak_all = 0
        self.samples = 0

    async def run(self) -> None:
        while True:
            established, every = tcp_census(self.port)
            self.peak_established = max(self.peak_established, established)
            self.peak_all = max(self.peak_all, every)
            self.samples += 1
            await asyncio.sleep(0.1)


def held_fds() -> int:
    """File descriptors this process holds, but for those open on ``/dev/null``: uvloop (its
    libuv) opens one on a loop's first need and keeps it as long as the loop lives."""
    held = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the descriptor listdir itself used
            held += os.readlink(f"/proc/self/fd/{fd}") != os.devnull
    return held


async def test_10k_operations_at_256_stay_within_the_pool(
    moto_process: MotoProcess, far_bucket: str
) -> None:
    """10,000 mixed operations, 256 at a time: sockets <= pool size, none left, no fd growth.

    Misses (GET and HEAD, 94 % of the operations) are answered 404 by the proxy itself, which
    keeps connections alive; hits and sets go through to moto, which closes each connection
    after answering. Both kinds of connection churn through the same pool.
    """
    fds_before = held_fds()
    with FaultProxy(moto_process.address) as proxy:
        port = proxy.port
        assert client_sockets(port) == 0
        proxy.set_fault(Fault.NOT_FOUND_404, path_contains="/load/miss")
        sampler = SocketSampler(port)
        started = time.monotonic()
        async with AsyncS3Cache(
            bucket=far_bucket,
            endpoint_url=proxy.endpoint,
            **CREDENTIALS,
            prefix="load",
            max_concurrency=CONCURRENCY,
            timeout=30.0,
            on_error="raise",
        ) as cache:
            await cache.set_many({f"hot{i}": i for i in range(16)})
            sampling = asyncio.create_task(sampler.run())
            next_op = iter(range(OPS))
            hits = 0

            async def worker() -> None:
                nonlocal hits
                for i in next_op:
                    if i % 100 == 0:
                        await cache.set(f"w{i % 1000}", i)
                    elif i % 20 == 0:
                        hit = await cache.get(f"hot{i % 16}") == i % 16
                        hits += hit
                    elif i % 2:
                        assert await cache.get(f"miss{i}") is None
                    else:
                        assert await cache.exists(f"miss{i}") is False

            await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
            sampling.cancel()
            stats = cache.stats()
            in_pool_at_end = client_sockets(port)
        elapsed = time.monotonic() - started
        after_close = client_sockets(port)
        canned = proxy.count(Fault.NOT_FOUND_404)
    print(
        f"\n{OPS} ops at concurrency {CONCURRENCY}: {elapsed:.1f} s ({canned} answered by the "
        f"proxy); peak client sockets {sampler.peak_established} established, "
        f"{sampler.peak_all} with closing ones (pool {CONCURRENCY}, {sampler.samples} samples); "
        f"{in_pool_at_end} open before close, {after_close} after; fds {fds_before} -> "
        f"{held_fds()}"
    )
    assert stats.error_count == 0
    assert hits == OPS // 20 - OPS // 100
    assert canned >= OPS * 9 // 10
    assert sampler.samples > 10
    assert 0 < sampler.peak_established <= CONCURRENCY
    assert in_pool_at_end <= CONCURRENCY
    assert after_close == 0  # close() closed every socket
    assert held_fds() <= fds_before  # nothing leaked, the proxy's own sockets included


async def test_close_is_idempotent_and_final(cache_kwargs: dict[str, Any]) -> None:
    """close() twice is fine; every operation afterwards raises CacheClosedError."""
    cache = AsyncS3Cache(**cache_kwargs, prefix="closed", on_error="log")
    await cache.set("k", 1)
    await cache.close()
    await cache.close()
    async with cache:  # re-entering a closed cache does not reopen it
        pass
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: cache.get("k"),
        lambda: cache.set("k", 2),
        lambda: cache.delete("k"),
        lambda: cache.exists("k"),
        lambda: cache.get_many(["k"]),
        lambda: cache.set_many({"k": 2}),
        lambda: cache.delete_many(["k"]),
        lambda: cache.clear(),
        lambda: cache.check(),
    ]
    for call in calls:
        with pytest.raises(CacheClosedError, match="closed"):
            await call()
    assert "closed" in repr(cache)
    assert cache.stats().error_count == 0  # a programming error, not a store failure


def test_sync_close_is_idempotent_and_final(cache_kwargs: dict[str, Any]) -> None:
    """The same for the blocking twin."""
    cache = S3Cache(**cache_kwargs, prefix="closed-sync")
    cache.set("k", 1)
    cache.close()
    cache.close()
    with pytest.raises(CacheClosedError):
        cache.get("k")
    with pytest.raises(CacheClosedError):
        cache.set("k", 1)


async def test_cancelled_callers_leave_the_pool_healthy(
    proxy: FaultProxy, proxied_kwargs: dict[str, Any]
) -> None:
    """Callers cancelled mid-request release their slots and sockets; later calls succeed."""
    slots = 4
    async with AsyncS3Cache(
        **proxied_kwargs, prefix="cancel", max_concurrency=slots, on_error="raise"
    ) as cache:
        await warm_with_deadline(cache, 10.0)
        await cache.set("k", "v")
        seen = proxy.requests
        proxy.set_fault(Fault.BLACKHOLE)
        # Distinct keys, plus several callers sharing one in-flight read of the same key.
        keys = [f"k{i}" for i in range(3 * slots)] + ["shared"] * 4
        tasks = [asyncio.create_task(cache.get(key)) for key in keys]
        # Wait until every slot holds a request stuck at the server, then cancel them all
        # (those waiting for a slot are cancelled too).
        assert await asyncio.to_thread(proxy.wait_requests, seen + slots, 10.0)
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, asyncio.CancelledError) for r in results)
        proxy.clear()

        # All slots are free again: as many concurrent calls as slots, each well inside the
        # deadline (a leaked slot would make them wait for it until the deadline).
        cache._transport.timeout = 3.0
        start = time.monotonic()
        values = await asyncio.gather(*(cache.get("k") for _ in range(5 * slots)))
        assert values == ["v"] * (5 * slots)
        assert time.monotonic() - start < 2.0
        assert client_sockets(proxy.port) <= slots
        await cache.set("k2", "v2")
        assert await cache.get("k2") == "v2"
    assert client_sockets(proxy.port) == 0
