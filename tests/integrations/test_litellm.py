"""LiteLLMS3Cache with the real litellm (offline, ``mock_response``) against moto's S3 server.

Run with ``nox -s litellm`` (or ``pytest -m litellm`` where litellm 1.110.2, fastapi, orjson and
soundfile are installed); skipped where litellm is missing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import math
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from harness.expiry import until_expired

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # litellm must not fetch at import
litellm = pytest.importorskip("litellm")

from litellm.caching.base_cache import BaseCache  # noqa: E402
from litellm.caching.caching import Cache  # noqa: E402
from litellm.caching.s3_cache import S3Cache as LiteLLMOwnS3Cache  # noqa: E402
from litellm.types.caching import LiteLLMCacheType  # noqa: E402
from litellm.types.utils import Choices, ModelResponse  # noqa: E402

from s3cache import AsyncS3Cache, BucketNotFoundError, CacheClosedError  # noqa: E402
from s3cache.integrations.litellm import LiteLLMS3Cache, enable  # noqa: E402

pytestmark = [pytest.mark.litellm]

PATH = "llm-cache"
MODEL = "gpt-4o-mini"
SHA256_HEX = re.compile(r"[0-9a-f]{64}")


# -- fixtures and helpers --------------------------------------------------------------------


@pytest.fixture
def s3_kwargs(cache_kwargs: dict[str, Any]) -> dict[str, Any]:
    """litellm-style constructor arguments for the test bucket, under ``s3_path=llm-cache``."""
    return {
        "s3_bucket_name": cache_kwargs["bucket"],
        "s3_endpoint_url": cache_kwargs["endpoint_url"],
        "s3_aws_access_key_id": cache_kwargs["aws_access_key_id"],
        "s3_aws_secret_access_key": cache_kwargs["aws_secret_access_key"],
        "s3_region_name": cache_kwargs["region_name"],
        "s3_path": PATH,
    }


@pytest.fixture
async def backend(s3_kwargs: dict[str, Any]) -> AsyncIterator[LiteLLMS3Cache]:
    """Our backend on the test bucket, store errors raised."""
    b = LiteLLMS3Cache(**s3_kwargs, on_error="raise")
    yield b
    await b.disconnect()


@pytest.fixture
def litellm_s3(s3_kwargs: dict[str, Any]) -> Iterator[Any]:
    """litellm's own (boto3) S3Cache on the same bucket and path (untyped, hence Any)."""
    theirs = LiteLLMOwnS3Cache(**s3_kwargs)
    yield theirs
    theirs.s3_client.close()


@pytest.fixture
def global_cache() -> Iterator[None]:
    """Whatever a test sets as ``litellm.cache`` is disabled afterwards (callbacks too)."""
    yield
    litellm.disable_cache()


