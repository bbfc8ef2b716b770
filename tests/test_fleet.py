"""Fleet-wide single flight (get_or_set with a lease) and locks, on moto's server.

The claims are about processes, so the central tests run real ones (spawned, see
:mod:`harness.fleet`); they synchronise on reports from the workers, never on sleeps.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from typing import Any

import pytest

from harness.fleet import (
    CONTEXT,
    INCREMENTS,
    VALUE,
    FleetJob,
    Round,
    count_under_lock,
    hold_then_pause,
    start_workers,
)
from s3cache import (
    AsyncS3Cache,
    HeldLock,
    LockNotAcquiredError,
    NotSupportedError,
    S3Cache,
    _fleet,
    _keys,
    _lease,
)
from s3cache.maintenance import purge_expired, storage_stats
from tests.test_core import IfMatchHook

PREFIX = "fleet"


@pytest.fixture
def kwargs(cache_kwargs: dict[str, Any]) -> dict[str, Any]:
    return {**cache_kwargs, "prefix": PREFIX, "on_error": "raise"}


@pytest.fixture
async def fleet(kwargs: dict[str, Any]) -> AsyncIterator[AsyncS3Cache]:
    async with AsyncS3Cache(**kwargs) as cache:
        yield cache


def _lease_key(cache: AsyncS3Cache, key: str) -> str:
    return _keys.reserved_key(cache.prefix, "lease", key.replace(":", "/"))


def _lock_key(cache: AsyncS3Cache, name: str) -> str:
    return _keys.reserved_key(cache.prefix, "lock", name)


async def _record(cache: AsyncS3Cache, okey: str) -> _lease.LeaseState | None:
    return await _fleet._look(cache.transport, okey)


# -- processes: get_or_set(lease=...) ---------------------------------------------------------


def test_stampede_of_8_processes_runs_the_factory_once(kwargs: dict[str, Any]) -> None:
    """8 processes x 8 tasks on one missing key: one factory call in all, 64 values."""
    job = FleetJob(
        kwargs, [Round("prompt:stampede", 30)], tasks=8, block_first=True, report_waiting=True
    )
    workers = start_workers(job, 8)
    try:
        workers.expect("ready", 8)
        workers.starts[0].set()
        [(_, holder, _)] = workers.expect("factory", 1)
        waiting = {pid for _, pid in workers.expect("waiting", 7)}
        assert holder not in waiting  # the other seven are all waiting on the holder's lease
        workers.release.set()
        done = workers.expect("done", 8)
    finally:
        workers.stop()
    assert workers.calls.value == 1
    assert [d[3] for d in done] == [[VALUE] * 8] * 8


def test_holder_killed_mid_factory_is_taken_over_after_the_lease(kwargs: dict[str, Any]) -> None:
    """SIGKILL the holder: one waiter takes over once the lease runs out; two calls in all.

    The lease (not renewed: a fill's lease is its fixed bound) is 4 s, not 1: every waiter
    must arrive while the victim still holds it, and on a loaded machine one worker's first
    request can take over a second (it then took the lease over and never waited)."""
    job = FleetJob(
        kwargs, [Round("prompt:killed", lease=4)], tasks=4, block_first=True, report_waiting=True
    )
    workers = start_workers(job, 4)
    try:
        workers.expect("ready", 4)
        workers.starts[0].set()
        [(_, victim, _)] = workers.expect("factory", 1)  # blocks until killed
        workers.expect("waiting", 3)
        os.kill(victim, signal.SIGKILL)
        done = workers.expect("done", 3)
        second = [pid for _, pid, _ in workers.reports("factory")]
    finally:
        workers.stop()
    assert workers.calls.value == 2
    assert len(second) == 1
    assert second[0] != victim
    assert victim not in {d[1] for d in done}
    assert [d[3] for d in done] == [[VALUE] * 4] * 3


# -- processes: lock() ------------------------------------------------------------------------


def test_lock_serialises_read_modify_write_across_8_processes(kwargs: dict[str, Any]) -> None:
    start, out = CONTEXT.Event(), CONTEXT.Queue()
    procs = [CONTEXT.Process(target=count_under_lock, args=(kwargs, start, out)) for _ in range(8)]
    for p in procs:
        p.start()
    try:
        assert [out.get(timeout=120)[0] for _ in procs] == ["ready"] * 8
        start.set()
        assert [out.get(timeout=300)[0] for _ in procs] == ["done"] * 8
    finally:
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()
                p.join()
        out.close()
        out.join_thread()
    assert all(p.exitcode == 0 for p in procs)
    with S3Cache(**kwargs) as cache:
        doc = cache.get("counter")
    assert doc["n"] == 8 * INCREMENTS  # no lost update
    tokens = doc["tokens"]
    assert tokens == sorted(set(tokens))  # strictly increasing, in the order of the writes


async def test_a_paused_holder_loses_its_lock_and_its_write_is_stale(
    kwargs: dict[str, Any],
) -> None:
    resumed, out = CONTEXT.Event(), CONTEXT.Queue()
    proc = CONTEXT.Process(target=hold_then_pause, args=(kwargs, resumed, out))
    proc.start()
    try:
        kind, pid, token = await asyncio.to_thread(out.get, True, 120)
        assert kind == "acquired"
        os.kill(pid, signal.SIGSTOP)  # a GC pause, a VM migration, a laptop lid
        async with AsyncS3Cache(**kwargs) as cache, cache.lock("report", ttl=5, wait=30) as held:
            assert held.token > token
            await cache.set("guarded", {"token": held.token, "by": "taker"})
            os.kill(pid, signal.SIGCONT)
            resumed.set()
            kind, lost, stale = await asyncio.to_thread(out.get, True, 60)
            assert (kind, lost, stale) == ("after", True, True)
            assert await cache.get("guarded") == {"token": held.token, "by": "taker"}
            assert not held.lost
    finally:
        if proc.is_alive():
            os.kill(proc.pid or 0, signal.SIGCONT)
        proc.join(30)
        if proc.is_alive():
            proc.kill()
            proc.join()
        out.close()
        out.join_thread()
    assert proc.exitcode == 0


# -- servers that ignore conditional writes ---------------------------------------------------


async def test_both_refuse_a_server_that_ignores_conditional_writes(
    ignoring_conditions: dict[str, Any],
) -> None:
    calls = 0

    def factory() -> str:
        nonlocal calls
        calls += 1
        return "made"

    async with AsyncS3Cache(**ignoring_conditions, prefix=PREFIX) as cache:
        with pytest.raises(NotSupportedError, match="If-None-Match"):
            await cache.get_or_set("k", factory, lease=5)
        with pytest.raises(NotSupportedError, match="If-None-Match"):
            async with cache.lock("job", ttl=5):
                pass
        assert calls == 0
        assert await cache.get("k") is None
        assert await cache.get_or_set("k", factory) == "made"  # without a lease: as before


# -- get_or_set(lease=...), in one process ------------------------------------------------------


async def test_lease_fill_stores_the_value_and_releases_the_lease(fleet: AsyncS3Cache) -> None:
    assert await fleet.get_or_set("a:b", lambda: {"v": 1}, ttl=60, lease=10) == {"v": 1}
    assert await fleet.get("a:b") == {"v": 1}
    record = await _record(fleet, _lease_key(fleet, "a:b"))
    assert record is not None
    assert not record.held
    assert record.token > 0
    assert await fleet.get_or_set("a:b", lambda: {"v": 2}, lease=10) == {"v": 1}  # a hit


async def test_two_caches_share_one_computation(kwargs: dict[str, Any]) -> None:
    """Two cache objects stand in for two processes: the second waits for the first's value."""
    entered, release = asyncio.Event(), asyncio.Event()
    calls = 0

    async def slow() -> str:
        nonlocal calls
        calls += 1
        entered.set()
        await release.wait()
        return "once"

    async with AsyncS3Cache(**kwargs) as one, AsyncS3Cache(**kwargs) as two:
        first = asyncio.create_task(one.get_or_set("k", slow, lease=30))
        await entered.wait()
        second = asyncio.create_task(two.get_or_set("k", slow, lease=30))
        record = await _record(two, _lease_key(two, "k"))
        assert record is not None
        assert record.held
        release.set()
        assert list(await asyncio.gather(first, second)) == ["once", "once"]
    assert calls == 1


async def test_factory_error_stores_nothing_and_releases_for_a_retry(
    kwargs: dict[str, Any],
) -> None:
    async def failing() -> str:
        raise RuntimeError("provider down")

    async with AsyncS3Cache(**kwargs) as one, AsyncS3Cache(**kwargs) as two:
        with pytest.raises(RuntimeError, match="provider down"):
            await one.get_or_set("k", failing, lease=30)
        record = await _record(one, _lease_key(one, "k"))
        assert record is not None
        assert not record.held
        assert await one.get("k") is None
        assert await two.get_or_set("k", lambda: "second try", lease=30) == "second try"
        retaken = await _record(two, _lease_key(two, "k"))
        assert retaken is not None
        assert retaken.token > record.token


async def test_a_cancelled_holder_releases_its_lease(kwargs: dict[str, Any]) -> None:
    """Cancelling the only caller cancels its computation, which releases the lease: the next
    caller elsewhere computes at once instead of waiting out the 30-second lease."""
    entered = asyncio.Event()

    async def forever() -> str:
        entered.set()
        await asyncio.Event().wait()
        return "never"

    async with AsyncS3Cache(**kwargs) as one, AsyncS3Cache(**kwargs) as two:
        task = asyncio.create_task(one.get_or_set("k", forever, lease=30))
        await entered.wait()
        record = await _record(one, _lease_key(one, "k"))
        assert record is not None
        assert record.held
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        value = await asyncio.wait_for(two.get_or_set("k", lambda: "next", lease=30), 10)
        assert value == "next"


async def test_waiting_is_bounded_then_the_caller_computes(
    fleet: AsyncS3Cache, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A lease held far longer than promised (a hung holder that keeps it alive) is waited
    for two leases plus the slack, then the caller computes the value itself."""
    capabilities = await fleet.capabilities()
    hung = await _fleet._try(fleet.transport, _lease_key(fleet, "k"), 600.0, None, capabilities)
    assert isinstance(hung, _fleet.Holding)
    monkeypatch.setattr(_fleet, "WAIT_SLACK", 0.2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await fleet.get_or_set("k", lambda: "local", lease=1) == "local"
    assert 2.2 <= loop.time() - started < 10
    assert "computing it here" in caplog.text
    assert await fleet.get("k") == "local"


async def test_lease_is_validated_before_any_request(fleet: AsyncS3Cache) -> None:
    with pytest.raises(ValueError, match="lease must be at least 1 second"):
        await fleet.get_or_set("k", lambda: 1, lease=0.5)
    with pytest.raises(TypeError, match="lease must be seconds"):
        await fleet.get_or_set("k", lambda: 1, lease=b"10")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lease must be positive"):
        fleet.cached(lease=-1)
    with pytest.raises(ValueError, match="reserved"):
        await fleet.get_or_set(".s3cache:lease:k", lambda: 1, lease=5)
    assert fleet.stats().misses == 0


async def test_cached_with_a_lease(fleet: AsyncS3Cache) -> None:
    calls = 0

    @fleet.cached(ttl=60, lease=10)
    async def double(x: int) -> int:
        nonlocal calls
        calls += 1
        return 2 * x

    assert list(await asyncio.gather(double(21), double(21))) == [42, 42]
    assert await double(21) == 42
    assert calls == 1


# -- lock(), in one process -----------------------------------------------------------------


async def test_lock_is_exclusive_and_released_on_exit(kwargs: dict[str, Any]) -> None:
    async with AsyncS3Cache(**kwargs) as one, AsyncS3Cache(**kwargs) as two:
        async with one.lock("nightly-report", ttl=10) as held:
            assert isinstance(held, HeldLock)
            assert held.token > 0
            assert not held.lost
            with pytest.raises(LockNotAcquiredError, match=r"nightly-report.*held by"):
                async with two.lock("nightly-report", ttl=10):
                    pass
        async with two.lock("nightly-report", ttl=10) as again:  # released: free at once
            assert again.token > held.token


async def test_locks_work_where_the_server_refuses_a_quoted_if_match(
    kwargs: dict[str, Any],
) -> None:
    """Ceph RGW 16.2 answers 412 to If-Match with the quoted ETag (emulated here by turning
    every quoted If-Match into a wrong one): releases and takeovers send it unquoted."""
    wrong = '"ffffffffffffffffffffffffffffffff"'
    hook = IfMatchHook(lambda value: wrong if value.startswith('"') else value)
    async with AsyncS3Cache(**kwargs, session=hook.session) as ceph_like:
        async with ceph_like.lock("job", ttl=10) as held:
            pass
        assert not held.lost
        async with ceph_like.lock("job", ttl=10) as again:  # released, so free at once
            assert again.token > held.token
    lock_sent = [value for path, value in hook.sent if "/lock/" in path]
    assert lock_sent, "the release and the takeover were conditional"
    assert all(not value.startswith('"') for value in lock_sent)


async def test_lock_waits_for_the_holder(kwargs: dict[str, Any]) -> None:
    async with AsyncS3Cache(**kwargs) as one, AsyncS3Cache(**kwargs) as two:
        inside, leave = asyncio.Event(), asyncio.Event()

        async def hold() -> int:
            async with one.lock("job", ttl=10) as held:
                inside.set()
                await leave.wait()
                return held.token

        holder = asyncio.create_task(hold())
        await inside.wait()
        waiter = asyncio.create_task(_enter(two, "job"))
        record = await _record(two, _lock_key(two, "job"))
        assert record is not None
        assert record.held
        leave.set()
        first, second = await asyncio.gather(holder, waiter)
        assert second > first


async def _enter(cache: AsyncS3Cache, name: str) -> int:
    async with cache.lock(name, ttl=10, wait=30) as held:
        return held.token


async def test_lock_is_renewed_past_its_ttl(fleet: AsyncS3Cache) -> None:
    async with fleet.lock("long", ttl=1) as held:
        first = await _record(fleet, _lock_key(fleet, "long"))
        assert first is not None
        for _ in range(100):  # until a renewal has replaced the record
            now = await _record(fleet, _lock_key(fleet, "long"))
            if now is not None and now.etag != first.etag:
                break
            await asyncio.sleep(0.05)
        assert now is not None
        assert now.held
        assert now.token == held.token
        assert not held.lost


async def test_release_cannot_release_someone_elses_lock(kwargs: dict[str, Any]) -> None:
    async with AsyncS3Cache(**kwargs) as one, AsyncS3Cache(**kwargs) as two:
        old = one.lock("job", ttl=10)
        async with old:
            stale = old._holding
        assert stale is not None
        async with two.lock("job", ttl=10) as held:
            assert await _fleet._release(one._fleet, stale) is False  # If-Match on an old ETag
            record = await _record(two, _lock_key(two, "job"))
            assert record is not None
            assert record.held
            assert record.token == held.token


async def test_a_lock_taken_over_is_reported_lost(
    fleet: AsyncS3Cache, s3: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async with fleet.lock("job", ttl=1) as held:
        # Someone else's record replaces ours (as a takeover after a pause would).
        s3.put_object(Bucket=fleet.bucket, Key=_lock_key(fleet, "job"), Body=b"{}")
        for _ in range(100):
            if held.lost:
                break
            await asyncio.sleep(0.05)
        assert held.lost
    assert "lost" in caplog.text
    assert s3.get_object(Bucket=fleet.bucket, Key=_lock_key(fleet, "job"))["Body"].read() == b"{}"


async def test_tokens_keep_increasing_after_purge_removes_the_lock(fleet: AsyncS3Cache) -> None:
    async with fleet.lock("job", ttl=1) as first:
        pass
    await asyncio.sleep(2.1)  # a released record runs out after 1 s, on whole-second dates
    result = await purge_expired(fleet)
    assert result.leases == 1
    assert await _record(fleet, _lock_key(fleet, "job")) is None
    async with fleet.lock("job", ttl=1) as second:
        assert second.token > first.token


async def test_lock_arguments_are_validated_before_any_request(fleet: AsyncS3Cache) -> None:
    with pytest.raises(ValueError, match="ttl must be at least 1 second"):
        fleet.lock("job", ttl=0.5)
    with pytest.raises(TypeError, match="ttl"):
        fleet.lock("job", ttl=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="wait must be"):
        fleet.lock("job", ttl=5, wait=-1)
    with pytest.raises(ValueError, match="lock name"):
        fleet.lock("", ttl=5)
    with pytest.raises(ValueError, match=r"lock name.*segment"):
        fleet.lock("a::b", ttl=5)
    lock = fleet.lock("job", ttl=5)
    async with lock:
        pass
    with pytest.raises(RuntimeError, match="one `async with`"):
        async with lock:
            pass


def test_sync_facade_lock_and_lease(kwargs: dict[str, Any]) -> None:
    with S3Cache(**kwargs) as one, S3Cache(**kwargs) as two:
        with one.lock("sync-job", ttl=5) as held:
            assert held.token > 0
            with pytest.raises(LockNotAcquiredError), two.lock("sync-job", ttl=5):
                pass
        with two.lock("sync-job", ttl=5, wait=5) as again:
            assert again.token > held.token
        assert one.get_or_set("k", lambda: "v", lease=5) == "v"
        assert two.get_or_set("k", lambda: "other", lease=5) == "v"

        @one.cached(lease=5)
        def square(x: int) -> int:
            return x * x

        assert square(3) == 9


# -- leases are not entries -------------------------------------------------------------------


async def test_leases_stay_out_of_entry_counts_and_purge_removes_them(
    fleet: AsyncS3Cache, s3: Any
) -> None:
    await fleet.get_or_set("kept", lambda: "v", lease=5)
    async with fleet.lock("job", ttl=5):
        pass
    stats = await storage_stats(fleet)
    assert stats.entries == 1
    await asyncio.sleep(2.1)  # released records run out after 1 s
    result = await purge_expired(fleet)
    assert (result.scanned, result.expired, result.leases) == (1, 0, 2)
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=fleet.bucket).get("Contents", [])}
    assert keys == {f"{PREFIX}/kept"}


async def test_clear_removes_leases_too(fleet: AsyncS3Cache, s3: Any) -> None:
    await fleet.get_or_set("k", lambda: "v", lease=5)
    assert await fleet.clear() == 2
    assert "Contents" not in s3.list_objects_v2(Bucket=fleet.bucket)
