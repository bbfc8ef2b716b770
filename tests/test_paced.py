"""Adaptive pacing wired into sending (:mod:`s3cache._paced`), over HTTP against the mini server
with S3's limits emulated (:mod:`harness.s3limits`), on both request paths.

The emulator runs on a stepped clock and the bucket's pacer on a frozen fake one, so that which
request is throttled, and how long a send must wait, are decided by the test, not by timing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from harness.s3limits import Emulator
from s3cache import AsyncS3Cache, S3Cache, ServerError, StoreTimeoutError
from s3cache._paced import _shared
from s3cache._pacing import Pacer
from tests.test_scale_emulator import (
    NO_RETRIES,
    RETRIES,
    StepClock,
    drain,
    emulated,
    fast_path,
)
from tests.test_scale_emulator import cache_on as unpaced_cache_on

__all__ = ["clock", "emulated", "fast_path"]


def cache_on(url: str, config: Any, fast_path: bool, **options: Any) -> AsyncS3Cache:
    """A cache on the emulator with pacing on (``pacing=False`` is the default) unless given."""
    return unpaced_cache_on(url, config, fast_path, **{"pacing": True, **options})


class FrozenClock:
    """The pacer's clock: stands still unless the test moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> StepClock:
    return StepClock()


@pytest.fixture
def pacer(emulated: tuple[str, Emulator]) -> Iterator[Pacer]:
    """The pacer of the emulated bucket in this process, on a frozen clock."""
    url, _ = emulated
    shared = _shared(url, "emu")
    original = shared.pacer
    shared.pacer = Pacer(clock=FrozenClock())
    yield shared.pacer
    shared.pacer = original


def fresh_pacer(url: str) -> Pacer:
    """A new pacer on a frozen clock for the bucket (after a warm-up taught the old one)."""
    shared = _shared(url, "emu")
    shared.pacer = Pacer(clock=FrozenClock())
    return shared.pacer


def sent(emulator: Emulator) -> int:
    """Object requests the emulator has seen, admitted or throttled."""
    return sum(emulator.admitted) + sum(emulator.throttled)


async def test_a_slowdown_is_counted_and_paces_the_bucket(
    emulated: tuple[str, Emulator], clock: StepClock, pacer: Pacer, fast_path: bool
) -> None:
    url, emulator = emulated
    async with cache_on(url, NO_RETRIES, fast_path, on_error="raise") as cache:
        assert cache.stats().send_rate is None
        await cache.get("warm")
        loop_client = cache._transport._loops[asyncio.get_running_loop()]
        assert (loop_client.route is not None) is fast_path  # the pacing's hooks keep it
        drain(url, clock)
        with pytest.raises(ServerError, match="SlowDown"):
            await cache.set("k", 1)
        stats = cache.stats()
        assert stats.throttles == 1
        assert stats.send_rate is not None
        assert stats.send_rate >= 0.5
        assert pacer.limited
        assert pacer.backoffs == 1
        assert "throttled 1 times, paced at" in str(stats)
    assert emulator.throttled == [0, 1]


async def test_a_burst_of_slowdowns_backs_off_once(
    emulated: tuple[str, Emulator], clock: StepClock, pacer: Pacer, fast_path: bool
) -> None:
    url, emulator = emulated
    async with cache_on(url, NO_RETRIES, fast_path) as cache:
        await cache.get("warm")  # the client is open: the burst goes out together
        drain(url, clock)
        found = await cache.get_many([f"k{i}" for i in range(8)])
        assert found == {}
        throttles = cache.stats().throttles
    # On a loaded machine the first SlowDown can come back before the last of the eight is
    # sent (each opens its own connection); that one then waits for a turn on the frozen clock
    # and is refused unsent. Every request is one or the other.
    assert throttles >= 1
    assert throttles + pacer.refused == 8
    assert emulator.throttled[0] == pacer.throttles == throttles
    # Replies to requests sent before the back-off do not cut again.
    assert pacer.backoffs < throttles or pacer.backoffs == 1


async def test_a_send_that_cannot_meet_its_deadline_fails_unsent(
    emulated: tuple[str, Emulator], pacer: Pacer, fast_path: bool
) -> None:
    url, emulator = emulated
    async with cache_on(url, NO_RETRIES, fast_path, on_error="raise", timeout=10) as cache:
        # The clients open first: on a loaded machine that alone can take more than 0.5 s.
        assert await cache.get("warm") is None
        cache._transport.timeout = 0.5
        pacer = fresh_pacer(url)
        pacer.observe(True)  # throttled: 1.4 requests a second, no token yet (clock frozen)
        assert pacer.rate == pytest.approx(1.4)
        before = sent(emulator)
        with pytest.raises(StoreTimeoutError, match="paced after SlowDown") as caught:
            await cache.get("k")  # its turn is 0.71 s away, past its 0.5 s deadline
        assert caught.value.kind == "timeout"
        assert cache.stats().errors == {"timeout": 1}
    assert sent(emulator) == before  # nothing was sent
    assert pacer.refused == 1


