"""AsyncS3Cache against moto's S3 server over HTTP."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiobotocore.session import AioSession
from botocore.config import Config

import s3cache._compression
import s3cache._entries
import s3cache._keys
import s3cache._transport
from harness.faultproxy import Fault, FaultProxy
from s3cache import (
    AccessDeniedError,
    AsyncS3Cache,
    BucketNotFoundError,
    CacheClosedError,
    CorruptEntryError,
    CredentialsError,
    EndpointUnreachableError,
    KeyTooLongError,
    NotSupportedError,
    S3CacheError,
    ServerError,
)
from tests.conftest import CREDENTIALS, Requests

MISSING = object()
NO_RETRIES = Config(retries={"mode": "standard", "max_attempts": 1})


# -- values ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [{"a": [1, 2.5, None, True]}, [1, "two"], "text", 42, 3.25, True, "", {}, "ünïcødé ✓"],
)
async def test_json_values_round_trip(cache: AsyncS3Cache, value: Any) -> None:
    await cache.set("k", value)
    assert await cache.get("k") == value


async def test_none_is_stored_and_told_apart_from_a_miss(cache: AsyncS3Cache) -> None:
    await cache.set("none", None)
    assert await cache.get("none", MISSING) is None
    assert await cache.get("absent", MISSING) is MISSING
    assert await cache.exists("none")
    assert await cache.get_many(["none", "absent"]) == {"none": None}


async def test_bytes_are_stored_raw(cache: AsyncS3Cache, s3: Any) -> None:
    blob = bytes(range(256)) * 4
    await cache.set("blob", blob)
    back = await cache.get("blob")
    assert back == blob
    assert type(back) is bytes
    obj = s3.get_object(Bucket=cache.bucket, Key="cache/blob")
    assert obj["ContentType"] == "application/octet-stream"
    assert obj["Body"].read() == blob


async def test_unserialisable_value_raises_before_any_request(closed_port_url: str) -> None:
    async with AsyncS3Cache(
        "bucket", endpoint_url=closed_port_url, on_error="raise", config=NO_RETRIES, **_creds()
    ) as cache:
        with pytest.raises(TypeError):
            await cache.set("k", object())
        with pytest.raises(TypeError):
            await cache.set_many({"ok": 1, "bad": {1, 2}})
        assert cache.stats().errors == {}


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
async def test_a_value_reads_would_refuse_is_refused_before_any_request(
    closed_port_url: str, monkeypatch: pytest.MonkeyPatch, compression: Any
) -> None:
    """A compressed body over the decompression cap could be stored but never read back."""
    monkeypatch.setattr(s3cache._compression, "MAX_DECOMPRESSED_BYTES", 1000)
    async with AsyncS3Cache(
        "bucket",
        endpoint_url=closed_port_url,
        on_error="raise",
        compression=compression,
        config=NO_RETRIES,
        **_creds(),
    ) as cache:
        with pytest.raises(ValueError, match="1,000-byte cap"):
            await cache.set("k", "x" * 2000)
        with pytest.raises(ValueError, match="1,000-byte cap"):
            await cache.set_many({"ok": 1, "big": "x" * 2000})
        assert cache.stats().errors == {}


# -- storage format on the wire -------------------------------------------------------------


async def test_object_layout_and_ttl_headers(cache: AsyncS3Cache, s3: Any) -> None:
    before = datetime.now(UTC)
    await cache.set("ns:key", {"v": 1}, ttl=120)
    head = s3.head_object(Bucket=cache.bucket, Key="cache/ns/key")
    assert head["ContentType"] == "application/json"
    assert head["Metadata"] == {"s3cache-ttl": "120"}
    assert head["CacheControl"] == "max-age=120"
    expires = head["Expires"]
    assert timedelta(seconds=118) < expires - before < timedelta(seconds=122)
    body = s3.get_object(Bucket=cache.bucket, Key="cache/ns/key")["Body"].read()
    assert json.loads(body) == {"v": 1}


async def test_reads_entries_written_the_litellm_way(cache: AsyncS3Cache, s3: Any) -> None:
    """litellm's S3Cache: json.dumps bodies, Python reprs, and only Expires for a ttl."""
    value = {"timestamp": 1.0, "response": '{"id": "chatcmpl-1"}'}
    s3.put_object(
        Bucket=cache.bucket,
        Key="cache/ns/abc",
        Body=json.dumps(value),
        ContentType="application/json",
        Expires=datetime.now(UTC) + timedelta(seconds=300),
        CacheControl="immutable, max-age=300, s-maxage=300",
    )
    s3.put_object(Bucket=cache.bucket, Key="cache/repr", Body=repr({"a": (1, 2), "b": None}))
    s3.put_object(
        Bucket=cache.bucket,
        Key="cache/old",
        Body=json.dumps(value),
        Expires=datetime.now(UTC) - timedelta(seconds=5),
    )
    assert await cache.get("ns:abc") == value
    assert await cache.get("repr") == {"a": (1, 2), "b": None}
    assert await cache.get("old", MISSING) is MISSING
    assert not await cache.exists("old")
    assert cache.stats().expired == 1