class SignallingBackend(LiteLLMS3Cache):
    """Sets ``written`` once an async write is stored: litellm writes from a background task."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.written = asyncio.Event()
        self.keys: list[str] = []

    async def async_set_cache(self, key: str, value: Any, **kwargs: Any) -> None:
        await super().async_set_cache(key, value, **kwargs)
        self.keys.append(key)
        self.written.set()

    async def async_set_cache_pipeline(
        self, cache_list: Iterable[tuple[str, Any]], **kwargs: Any
    ) -> None:
        await super().async_set_cache_pipeline(cache_list, **kwargs)
        self.written.set()


def messages(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"{text} {uuid.uuid4().hex}"}]


def ours(cache: Cache) -> LiteLLMS3Cache:
    """The backend under a litellm Cache made by :func:`enable`."""
    backend = cache.cache
    assert isinstance(backend, LiteLLMS3Cache)
    return backend


def content(response: object) -> str | None:
    assert isinstance(response, ModelResponse)
    choice = response.choices[0]
    assert isinstance(choice, Choices)
    text: str | None = choice.message.content
    return text


def cache_hit(response: object) -> bool:
    assert isinstance(response, ModelResponse)
    return response._hidden_params.get("cache_hit") is True


def object_keys(s3: Any, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


def wait_until(moment: float) -> None:
    """Let wall-clock time pass ``moment`` (TTL tests: expiry is the point, not synchronisation)."""
    while (left := moment - time.time()) > 0:
        time.sleep(left)


# -- construction ----------------------------------------------------------------------------


def test_constructor_is_litellms() -> None:
    ours = inspect.signature(LiteLLMS3Cache.__init__).parameters
    theirs = inspect.signature(LiteLLMOwnS3Cache.__init__).parameters
    assert list(ours) == list(theirs)
    for name, param in theirs.items():
        assert (ours[name].kind, ours[name].default) == (param.kind, param.default), name


@pytest.mark.usefixtures("global_cache")
def test_enable_takes_the_backends_parameters(s3_kwargs: dict[str, Any], s3: Any) -> None:
    """enable()'s signature is the backend's (one source of truth) plus ``type``, and each
    s3_* argument, positional or named, reaches the backend: the entry lands under s3_path."""
    ours_ = inspect.signature(enable).parameters
    backend = inspect.signature(LiteLLMS3Cache).parameters
    assert [n for n in ours_ if n != "type"] == list(backend)
    assert (ours_["type"].kind, ours_["type"].default) == (inspect.Parameter.KEYWORD_ONLY, "s3")
    assert "litellm.cache" in (enable.__doc__ or "")
    bucket = s3_kwargs.pop("s3_bucket_name")
    cache = enable(bucket, **{**s3_kwargs, "s3_path": "enabled/here"})
    ours(cache).set_cache("k", "value")
    assert object_keys(s3, bucket) == ["enabled/here/k"]
    asyncio.run(ours(cache).disconnect())


def test_is_a_basecache_but_not_litellms_s3cache(s3_kwargs: dict[str, Any]) -> None:
    b = LiteLLMS3Cache(**s3_kwargs)
    assert isinstance(b, BaseCache)
    assert not isinstance(b, LiteLLMOwnS3Cache)  # litellm's embedding path special-cases it


def test_unknown_kwargs_are_a_typeerror_naming_them(s3_kwargs: dict[str, Any]) -> None:
    with pytest.raises(TypeError, match=r"bogus, verify_ssl"):
        LiteLLMS3Cache(**s3_kwargs, verify_ssl=False, bogus=1)
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) host"):
        enable(**s3_kwargs, host="localhost")
    with pytest.raises(ValueError, match="type must be 's3'"):
        enable(**s3_kwargs, type="redis")
    assert litellm.cache is None


def test_core_kwargs_are_forwarded(s3_kwargs: dict[str, Any], s3: Any) -> None:
    with pytest.raises(ValueError, match="max_concurrency"):
        LiteLLMS3Cache(**s3_kwargs, max_concurrency=0)
    with pytest.raises(ValueError, match="timeout"):
        LiteLLMS3Cache(**s3_kwargs, timeout=-1)
    with pytest.raises(ValueError, match="on_error"):
        LiteLLMS3Cache(**s3_kwargs, on_error="ignore")
    with pytest.raises(TypeError, match="local"):
        LiteLLMS3Cache(**s3_kwargs, local={"max_items": 10})
    with pytest.raises(ValueError, match="compression"):
        LiteLLMS3Cache(**s3_kwargs, compression="lz4")
    # s3_config may be a dict, as litellm documents it; it reaches the core's config check.
    with pytest.raises(ValueError, match="max_pool_connections=2 is below max_concurrency=8"):
        LiteLLMS3Cache(**s3_kwargs, s3_config={"max_pool_connections": 2}, max_concurrency=8)

    b = LiteLLMS3Cache(
        **s3_kwargs, default_ttl=30, max_concurrency=8, s3_config={"max_pool_connections": 8}
    )
    try:
        b.set_cache("k", {"v": 1})
    finally:
        asyncio.run(b.disconnect())
    head = s3.head_object(Bucket=s3_kwargs["s3_bucket_name"], Key=f"{PATH}/k")
    assert head["Metadata"] == {"s3cache-ttl": "30"}


async def test_a_signing_key_is_passed_through_and_forged_answers_are_misses(
    s3_kwargs: dict[str, Any], s3: Any
) -> None:
    """A forged cached completion planted under litellm's key is never returned to litellm."""
    enable(**s3_kwargs, signing_key=[b"n" * 32, b"o" * 32])
    backend = ours(litellm.cache)
    try:
        await backend.async_set_cache("genuine", {"response": "real"})
        assert await backend.async_get_cache("genuine") == {"response": "real"}
        bucket = s3_kwargs["s3_bucket_name"]
        s3.put_object(Bucket=bucket, Key=f"{PATH}/planted", Body=b'{"response": "forged"}')
        assert await backend.async_get_cache("planted") is None
        assert backend.stats().unverified == {"unsigned": 1}
    finally:
        await backend.disconnect()
    head = s3.head_object(Bucket=s3_kwargs["s3_bucket_name"], Key=f"{PATH}/genuine")
    assert head["Metadata"]["s3cache-sig"].startswith("v1:")


