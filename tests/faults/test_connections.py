"""The wire path's connections against the test server (moto, or ``--server``): idle
connections the server dropped, large values (``Expect: 100-continue``) on both paths, a large
write whose answer was lost, and values read in place handed up as the right types."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from benchmarks.server import EmbeddedServer
from harness.faultproxy import Fault, FaultProxy
from s3cache import AsyncS3Cache
from s3cache._http_pool import Pool

from .conftest import CREDENTIALS, address

ONE_ATTEMPT = Config(retries={"mode": "standard", "max_attempts": 1})
LARGE = os.urandom(3 * 1024 * 1024)  # over the 1 MiB from which PUTs wait for 100 Continue


def pool_of(cache: AsyncS3Cache) -> Pool:
    wire = cache._transport._loops[asyncio.get_running_loop()].wire
    assert wire is not None
    pool = wire._pool
    assert pool is not None
    return pool


@pytest.fixture
def keepalive_kwargs(
    s3_server: str, s3_endpoint: str
) -> Iterator[tuple[FaultProxy, dict[str, Any]]]:
    """A fault proxy in front of a server that keeps connections alive (the session's, or
    for moto, which closes every connection, the harness's mini server), and cache kwargs."""
    with contextlib.ExitStack() as stack:
        endpoint = s3_endpoint
        if s3_server == "moto":
            endpoint = stack.enter_context(EmbeddedServer("mini")).url
        proxy = stack.enter_context(FaultProxy(address(endpoint)))
        client = boto3.client("s3", endpoint_url=endpoint, **CREDENTIALS)
        name = f"keep-{uuid.uuid4().hex[:12]}"
        client.create_bucket(Bucket=name)
        stack.callback(client.close)
        yield proxy, {"bucket": name, "endpoint_url": proxy.endpoint, **CREDENTIALS}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
            for item in page.get("Contents", []):
                client.delete_object(Bucket=name, Key=item["Key"])
        client.delete_bucket(Bucket=name)


async def test_connections_the_server_dropped_while_idle_are_replaced(
    keepalive_kwargs: tuple[FaultProxy, dict[str, Any]],
) -> None:
    """Every idle connection reset (a server restart): each next request takes a new one,
    with no retry needed (one attempt allowed) and no request sent twice."""
    proxy, kwargs = keepalive_kwargs
    async with AsyncS3Cache(**kwargs, on_error="raise", config=ONE_ATTEMPT) as cache:
        await cache.set_many({f"k{i}": i for i in range(8)})
        pool = pool_of(cache)
        assert pool.connections > 0
        for step in ("get", "set", "add", "exists", "delete"):
            idle = [c for c in pool._open if not c.closing()]
            proxy.drop_connections()
            await asyncio.wait_for(asyncio.gather(*(c.closed for c in idle)), 10)
            assert pool.connections == 0
            proxy.reset_counts()
            if step == "get":
                assert await cache.get("k1") == 1
            elif step == "set":
                await cache.set("k1", "new")
            elif step == "add":
                assert await cache.add("fresh", 1) is True
            elif step == "exists":
                assert await cache.exists("k1")
            else:
                assert await cache.delete("k1") is True
            # Each request on the entry once (add()'s conditional-write probe aside).
            sent = Counter((h.method, h.path) for h in proxy.heads if ".s3cache/" not in h.path)
            assert sent, step
            assert set(sent.values()) == {1}, (step, sent)


@pytest.mark.parametrize("fast_path", [True, False], ids=["wire", "aiobotocore"])
async def test_large_values_round_trip(cache_kwargs: dict[str, Any], fast_path: bool) -> None:
    """Raw bytes come back as ``bytes``, JSON decoded from the buffer it was read into."""
    value = {"rows": [f"{i:08d}" * 8 for i in range(30_000)]}  # about 2 MiB of JSON
    async with AsyncS3Cache(**cache_kwargs, on_error="raise", fast_path=fast_path) as cache:
        await cache.set("raw", LARGE)
        await cache.set("json", value)
        raw = await cache.get("raw")
        assert type(raw) is bytes
        assert raw == LARGE
        assert await cache.get("json") == value
        assert await cache.add("raw", b"other") is False
        assert await cache.get("raw") == LARGE


async def test_a_large_write_whose_answer_was_lost_is_stored(
    proxy: FaultProxy, proxied_kwargs: dict[str, Any], s3: Any, bucket: str
) -> None:
    """The server applied the PUT; its answer was reset: the retry stores it again and the
    caller sees success; the object holds the new value whole."""
    async with AsyncS3Cache(**proxied_kwargs, prefix="lost", on_error="raise") as cache:
        await cache.set("k", b"old")
        proxy.set_fault(Fault.RESET_BODY, times=1, methods={"PUT"})
        await cache.set("k", LARGE)
        assert proxy.count(Fault.RESET_BODY) == 1
        assert await cache.get("k") == LARGE
    assert s3.head_object(Bucket=bucket, Key="lost/k")["ContentLength"] == len(LARGE)


@pytest.mark.skipif(importlib.util.find_spec("uvloop") is None, reason="uvloop not installed")
def test_the_wire_path_runs_on_uvloop(cache_kwargs: dict[str, Any]) -> None:
    import uvloop

    async def exercise() -> None:
        async with AsyncS3Cache(**cache_kwargs, on_error="raise") as cache:
            await cache.set("small", {"v": 1})
            await cache.set("large", LARGE)
            assert await cache.get("small") == {"v": 1}
            assert await cache.get("large") == LARGE
            assert await cache.exists("large")
            assert await cache.delete("large") is True
            assert type(asyncio.get_running_loop()).__module__.startswith("uvloop")

    uvloop.run(exercise())