async def test_default_ttl_applies_and_timedelta_is_accepted(
    cache_kwargs: dict[str, Any], s3: Any
) -> None:
    async with AsyncS3Cache(**cache_kwargs, default_ttl=timedelta(minutes=5)) as cache:
        await cache.set("a", 1)
        await cache.set("b", 2, ttl=timedelta(seconds=30))
    assert s3.head_object(Bucket=cache_kwargs["bucket"], Key="a")["Metadata"] == {
        "s3cache-ttl": "300"
    }
    assert s3.head_object(Bucket=cache_kwargs["bucket"], Key="b")["Metadata"] == {
        "s3cache-ttl": "30"
    }


# -- expiry ---------------------------------------------------------------------------------


async def test_expired_entries_are_misses(cache: AsyncS3Cache) -> None:
    await cache.set_many({"short": "s", "long": "l"}, ttl=1)
    await cache.set("longer", "x", ttl=30)
    await asyncio.sleep(1.1)  # a ttl needs real time to pass; entries may expire a second early
    assert await cache.get("short", MISSING) is MISSING
    assert not await cache.exists("long")
    assert await cache.get_many(["short", "long", "longer"]) == {"longer": "x"}
    assert cache.stats().expired == 3


@pytest.mark.parametrize("skew", [-3600.0, 3600.0])
async def test_a_client_clock_an_hour_off_changes_no_ttl(
    cache: AsyncS3Cache, monkeypatch: pytest.MonkeyPatch, skew: float
) -> None:
    real_clock = s3cache._entries._clock
    monkeypatch.setattr(s3cache._entries, "_clock", lambda: real_clock() + skew)
    await cache.set("three", 3, ttl=3)
    await cache.set("one", 1, ttl=1)
    assert await cache.get("three") == 3
    await asyncio.sleep(1.1)
    assert await cache.get("one", MISSING) is MISSING
    assert await cache.get("three") == 3


# -- batch and delete -----------------------------------------------------------------------


async def test_get_many_returns_hits_only(cache: AsyncS3Cache) -> None:
    await cache.set_many({"a": 1, "b": None, "c": [3]})
    assert await cache.get_many(["a", "b", "c", "d", "a"]) == {"a": 1, "b": None, "c": [3]}
    assert await cache.get_many([]) == {}
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.sets) == (3, 1, 3)


async def test_delete_tells_whether_a_live_entry_was_there(cache: AsyncS3Cache, s3: Any) -> None:
    await cache.set("k", "v")
    assert await cache.delete("k") is True
    assert await cache.delete("k") is False
    assert await cache.get("k", MISSING) is MISSING
    assert "Contents" not in s3.list_objects_v2(Bucket=cache.bucket)


async def test_delete_many_counts_live_entries(cache: AsyncS3Cache, s3: Any) -> None:
    await cache.set_many({f"k{i}": i for i in range(5)})
    assert await cache.delete_many(["k0", "k1", "k2", "nope", "k0"]) == 3
    assert await cache.get_many([f"k{i}" for i in range(5)]) == {"k3": 3, "k4": 4}
    assert cache.stats().deletes == 3
    assert await cache.delete_many([]) == 0


async def test_clear_deletes_only_under_the_prefix(
    cache_kwargs: dict[str, Any], s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s3cache._transport, "DELETE_BATCH", 10)  # batching, without 1,000s of PUTs
    bucket = cache_kwargs["bucket"]
    for key in ("cache2/x", "cachex", "other/cache/y", "cache"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"keep")
    async with (
        AsyncS3Cache(**cache_kwargs, prefix="cache", on_error="raise") as cache,
        AsyncS3Cache(**cache_kwargs, prefix="cache2", on_error="raise") as sibling,
    ):
        await cache.set_many({f"n:{i}": i for i in range(25)})  # three DeleteObjects batches
        await sibling.set("mine", "kept")
        assert await cache.clear() == 25
        assert await cache.clear() == 0
        assert await sibling.get("mine") == "kept"
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == ["cache", "cache2/mine", "cache2/x", "cachex", "other/cache/y"]


