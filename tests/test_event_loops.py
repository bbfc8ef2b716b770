"""One AsyncS3Cache object across event loops: successive asyncio.run calls, per-test loops."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from s3cache import AsyncS3Cache
from tests.conftest import CREDENTIALS


def test_successive_asyncio_run_calls(cache_kwargs: dict[str, Any]) -> None:
    cache = AsyncS3Cache(**cache_kwargs, on_error="raise")
    asyncio.run(cache.set("k", "v"))
    for _ in range(3):
        assert asyncio.run(cache.get("k")) == "v"
    # every finished loop closed its own client; none is left behind
    assert cache._transport._loops == {}
    asyncio.run(cache.close())


def test_a_loop_gets_its_own_client_and_closes_it(cache_kwargs: dict[str, Any]) -> None:
    cache = AsyncS3Cache(**cache_kwargs, on_error="raise")
    clients = []

    async def use() -> None:
        await cache.set("k", 1)
        clients.append(cache._transport._loops[asyncio.get_running_loop()].client)

    asyncio.run(use())
    asyncio.run(use())
    assert clients[0] is not clients[1]
    asyncio.run(cache.close())


def test_two_loops_in_two_threads_at_once(cache_kwargs: dict[str, Any]) -> None:
    import threading

    cache = AsyncS3Cache(**cache_kwargs, on_error="raise")
    results: dict[int, Any] = {}

    def worker(i: int) -> None:
        async def run() -> Any:
            await cache.set(f"t{i}", i)
            return await cache.get(f"t{i}")

        results[i] = asyncio.run(run())

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {i: i for i in range(4)}
    asyncio.run(cache.close())


# One cache object shared by several pytest-asyncio tests, each of which runs on its own loop.


@pytest.fixture(scope="module")
def shared_bucket(s3_endpoint: str) -> Iterator[str]:
    import boto3

    client = boto3.client("s3", endpoint_url=s3_endpoint, **CREDENTIALS)
    client.create_bucket(Bucket="shared-across-loops")
    yield "shared-across-loops"
    client.close()


@pytest.fixture(scope="module")
def shared_cache(shared_bucket: str, s3_endpoint: str) -> AsyncS3Cache:
    return AsyncS3Cache(shared_bucket, endpoint_url=s3_endpoint, on_error="raise", **CREDENTIALS)


@pytest.mark.parametrize("round_", range(3))
async def test_shared_cache_on_per_test_loops(shared_cache: AsyncS3Cache, round_: int) -> None:
    await shared_cache.set(f"round{round_}", round_)
    assert await shared_cache.get(f"round{round_}") == round_
    if round_:
        assert await shared_cache.get(f"round{round_ - 1}") == round_ - 1
