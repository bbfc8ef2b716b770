"""stale_if_error (issue 23 item 3), through the fault proxy: while the store fails with a
transport kind (5xx, connection, timeout, circuit_open), get and get_or_set serve the newest value
this process has seen for the key within the window, with no factory call; never on a miss, a
refusal (credentials) or bad input. When the factory raises, get_or_set serves the stale S3 entry
within the window. stats() counts stale_served by reason.

The window of a value seen runs on the values-seen map's clock, a fake one here; the window of a
stale S3 entry on the server's clock.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from botocore.config import Config

from harness.expiry import until_expired
from harness.faultproxy import Fault, FaultProxy
from s3cache import AsyncS3Cache, Breaker, CredentialsError, S3Cache, ServerError
from tests.conftest import CREDENTIALS
from tests.test_pacing import FakeClock

ONE_ATTEMPT = Config(retries={"mode": "standard", "max_attempts": 1})
#: Each kind under which stale_if_error applies, and the proxy fault that causes it.
TRANSPORT_FAULTS = [
    pytest.param(Fault.HTTP_500, "server", id="server"),
    pytest.param(Fault.SLOWDOWN_503, "server", id="slowdown"),
    pytest.param(Fault.RESET_BODY, "connection", id="connection"),
    pytest.param(Fault.BLACKHOLE, "timeout", id="timeout"),
]


def _kwargs(proxy: FaultProxy, bucket: str, **more: Any) -> dict[str, Any]:
    return {
        "bucket": bucket,
        "endpoint_url": proxy.endpoint,
        "config": ONE_ATTEMPT,
        "breaker": False,  # the breaker's case is its own test
        **CREDENTIALS,
        **more,
    }


async def _warm(cache: AsyncS3Cache, deadline: float = 0.5) -> None:
    await cache.exists("warm-up")
    cache._transport.timeout = deadline


@pytest.mark.parametrize(("fault", "kind"), TRANSPORT_FAULTS)
async def test_get_serves_the_value_seen_while_the_store_fails(
    proxy: FaultProxy, bucket: str, fault: Fault, kind: str
) -> None:
    """A value written, and one read, are served by get while the store fails with a transport
    kind, even with on_error="raise"; counted as stale_served store_error, the failure by kind."""
    async with (
        AsyncS3Cache(**_kwargs(proxy, bucket), stale_if_error=30, on_error="raise") as writer,
        AsyncS3Cache(**_kwargs(proxy, bucket), stale_if_error="30s") as reader,
    ):
        deadline = 0.5 if fault is Fault.BLACKHOLE else 5.0  # only the black hole waits for it
        await _warm(writer, deadline)
        await _warm(reader, deadline)
        await writer.set("written", {"v": 1}, ttl=60)
        await writer.set("read", {"v": 2}, ttl=60)
        assert await reader.get("read") == {"v": 2}  # seen by the reader
        proxy.set_fault(fault)
        assert await writer.get("written") == {"v": 1}
        assert await reader.get("read") == {"v": 2}
        assert await reader.get("never-seen", "miss") == "miss"  # nothing to serve: a miss
        for cache in (writer, reader):
            assert cache.stats().stale_served == {"store_error": 1}
        assert writer.stats().errors == {kind: 1}
        assert reader.stats().errors == {kind: 2}
        proxy.clear()


async def test_not_on_a_refusal_a_miss_or_bad_input(proxy: FaultProxy, bucket: str) -> None:
    """Credentials refused: raised (on_error="raise"), the value seen is not served; a miss
    stays a miss (the key deleted elsewhere); bad input raises before any request."""
    async with (
        AsyncS3Cache(**_kwargs(proxy, bucket), stale_if_error=30, on_error="raise") as cache,
        AsyncS3Cache(**_kwargs(proxy, bucket)) as other,
    ):
        await _warm(cache)
        await cache.set("k", "v", ttl=60)
        proxy.set_fault(Fault.DENY_403)
        with pytest.raises(CredentialsError):
            await cache.get("k")
        proxy.set_fault(Fault.NOT_FOUND_404)
        assert await cache.get("k", "miss") == "miss"
        proxy.clear()
        await cache.set("k2", "v2", ttl=60)
        await other.delete("k2")
        assert await cache.get("k2", "miss") == "miss"  # the store answered: no value
        assert cache.stats().stale_served == {}
        with pytest.raises(ValueError, match="stale_if_error"):
            await cache.get_or_set("k", lambda: 1, stale_if_error="soon")
        with pytest.raises(TypeError, match="stale_if_error"):
            await cache.get_or_set("k", lambda: 1, stale_if_error=[1])  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="stale_if_error"):
            AsyncS3Cache(**_kwargs(proxy, bucket), stale_if_error=0.5)


async def test_only_within_the_window(proxy: FaultProxy, bucket: str) -> None:
    """A value seen is served up to stale_if_error past its ttl, and not a moment later."""
    async with AsyncS3Cache(
        **_kwargs(proxy, bucket), stale_if_error=timedelta(seconds=10), on_error="raise"
    ) as cache:
        await _warm(cache, 5.0)
        clock = FakeClock()
        cache._coherence.seen._clock = clock
        await cache.set("k", "v", ttl=5)
        proxy.set_fault(Fault.HTTP_500)
        clock.now += 5 + 10  # at the window's end
        assert await cache.get("k") == "v"
        clock.now += 0.1  # past it
        with pytest.raises(ServerError):
            await cache.get("k")
        assert cache.stats().stale_served == {"store_error": 1}


async def test_get_or_set_serves_the_seen_value_without_calling_the_factory(
    proxy: FaultProxy, bucket: str
) -> None:
    """During an outage, get_or_set of a key seen before calls no factory (per call option)."""
    async with AsyncS3Cache(**_kwargs(proxy, bucket), on_error="log") as cache:
        await _warm(cache, 5.0)
        assert await cache.get_or_set("k", lambda: "v1", ttl=60, stale_if_error=30) == "v1"
        proxy.set_fault(Fault.HTTP_500)
        calls = 0

        def factory() -> str:
            nonlocal calls
            calls += 1
            return "v2"

        assert await cache.get_or_set("k", factory, ttl=60, stale_if_error=30) == "v1"
        assert calls == 0
        assert cache.stats().stale_served == {"store_error": 1}
        assert await cache.get("k", "miss") == "miss"  # get has no window on this cache


async def test_an_open_breaker_serves_the_seen_value_at_once(
    proxy: FaultProxy, bucket: str
) -> None:
    """Breaker open (after a black hole): get serves the value seen, unsent, in microseconds."""
    breaker = Breaker(failures=2, ratio=None)
    async with AsyncS3Cache(
        **_kwargs(proxy, bucket, breaker=breaker), stale_if_error=30, on_error="raise"
    ) as cache:
        await _warm(cache)
        await cache.set("k", "v", ttl=60)
        proxy.set_fault(Fault.BLACKHOLE)
        for _ in range(2):
            assert await cache.get("k") == "v"  # each a timeout, served stale
        sent = proxy.requests
        started = time.perf_counter()
        assert await cache.get("k") == "v"
        assert time.perf_counter() - started < 0.025
        assert proxy.requests == sent
        stats = cache.stats()
        assert stats.errors == {"timeout": 2, "circuit_open": 1}
        assert stats.stale_served == {"store_error": 3}


async def test_a_raising_factory_serves_the_stale_entry_within_the_window(
    proxy: FaultProxy, bucket: str
) -> None:
    """An entry past its ttl (on the server's clock): a miss for get, and get_or_set calls the
    factory; when the factory raises, the stale entry is served (counted factory_error); without
    stale_if_error, or when its write fails with a refusal, the error propagates."""
    async with AsyncS3Cache(**_kwargs(proxy, bucket), on_error="raise") as cache:
        await _warm(cache, 5.0)
        await cache.set("k", "old", ttl=1)
        await until_expired(cache, "k")
        calls = 0

        def broken() -> str:
            nonlocal calls
            calls += 1
            raise RuntimeError("model down")

        assert await cache.get_or_set("k", broken, stale_if_error=30) == "old"
        with pytest.raises(RuntimeError, match="model down"):
            await cache.get_or_set("k", broken)
        assert calls == 2
        assert cache.stats().stale_served == {"factory_error": 1}
        proxy.set_fault(Fault.DENY_403, methods={"PUT"})
        with pytest.raises(CredentialsError):  # the refill's write refused: not an outage
            await cache.get_or_set("k", lambda: "new", stale_if_error=30)
        proxy.set_fault(Fault.HTTP_500, methods={"PUT"})
        assert await cache.get_or_set("k", lambda: "new", stale_if_error=30) == "old"
        assert cache.stats().stale_served == {"factory_error": 1, "store_error": 1}


async def test_a_value_whose_write_failed_is_the_newest_seen_and_a_delete_forgets(
    proxy: FaultProxy, bucket: str
) -> None:
    """A refresh computed during the outage (its PUT failed) is what get serves next; after a
    delete through the cache nothing is served."""
    async with AsyncS3Cache(**_kwargs(proxy, bucket), stale_if_error=30, on_error="log") as cache:
        await _warm(cache, 5.0)
        await cache.set("k", "old", ttl=60)
        proxy.set_fault(Fault.HTTP_500)
        await cache.set("k", "new", ttl=60)  # failed: logged
        assert await cache.get("k") == "new"
        proxy.clear()
        await cache.set("gone", "v", ttl=60)
        assert await cache.delete("gone") is True
        proxy.set_fault(Fault.HTTP_500)
        assert await cache.get("gone", "miss") == "miss"
        stats = cache.stats()
        assert stats.stale_served == {"store_error": 1}
        assert stats.errors == {"server": 3}


def test_sync_facade(proxy: FaultProxy, bucket: str) -> None:
    """S3Cache(stale_if_error=...) and its get_or_set(stale_if_error=...) serve the same way."""
    with S3Cache(**_kwargs(proxy, bucket), stale_if_error=30, on_error="raise") as cache:
        cache.set("k", "v", ttl=60)
        cache._core._transport.timeout = 2.0
        proxy.set_fault(Fault.HTTP_500)
        assert cache.get("k") == "v"
        assert cache.get_or_set("k", lambda: "new", stale_if_error=30) == "v"
        assert cache.stats().stale_served == {"store_error": 2}