async def test_clear_under_a_sub_prefix_deletes_only_that_folder(cache: AsyncS3Cache) -> None:
    await cache.set_many({"ns:a": 1, "ns:b:c": 2, "ns2:a": 3, "nsx": 4, "top": 5})
    assert await cache.clear("ns:") == 2  # ":" counts as "/"; the trailing "/" means one folder
    assert await cache.get_many(["ns:a", "ns:b:c", "ns2:a", "nsx", "top"]) == {
        "ns2:a": 3,
        "nsx": 4,
        "top": 5,
    }
    assert await cache.clear("ns") == 2  # a plain string prefix: "ns2/a" and "nsx"
    assert await cache.clear("absent/") == 0
    assert [k async for k in cache.iter_keys()] == ["top"]


async def test_iter_keys_lists_keys_under_a_sub_prefix(cache: AsyncS3Cache, s3: Any) -> None:
    s3.put_object(Bucket=cache.bucket, Key="cachex/not-ours", Body=b"x")
    await cache.set_many({f"p:{i:02}": i for i in range(5)} | {"q": 0})
    await cache.set("short", 1, ttl=1)
    assert [k async for k in cache.iter_keys()] == [f"p/{i:02}" for i in range(5)] + [
        "q",
        "short",
    ]
    assert [k async for k in cache.iter_keys("p:0")] == ["p/00", "p/01", "p/02", "p/03", "p/04"]
    assert [k async for k in cache.iter_keys("p/03")] == ["p/03"]
    assert [k async for k in cache.iter_keys("none")] == []


async def test_own_objects_are_not_keys_nor_cleared_with_a_sub_prefix(
    cache: AsyncS3Cache, s3: Any
) -> None:
    lease = s3cache._keys.reserved_key(cache.prefix, "lock", "job")
    s3.put_object(Bucket=cache.bucket, Key=lease, Body=b"{}")
    await cache.set("user", 1)
    assert [k async for k in cache.iter_keys()] == ["user"]
    assert [k async for k in cache.iter_keys(".")] == []
    assert await cache.clear(".") == 0  # a part of the cache: s3cache's own objects stay
    assert await cache.clear("") == 2  # the whole cache: everything under the prefix goes


async def test_iter_keys_pages_and_stops_early(
    cache: AsyncS3Cache, two_per_page: Callable[[AsyncS3Cache], list[str | None]]
) -> None:
    asked = two_per_page(cache)
    await cache.set_many({f"k{i}": i for i in range(5)})
    assert [k async for k in cache.iter_keys()] == [f"k{i}" for i in range(5)]
    assert asked == [None, "1", "2"]
    asked.clear()
    keys = cache.iter_keys()
    assert [await anext(keys), await anext(keys), await anext(keys)] == ["k0", "k1", "k2"]
    await keys.aclose()
    assert asked == [None, "1"]  # the third page was never asked for


async def test_iter_keys_and_clear_check_their_prefix_first(cache: AsyncS3Cache) -> None:
    with pytest.raises(ValueError, match="control character"):
        cache.iter_keys("a\x00")
    with pytest.raises(TypeError, match="prefix must be a str"):
        await cache.clear(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="1024-byte"):
        await cache.clear("x" * 1100)


