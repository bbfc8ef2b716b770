"""Pacing: at most ``width`` calls started at a time, failures returned in place, bugs raised."""

from __future__ import annotations

import asyncio

import pytest

from s3cache import ServerError
from s3cache._concurrency import paced


async def test_paced_keeps_width_requests_started_and_the_order() -> None:
    """A request starts only when a slot is free, so its deadline never covers a queue."""
    started: list[int] = []
    in_flight = peak = 0
    release = asyncio.Event()
    three_started = asyncio.Event()

    async def call(i: int) -> int:
        nonlocal in_flight, peak
        started.append(i)
        if len(started) == 3:
            three_started.set()
        in_flight += 1
        peak = max(peak, in_flight)
        if i < 3:
            await release.wait()
        in_flight -= 1
        if i == 5:
            raise ServerError("five")
        return i * 10

    batch = asyncio.create_task(paced(call, list(range(20)), 3))
    await three_started.wait()
    for _ in range(10):  # give any fourth request every chance to start
        await asyncio.sleep(0)
    assert started == [0, 1, 2]  # the other 17 have not started, so no deadline of theirs runs
    release.set()
    results = await batch
    assert peak == 3
    assert sorted(started) == list(range(20))
    assert isinstance(results[5], ServerError)
    assert [r for i, r in enumerate(results) if i != 5] == [i * 10 for i in range(20) if i != 5]


async def test_paced_stops_and_raises_on_a_bug() -> None:
    async def call(i: int) -> int:
        if i == 2:
            raise KeyError("bug")
        await asyncio.sleep(0)
        return i

    with pytest.raises(KeyError, match="bug"):
        await paced(call, list(range(100)), 4)
    assert await paced(call, [7], 4) == [7]  # one item: inline
    assert await paced(call, [], 4) == []
