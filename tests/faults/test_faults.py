"""Store faults injected by a proxy: fail-soft with ``on_error="log"``, typed with ``"raise"``.

Every fault runs the same three operations (get of a present key, set, delete) on two caches at
once, one per ``on_error`` mode, while a heartbeat task measures the event loop's lag. Each
operation must return within its deadline plus a small bound, and the same cache objects must
serve again once the fault clears.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

from harness.faultproxy import Fault, FaultProxy, LoopLag
from s3cache import (
    AsyncS3Cache,
    EndpointUnreachableError,
    S3CacheError,
    ServerError,
    StoreTimeoutError,
)

from .conftest import CREDENTIALS, warm_with_deadline

#: How far past its deadline an operation may return (scheduling, cleanup of the request).
RETURN_BOUND = 0.5
#: The most the event loop may lag behind a 10 ms heartbeat while faults are being served.
MAX_LOOP_LAG = 0.6  # well under the smallest deadline (1 s): the loop was never held for it
#: Our default ``retries={"mode": "standard", "total_max_attempts": 3}``: the first try and two
#: retries, with backoff of up to 1 + 2 seconds between them.
DEFAULT_ATTEMPTS = 3
#: The matrix runs with one retry (2 attempts, at most 1 s of backoff) to stay fast and make the
#: error kind deterministic: retries finish well inside the deadline.
ONE_RETRY = Config(retries={"mode": "standard", "max_attempts": 1})

MISSING = object()


@dataclass(frozen=True)
class Row:
    """One fault of the matrix and what it must produce."""

    fault: Fault
    timeout: float  # the cache's deadline for this row
    error: type[S3CacheError]  # what on_error="raise" raises
    kind: str  # what stats().errors counts
    methods: frozenset[str] | None = None  # the fault hits only these HTTP methods
    delay: float = 0.0

    @property
    def writes_fail(self) -> bool:
        return self.methods is None or "PUT" in self.methods


ROWS = [
    # Retries of a refused connection back off at most 1 s: a 2.5 s deadline lets them finish, so
    # the error is the connection's, not the deadline's.
    Row(Fault.REFUSE, 2.5, EndpointUnreachableError, "connection"),
    Row(Fault.BLACKHOLE, 1.0, StoreTimeoutError, "timeout"),
    Row(Fault.DELAY, 1.0, StoreTimeoutError, "timeout", delay=3.0),
    Row(Fault.RESET_BODY, 2.0, EndpointUnreachableError, "connection", frozenset({"GET"})),
    Row(Fault.TRUNCATE, 2.0, EndpointUnreachableError, "connection", frozenset({"GET"})),
    Row(Fault.HTTP_500, 2.5, ServerError, "server"),
    Row(Fault.SLOWDOWN_503, 2.5, ServerError, "server"),
]


async def timed(coro: Any) -> tuple[float, Any]:
    """(seconds taken, result or the exception raised)."""
    start = time.monotonic()
    try:
        result = await coro
    except Exception as exc:
        result = exc
    return time.monotonic() - start, result


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.fault.value)
async def test_fault_matrix(
    row: Row,
    proxy: FaultProxy,
    proxied_kwargs: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """get/set/delete under one fault: default/None/False or the right error, on time."""
    caplog.set_level(logging.WARNING, logger="s3cache")
    kwargs = {**proxied_kwargs, "config": ONE_RETRY}
    async with (
        AsyncS3Cache(**kwargs, prefix="log", on_error="log") as soft,
        AsyncS3Cache(**kwargs, prefix="raise", on_error="raise") as hard,
    ):
        for cache in (soft, hard):
            await warm_with_deadline(cache, row.timeout)
            await cache.set("present", {"v": 1})
            await cache.set("doomed", "x")
            assert await cache.get("present") == {"v": 1}
        base_soft = soft.stats()

        proxy.set_fault(row.fault, methods=row.methods, delay=row.delay)
        async with LoopLag() as lag:
            results = await asyncio.gather(
                *(
                    timed(op)
                    for cache in (soft, hard)
                    for op in (
                        cache.get("present", MISSING),
                        cache.set("written", [1, 2, 3]),
                        cache.delete("doomed"),
                    )
                )
            )
        (sg, sget), (ss, sset), (sd, sdel), (hg, hget), (hs, hset), (hd, hdel) = results
        print(
            f"\n{row.fault.value}: log get {sg:.2f}s set {ss:.2f}s delete {sd:.2f}s; "
            f"raise get {hg:.2f}s {type(hget).__name__} set {hs:.2f}s {type(hset).__name__} "
            f"delete {hd:.2f}s {type(hdel).__name__}; max loop lag {lag.max_lag * 1000:.0f} ms; "
            f"errors {dict(soft.stats().errors)}; proxy faults {proxy.count(row.fault)}"
        )
        for elapsed, _ in results:
            assert elapsed <= row.timeout + RETURN_BOUND
        assert lag.max_lag < MAX_LOOP_LAG
        assert lag.beats > 0

        # on_error="log": a miss, a silent set, a False delete, and each failure counted by kind.
        assert sget is MISSING
        expected_failures = 3 if row.writes_fail else 1
        if row.writes_fail:
            assert sset is None
            assert sdel is False
        assert soft.stats().errors.get(row.kind, 0) - base_soft.errors.get(row.kind, 0) == (
            expected_failures
        )
        assert sum(soft.stats().errors.values()) - sum(base_soft.errors.values()) == (
            expected_failures
        )
        assert soft.stats().misses == base_soft.misses + 1
        assert any(
            r.name == "s3cache" and f"s3cache {row.kind} failure" in r.getMessage()
            for r in caplog.records
        )

        # on_error="raise": the right subclass, the cause chained.
        raised = [hget, hset, hdel] if row.writes_fail else [hget]
        for exc in raised:
            assert isinstance(exc, row.error), repr(exc)
            assert exc.kind == row.kind
            assert exc.__cause__ is not None
        if not row.writes_fail:
            assert hset is None
            assert hdel is True

        # The fault clears: the same cache objects serve again.
        proxy.clear()
        for cache in (soft, hard):
            assert await cache.get("present") == {"v": 1}
            await cache.set("after", "ok")
            assert await cache.get("after") == "ok"


async def test_slowdown_is_retried_with_backoff_by_default(
    proxy: FaultProxy, proxied_kwargs: dict[str, Any]
) -> None:
    """Default config: SlowDown is retried (3 attempts in all, jittered backoff), then fail-soft."""
    keys = [f"k{i}" for i in range(4)]
    async with AsyncS3Cache(**proxied_kwargs, timeout=9.0, on_error="log") as cache:
        await cache.set("warm", 1)  # the client's one-time creation is not what is measured
        proxy.set_fault(Fault.SLOWDOWN_503)
        async with LoopLag() as lag:
            values = await asyncio.gather(*(cache.get(k, MISSING) for k in keys))
    assert all(v is MISSING for v in values)
    assert cache.stats().errors == {"server": len(keys)}
    assert proxy.count(Fault.SLOWDOWN_503) == DEFAULT_ATTEMPTS * len(keys)
    assert lag.max_lag < MAX_LOOP_LAG
    spans = []
    for key in keys:
        times = [r.at for r in proxy.records if r.path.endswith(f"/{key}")]
        assert len(times) == DEFAULT_ATTEMPTS
        spans.append(times[-1] - times[0])
    # Backoff is rand(0, 1) + rand(0, 2) + rand(0, 4) s: some of four operations must have waited.
    assert max(spans) > 0.1, spans


@pytest.mark.parametrize("fault", [Fault.SLOWDOWN_503, Fault.REQUEST_TIMEOUT_400])
async def test_transient_errors_are_hidden_by_retries(
    proxy: FaultProxy, proxied_kwargs: dict[str, Any], fault: Fault
) -> None:
    """Two SlowDowns (or S3's 400 RequestTimeout, when it gave up on a slow upload) then
    success: the write is acknowledged, counted as a set, and readable, through one more."""
    async with AsyncS3Cache(**proxied_kwargs, timeout=9.0, on_error="raise") as cache:
        proxy.set_fault(fault, times=2)
        await cache.set("k", {"survived": True})
        assert proxy.count(fault) == 2
        proxy.set_fault(fault, times=1)
        assert await cache.get("k") == {"survived": True}
        assert proxy.count(fault) == 3
        assert cache.stats().errors == {}
        assert cache.stats().sets == 1


async def test_refused_endpoint_raises_connection_error(closed_endpoint: str) -> None:
    """Nothing listening at all: EndpointUnreachableError, with the connector error as cause."""
    async with AsyncS3Cache(
        bucket="some-bucket",
        endpoint_url=closed_endpoint,
        **CREDENTIALS,
        timeout=2.5,
        config=ONE_RETRY,
        on_error="raise",
    ) as cache:
        elapsed, exc = await timed(cache.get("k"))
    assert isinstance(exc, EndpointUnreachableError)
    assert exc.__cause__ is not None
    assert elapsed <= 2.5 + RETURN_BOUND


async def test_a_keep_alive_connection_the_server_closed_is_not_an_error(
    proxy: FaultProxy, proxied_kwargs: dict[str, Any]
) -> None:
    """The server resets the pooled connections while they idle; the next requests, sent
    before the loop has seen the resets, still succeed (a fresh connection, or a retry)."""
    async with AsyncS3Cache(**proxied_kwargs, on_error="raise") as cache:
        await asyncio.gather(*(cache.set(f"k{i}", i) for i in range(4)))  # a few pooled
        proxy.drop_connections()
        assert await asyncio.gather(*(cache.get(f"k{i}") for i in range(4))) == [0, 1, 2, 3]
        await cache.set("after", "ok")
        assert cache.stats().errors == {}


async def test_server_restart_same_cache_recovers(
    proxy: FaultProxy, proxied_kwargs: dict[str, Any]
) -> None:
    """The server goes away mid-run and comes back on another port: the same object recovers.

    moto keeps its state in the process, so a second server sees the same buckets, like a
    restarted server with persistent storage: acknowledged writes survive the restart.
    """
    first = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    first.start()
    proxy.set_upstream(first.get_host_and_port())
    second: ThreadedMotoServer | None = None
    try:
        async with AsyncS3Cache(**proxied_kwargs, on_error="log") as cache:
            await warm_with_deadline(cache, 1.5)
            await cache.set("before", "v1")
            assert await cache.get("before") == "v1"

            # Down: the listener is gone and the open connections die with the process.
            first.stop()
            assert first._server is not None
            first._server.server_close()
            proxy.drop_connections()
            async with LoopLag() as lag:
                elapsed, down = await timed(cache.get("before", MISSING))
                await cache.set("lost", "never acknowledged")
            assert down is MISSING
            assert elapsed <= 1.5 + RETURN_BOUND
            assert lag.max_lag < MAX_LOOP_LAG
            assert cache.stats().error_count == 2

            # Back, elsewhere: same cache object, no reconnect call.
            second = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            second.start()
            proxy.set_upstream(second.get_host_and_port())
            assert await cache.get("before") == "v1"
            await cache.set("after", "v2")
            assert await cache.get("after") == "v2"
            assert cache.stats().error_count == 2
    finally:
        if second is not None:
            second.stop()
            assert second._server is not None
            second._server.server_close()