async def test_iter_keys_fails_soft_or_raises_per_on_error(
    closed_port_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    options: dict[str, Any] = {
        "endpoint_url": closed_port_url,
        "config": NO_RETRIES,
        "timeout": 5,
        **_creds(),
    }
    async with AsyncS3Cache("bucket", **options) as soft:
        assert [k async for k in soft.iter_keys()] == []
        assert soft.stats().errors == {"connection": 1}
    async with AsyncS3Cache("bucket", on_error="raise", **options) as strict:
        with pytest.raises(EndpointUnreachableError):
            [k async for k in strict.iter_keys()]


# -- concurrency bound ----------------------------------------------------------------------


async def test_concurrency_is_bounded_by_max_concurrency(
    cache_kwargs: dict[str, Any], proxy: FaultProxy
) -> None:
    """Counted at a proxy: at most max_concurrency requests are ever in flight at once."""
    proxy.set_fault(Fault.DELAY, delay=0.01)  # hold each answer so that callers pile up
    kwargs = {**cache_kwargs, "endpoint_url": proxy.endpoint}
    async with AsyncS3Cache(**kwargs, max_concurrency=4, on_error="raise") as cache:
        await cache.get_many([f"k{i}" for i in range(40)])
    assert proxy.methods["GET"] == 40
    assert 1 < proxy.peak_in_flight <= 4


async def test_deadline_covers_waiting_for_a_slot(
    cache_kwargs: dict[str, Any], proxy: FaultProxy
) -> None:
    kwargs = {**cache_kwargs, "endpoint_url": proxy.endpoint}
    async with AsyncS3Cache(**kwargs, max_concurrency=1, timeout=0.3, on_error="raise") as cache:
        proxy.set_fault(Fault.HOLD)
        holder = asyncio.create_task(cache.get("first"))
        await asyncio.sleep(0)  # let the holder take the only slot
        with pytest.raises(S3CacheError, match="deadline") as caught:
            await cache.get("second")
        assert caught.value.kind == "timeout"
        proxy.release()
        with pytest.raises(S3CacheError):
            await holder  # its own deadline passed while it held the slot


# -- errors ---------------------------------------------------------------------------------


async def test_fail_soft_logs_counts_and_returns_defaults(
    closed_port_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="s3cache")
    # breaker=False: seven operations against a refused port would open the default breaker
    # after five (then circuit_open); this test counts the failures themselves.
    async with AsyncS3Cache(
        "bucket",
        endpoint_url=closed_port_url,
        config=NO_RETRIES,
        timeout=5,
        breaker=False,
        **_creds(),
    ) as cache:
        assert await cache.get("k", "fallback") == "fallback"
        await cache.set("k", "v")
        assert await cache.delete("k") is False
        assert await cache.exists("k") is False
        assert await cache.get_many(["a", "b"]) == {}
        assert await cache.clear() == 0
        stats = cache.stats()
    assert stats.errors == {"connection": 7}
    assert stats.error_count == 7
    records = [r for r in caplog.records if r.name == "s3cache"]
    assert len(records) == 1, "repeated failures of one kind are rate-limited"
    assert "connection" in records[0].getMessage()


async def test_raise_mode_raises_and_chains_the_cause(closed_port_url: str) -> None:
    async with AsyncS3Cache(
        "bucket", endpoint_url=closed_port_url, config=NO_RETRIES, on_error="raise", **_creds()
    ) as cache:
        with pytest.raises(EndpointUnreachableError) as caught:
            await cache.get("k")
        assert caught.value.__cause__ is not None
        with pytest.raises(EndpointUnreachableError):
            await cache.set("k", 1)
        assert cache.stats().errors == {"connection": 2}


async def test_corrupt_bodies_are_logged_misses(
    cache_kwargs: dict[str, Any], s3: Any, caplog: pytest.LogCaptureFixture
) -> None:
    s3.put_object(
        Bucket=cache_kwargs["bucket"], Key="bad", Body=b"{not json", ContentType="application/json"
    )
    async with AsyncS3Cache(**cache_kwargs) as cache:
        assert await cache.get("bad", MISSING) is MISSING
        assert cache.stats().errors == {"corrupt": 1}
    assert any("corrupt" in r.getMessage() for r in caplog.records)
    async with AsyncS3Cache(**cache_kwargs, on_error="raise") as cache:
        with pytest.raises(CorruptEntryError):
            await cache.get("bad")


async def test_server_errors_map_to_server_error(
    canned_error_server: Callable[[int, str], str],
) -> None:
    url = canned_error_server(503, "SlowDown")
    async with AsyncS3Cache(
        "bucket", endpoint_url=url, config=NO_RETRIES, on_error="raise", **_creds()
    ) as cache:
        with pytest.raises(ServerError, match="SlowDown"):
            await cache.get("k")


# -- a key too long for the server ------------------------------------------------------------

#: An object name (the last segment) of 300 bytes: S3 takes it, SeaweedFS refuses over 255.
LONG_NAME = "names:" + "n" * 300


@pytest.mark.parametrize("fast_path", [True, False], ids=["wire", "aiobotocore"])
async def test_a_name_a_server_finds_too_long_is_a_key_too_long_error(
    cache_kwargs: dict[str, Any], s3_server: str, fast_path: bool
) -> None:
    """SeaweedFS 4.48 refuses a PUT whose object name is over 255 bytes (KeyTooLongError);
    moto and Ceph RGW 16.2 store it (they limit only the whole key, to 1,024 bytes)."""
    options: dict[str, Any] = {**cache_kwargs, "prefix": "long", "fast_path": fast_path}
    async with AsyncS3Cache(**options, on_error="raise") as cache:
        if s3_server != "seaweedfs":
            await cache.set(LONG_NAME, 1)
            assert await cache.get(LONG_NAME) == 1
            return
        with pytest.raises(KeyTooLongError) as caught:
            await cache.set(LONG_NAME, 1)
        assert await cache.get(LONG_NAME, MISSING) is MISSING  # nothing was stored
    assert caught.value.kind == "key_too_long"
    assert "the object key is 311 UTF-8 bytes; its last segment 'nnn" in str(caught.value)
    async with AsyncS3Cache(**options) as cache:  # on_error="log": counted under its kind
        await cache.set(LONG_NAME, 1)
        assert cache.stats().errors == {"key_too_long": 1}


@pytest.mark.parametrize("fast_path", [True, False], ids=["wire", "aiobotocore"])
async def test_a_key_too_long_error_names_the_key_and_segment_lengths(
    canned_error_server: Callable[..., str], fast_path: bool
) -> None:
    url = canned_error_server(400, "KeyTooLongError", "Your key is too long.")
    options = {"endpoint_url": url, "config": NO_RETRIES, "fast_path": fast_path, **_creds()}
    key = "a" * 400 + ":" + "é" * 150  # the longest segment is not the last one
    async with AsyncS3Cache("bucket", **options, prefix="p", on_error="raise") as cache:
        for call in (cache.set(key, 1), cache.get(key)):
            with pytest.raises(KeyTooLongError) as caught:
                await call
            message = str(caught.value)
            assert "KeyTooLongError (HTTP 400): the server refused the key as too long" in message
            assert "the object key is 703 UTF-8 bytes; its last segment 'ééé" in message
            assert "is 300 bytes, its longest (2 of 3) 400 bytes" in message
            assert "hash long natural keys" in message


# -- check() --------------------------------------------------------------------------------


async def test_check_reports_a_healthy_bucket(cache: AsyncS3Cache, s3: Any, s3_server: str) -> None:
    report = await cache.check()
    assert report.bucket == cache.bucket
    assert report.prefix == "cache/"
    assert report.conditional_writes is True
    assert report.conditional_replace is True
    if s3_server == "ceph":  # refuses If-Match with the quoted ETag: reported, worked around
        assert report.if_match_etag == "unquoted"
        assert report.unsupported == (
            "If-Match on PutObject refuses the quoted ETag (as S3 returns it): s3cache sends it "
            "unquoted",
        )
    else:
        assert (report.if_match_etag, report.unsupported) == ("quoted", ())
    assert report.latency_ms > 0
    assert report.clock_skew_s is not None
    assert abs(report.clock_skew_s) < 5
    assert "Contents" not in s3.list_objects_v2(Bucket=cache.bucket), "the probe is cleaned up"


async def test_check_names_a_missing_bucket_and_never_creates_it(s3_endpoint: str, s3: Any) -> None:
    missing = f"no-such-bucket-{uuid.uuid4().hex[:12]}"
    async with AsyncS3Cache(missing, endpoint_url=s3_endpoint, **CREDENTIALS) as cache:
        with pytest.raises(BucketNotFoundError, match="NoSuchBucket"):
            await cache.check()
    # SeaweedFS creates a missing bucket on the first PutObject: check() asks HeadBucket first.
    assert missing not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [
        (403, "AccessDenied", AccessDeniedError),
        (403, "InvalidAccessKeyId", CredentialsError),
        (403, "SignatureDoesNotMatch", CredentialsError),
    ],
)
async def test_check_names_access_and_credential_failures(
    canned_error_server: Callable[[int, str], str],
    status: int,
    code: str,
    error: type[S3CacheError],
) -> None:
    url = canned_error_server(status, code)
    async with AsyncS3Cache("bucket", endpoint_url=url, **_creds()) as cache:  # on_error="log"
        with pytest.raises(error, match=code):
            await cache.check()


