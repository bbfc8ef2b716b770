"""TTL strings (issue 26, item 7): ``"90s"``, ``"15m"``, ``"1h"``, ``"7d"`` wherever a ttl is
taken, on both surfaces; a malformed one is a ValueError before any request."""

from __future__ import annotations

from typing import Any

import pytest

from s3cache import AsyncS3Cache, S3Cache
from s3cache._expiry import TTL_METADATA, normalize_ttl


def _ttl_stored(s3: Any, bucket: str, key: str) -> float:
    metadata = s3.head_object(Bucket=bucket, Key=key)["Metadata"]
    return float(metadata[TTL_METADATA])


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90.0), ("15m", 900.0), ("1h", 3600.0), ("7d", 604800.0)]
)
def test_the_issue_spellings(text: str, seconds: float) -> None:
    assert normalize_ttl(text) == seconds


async def test_set_add_get_or_set_and_default_ttl_take_strings(
    cache_kwargs: dict[str, Any], s3: Any, bucket: str
) -> None:
    async with AsyncS3Cache(**cache_kwargs, default_ttl="15m", on_error="raise") as cache:
        await cache.set("plain", 1)
        await cache.set("hour", 1, ttl="1h")
        assert await cache.add("added", 1, ttl="90s")
        assert await cache.get_or_set("made", lambda: 2, ttl="7d") == 2
        await cache.set_many({"many": 1}, ttl="1h30m")
    assert _ttl_stored(s3, bucket, "plain") == 900
    assert _ttl_stored(s3, bucket, "hour") == 3600
    assert _ttl_stored(s3, bucket, "added") == 90
    assert _ttl_stored(s3, bucket, "made") == 604800
    assert _ttl_stored(s3, bucket, "many") == 5400


def test_the_facade_and_cached_take_strings(
    cache_kwargs: dict[str, Any], s3: Any, bucket: str
) -> None:
    with S3Cache(**cache_kwargs, on_error="raise") as cache:
        cache.set("k", 1, ttl="1h")

        @cache.cached(ttl="15m", key=lambda: "f")
        def f() -> int:
            return 3

        assert f() == 3
    assert _ttl_stored(s3, bucket, "k") == 3600
    assert _ttl_stored(s3, bucket, "f") == 900


@pytest.mark.parametrize("bad", ["1h 30m", "1.5h", "1M", "-5s", "soon", ""])
async def test_a_malformed_string_raises_before_any_request(closed_port_url: str, bad: str) -> None:
    """Against an endpoint where nothing listens: a request would fail otherwise."""
    async with AsyncS3Cache("bkt", endpoint_url=closed_port_url, on_error="raise") as cache:
        with pytest.raises(ValueError, match="ttl"):
            await cache.set("k", 1, ttl=bad)
        assert cache.stats().errors == {}
    with pytest.raises(ValueError, match="default_ttl"):
        AsyncS3Cache("bkt", default_ttl=bad)