def test_on_error_raise_reaches_the_core(s3_kwargs: dict[str, Any]) -> None:
    gone = {**s3_kwargs, "s3_bucket_name": "no-such-bucket-" + uuid.uuid4().hex[:8]}
    soft = LiteLLMS3Cache(**gone)
    hard = LiteLLMS3Cache(**gone, on_error="raise")
    try:
        assert soft.get_cache("k") is None
        assert soft.stats().errors["no_such_bucket"] == 1
        with pytest.raises(BucketNotFoundError):
            hard.get_cache("k")
    finally:
        asyncio.run(soft.disconnect())
        asyncio.run(hard.disconnect())


# -- litellm end to end ----------------------------------------------------------------------


@pytest.mark.usefixtures("global_cache")
def test_completion_second_call_is_a_hit(s3_kwargs: dict[str, Any], s3: Any) -> None:
    cache = enable(**s3_kwargs)
    assert litellm.cache is cache
    assert isinstance(cache.cache, LiteLLMS3Cache)
    msgs = messages("sync")
    first = litellm.completion(model=MODEL, messages=msgs, mock_response="first", caching=True)
    second = litellm.completion(model=MODEL, messages=msgs, mock_response="other", caching=True)
    assert (content(first), cache_hit(first)) == ("first", False)
    assert (content(second), cache_hit(second)) == ("first", True)
    [key] = object_keys(s3, s3_kwargs["s3_bucket_name"])
    assert key.startswith(f"{PATH}/")
    assert SHA256_HEX.fullmatch(key.removeprefix(f"{PATH}/"))
    asyncio.run(ours(cache).disconnect())


class GatedBackend(SignallingBackend):
    """Holds each async write until ``gate`` is set (when there is one)."""

    gate: asyncio.Event | None = None

    async def async_set_cache(self, key: str, value: Any, **kwargs: Any) -> None:
        if self.gate is not None:
            await self.gate.wait()
        await super().async_set_cache(key, value, **kwargs)


@pytest.mark.usefixtures("global_cache")
async def test_acompletion_with_stale_ttl_recomputes_once_and_serves_stale_meanwhile(
    s3_kwargs: dict[str, Any],
) -> None:
    """stale_ttl through litellm: past the ttl, the first acompletion recomputes (a miss); one
    made while that recompute's write is held is a hit on the old response; after it, the new."""
    backend = GatedBackend(**s3_kwargs, on_error="raise", stale_ttl=30)
    litellm.cache = Cache(type=LiteLLMCacheType.S3, _backend=backend, ttl=1)
    msgs = messages("stale")

    async def ask(answer: str) -> tuple[str | None, bool]:
        reply = await litellm.acompletion(
            model=MODEL, messages=msgs, mock_response=answer, caching=True
        )
        return content(reply), cache_hit(reply)

    assert await ask("a1") == ("a1", False)
    await asyncio.wait_for(backend.written.wait(), timeout=10)
    [key] = backend.keys
    await until_expired(backend.core, key)  # ttl 1 s, on the server's clock
    backend.written.clear()
    backend.gate = asyncio.Event()  # litellm writes in the background: hold that write
    assert await ask("a2") == ("a2", False)  # handed the miss: litellm recomputed
    assert await ask("a3") == ("a1", True)  # meanwhile: the stale response, at once
    backend.gate.set()
    await asyncio.wait_for(backend.written.wait(), timeout=10)
    assert await ask("a4") == ("a2", True)
    assert backend.stats().stale_served["revalidating"] == 2
    await backend.disconnect()