async def test_check_names_an_unreachable_endpoint(closed_port_url: str) -> None:
    async with AsyncS3Cache(
        "bucket", endpoint_url=closed_port_url, config=NO_RETRIES, **_creds()
    ) as cache:
        with pytest.raises(EndpointUnreachableError):
            await cache.check()


# -- lifecycle ------------------------------------------------------------------------------


async def test_close_is_idempotent_and_use_after_close_raises(
    cache_kwargs: dict[str, Any],
) -> None:
    cache = AsyncS3Cache(**cache_kwargs)
    await cache.set("k", 1)
    await cache.close()
    await cache.close()
    assert "closed" in repr(cache)
    for call in (cache.get("k"), cache.set("k", 2), cache.delete("k"), cache.clear()):
        with pytest.raises(CacheClosedError):
            await call


def test_repr_names_the_bucket_and_never_secrets() -> None:
    canary = "SECRET-CANARY-1234"
    cache = AsyncS3Cache(
        "bkt",
        prefix="p",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="AKIDCANARY",
        aws_secret_access_key=canary,
        aws_session_token=canary + "-token",
    )
    text = repr(cache) + str(cache)
    assert "bkt" in text
    assert "p/" in text
    for secret in (canary, "AKIDCANARY"):
        assert secret not in text


