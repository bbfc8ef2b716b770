"""Negative caching (issue 23 item 5): a factory that returns ``s3cache.ABSENT`` stores a
tombstone with its own ttl (``negative_ttl``); ``get`` of it is a miss, ``get_or_set`` returns
``ABSENT`` without calling the factory until it expires; a stored None stays a value; the
tombstone's write survives a lost response; older readers take it for expired."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import pytest

from harness.faultproxy import Fault, FaultProxy
from s3cache import ABSENT, AsyncS3Cache, LocalTier, S3Cache
from s3cache._expiry import is_expired, safe_remaining_ttl
from s3cache._freshness import ABSENT_METADATA, TOMBSTONE_BODY
from tests.conftest import CREDENTIALS


class Factory:
    """Counts its calls; returns ``value``."""

    def __init__(self, value: Any = ABSENT) -> None:
        self.value = value
        self.calls = 0

    def __call__(self) -> Any:
        self.calls += 1
        return self.value


def _headers(s3: Any, bucket: str, key: str) -> dict[str, str]:
    head = s3.head_object(Bucket=bucket, Key=key)
    return {k.lower(): v for k, v in head["ResponseMetadata"]["HTTPHeaders"].items()}


async def test_absent_is_a_tombstone_the_factory_is_not_called_again(
    cache_kwargs: dict[str, Any], s3: Any, bucket: str
) -> None:
    """ABSENT is stored as a small tombstone with its own ttl; get of it is a miss; get_or_set
    returns ABSENT within its ttl without a factory call; exists is False."""
    async with AsyncS3Cache(**cache_kwargs, on_error="raise") as cache:
        factory = Factory()
        assert await cache.get_or_set("user7", factory, ttl=3600, negative_ttl=30) is ABSENT
        assert await cache.get_or_set("user7", factory, ttl=3600, negative_ttl=30) is ABSENT
        assert factory.calls == 1
        assert await cache.get("user7", "default") == "default"
        assert await cache.exists("user7") is False
        assert await cache.get_many(["user7"]) == {}
        body = s3.get_object(Bucket=bucket, Key="user7")["Body"].read()
        assert body == TOMBSTONE_BODY
        headers = _headers(s3, bucket, "user7")
        assert headers["x-amz-meta-" + ABSENT_METADATA] == "30"
        stats = cache.stats()
        assert (stats.hits, stats.sets) == (0, 1)


async def test_the_tombstone_expires_on_its_own_ttl(cache_kwargs: dict[str, Any]) -> None:
    """With negative_ttl=1 (the constructor's) and a long ttl, the factory runs again once the
    tombstone has expired on the server's clock, and its value is stored."""
    async with AsyncS3Cache(**cache_kwargs, on_error="raise", negative_ttl=1) as cache:
        factory = Factory()
        assert await cache.get_or_set("k", factory, ttl=3600) is ABSENT
        factory.value = "found"  # what the next call of the factory finds
        got = []
        for _ in range(100):
            got.append(await cache.get_or_set("k", factory, ttl=3600))
            if factory.calls > 1:
                break
            await asyncio.sleep(0.1)
        assert factory.calls == 2
        assert all(value is ABSENT for value in got[:-1])  # until the tombstone expired
        assert got[-1] == "found"
        assert await cache.get_or_set("k", factory, ttl=3600) == "found"
        assert factory.calls == 2
        assert await cache.get("k") == "found"


async def test_a_stored_none_stays_a_value(cache_kwargs: dict[str, Any]) -> None:
    """None from a factory, or set(), is a value: served by get, no factory call again."""
    async with AsyncS3Cache(**cache_kwargs, on_error="raise", negative_ttl=30) as cache:
        factory = Factory(None)
        assert await cache.get_or_set("k", factory, ttl=60) is None
        assert await cache.get_or_set("k", factory, ttl=60) is None
        assert factory.calls == 1
        assert await cache.get("k", "default") is None
        await cache.set("n", None)
        assert await cache.get("n", "default") is None


async def test_without_any_ttl_nothing_is_stored(
    cache_kwargs: dict[str, Any], s3: Any, bucket: str
) -> None:
    """No ttl and no negative_ttl: ABSENT is returned and nothing stored (a tombstone that never
    expired would hide the key for good); the next call asks the factory again."""
    async with AsyncS3Cache(**cache_kwargs, on_error="raise") as cache:
        factory = Factory()
        assert await cache.get_or_set("k", factory) is ABSENT
        assert await cache.get_or_set("k", factory) is ABSENT
        assert factory.calls == 2
        assert s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


@pytest.mark.parametrize("fast_path", [True, False])
async def test_the_tombstone_write_survives_a_lost_response(
    proxy: FaultProxy, bucket: str, s3: Any, fast_path: bool
) -> None:
    """The tombstone's PUT reaches the server, its response is lost (reset mid-body): the retry
    writes it again, the caller gets ABSENT with no error, and the tombstone is there: the next
    get_or_set calls no factory."""
    kwargs = {"bucket": bucket, "endpoint_url": proxy.endpoint, **CREDENTIALS}
    async with AsyncS3Cache(**kwargs, on_error="raise", fast_path=fast_path) as cache:
        await cache.exists("warm-up")
        proxy.set_fault(Fault.RESET_BODY, methods={"PUT"}, times=1)
        factory = Factory()
        got = await cache.get_or_set("k", factory, ttl=60, negative_ttl=timedelta(seconds=30))
        assert got is ABSENT
        assert proxy.count(Fault.RESET_BODY) == 1
        assert await cache.get_or_set("k", factory, ttl=60, negative_ttl=30) is ABSENT
        assert factory.calls == 1
        assert cache.stats().errors == {}
        assert _headers(s3, bucket, "k")["x-amz-meta-" + ABSENT_METADATA] == "30"


async def test_older_readers_and_the_local_tier_never_serve_it(
    cache_kwargs: dict[str, Any], s3: Any, bucket: str
) -> None:
    """A tombstone carries s3cache-ttl 0 and an Expires in 1970: expired for an older s3cache
    (which judges s3cache-ttl) and for litellm (Expires). The local tier never keeps it, and
    with a signing key it is signed (so the second call finds it)."""
    key = b"k" * 32
    async with AsyncS3Cache(
        **cache_kwargs, on_error="raise", local=LocalTier(), signing_key=key
    ) as cache:
        factory = Factory()
        assert await cache.get_or_set("k", factory, ttl=60, negative_ttl=30) is ABSENT
        assert await cache.get("k", "default") == "default"  # not the local tier's
        assert await cache.get_or_set("k", factory, ttl=60, negative_ttl=30) is ABSENT
        assert factory.calls == 1
        assert cache.stats().unverified == {}
    headers = _headers(s3, bucket, "k")
    assert headers["x-amz-meta-s3cache-ttl"] == "0"
    assert is_expired(safe_remaining_ttl(headers, time.time()))
    assert "1970" in headers["expires"]


async def test_bad_negative_ttl_raises_before_any_request(proxy: FaultProxy, bucket: str) -> None:
    """A malformed negative_ttl is a ValueError (TypeError) naming it, before any request."""
    kwargs = {"bucket": bucket, "endpoint_url": proxy.endpoint, **CREDENTIALS}
    with pytest.raises(ValueError, match="negative_ttl"):
        AsyncS3Cache(**kwargs, negative_ttl=0.5)
    async with AsyncS3Cache(**kwargs) as cache:
        with pytest.raises(ValueError, match="negative_ttl"):
            await cache.get_or_set("k", Factory(), negative_ttl="soon")
        with pytest.raises(TypeError, match="negative_ttl"):
            cache.cached(negative_ttl=b"1")  # type: ignore[arg-type]
    assert proxy.requests == 0


def test_sync_facade_and_cached(cache_kwargs: dict[str, Any]) -> None:
    """S3Cache.get_or_set and @cached (sync) take negative_ttl and store tombstones alike."""
    with S3Cache(**cache_kwargs, on_error="raise") as cache:
        calls = 0

        @cache.cached(ttl=60, negative_ttl=30)
        def lookup(user: int) -> Any:
            nonlocal calls
            calls += 1
            return ABSENT if user == 7 else {"user": user}

        assert lookup(7) is ABSENT
        assert lookup(7) is ABSENT
        assert lookup(8) == {"user": 8}
        assert calls == 2
        factory = Factory()
        assert cache.get_or_set("k", factory, ttl=60, negative_ttl=30) is ABSENT
        assert cache.get_or_set("k", factory, ttl=60, negative_ttl=30) is ABSENT
        assert factory.calls == 1