@pytest.mark.usefixtures("global_cache")
async def test_acompletion_second_call_is_a_hit(s3_kwargs: dict[str, Any]) -> None:
    backend = SignallingBackend(**s3_kwargs, on_error="raise")
    litellm.cache = Cache(type=LiteLLMCacheType.S3, _backend=backend)  # the manual route
    msgs = messages("async")
    first = await litellm.acompletion(model=MODEL, messages=msgs, mock_response="a1", caching=True)
    await asyncio.wait_for(backend.written.wait(), timeout=10)
    second = await litellm.acompletion(model=MODEL, messages=msgs, mock_response="a2", caching=True)
    assert (content(first), cache_hit(first)) == ("a1", False)
    assert (content(second), cache_hit(second)) == ("a1", True)
    assert backend.stats().hits == 1
    await backend.disconnect()


@pytest.mark.usefixtures("global_cache")
async def test_aembedding_is_cached_per_input(s3_kwargs: dict[str, Any], s3: Any) -> None:
    """Not being litellm's S3Cache class matters here: litellm then caches each input."""
    backend = SignallingBackend(**s3_kwargs, on_error="raise")
    litellm.cache = Cache(type=LiteLLMCacheType.S3, _backend=backend)
    text = f"embed {uuid.uuid4().hex}"
    model = "text-embedding-3-small"
    first = await litellm.aembedding(model=model, input=text, mock_response=[0.5], caching=True)
    await asyncio.wait_for(backend.written.wait(), timeout=10)
    second = await litellm.aembedding(model=model, input=[text], mock_response=[0.25], caching=True)
    assert [d["embedding"] for d in first.data] == [[0.5]]
    assert [d["embedding"] for d in second.data] == [[0.5]]
    assert second._hidden_params.get("cache_hit") is True
    [key] = object_keys(s3, s3_kwargs["s3_bucket_name"])
    assert SHA256_HEX.fullmatch(key.removeprefix(f"{PATH}/"))
    await backend.disconnect()