@pytest.mark.parametrize(
    "url", ["http://user:pw-canary@127.0.0.1:9", "https://:pw-canary@host", "http://user@host"]
)
def test_endpoint_url_with_user_info_is_rejected_without_echoing_it(url: str) -> None:
    """Credentials in the URL would be sent beside SigV4 and fail every request: refuse them."""
    with pytest.raises(ValueError, match="user info") as rejected:
        AsyncS3Cache("bkt", endpoint_url=url)
    text = str(rejected.value) + repr(rejected.value.args)
    assert "pw-canary" not in text
    assert "user@" not in text


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"bucket": "no"}, ValueError, "bucket"),
        ({"bucket": "Bad/Name"}, ValueError, "bucket"),
        ({"bucket": 7}, TypeError, "bucket"),
        ({"prefix": "/x"}, ValueError, "prefix"),
        ({"max_concurrency": 0}, ValueError, "max_concurrency"),
        ({"max_concurrency": 2.5}, TypeError, "max_concurrency"),
        ({"timeout": 0}, ValueError, "timeout"),
        ({"timeout": float("inf")}, ValueError, "timeout"),
        ({"on_error": "ignore"}, ValueError, "on_error"),
        ({"default_ttl": 0}, ValueError, "positive"),
        ({"serializer": object()}, TypeError, "serializer"),
        ({"endpoint_url": "ftp://host"}, ValueError, "endpoint_url"),
        ({"endpoint_url": "https://h", "use_ssl": False}, ValueError, "use_ssl"),
        ({"aws_access_key_id": "id"}, ValueError, "aws_secret_access_key"),
        ({"aws_session_token": "t"}, ValueError, "aws_session_token"),
        ({"config": Config(max_pool_connections=2)}, ValueError, "max_pool_connections"),
        ({"config": {"retries": 1}}, TypeError, "config"),
        ({"session": "default"}, TypeError, "session"),
    ],
)
def test_bad_options_are_rejected_at_construction(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    options: dict[str, Any] = {"bucket": "good-bucket", **kwargs}
    with pytest.raises(error, match=match):
        AsyncS3Cache(**options)


async def test_user_config_is_merged_over_our_defaults(cache_kwargs: dict[str, Any]) -> None:
    cache = AsyncS3Cache(**cache_kwargs, config=Config(read_timeout=3, max_pool_connections=100))
    config = cache._transport._config
    assert (config.read_timeout, config.max_pool_connections) == (3, 100)
    assert config.retries == {"mode": "standard", "total_max_attempts": 3}
    assert config.request_checksum_calculation == "when_required"
    await cache.close()


def _creds() -> dict[str, Any]:
    return {
        "aws_access_key_id": "id",
        "aws_secret_access_key": "secret",
        "region_name": "us-east-1",
    }


# -- get_or_set -----------------------------------------------------------------------------


async def test_get_or_set_runs_the_factory_once_for_a_stampede(
    counted: AsyncS3Cache, requests: Requests
) -> None:
    calls = 0

    async def factory() -> dict[str, int]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)  # long enough for all callers to pile up
        return {"made": calls}

    values = await asyncio.gather(*(counted.get_or_set("k", factory, ttl=60) for _ in range(100)))
    assert values == [{"made": 1}] * 100
    assert calls == 1
    assert requests.sent["PutObject"] == 1
    assert await counted.get_or_set("k", factory) == {"made": 1}  # now a plain hit
    assert calls == 1


async def test_get_or_set_accepts_a_sync_factory(counted: AsyncS3Cache) -> None:
    assert await counted.get_or_set("k", lambda: [1, 2]) == [1, 2]
    assert await counted.get("k") == [1, 2]


