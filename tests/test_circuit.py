"""The circuit breaker wired into the transport (issue 23 item 4), against a black-holed store
behind the fault proxy: it opens after a run of transport failures, then fails fast (unsent, in
microseconds), half-opens with exactly one probe, and closes; a miss, a NotFound, a refusal or
bad input never counts; ``check()`` bypasses it; ``breaker=False`` turns it off.

The breaker's cool-down runs on a fake clock (set on the transport's breaker), so no test sleeps
through one; timeouts are the black hole's, 0.5 s each.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
from botocore.config import Config

from harness.faultproxy import Fault, FaultProxy
from s3cache import AsyncS3Cache, Breaker, CircuitOpenError, S3Cache
from tests.conftest import CREDENTIALS
from tests.test_pacing import FakeClock

ONE_ATTEMPT = Config(retries={"mode": "standard", "max_attempts": 1})
#: Opens after three operations in a row fail; a two-second cool-down (on the fake clock).
THREE = Breaker(failures=3, ratio=None, cooldown=2.0, max_cooldown=8.0)
DEADLINE = 0.5


def _kwargs(proxy: FaultProxy, bucket: str) -> dict[str, Any]:
    return {"bucket": bucket, "endpoint_url": proxy.endpoint, **CREDENTIALS}


async def _armed(cache: AsyncS3Cache) -> FakeClock:
    """Warm the cache's client (its first request loads botocore's models, which counts against
    the deadline), shorten the deadline, and put its breaker on a fake clock."""
    await cache.set("warm", "up")
    cache._transport.timeout = DEADLINE
    breaker = cache._transport.breaker
    assert breaker is not None
    clock = FakeClock()
    breaker._clock = clock
    return clock


@pytest.mark.parametrize("fast_path", [True, False])
async def test_opens_fails_fast_half_opens_with_one_probe_and_closes(
    proxy: FaultProxy, bucket: str, fast_path: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """Black hole: three gets time out and open it; the next fails fast without a request;
    after the cool-down exactly one of five concurrent gets is sent (the probe, held), the
    other four fail fast; the probe's answer closes it, and gets are served again."""
    caplog.set_level(logging.INFO, logger="s3cache")
    async with AsyncS3Cache(
        **_kwargs(proxy, bucket), breaker=THREE, fast_path=fast_path, config=ONE_ATTEMPT
    ) as cache:
        clock = await _armed(cache)
        await cache.set("k", "v")
        proxy.set_fault(Fault.BLACKHOLE)
        for i in range(3):
            assert await cache.get(f"k{i}", "miss") == "miss"  # each one a whole timeout
        stats = cache.stats()
        assert stats.errors == {"timeout": 3}
        assert stats.breaker is not None
        assert (stats.breaker.state, stats.breaker.opened) == ("open", 1)

        sent = proxy.requests
        started = time.perf_counter()
        assert await cache.get("k", "miss") == "miss"
        elapsed = time.perf_counter() - started
        assert elapsed < DEADLINE / 20  # microseconds in truth; far below the 0.5 s timeout
        assert proxy.requests == sent  # not sent
        assert cache.stats().errors["circuit_open"] == 1
        with pytest.raises(CircuitOpenError) as info:
            await cache._transport.get("k")
        assert 0 < info.value.retry_after <= THREE.cooldown

        proxy.set_fault(Fault.HOLD, methods={"GET"})  # the store is back; hold its answer
        held = proxy.held
        clock.now += THREE.cooldown  # the cool-down is over: half-open at the next request
        probes = [asyncio.ensure_future(cache.get(f"p{i}", "miss")) for i in range(5)]
        assert await asyncio.to_thread(proxy.wait_held, held + 1)
        for _ in range(100):  # let the others reach the breaker (they need no I/O)
            if sum(p.done() for p in probes) == 4:
                break
            await asyncio.sleep(0)
        assert sum(p.done() for p in probes) == 4  # failed fast: the probe slot is taken
        assert proxy.requests == sent + 1  # exactly one probe
        proxy.clear()
        proxy.release()
        assert await asyncio.gather(*probes) == ["miss"] * 5  # the probe: a real miss
        stats = cache.stats()
        assert stats.breaker is not None
        assert (stats.breaker.state, stats.breaker.closed, stats.breaker.probes) == ("closed", 1, 1)
        assert stats.errors["circuit_open"] == 1 + 4
        assert await cache.get("k") == "v"
    opened = [r for r in caplog.records if "circuit breaker" in r.message and "opened" in r.message]
    closed = [r for r in caplog.records if "circuit breaker" in r.message and "closed" in r.message]
    assert len(opened) == 1
    assert len(closed) == 1
    assert not [r for r in caplog.records if "circuit_open failure" in r.message]


async def test_a_failed_probe_reopens_it_for_a_longer_cool_down(
    proxy: FaultProxy, bucket: str
) -> None:
    """The probe meets the black hole too: open again, the cool-down doubled, nothing closed."""
    async with AsyncS3Cache(**_kwargs(proxy, bucket), breaker=THREE, config=ONE_ATTEMPT) as cache:
        clock = await _armed(cache)
        proxy.set_fault(Fault.BLACKHOLE)
        for i in range(3):
            await cache.get(f"k{i}")
        clock.now += THREE.cooldown
        await cache.get("probe")  # a timeout
        stats = cache.stats()
        assert stats.breaker is not None
        assert (stats.breaker.state, stats.breaker.reopened, stats.breaker.closed) == ("open", 1, 0)
        breaker = cache._transport.breaker
        assert breaker is not None
        assert breaker.retry_after() == pytest.approx(2 * THREE.cooldown)
        assert stats.errors == {"timeout": 4}