class NoExecutor(concurrent.futures.ThreadPoolExecutor):
    """A default executor that fails the test if anything hands it work."""

    def submit(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a thread executor was used")


async def test_async_methods_use_no_thread_executor(backend: LiteLLMS3Cache) -> None:
    await backend.async_set_cache("warm", 0)  # first client on this loop: opened beforehand
    asyncio.get_running_loop().set_default_executor(NoExecutor(max_workers=1))
    await backend.async_set_cache("k", {"v": 1}, ttl=60)
    await backend.async_set_cache_pipeline([("p:1", 1), ("p:2", 2)])
    await backend.batch_cache_write("b", "b")
    assert await backend.async_get_cache("k") == {"v": 1}
    assert await backend.async_batch_get_cache(["p:1", "p:2", "b"]) == {
        "p:1": 1,
        "p:2": 2,
        "b": "b",
    }
    assert await backend.async_delete_cache("k") == 1
    await backend.delete_cache_keys(["p:1"])
    assert (await backend.test_connection())["status"] == "success"
    assert await backend.ping() is True


@pytest.mark.usefixtures("global_cache")
@pytest.mark.parametrize(
    ("ttl", "error", "match"),
    [
        (0, ValueError, "positive"),
        (-5, ValueError, "positive"),
        (b"60", TypeError, "ttl must be"),
        (0.5, ValueError, "at least 1 second"),
        (float("nan"), ValueError, "finite"),
    ],
)
def test_enable_refuses_a_ttl_every_write_would_refuse(
    s3_kwargs: dict[str, Any], ttl: Any, error: type[Exception], match: str
) -> None:
    """litellm hands ``ttl`` to every write: accepted, it would make every write fail later."""
    before = litellm.cache
    with pytest.raises(error, match=match):
        enable(**s3_kwargs, ttl=ttl)
    with pytest.raises(error, match=match):
        LiteLLMS3Cache(**s3_kwargs, default_ttl=ttl)
    assert litellm.cache is before


@pytest.mark.usefixtures("global_cache")
def test_writes_refused_for_their_arguments_are_counted(s3_kwargs: dict[str, Any]) -> None:
    """litellm catches a write's error and only logs it: stats() must show it."""
    cache = enable(**s3_kwargs)
    backend = ours(cache)
    for bad_ttl in (0, b"60"):  # per request: litellm passes it to set_cache
        litellm.completion(
            model=MODEL,
            messages=messages("m"),
            mock_response="r",
            caching=True,
            cache={"ttl": bad_ttl},
        )
    with pytest.raises(TypeError):
        backend.set_cache("k", {1, 2})  # not JSON
    stats = backend.stats()
    assert stats.errors == {"invalid": 3}
    assert stats.sets == 0
    litellm.completion(model=MODEL, messages=messages("m"), mock_response="r", caching=True)
    assert backend.stats().sets == 1
    assert backend.stats().errors == {"invalid": 3}
    asyncio.run(backend.disconnect())
    assert backend.stats().errors == {}  # a new core, new counters


async def test_async_writes_refused_for_their_arguments_are_counted(
    backend: LiteLLMS3Cache,
) -> None:
    with pytest.raises(ValueError, match="positive"):
        await backend.async_set_cache("a", 1, ttl=0)
    with pytest.raises(ValueError, match="at least 1 second"):
        await backend.async_set_cache_pipeline([("b", 2)], ttl=0.5)
    with pytest.raises(TypeError, match="ttl must be"):
        await backend.batch_cache_write("c", 3, ttl=b"60")
    assert backend.stats().errors == {"invalid": 3}


@pytest.mark.usefixtures("global_cache")
def test_ttl_from_cache_and_per_request(s3_kwargs: dict[str, Any], s3: Any) -> None:
    cache = enable(**s3_kwargs, ttl=600)
    bucket = s3_kwargs["s3_bucket_name"]
    long_msgs, short_msgs = messages("long"), messages("short")
    litellm.completion(model=MODEL, messages=long_msgs, mock_response="long", caching=True)
    written = time.time()
    litellm.completion(
        model=MODEL, messages=short_msgs, mock_response="short", caching=True, cache={"ttl": 2}
    )
    heads = {}
    for key in object_keys(s3, bucket):
        head = s3.head_object(Bucket=bucket, Key=key)
        heads[head["Metadata"]["s3cache-ttl"]] = head
    assert set(heads) == {"600", "2"}
    for ttl, head in heads.items():  # litellm's reader judges Expires; caches read Cache-Control
        assert head["CacheControl"] == f"max-age={ttl}"
        expected = head["LastModified"] + timedelta(seconds=int(ttl))
        assert abs((head["Expires"] - expected).total_seconds()) <= 1

    wait_until(written + 2 + 1)
    again = litellm.completion(
        model=MODEL, messages=short_msgs, mock_response="fresh", caching=True, cache={"ttl": 2}
    )
    still = litellm.completion(model=MODEL, messages=long_msgs, mock_response="x", caching=True)
    assert (content(again), cache_hit(again)) == ("fresh", False)  # expired: a miss
    assert (content(still), cache_hit(still)) == ("long", True)
    asyncio.run(ours(cache).disconnect())


@pytest.mark.usefixtures("global_cache")
def test_tags_from_the_requests_cache_controls(s3_kwargs: dict[str, Any], s3: Any) -> None:
    """``cache={"tags": [...]}`` on a completion tags its entry (litellm hands the request's
    cache controls to every write); ``metadata["tags"]``, litellm's routing and spend tags,
    are left alone; one ``invalidate`` then makes the tagged answer a miss."""
    cache = enable(**s3_kwargs)
    bucket = s3_kwargs["s3_bucket_name"]
    tagged, other = messages("tagged"), messages("other")
    litellm.completion(
        model=MODEL, messages=tagged, mock_response="v1", caching=True, cache={"tags": ["doc:42"]}
    )
    litellm.completion(
        model=MODEL, messages=other, mock_response="o1", caching=True, metadata={"tags": ["x y"]}
    )
    tags = sorted(
        s3.head_object(Bucket=bucket, Key=key)["Metadata"].get("s3cache-tags", "")
        for key in object_keys(s3, bucket)
    )
    assert tags == ["", "doc:42"]  # routing tags are not cache tags (this one is not even valid)
    wait_until(math.floor(time.time()) + 1.01)  # S3 dates are whole seconds
    assert asyncio.run(ours(cache).core.invalidate("doc:42")) is True
    again = litellm.completion(model=MODEL, messages=tagged, mock_response="v2", caching=True)
    still = litellm.completion(model=MODEL, messages=other, mock_response="o2", caching=True)
    assert (content(again), cache_hit(again)) == ("v2", False)  # invalidated: a miss
    assert (content(still), cache_hit(still)) == ("o1", True)
    with pytest.raises(TypeError, match="list of tags"):
        ours(cache).set_cache("k", 1, cache={"tags": "doc:42"})
    assert ours(cache).stats().errors["invalid"] == 1
    asyncio.run(ours(cache).disconnect())


async def test_ttl_as_int_float_or_timedelta(backend: LiteLLMS3Cache, s3: Any) -> None:
    backend.set_cache("a", 1, ttl=timedelta(minutes=1, seconds=30))
    await backend.async_set_cache("b", 2, ttl=2.5)
    await backend.async_set_cache("c", 3, ttl=7, metadata={"ignored": True}, model=MODEL)
    await backend.async_set_cache("d", 4)
    bucket = backend.core.bucket
    ttls = {
        k: s3.head_object(Bucket=bucket, Key=f"{PATH}/{k}")["Metadata"].get("s3cache-ttl")
        for k in "abcd"
    }
    assert ttls == {"a": "90", "b": "2.5", "c": "7", "d": None}
    with pytest.raises(ValueError, match="at least 1 second"):
        await backend.async_set_cache("e", 5, ttl=0.5)
    with pytest.raises(TypeError, match="ttl must be"):
        backend.set_cache("e", 5, ttl=b"60")


@pytest.mark.usefixtures("global_cache")
def test_namespace_becomes_a_folder(s3_kwargs: dict[str, Any], s3: Any) -> None:
    cache = enable(**s3_kwargs, namespace="team-a")
    msgs = messages("ns")
    litellm.completion(model=MODEL, messages=msgs, mock_response="ns", caching=True)
    hit = litellm.completion(model=MODEL, messages=msgs, mock_response="no", caching=True)
    assert cache_hit(hit)
    assert isinstance(cache.cache, LiteLLMS3Cache)
    cache.cache.set_cache("x:y:z", "deep")
    keys = object_keys(s3, s3_kwargs["s3_bucket_name"])
    assert f"{PATH}/x/y/z" in keys
    [ns_key] = [k for k in keys if k.startswith(f"{PATH}/team-a/")]
    assert SHA256_HEX.fullmatch(ns_key.removeprefix(f"{PATH}/team-a/"))
    assert cache.cache.get_cache("x:y:z") == "deep"
    asyncio.run(ours(cache).disconnect())


# -- the backend interface -------------------------------------------------------------------


async def test_pipeline_and_batches(backend: LiteLLMS3Cache, s3: Any) -> None:
    await backend.async_set_cache_pipeline(
        [("p:1", {"n": 1}), ("p:2", {"n": 2}), ("p:3", "three")], ttl=60, model=MODEL
    )
    await backend.batch_cache_write("p:4", [4], ttl=timedelta(seconds=30))
    bucket = backend.core.bucket
    metas = {
        k: s3.head_object(Bucket=bucket, Key=f"{PATH}/p/{k}")["Metadata"]["s3cache-ttl"]
        for k in "1234"
    }
    assert metas == {"1": "60", "2": "60", "3": "60", "4": "30"}

    wanted: list[str | None] = ["p:1", None, "p:3", "p:missing", "p:4"]
    expected = {"p:1": {"n": 1}, "p:3": "three", "p:missing": None, "p:4": [4]}
    assert backend.batch_get_cache(wanted) == expected  # RedisCache: dict, None keys dropped
    assert await backend.async_batch_get_cache(key_list=wanted, parent_otel_span=None) == expected
    as_list = ["p:2", "p:missing", "p:1"]
    assert backend.batch_get_cache(keys=as_list) == [{"n": 2}, None, {"n": 1}]  # InMemoryCache
    assert await backend.async_batch_get_cache(keys=as_list) == [{"n": 2}, None, {"n": 1}]
    with pytest.raises(TypeError, match="exactly one"):
        backend.batch_get_cache()


async def test_deletes(backend: LiteLLMS3Cache) -> None:
    await backend.async_set_cache_pipeline([("d:1", 1), ("d:2", 2), ("d:3", 3), ("d:4", 4)])
    backend.delete_cache("d:1")
    assert await backend.async_delete_cache("d:2") == 1
    assert await backend.async_delete_cache("d:2") == 0
    await backend.delete_cache_keys(["d:3", "d:absent"])
    assert await backend.async_batch_get_cache(["d:1", "d:2", "d:3", "d:4"]) == {
        "d:1": None,
        "d:2": None,
        "d:3": None,
        "d:4": 4,
    }


@pytest.mark.usefixtures("global_cache")
async def test_litellm_cache_delete_keys_and_ping(s3_kwargs: dict[str, Any]) -> None:
    cache = enable(**s3_kwargs)
    assert isinstance(cache.cache, LiteLLMS3Cache)
    await cache.cache.async_set_cache("gone", 1)
    await cache.delete_cache_keys(["gone"])  # litellm's proxy /cache/delete route
    assert await cache.cache.async_get_cache("gone") is None
    assert await cache.ping() is True
    await cache.disconnect()  # type: ignore[no-untyped-call,unused-ignore]  # litellm's route


async def test_flush_cache_clears_only_the_prefix(backend: LiteLLMS3Cache, s3: Any) -> None:
    bucket = backend.core.bucket
    s3.put_object(Bucket=bucket, Key="elsewhere/keep", Body=b"{}")
    s3.put_object(Bucket=bucket, Key=f"{PATH}-sibling/keep", Body=b"{}")
    await backend.async_set_cache_pipeline([(f"f:{i}", i) for i in range(5)], ttl=60)
    assert backend.flush_cache() == 5
    assert object_keys(s3, bucket) == ["elsewhere/keep", f"{PATH}-sibling/keep"]


async def test_disconnect_closes_the_clients_and_later_calls_reconnect(
    backend: LiteLLMS3Cache,
) -> None:
    backend.set_cache("k", "sync")  # a client on s3cache's private loop
    assert await backend.async_get_cache("k") == "sync"  # and one on this loop
    old = backend.core
    await backend.disconnect()
    assert "closed" in repr(old)
    with pytest.raises(CacheClosedError):
        await old.get("k")
    assert backend.core is not old
    assert await backend.async_get_cache("k") == "sync"  # like RedisCache: reconnects on use
    assert backend.get_cache("k") == "sync"


async def test_test_connection_and_ping(backend: LiteLLMS3Cache, s3_kwargs: dict[str, Any]) -> None:
    ok = await backend.test_connection()
    assert ok["status"] == "success"
    assert "error" not in ok
    assert await backend.ping() is True

    name = "no-such-bucket-" + uuid.uuid4().hex[:8]
    missing = LiteLLMS3Cache(**{**s3_kwargs, "s3_bucket_name": name})
    try:
        failed = await missing.test_connection()
        assert failed["status"] == "failed"
        assert "NoSuchBucket" in failed["error"]
        assert failed["message"].startswith(f"S3 connection to bucket {name!r} failed")
        with pytest.raises(BucketNotFoundError):
            await missing.ping()
    finally:
        await missing.disconnect()


# -- format compatibility with litellm's own S3Cache -----------------------------------------


def litellm_entry(text: str) -> dict[str, Any]:
    """A value shaped like the ones litellm's Cache writes."""
    response = f'{{"id": "chatcmpl-1", "choices": [{{"message": {{"content": "{text}"}}}}]}}'
    return {"timestamp": time.time(), "response": response}


async def test_entries_written_by_litellm_are_read_by_us(
    backend: LiteLLMS3Cache,
    litellm_s3: Any,
    cache_kwargs: dict[str, Any],
    s3: Any,
) -> None:
    plain, with_ttl = litellm_entry("plain"), litellm_entry("ttl")
    litellm_s3.set_cache("ns:plain", plain)
    litellm_s3.set_cache("ttl", with_ttl, ttl=600)
    # litellm's Redis heritage: Python-literal bodies, which its S3Cache reads too.
    s3.put_object(Bucket=backend.core.bucket, Key=f"{PATH}/repr", Body=repr(plain).encode())

    assert backend.get_cache("ns:plain") == plain
    assert await backend.async_get_cache("ttl") == with_ttl
    assert await backend.async_get_cache("repr") == plain
    async with AsyncS3Cache(**cache_kwargs, prefix=PATH, on_error="raise") as core:
        assert await core.get_many(["ns:plain", "ttl", "repr"]) == {
            "ns:plain": plain,
            "ttl": with_ttl,
            "repr": plain,
        }


def test_entries_written_by_us_are_read_by_litellm(
    s3_kwargs: dict[str, Any], litellm_s3: Any
) -> None:
    ours = LiteLLMS3Cache(**s3_kwargs, on_error="raise")
    try:
        plain, with_ttl = litellm_entry("plain"), litellm_entry("ttl")
        ours.set_cache("ns:plain", plain)
        ours.set_cache("ttl", with_ttl, ttl=600)
        assert litellm_s3.get_cache("ns:plain") == plain
        assert litellm_s3.get_cache("ttl") == with_ttl
    finally:
        asyncio.run(ours.disconnect())


def test_a_ttl_set_by_either_side_is_honoured_by_both(
    s3_kwargs: dict[str, Any], litellm_s3: Any
) -> None:
    ours = LiteLLMS3Cache(**s3_kwargs, on_error="raise")
    readers: dict[str, Callable[[str], Any]] = {
        "ours": ours.get_cache,
        "litellm": litellm_s3.get_cache,
    }
    try:
        for read in readers.values():  # open the clients first: the 2 s below are the ttl's
            read("warm-up")
        litellm_s3.set_cache("by-litellm", {"v": "litellm"}, ttl=2)
        ours.set_cache("by-us", {"v": "us"}, ttl=2)
        written = time.time()
        for read in readers.values():
            assert read("by-litellm") == {"v": "litellm"}
            assert read("by-us") == {"v": "us"}
        wait_until(written + 2 + 1)
        after = {name: (read("by-litellm"), read("by-us")) for name, read in readers.items()}
        assert after == {"ours": (None, None), "litellm": (None, None)}
    finally:
        asyncio.run(ours.disconnect())


@pytest.mark.usefixtures("global_cache")
def test_switching_keeps_the_existing_cache(s3_kwargs: dict[str, Any]) -> None:
    """The user story: entries written through litellm's S3Cache are hits after the switch."""
    litellm.cache = Cache(type=LiteLLMCacheType.S3, **s3_kwargs)
    msgs = messages("switch")
    first = litellm.completion(model=MODEL, messages=msgs, mock_response="old", caching=True)
    assert isinstance(litellm.cache.cache, LiteLLMOwnS3Cache)
    litellm.cache.cache.s3_client.close()

    cache = enable(**s3_kwargs)
    second = litellm.completion(model=MODEL, messages=msgs, mock_response="new", caching=True)
    assert (content(first), cache_hit(first)) == ("old", False)
    assert (content(second), cache_hit(second)) == ("old", True)
    asyncio.run(ours(cache).disconnect())


async def test_s3cache_url_supplies_what_the_arguments_leave_out(
    cache_kwargs: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 26: ``$S3CACHE_URL`` under the constructor's arguments, option by option."""
    bucket, endpoint = cache_kwargs["bucket"], cache_kwargs["endpoint_url"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", cache_kwargs["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", cache_kwargs["aws_secret_access_key"])
    monkeypatch.setenv(
        "S3CACHE_URL", f"s3://{bucket}/fromurl?endpoint_url={endpoint}&region=us-east-1&ttl=1h"
    )
    backend = LiteLLMS3Cache(bucket, on_error="raise")
    other = LiteLLMS3Cache(bucket, s3_path="given")
    try:
        assert (backend.core.prefix, backend.core.endpoint_url) == ("fromurl/", endpoint)
        await backend.async_set_cache("k", "v")
        assert await backend.async_get_cache("k") == "v"
        assert await backend.core.ttl("k") is not None
        assert other.core.prefix == "given/"  # an argument wins over the URL
    finally:
        await backend.disconnect()
        await other.disconnect()