async def test_a_factory_error_reaches_every_waiter_and_is_not_cached(
    counted: AsyncS3Cache,
) -> None:
    async def boom() -> None:
        await asyncio.sleep(0.01)
        raise LookupError("no such thing")

    results = await asyncio.gather(
        *(counted.get_or_set("k", boom) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, LookupError) for r in results)
    assert await counted.get("k", MISSING) is MISSING
    assert await counted.get_or_set("k", lambda: "recovered") == "recovered"


async def test_a_cancelled_waiter_does_not_cancel_the_factory(counted: AsyncS3Cache) -> None:
    release = asyncio.Event()
    entered = asyncio.Event()
    calls = 0

    async def factory() -> str:
        nonlocal calls
        calls += 1
        entered.set()
        await release.wait()
        return "made"

    first = asyncio.create_task(counted.get_or_set("k", factory))
    second = asyncio.create_task(counted.get_or_set("k", factory))
    await entered.wait()
    first.cancel()
    release.set()
    assert await second == "made"
    assert first.cancelled()
    assert calls == 1
    assert await counted.get("k") == "made"


# -- add ------------------------------------------------------------------------------------


async def test_add_stores_only_when_absent(counted: AsyncS3Cache) -> None:
    assert await counted.add("k", "first", ttl=60) is True
    assert await counted.add("k", "second", ttl=60) is False
    assert await counted.get("k") == "first"
    stats = counted.stats()
    assert stats.sets == 1


async def test_add_replaces_an_expired_entry(counted: AsyncS3Cache) -> None:
    await counted.set("k", "stale", ttl=1)
    await asyncio.sleep(1.1)  # a ttl needs real time to pass
    assert await counted.add("k", "fresh", ttl=60) is True
    assert await counted.get("k") == "fresh"


async def test_concurrent_adds_have_one_winner(counted: AsyncS3Cache) -> None:
    results = await asyncio.gather(*(counted.add("lock", i, ttl=60) for i in range(10)))
    assert results.count(True) == 1
    assert await counted.get("lock") == results.index(True)


async def test_add_refuses_a_server_that_ignores_conditional_writes(
    ignoring_conditions: dict[str, Any],
) -> None:
    async with AsyncS3Cache(**ignoring_conditions) as cache:
        await cache.set("k", "kept")
        with pytest.raises(NotSupportedError, match="If-None-Match"):
            await cache.add("k", "overwritten?")
        assert await cache.get("k") == "kept"
        assert (await cache.check()).conditional_writes is False


# -- @cached --------------------------------------------------------------------------------


async def test_cached_coroutine_function(counted: AsyncS3Cache) -> None:
    calls: list[tuple[int, int]] = []

    @counted.cached(ttl=60)
    async def add(a: int, b: int = 10) -> int:
        calls.append((a, b))
        return a + b

    assert await add(1) == 11
    assert await add(1, 10) == 11  # same call, spelled differently
    assert await add(a=1) == 11
    assert await add(2) == 12
    assert calls == [(1, 10), (2, 10)]
    assert add.__name__ == "add"


async def test_cached_methods_skip_self_and_custom_keys(counted: AsyncS3Cache) -> None:
    calls = 0

    class Service:
        def __init__(self, name: str) -> None:
            self.name = name

        @counted.cached(key=lambda self, user_id: f"user:{user_id}")
        async def profile(self, user_id: int) -> dict[str, int]:
            nonlocal calls
            calls += 1
            return {"id": user_id}

    assert await Service("a").profile(7) == {"id": 7}
    assert await Service("b").profile(7) == {"id": 7}
    assert calls == 1
    assert await counted.get("user:7") == {"id": 7}


async def test_cached_stampede_runs_once(counted: AsyncS3Cache) -> None:
    calls = 0

    @counted.cached()
    async def slow(x: int) -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return x * 2

    assert await asyncio.gather(*(slow(21) for _ in range(50))) == [42] * 50
    assert calls == 1


# -- add() over an expired entry (If-Match) -------------------------------------------------

FAR_PAST = datetime(2000, 1, 1, tzinfo=UTC)


def put_expired(s3: Any, bucket: str, key: str, value: str = "stale") -> str:
    """An entry that is already expired (Expires in the past, as litellm writes it); its ETag."""
    resp = s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=json.dumps(value).encode(),
        ContentType="application/json",
        Expires=FAR_PAST,
    )
    return str(resp["ETag"])


