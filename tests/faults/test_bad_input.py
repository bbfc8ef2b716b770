"""Bad input is a clear ValueError/TypeError raised before any request is made.

"Before any request" is proved by pointing the cache at a closed port with ``on_error="raise"``:
had a request been attempted, the error would be an ``EndpointUnreachableError`` instead.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from aiobotocore.config import AioConfig
from botocore.config import Config

from harness.faultproxy import FaultProxy
from s3cache import AsyncS3Cache, S3Cache, _keys

from .conftest import CREDENTIALS

BAD_KEYS: list[tuple[Any, type[Exception]]] = [
    ("", ValueError),
    ("x" * 1025, ValueError),
    ("é" * 513, ValueError),  # 1,026 UTF-8 bytes
    ("a\x00b", ValueError),
    ("line\nbreak", ValueError),
    ("tab\there", ValueError),
    ("del\x7f", ValueError),
    ("c1\x85control", ValueError),
    ("lone\ud800surrogate", ValueError),
    ("a//b", ValueError),
    ("a::b", ValueError),
    (":leading", ValueError),
    ("trailing:", ValueError),
    ("/leading", ValueError),
    ("trailing/", ValueError),
    ("./dot", ValueError),
    ("a/./b", ValueError),
    ("..", ValueError),
    ("../escape", ValueError),
    ("a/../../b", ValueError),
    ("a:..:b", ValueError),
    (b"bytes", TypeError),
    (42, TypeError),
    (None, TypeError),
    (("tuple",), TypeError),
]

BAD_TTLS: list[tuple[Any, type[Exception]]] = [
    (0, ValueError),
    (0.0, ValueError),
    (-1, ValueError),
    (-0.5, ValueError),
    (0.5, ValueError),  # below S3's one-second resolution
    (math.nan, ValueError),
    (math.inf, ValueError),
    (-math.inf, ValueError),
    (1e11, ValueError),
    (10**400, ValueError),
    (timedelta(0), ValueError),
    (timedelta(seconds=-5), ValueError),
    (timedelta(milliseconds=500), ValueError),
    (b"60", TypeError),
    (True, TypeError),
    ([60], TypeError),
    (object(), TypeError),
]


def circular_dict() -> dict[str, Any]:
    d: dict[str, Any] = {}
    d["self"] = d
    return d


def circular_list() -> list[Any]:
    items: list[Any] = []
    items.append(items)
    return items


def deep_list(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


BAD_VALUES: list[tuple[str, Any]] = [
    ("set", {1, 2}),
    ("object", object()),
    ("function", print),
    ("int-keys", {1: "a"}),
    ("huge-int", 2**70),
    ("circular-dict", circular_dict()),
    ("circular-list", circular_list()),
    ("nested-unserialisable", {"a": [{"b": {1, 2}}]}),
    ("too-deep", deep_list(300)),  # orjson stops at 255 levels
]


@pytest.fixture
async def unreachable(closed_endpoint: str) -> Any:
    """A cache on a closed port that raises store errors: any request would show."""
    async with AsyncS3Cache(
        bucket="bucket", endpoint_url=closed_endpoint, prefix="p", on_error="raise", **CREDENTIALS
    ) as cache:
        yield cache


@pytest.mark.parametrize(("key", "error"), BAD_KEYS, ids=repr)
async def test_bad_key_rejected_before_any_request(
    unreachable: AsyncS3Cache, key: Any, error: type[Exception]
) -> None:
    """Every key-taking method rejects the key itself, not the server."""
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: unreachable.get(key),
        lambda: unreachable.set(key, 1),
        lambda: unreachable.delete(key),
        lambda: unreachable.exists(key),
        lambda: unreachable.get_many(["fine", key]),
        lambda: unreachable.set_many({"fine": 1, key: 2}),
        lambda: unreachable.delete_many(["fine", key]),
        lambda: unreachable.add(key, 1),
        lambda: unreachable.get_or_set(key, _one),
        lambda: unreachable.get_or_set(key, _one, lease=5),
        lambda: unreachable.cached(key=lambda: key)(_one)(),
    ]
    for call in calls:
        with pytest.raises(error) as info:
            await call()
        assert "Endpoint" not in type(info.value).__name__
        assert str(info.value)  # a message, not a bare exception
    assert unreachable.stats().error_count == 0


async def _one() -> int:
    return 1


async def test_keys_and_listing_prefixes_over_the_limit_fail_before_any_request(
    unreachable: AsyncS3Cache,
) -> None:
    """The limit counts the cache's prefix and UTF-8 bytes, and the message names it."""
    room = _keys.MAX_KEY_BYTES - len(unreachable.prefix)
    with pytest.raises(ValueError, match=f"{room + 3} UTF-8 bytes, over S3's 1024-byte limit"):
        await unreachable.set("k" * (room + 1), 1)
    with pytest.raises(ValueError, match="UTF-8 bytes, over S3's 1024-byte limit"):
        await unreachable.get_or_set("é" * (room // 2 + 1), _one, lease=5)
    with pytest.raises(ValueError, match="over S3's 1024-byte key limit"):
        await unreachable.clear("x" * (room + 1))
    with pytest.raises(ValueError, match="over S3's 1024-byte key limit"):
        unreachable.iter_keys("x" * (room + 1))
    assert unreachable.stats().error_count == 0


async def test_long_lock_names_and_lease_keys_are_hashed_within_the_limit(
    proxied_kwargs: dict[str, Any], proxy: FaultProxy
) -> None:
    """s3cache's own objects never send an over-long key: past the limit they end in a SHA-256,
    and the longest prefix allowed leaves room for them (and for check()'s probes)."""
    prefix = "p" * (_keys.MAX_PREFIX_BYTES - 1)
    async with AsyncS3Cache(**proxied_kwargs, prefix=prefix, on_error="raise") as cache:
        key = "k" * (_keys.MAX_KEY_BYTES - len(cache.prefix))  # the longest key there is
        assert await cache.get_or_set(key, _one, lease=5) == 1
        async with cache.lock("n" * 2000, ttl=5) as held:
            assert held.token > 0
        await cache.check()
    bucket = proxied_kwargs["bucket"]
    sent = [unquote(urlsplit(h.path).path).removeprefix(f"/{bucket}/") for h in proxy.heads]
    assert max(len(okey.encode()) for okey in sent) == _keys.MAX_KEY_BYTES  # the entry
    assert {okey.split("/")[2] for okey in sent if "/.s3cache/" in okey} >= {
        "lease-sha256",
        "lock-sha256",
        "check",
    }


def test_a_prefix_that_leaves_no_room_for_s3caches_objects_is_refused() -> None:
    with pytest.raises(ValueError, match=r"prefix is 897 UTF-8 bytes .* over the 896-byte limit"):
        AsyncS3Cache("bucket", prefix="p" * 896)
    assert AsyncS3Cache("bucket", prefix="p" * 895).prefix == "p" * 895 + "/"


def _ttl_id(value: Any) -> str:
    """A test id that is the same in every process (no memory address, no 400 digits)."""
    if isinstance(value, type):
        return value.__name__
    if type(value) is object:
        return "object()"
    if isinstance(value, timedelta):
        return f"timedelta({value.total_seconds():g}s)"
    text = repr(value)
    return text if len(text) <= 24 else f"{len(text)}-digit-int"


@pytest.mark.parametrize(("ttl", "error"), BAD_TTLS, ids=_ttl_id)
async def test_bad_ttl_rejected_before_any_request(
    unreachable: AsyncS3Cache, closed_endpoint: str, ttl: Any, error: type[Exception]
) -> None:
    """``set``, ``set_many`` and the constructor's ``default_ttl`` reject the same ttls."""
    with pytest.raises(error, match="ttl"):
        await unreachable.set("k", 1, ttl=ttl)
    with pytest.raises(error, match="ttl"):
        await unreachable.set_many({"k": 1}, ttl=ttl)
    with pytest.raises(error, match="ttl"):
        AsyncS3Cache(bucket="bucket", endpoint_url=closed_endpoint, default_ttl=ttl)
    assert unreachable.stats().error_count == 0


@pytest.mark.parametrize(("name", "value"), BAD_VALUES, ids=[n for n, _ in BAD_VALUES])
async def test_unserialisable_value_rejected_before_any_request(
    unreachable: AsyncS3Cache, name: str, value: Any
) -> None:
    """A value JSON cannot hold is a TypeError from ``set`` and ``set_many``."""
    with pytest.raises(TypeError):
        await unreachable.set("k", value)
    with pytest.raises(TypeError):
        await unreachable.set_many({"a": 1, "k": value})
    assert unreachable.stats().error_count == 0


async def test_set_many_writes_nothing_when_one_value_is_bad(cache_kwargs: dict[str, Any]) -> None:
    """All values are encoded before the first request: a bad one means none is written."""
    async with AsyncS3Cache(**cache_kwargs, prefix="atomic", on_error="raise") as cache:
        with pytest.raises(TypeError):
            await cache.set_many({"a": 1, "b": {1, 2}, "c": 3})
        assert await cache.get_many(["a", "b", "c"]) == {}


def test_sync_facade_rejects_bad_input_before_any_request(closed_endpoint: str) -> None:
    """The blocking twin raises the same errors, unwrapped, from its loop thread."""
    with S3Cache(
        bucket="bucket", endpoint_url=closed_endpoint, on_error="raise", **CREDENTIALS
    ) as cache:
        with pytest.raises(ValueError, match="empty"):
            cache.get("")
        with pytest.raises(ValueError, match="ttl"):
            cache.set("k", 1, ttl=-1)
        with pytest.raises(TypeError):
            cache.set("k", {1, 2})
        assert cache.stats().error_count == 0


BAD_BUCKETS: list[tuple[Any, type[Exception]]] = [
    ("", ValueError),
    ("ab", ValueError),
    ("a" * 64, ValueError),
    ("-leading", ValueError),
    ("trailing-", ValueError),
    (".leading", ValueError),
    ("double..dot", ValueError),
    ("has space", ValueError),
    ("has/slash", ValueError),
    ("under\x00nul", ValueError),
    ("bucket\n", ValueError),
    (None, TypeError),
    (123, TypeError),
    (b"bucket", TypeError),
]


@pytest.mark.parametrize(("name", "error"), BAD_BUCKETS, ids=repr)
def test_bad_bucket_name_rejected(name: Any, error: type[Exception], closed_endpoint: str) -> None:
    """Bucket names are checked at construction."""
    with pytest.raises(error, match="bucket"):
        AsyncS3Cache(bucket=name, endpoint_url=closed_endpoint)


BAD_OPTIONS: list[tuple[str, dict[str, Any], type[Exception]]] = [
    ("https-without-ssl", {"endpoint_url": "https://s3.example.com", "use_ssl": False}, ValueError),
    ("key-id-without-secret", {"aws_access_key_id": "AKIA"}, ValueError),
    ("secret-without-key-id", {"aws_secret_access_key": "s"}, ValueError),
    ("token-without-keys", {"aws_session_token": "t"}, ValueError),
    (
        "pool-below-concurrency",
        {"max_concurrency": 32, "config": Config(max_pool_connections=8)},
        ValueError,
    ),
    (
        "aio-pool-below-concurrency",
        {"max_concurrency": 32, "config": AioConfig(max_pool_connections=31)},
        ValueError,
    ),
    ("config-not-a-config", {"config": {"max_pool_connections": 8}}, TypeError),
    ("zero-concurrency", {"max_concurrency": 0}, ValueError),
    ("negative-concurrency", {"max_concurrency": -4}, ValueError),
    ("bool-concurrency", {"max_concurrency": True}, TypeError),
    ("float-concurrency", {"max_concurrency": 8.0}, TypeError),
    ("zero-timeout", {"timeout": 0}, ValueError),
    ("negative-timeout", {"timeout": -1}, ValueError),
    ("nan-timeout", {"timeout": math.nan}, ValueError),
    ("inf-timeout", {"timeout": math.inf}, ValueError),
    ("str-timeout", {"timeout": "5"}, TypeError),
    ("bool-timeout", {"timeout": True}, TypeError),
    ("unknown-on-error", {"on_error": "ignore"}, ValueError),
    ("endpoint-without-scheme", {"endpoint_url": "localhost:9000"}, ValueError),
    ("endpoint-ftp", {"endpoint_url": "ftp://host/"}, ValueError),
    ("endpoint-no-host", {"endpoint_url": "http://"}, ValueError),
    ("endpoint-not-str", {"endpoint_url": 9000}, TypeError),
    ("prefix-only-slash", {"prefix": "/"}, ValueError),
    ("prefix-dotdot", {"prefix": "../other"}, ValueError),
    ("prefix-empty-segment", {"prefix": "a//b"}, ValueError),
    ("prefix-control", {"prefix": "a\rb"}, ValueError),
    ("prefix-not-str", {"prefix": 7}, TypeError),
    ("serializer-not-a-serializer", {"serializer": object()}, TypeError),
    ("session-not-a-session", {"session": object()}, TypeError),
]


@pytest.mark.parametrize(
    ("name", "options", "error"), BAD_OPTIONS, ids=[name for name, _, _ in BAD_OPTIONS]
)
def test_contradictory_or_bad_options_rejected(
    name: str, options: dict[str, Any], error: type[Exception]
) -> None:
    """Each bad or contradictory constructor option is an immediate, named error."""
    kwargs: dict[str, Any] = {"bucket": "bucket", "endpoint_url": "http://127.0.0.1:9"}
    kwargs.update(options)
    with pytest.raises(error) as info:
        AsyncS3Cache(**kwargs)
    assert str(info.value)
    with pytest.raises(error):
        S3Cache(**kwargs)