@pytest.mark.parametrize("pacing", [True, False], ids=["paced", "unpaced"])
async def test_a_send_within_its_deadline_waits_its_turn_unless_pacing_is_off(
    emulated: tuple[str, Emulator], pacer: Pacer, fast_path: bool, pacing: bool
) -> None:
    url, emulator = emulated
    pacer.observe(True)  # throttled: 1.4 requests a second, no token yet
    before = sent(emulator)
    options: dict[str, Any] = {"on_error": "raise", "timeout": 5, "pacing": pacing}
    async with cache_on(url, NO_RETRIES, fast_path, **options) as cache:
        assert await cache.get("k") is None  # paced: waited 0.71 s, then sent; a miss
        stats = cache.stats()
        assert stats.send_rate == (pytest.approx(1.4) if pacing else None)
        assert stats.throttles == 0
    assert sent(emulator) == before + 1
    assert pacer.delayed == (1 if pacing else 0)
    assert pacer.refused == 0


async def test_retries_through_slowdown_wait_their_turn(
    emulated: tuple[str, Emulator], clock: StepClock, pacer: Pacer, fast_path: bool
) -> None:
    url, emulator = emulated
    async with cache_on(url, RETRIES, fast_path, on_error="raise") as cache:
        drain(url, clock, step=0.125)
        await cache.set("k", {"v": 1})  # refused once, then (after its turn) stored
        assert cache.stats().throttles == 1
    assert (pacer.backoffs, pacer.delayed) == (1, 1)  # the retry waited (no refill: frozen)
    assert emulator.throttled == [0, 1]


def test_the_facade_paces_too(emulated: tuple[str, Emulator], pacer: Pacer) -> None:
    url, _emulator = emulated
    kwargs: dict[str, Any] = {
        "endpoint_url": url,
        "config": NO_RETRIES,
        "timeout": 10,
        "pacing": True,
    }
    with S3Cache("emu", **kwargs, **_creds()) as cache:
        assert cache.get("warm", "missing") == "missing"  # the clients open unthrottled
        cache._core._transport.timeout = 0.5
        pacer = fresh_pacer(url)
        pacer.observe(True)
        assert cache.get("k", "missing") == "missing"  # refused unsent: a timeout, logged
        assert cache.stats().errors == {"timeout": 1}
    assert pacer.refused == 1


def _creds() -> dict[str, Any]:
    from tests.test_scale_emulator import CREDS

    return CREDS


@pytest.mark.parametrize("value", [1, "yes", None])
def test_pacing_must_be_a_bool(value: Any) -> None:
    with pytest.raises(TypeError, match="pacing must be True or False"):
        AsyncS3Cache("emu", pacing=value)


async def test_caches_of_one_bucket_share_its_pacer_and_count_their_own_throttles(
    emulated: tuple[str, Emulator], clock: StepClock, pacer: Pacer
) -> None:
    url, _ = emulated
    async with (
        cache_on(url, NO_RETRIES, True) as first,
        cache_on(url, NO_RETRIES, True, prefix="other") as second,
    ):
        await first.get("warm")
        drain(url, clock)
        assert await first.get("k", "missing") == "missing"  # a SlowDown, logged
        assert first.stats().throttles == 1
        assert second.stats().throttles == 0
        assert second.stats().send_rate == first.stats().send_rate
        assert second.stats().send_rate is not None


def test_a_forked_child_gets_a_pacer_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    parent = _shared("http://pacer.test", "b")
    assert _shared("http://pacer.test", "b") is parent  # per bucket per process
    assert _shared("http://pacer.test", "other") is not parent
    assert _shared("http://elsewhere.test", "b") is not parent
    monkeypatch.setattr("os.getpid", lambda: -1)
    assert _shared("http://pacer.test", "b") is not parent


async def test_pacing_is_off_by_default(
    emulated: tuple[str, Emulator], clock: StepClock, pacer: Pacer
) -> None:
    """Opt-in: a default cache retries a SlowDown as before and never waits for a turn."""
    url, _ = emulated
    async with unpaced_cache_on(url, NO_RETRIES, True) as cache:
        await cache.get("warm")
        drain(url, clock)
        assert await cache.get("k", "missing") == "missing"  # a SlowDown, logged
        assert cache.stats().errors == {"server": 1}
        assert (cache.stats().throttles, cache.stats().send_rate) == (0, None)  # pacing's own
    assert pacer.throttles == 0
