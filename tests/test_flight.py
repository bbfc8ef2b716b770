"""Single-flight (s3cache._flight): shared requests and factories, and who may cancel them."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from s3cache import (
    AsyncS3Cache,
    CacheEvent,
)
from s3cache._flight import Flights
from tests.conftest import Requests


async def test_a_get_after_a_cancelled_get_never_inherits_its_cancellation(
    counted: AsyncS3Cache, requests: Requests
) -> None:
    """A's get is cancelled while its GET is on the wire; B's get, started just after, must not
    join the shared request that A's cancellation is tearing down. (GETs are held and counted at
    a proxy, so the wire path is the one under test.)"""
    await counted.set("k", "v")
    requests.clear()
    requests.hold_gets()
    first = asyncio.create_task(counted.get("k"))
    await requests.arrived()  # A's GET reached the server; its answer is held back
    first.cancel()
    await asyncio.sleep(0)  # A handles its cancellation: it was the last waiter
    assert first.cancelled()
    second = asyncio.create_task(counted.get("k"))
    await asyncio.sleep(0)  # B joins whatever is in the single-flight table now
    requests.release()
    assert await second == "v"
    assert requests.sent["GetObject"] == 2  # B sent a request of its own


class Misses:
    """An observer that sets ``missed`` on every get that misses."""

    def __init__(self) -> None:
        self.missed = asyncio.Event()

    def on_event(self, event: CacheEvent) -> None:
        if event.op == "get" and event.outcome == "miss":
            self.missed.set()


async def test_get_or_set_after_a_cancelled_one_runs_the_factory_afresh(
    cache_kwargs: dict[str, Any],
) -> None:
    """A's factory is still cleaning up after A's cancellation when B misses and joins: B must
    run the factory afresh, not receive A's CancelledError."""
    misses = Misses()
    entered, cleaned_up, never = asyncio.Event(), asyncio.Event(), asyncio.Event()
    calls = 0

    async def slow() -> str:
        nonlocal calls
        calls += 1
        entered.set()
        try:
            await never.wait()
        except asyncio.CancelledError:
            await cleaned_up.wait()  # a factory's cleanup can take a while
            raise
        return "slow"

    async with AsyncS3Cache(**cache_kwargs, on_error="raise", observer=misses) as cache:
        first = asyncio.create_task(cache.get_or_set("k", slow))
        await entered.wait()
        misses.missed.clear()
        first.cancel()
        await asyncio.sleep(0)  # the last waiter left: the factory is being cancelled
        assert first.cancelled()
        second = asyncio.create_task(cache.get_or_set("k", lambda: "fresh"))
        await misses.missed.wait()  # B missed, and joins the fill in the same step
        await asyncio.sleep(0)
        cleaned_up.set()
        assert await second == "fresh"
        assert calls == 1
        assert await cache.get("k") == "fresh"


async def test_a_waiter_never_inherits_a_cancellation_of_the_shared_task() -> None:
    """Cancelling the shared task itself (not any caller) sends its waiters to a fresh one."""
    flights = Flights()
    started: list[asyncio.Task[Any]] = []
    running, release = asyncio.Event(), asyncio.Event()

    async def work() -> str:
        task = asyncio.current_task()
        assert task is not None
        started.append(task)
        running.set()
        await release.wait()
        return "done"

    waiters = [asyncio.create_task(flights.join("k", work)) for _ in range(3)]
    await running.wait()
    started[0].cancel()  # cancelled by nobody who waits for it
    release.set()
    assert await asyncio.gather(*waiters) == ["done"] * 3
    assert len(started) == 2


async def test_a_caller_cancelled_as_the_shared_work_fails_leaves_nothing_unretrieved(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The work fails, settling both waiters in its last step; one caller is cancelled before
    it resumes. The other gets the error, the cancelled one its cancellation, and asyncio logs
    no "Future exception was never retrieved" for the future settled under it."""
    flights = Flights()
    release = asyncio.Event()

    async def work() -> None:
        await release.wait()
        raise ValueError("boom")

    first = asyncio.create_task(flights.join("k", work))
    second = asyncio.create_task(flights.join("k", work))
    await asyncio.sleep(0)  # both wait on the one shared task
    release.set()
    await asyncio.sleep(0)  # the work fails in this turn and settles both waiters
    first.cancel()  # before its caller resumed
    with pytest.raises(ValueError, match="boom"):
        await second
    with pytest.raises(asyncio.CancelledError):
        await first
    del first
    gc.collect()
    assert "never retrieved" not in caplog.text


async def test_the_result_reaches_a_waiter_the_turn_after_the_work_ends() -> None:
    """The shared task settles its waiters in its own last step: a waiter resumes on the next
    turn of the loop (a done callback, as ``asyncio.shield`` uses, would take one more)."""
    flights = Flights()
    loop = asyncio.get_running_loop()
    turns: list[int] = []

    def tick(n: int) -> None:  # one entry per turn of the loop since the work ended
        turns.append(n)
        if n < 3:
            loop.call_soon(tick, n + 1)

    async def work() -> str:
        loop.call_soon(tick, 1)
        return "v"

    assert await flights.join("k", work) == "v"
    assert turns == [1]  # resumed in the first turn after the work's last step


async def test_work_that_cancels_itself_twice_is_not_retried_forever() -> None:
    flights = Flights()
    runs = 0

    async def cancels_itself() -> None:
        nonlocal runs
        runs += 1
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await flights.join("k", cancels_itself)
    assert runs == 2


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