async def test_writes_fail_fast_too_and_raise_circuit_open(proxy: FaultProxy, bucket: str) -> None:
    """Open, a set with on_error="raise" raises CircuitOpenError at once, unsent."""
    async with AsyncS3Cache(
        **_kwargs(proxy, bucket), breaker=THREE, config=ONE_ATTEMPT, on_error="raise"
    ) as cache:
        await _armed(cache)
        proxy.set_fault(Fault.BLACKHOLE)
        for i in range(3):
            with pytest.raises(TimeoutError):
                await cache.set(f"k{i}", i)
        sent = proxy.requests
        with pytest.raises(CircuitOpenError):
            await cache.set("k", 1)
        assert proxy.requests == sent


async def test_never_counts_a_miss_a_not_found_a_refusal_or_bad_input(
    proxy: FaultProxy, bucket: str
) -> None:
    """With failures=1, misses, 404s on delete, a 403 and bad input leave it closed, with no
    failure counted: the server answered each (or no request went)."""
    one = Breaker(failures=1, ratio=None)
    async with AsyncS3Cache(**_kwargs(proxy, bucket), breaker=one, config=ONE_ATTEMPT) as cache:
        await _armed(cache)
        for i in range(5):
            assert await cache.get(f"absent{i}", "miss") == "miss"
            assert await cache.delete(f"absent{i}") is False
        proxy.set_fault(Fault.NOT_FOUND_404)
        assert await cache.get("k", "miss") == "miss"
        proxy.set_fault(Fault.DENY_403, times=1)
        assert await cache.get("k", "miss") == "miss"
        assert cache.stats().errors == {"credentials": 1}
        proxy.clear()
        with pytest.raises(ValueError, match="ttl"):
            await cache.set("k", "v", ttl=-1)
        with pytest.raises(TypeError):
            await cache.set("k", object())
        stats = cache.stats()
        assert stats.breaker is not None
        assert (stats.breaker.state, stats.breaker.opened, stats.breaker.failures) == (
            "closed",
            0,
            0,
        )


async def test_check_bypasses_an_open_breaker(proxy: FaultProxy, bucket: str) -> None:
    """check() says what the store does now: it is sent while the breaker is open, and does not
    close it (it is no probe)."""
    async with AsyncS3Cache(**_kwargs(proxy, bucket), breaker=THREE, config=ONE_ATTEMPT) as cache:
        await _armed(cache)
        proxy.set_fault(Fault.BLACKHOLE)
        for i in range(3):
            await cache.get(f"k{i}")
        proxy.clear()
        cache._transport.timeout = 10.0
        report = await cache.check()
        assert report.bucket == bucket
        assert await cache.get("k", "miss") == "miss"
        stats = cache.stats()
        assert stats.breaker is not None
        assert stats.breaker.state == "open"
        assert stats.errors["circuit_open"] == 1


async def test_off_and_bad_settings(proxy: FaultProxy, bucket: str) -> None:
    """breaker=False (or None) has none: a black hole costs each get its timeout, as before;
    a bad breaker= is a TypeError before any request; the default is on."""
    with pytest.raises(TypeError, match="breaker"):
        AsyncS3Cache(**_kwargs(proxy, bucket), breaker="on")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="failures"):
        Breaker(failures=0)
    assert proxy.requests == 0
    default = AsyncS3Cache(**_kwargs(proxy, bucket))
    assert default._transport.breaker is not None
    assert default.stats().breaker is not None
    await default.close()
    async with AsyncS3Cache(
        **_kwargs(proxy, bucket), breaker=False, config=ONE_ATTEMPT, on_error="log"
    ) as cache:
        await _plain_warm(cache)
        proxy.set_fault(Fault.BLACKHOLE)
        for i in range(4):
            assert await cache.get(f"k{i}", "miss") == "miss"
        stats = cache.stats()
        assert stats.breaker is None
        assert stats.errors == {"timeout": 4}


async def _plain_warm(cache: AsyncS3Cache) -> None:
    await cache.set("warm", "up")
    cache._transport.timeout = DEADLINE


def test_sync_facade_takes_breaker(proxy: FaultProxy, bucket: str) -> None:
    """S3Cache(breaker=...) has the same breaker: open after the run, fails fast."""
    with S3Cache(**_kwargs(proxy, bucket), breaker=THREE, config=ONE_ATTEMPT) as cache:
        cache.set("warm", "up")
        cache._core._transport.timeout = DEADLINE
        proxy.set_fault(Fault.BLACKHOLE)
        for i in range(3):
            assert cache.get(f"k{i}", "miss") == "miss"
        sent = proxy.requests
        started = time.perf_counter()
        assert cache.get("k", "miss") == "miss"
        assert time.perf_counter() - started < DEADLINE / 5
        assert proxy.requests == sent
        stats = cache.stats()
        assert stats.breaker is not None
        assert stats.breaker.opened == 1