def stored_value(s3: Any, bucket: str, key: str) -> Any:
    """The value of an object read behind the cache's back (expired or not)."""
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


class IfMatchHook:
    """A before-sign hook on PutObject that records each If-Match sent and may rewrite it."""

    def __init__(self, rewrite: Callable[[str], str | None] = lambda value: value) -> None:
        self.sent: list[tuple[str, str]] = []  # (url path, If-Match) of each conditional put
        self.rewrite = rewrite
        self.session = AioSession()
        self.session.register("before-sign.s3.PutObject", self)

    def __call__(self, request: Any, **_: Any) -> None:
        value = request.headers.get("If-Match")
        if value is None:
            return
        value = value.decode() if isinstance(value, bytes) else value
        self.sent.append((urlsplit(request.url).path, value))
        del request.headers["If-Match"]
        new = self.rewrite(value)
        if new is not None:
            request.headers["If-Match"] = new


async def test_concurrent_adds_over_an_expired_entry_have_one_winner(
    cache: AsyncS3Cache, s3: Any
) -> None:
    put_expired(s3, cache.bucket, "cache/lock")
    results = await asyncio.gather(*(cache.add("lock", i, ttl=60) for i in range(10)))
    assert results.count(True) == 1, "If-Match on the expired ETag lets exactly one add win"
    assert await cache.get("lock") == results.index(True)


async def test_add_sends_if_match_unquoted_where_the_server_refuses_it_quoted(
    cache_kwargs: dict[str, Any], s3: Any
) -> None:
    """Ceph RGW 16.2 answers 412 to If-Match with the quoted ETag: emulated on any server by
    turning every quoted If-Match into a wrong one. add() learns the unquoted form once."""
    wrong = '"ffffffffffffffffffffffffffffffff"'
    hook = IfMatchHook(lambda value: wrong if value.startswith('"') else value)
    etag = put_expired(s3, cache_kwargs["bucket"], "k")
    async with AsyncS3Cache(**cache_kwargs, session=hook.session, on_error="raise") as cache:
        assert await cache.add("k", "fresh", ttl=60) is True
        assert await cache.get("k") == "fresh"
        assert hook.sent[-1] == (f"/{cache.bucket}/k", etag.strip('"'))
        probes = len(hook.sent)
        put_expired(s3, cache.bucket, "k2")
        assert await cache.add("k2", "fresh", ttl=60) is True
        assert len(hook.sent) == probes + 1, "the form is learned once per cache, not per add"
        report = await cache.check()
    assert (report.conditional_replace, report.if_match_etag) == (True, "unquoted")
    assert any("quoted ETag" in text for text in report.unsupported)


async def test_add_over_an_expired_entry_refuses_a_server_that_ignores_if_match(
    cache_kwargs: dict[str, Any], s3: Any
) -> None:
    hook = IfMatchHook(lambda value: None)  # the header never reaches the server
    put_expired(s3, cache_kwargs["bucket"], "k")
    async with AsyncS3Cache(**cache_kwargs, session=hook.session, on_error="raise") as cache:
        with pytest.raises(NotSupportedError, match="If-Match"):
            await cache.add("k", "overwritten?", ttl=60)
        assert stored_value(s3, cache.bucket, "k") == "stale", "nothing was overwritten"
        assert await cache.add("new", "stored", ttl=60) is True, "plain add() still works"
        report = await cache.check()
    assert (report.conditional_replace, report.if_match_etag) == (False, None)
    assert any("If-Match" in text and "NotSupportedError" in text for text in report.unsupported)


async def test_add_loses_quietly_when_the_expired_entry_vanishes_meanwhile(
    cache_kwargs: dict[str, Any], s3: Any
) -> None:
    """Deleted between the HEAD and the If-Match put: AWS and moto answer 404, not 412."""
    bucket = cache_kwargs["bucket"]

    def delete_first(value: str) -> str:
        s3.delete_object(Bucket=bucket, Key="k")  # another client wins the race here
        return value

    hook = IfMatchHook(delete_first)
    put_expired(s3, bucket, "k")
    async with AsyncS3Cache(**cache_kwargs, session=hook.session, on_error="raise") as cache:
        cache._capabilities._form = "quoted"  # learned already: no probe to intercept
        assert await cache.add("k", "mine", ttl=60) is False
        assert cache.stats().errors == {}
        assert await cache.add("k", "mine", ttl=60) is True, "the key is free again"
