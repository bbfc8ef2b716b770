"""The habits of aiocache and cashews users (issue 26, item 7), on a real server: ``from_url``,
``@cached`` wrappers' ``.key()``/``.invalidate()``, ``condition=``, ``cache.disabled()`` (per
task, per thread, carried into the sync facade's loop), ``ttl()`` and ``expire()`` (If-Match: a
deleted entry is never resurrected; a lost response still tells the truth) and ``@cached`` on
async generator functions."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
import math
import threading
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import quote

import pytest

from harness.faultproxy import Fault, FaultProxy
from s3cache import AsyncS3Cache, CachedFunction, CorruptEntryError, S3Cache
from s3cache._expiry import TTL_METADATA
from tests.conftest import CREDENTIALS

SECRETS = {k: v for k, v in CREDENTIALS.items() if k != "region_name"}


def _url(bucket: str, endpoint: str, prefix: str = "app", **query: str) -> str:
    params = "&".join(f"{k}={quote(v, safe='')}" for k, v in query.items())
    return f"s3://{bucket}/{prefix}?endpoint_url={quote(endpoint, safe='')}&region=us-east-1" + (
        f"&{params}" if params else ""
    )


def h(func: object) -> Any:
    """A ``@cached`` wrapper, its ``.key`` and ``.invalidate`` visible to the type checker
    (which sees the wrapper as the function: see ``CachedDecorator``)."""
    return func


def _stored(s3: Any, bucket: str, key: str) -> dict[str, str] | None:
    try:
        return dict(s3.head_object(Bucket=bucket, Key=key)["Metadata"])
    except s3.exceptions.ClientError:
        return None


# -- from_url ------------------------------------------------------------------------------


async def test_from_url_configures_the_cache(s3_endpoint: str, bucket: str, s3: Any) -> None:
    url = _url(bucket, s3_endpoint, ttl="1h", on_error="raise")
    async with AsyncS3Cache.from_url(url, **SECRETS) as cache:
        assert (cache.bucket, cache.prefix, cache.endpoint_url) == (bucket, "app/", s3_endpoint)
        await cache.set("k", {"v": 1})
        assert await cache.get("k") == {"v": 1}
    assert _stored(s3, bucket, "app/k") == {TTL_METADATA: "3600"}


def test_sync_from_url_and_overrides_win(s3_endpoint: str, bucket: str, s3: Any) -> None:
    url = _url(bucket, s3_endpoint, ttl="1h")
    with S3Cache.from_url(url, default_ttl="90s", prefix="other", timeout=None, **SECRETS) as c:
        assert isinstance(c, S3Cache)
        assert c.prefix == "other/"  # an override wins; a None one counts as not given
        c.set("k", 1)
    assert _stored(s3, bucket, "other/k") == {TTL_METADATA: "90"}


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("s3://bkt?ttl=soon", "ttl"),
        ("s3://bkt?aws_secret_access_key=x", "secrets stay out of URLs"),
        ("http://bkt/p", "must start with s3://"),
    ],
)
def test_from_url_refuses_bad_urls_before_any_request(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AsyncS3Cache.from_url(url)
    with pytest.raises(ValueError, match=message):
        S3Cache.from_url(url)


# -- @cached: .key, .invalidate, condition ---------------------------------------------------


async def test_cached_key_and_invalidate(cache: AsyncS3Cache) -> None:
    calls: list[int] = []

    @cache.cached(ttl="1h")
    async def square(x: int) -> int:
        calls.append(x)
        return x * x

    assert await square(3) == 9
    assert await square(x=3) == 9
    assert calls == [3]
    key = h(square).key(3)
    assert key == h(square).key(x=3) != h(square).key(4)
    assert key.startswith("tests.test_habits:")
    assert await cache.get(key) == 9
    typed = cast(CachedFunction[[int], int], square)  # the documented way to type them
    assert await typed.invalidate(3) is True
    assert await cache.get(key) is None
    assert await h(square).invalidate(3) is False  # nothing live there any more
    assert await square(3) == 9
    assert calls == [3, 3]


async def test_cached_key_uses_the_key_builder(cache: AsyncS3Cache) -> None:
    @cache.cached(key=lambda user_id: f"user:{user_id}")
    async def load(user_id: int) -> dict[str, int]:
        return {"id": user_id}

    assert h(load).key(7) == "user:7"
    await load(7)
    assert await cache.get("user:7") == {"id": 7}
    assert await h(load).invalidate(7)
    assert not await cache.exists("user:7")


def test_sync_cached_key_and_invalidate(cache_kwargs: dict[str, Any]) -> None:
    calls: list[int] = []
    with S3Cache(**cache_kwargs, on_error="raise") as cache:

        @cache.cached()
        def double(x: int) -> int:
            calls.append(x)
            return 2 * x

        assert double(2) == double(2) == 4
        assert calls == [2]
        assert cache.get(double.key(2)) == 4  # type: ignore[attr-defined]
        assert double.invalidate(2) is True  # type: ignore[attr-defined]
        assert double(2) == 4
        assert calls == [2, 2]


async def test_condition_decides_what_is_stored(cache: AsyncS3Cache) -> None:
    calls: list[int] = []

    @cache.cached(condition=lambda result: result is not None)
    async def find(x: int) -> int | None:
        calls.append(x)
        return x if x > 0 else None

    assert await find(-1) is None
    assert await find(-1) is None  # not stored: computed again
    assert await find(5) == 5
    assert await find(5) == 5
    assert calls == [-1, -1, 5]
    assert not await cache.exists(h(find).key(-1))
    assert await cache.exists(h(find).key(5))

    assert await cache.get_or_set("no", lambda: [], condition=bool) == []
    assert not await cache.exists("no")
    assert await cache.get_or_set("yes", lambda: [1], condition=bool) == [1]
    assert await cache.get("yes") == [1]


async def test_condition_with_a_lease_stores_nothing_and_frees_the_lease(
    cache: AsyncS3Cache, s3: Any, bucket: str
) -> None:
    calls: list[int] = []

    def make() -> dict[str, str]:
        calls.append(1)
        return {"error": "upstream"}

    skip: dict[str, Any] = {"condition": lambda v: "error" not in v, "lease": 5}
    assert await cache.get_or_set("leased", make, **skip) == {"error": "upstream"}
    assert not await cache.exists("leased")
    assert await cache.get_or_set("leased", make, **skip) == {"error": "upstream"}  # no wait
    assert calls == [1, 1]
    lease = next(k for k in _listed(s3, bucket) if "lease" in k)
    assert s3.head_object(Bucket=bucket, Key=lease)["Metadata"]["s3cache-lease"] == "released"


def test_sync_condition(cache_kwargs: dict[str, Any]) -> None:
    with S3Cache(**cache_kwargs, on_error="raise") as cache:
        assert cache.get_or_set("error", lambda: {"error": 1}, condition=lambda v: "error" not in v)
        assert not cache.exists("error")
        assert cache.get_or_set("fine", lambda: {"ok": 1}, condition=lambda v: "error" not in v)
        assert cache.get("fine") == {"ok": 1}


async def test_condition_must_be_callable(cache: AsyncS3Cache) -> None:
    with pytest.raises(TypeError, match="condition must be callable"):
        cache.cached(condition=True)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="condition must be callable"):
        await cache.get_or_set("k", lambda: 1, condition=1)  # type: ignore[arg-type]


# -- disabled() ------------------------------------------------------------------------------


async def test_disabled_reads_miss_writes_skip_factories_run(
    cache: AsyncS3Cache, s3: Any, bucket: str
) -> None:
    await cache.set("there", 1)
    calls: list[str] = []

    @cache.cached()
    async def made(x: str) -> str:
        calls.append(x)
        return x.upper()

    assert await made("a") == "A"
    with cache.disabled():
        assert await cache.get("there") is None
        assert await cache.get_many(["there"]) == {}
        assert await cache.exists("there") is False
        assert await cache.ttl("there") is None
        await cache.set("new", 1)
        assert await cache.set_many({"many": 1}) == {}
        assert await cache.add("added", 1) is False
        assert await cache.get_or_set("made", lambda: "fresh", lease=5) == "fresh"
        assert await made("a") == "A"  # the factory ran
        assert await asyncio.create_task(cache.get("there")) is None  # tasks inherit it
    assert calls == ["a", "a"]
    for key in ("new", "many", "added", "made"):
        assert _stored(s3, bucket, f"cache/{key}") is None, key
    assert not [k for k in _listed(s3, bucket) if "lease" in k]  # no lease taken either
    assert await cache.get("there") == 1  # on again after the block


def _listed(s3: Any, bucket: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


async def test_disabled_leaves_other_tasks_alone(cache: AsyncS3Cache) -> None:
    await cache.set("k", "v")
    inside, looked = asyncio.Event(), asyncio.Event()
    seen: dict[str, Any] = {}

    async def disabled_task() -> None:
        with cache.disabled():
            inside.set()
            await looked.wait()  # the other task reads while this one is in the block
            seen["disabled"] = await cache.get("k")

    async def other_task() -> None:
        await inside.wait()
        seen["other"] = await cache.get("k")
        await cache.set("other-wrote", 1)
        looked.set()

    await asyncio.gather(disabled_task(), other_task())
    assert seen == {"disabled": None, "other": "v"}
    assert await cache.get("other-wrote") == 1


def test_sync_disabled_is_carried_to_the_loop_and_per_thread(
    cache_kwargs: dict[str, Any], s3: Any, bucket: str
) -> None:
    with S3Cache(**cache_kwargs, prefix="s", on_error="raise") as cache:
        cache.set("k", "v")
        with cache.disabled():
            assert cache.get("k") is None  # the private loop's thread sees this thread's state
            cache.set("skipped", 1)
            assert cache.get_or_set("made", lambda: 5) == 5
        assert _stored(s3, bucket, "s/skipped") is None
        assert _stored(s3, bucket, "s/made") is None
        assert cache.get("k") == "v"

        inside, looked = threading.Event(), threading.Event()
        seen: dict[str, Any] = {}

        def in_block() -> None:
            with cache.disabled():
                inside.set()
                assert looked.wait(10)
                seen["disabled"] = cache.get("k")

        worker = threading.Thread(target=in_block)
        worker.start()
        assert inside.wait(10)
        seen["other"] = cache.get("k")  # another thread, while the worker is in its block
        looked.set()
        worker.join(10)
        assert seen == {"disabled": None, "other": "v"}


async def test_disabled_of_one_cache_leaves_another_on(
    cache: AsyncS3Cache, cache_kwargs: dict[str, Any]
) -> None:
    async with AsyncS3Cache(**cache_kwargs, prefix="cache", on_error="raise") as twin:
        await cache.set("k", 1)
        with cache.disabled():
            assert await cache.get("k") is None
            assert await twin.get("k") == 1


# -- ttl() and expire() ----------------------------------------------------------------------


async def test_ttl_reads_the_time_left(cache: AsyncS3Cache, s3: Any, bucket: str) -> None:
    assert await cache.ttl("missing") is None
    await cache.set("hour", 1, ttl="1h")
    left = await cache.ttl("hour")
    assert left is not None
    assert 3597 <= left <= 3600
    await cache.set("forever", 1)
    assert await cache.ttl("forever") == math.inf
    s3.put_object(
        Bucket=bucket, Key="cache/old", Body=b"1", Expires=datetime(2020, 1, 1, tzinfo=UTC)
    )
    assert await cache.ttl("old") is None  # expired (litellm's Expires, in the past)


async def test_expire_changes_the_ttl_and_keeps_the_entry(
    cache_kwargs: dict[str, Any], s3: Any, bucket: str
) -> None:
    key = b"k" * 32
    async with AsyncS3Cache(
        **cache_kwargs, prefix="e", on_error="raise", signing_key=key, compression="zstd",
        compression_threshold=16,
    ) as cache:  # fmt: skip
        value = {"text": "x" * 200}
        await cache.set("k", value, ttl="1h")
        assert await cache.expire("k", "90s") is True
        left = await cache.ttl("k")
        assert left is not None
        assert 87 <= left <= 90
        assert await cache.get("k") == value  # still signed, still compressed, same value
        assert _stored(s3, bucket, "e/k")[TTL_METADATA] == "90"  # type: ignore[index]
        assert await cache.expire("k", None) is True
        assert await cache.ttl("k") == math.inf
        assert await cache.get("k") == value
        assert await cache.expire("missing", 60) is False
        with pytest.raises(ValueError, match="ttl"):
            await cache.expire("k", "soon")


async def test_expire_never_resurrects_a_deleted_entry(
    cache: AsyncS3Cache, s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await cache.set("k", 1, ttl=60)
    real_get = cache.transport.get

    async def get_then_deleted(okey: str, **kwargs: Any) -> Any:
        found = await real_get(okey, **kwargs)
        s3.delete_object(Bucket=bucket, Key=okey)  # deleted between the read and the write
        return found

    monkeypatch.setattr(cache.transport, "get", get_then_deleted)
    assert await cache.expire("k", 3600) is False
    monkeypatch.undo()
    assert _stored(s3, bucket, "cache/k") is None


async def test_expire_does_not_overwrite_a_newer_write(
    cache: AsyncS3Cache, s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await cache.set("k", 1, ttl=60)
    real_get = cache.transport.get

    async def get_then_replaced(okey: str, **kwargs: Any) -> Any:
        found = await real_get(okey, **kwargs)
        s3.put_object(Bucket=bucket, Key=okey, Body=b"2", ContentType="application/json")
        return found

    monkeypatch.setattr(cache.transport, "get", get_then_replaced)
    assert await cache.expire("k", 3600) is False
    monkeypatch.undo()
    assert await cache.get("k") == 2
    assert await cache.ttl("k") == math.inf


@pytest.mark.parametrize("fast_path", [True, False], ids=["wire", "botocore"])
async def test_expire_with_its_response_lost_tells_the_truth(
    proxy: FaultProxy, bucket: str, s3: Any, fast_path: bool
) -> None:
    async with AsyncS3Cache(
        bucket, endpoint_url=proxy.endpoint, on_error="raise", fast_path=fast_path, **CREDENTIALS
    ) as cache:
        await cache.set("k", "v", ttl=60)
        await cache.capabilities()  # probed before the fault
        proxy.set_fault(Fault.RESET_BODY, methods={"PUT"}, path_contains="/k", times=1)
        assert await cache.expire("k", 3600) is True  # applied, though its answer was lost
        assert proxy.faults, "the fault never fired"
        proxy.clear()
        assert _stored(s3, bucket, "k")[TTL_METADATA] == "3600"  # type: ignore[index]
        assert await cache.get("k") == "v"
        assert proxy.faults[Fault.RESET_BODY] == 1
        # The retry went through: If-Match holds for the body the lost write left unchanged.
        assert cache.stats().sets == 2


def test_sync_ttl_and_expire(cache_kwargs: dict[str, Any]) -> None:
    with S3Cache(**cache_kwargs, on_error="raise") as cache:
        cache.set("k", 1, ttl="1h")
        assert cache.expire("k", "2h") is True
        left = cache.ttl("k")
        assert left is not None
        assert 7197 <= left <= 7200
        assert cache.ttl("missing") is None


# -- @cached on async generator functions ---------------------------------------------------


async def test_cached_async_generator_stores_when_finished_and_replays(
    cache: AsyncS3Cache,
) -> None:
    runs: list[int] = []

    @cache.cached(ttl="1h")
    async def count(n: int) -> AsyncIterator[int]:
        runs.append(n)
        for i in range(n):
            yield i

    assert [i async for i in count(3)] == [0, 1, 2]
    assert await cache.get(h(count).key(3)) == [0, 1, 2]
    assert [i async for i in count(3)] == [0, 1, 2]  # replayed
    assert runs == [3]
    assert await h(count).invalidate(3) is True
    assert [i async for i in count(3)] == [0, 1, 2]
    assert runs == [3, 3]


async def test_cached_async_generator_that_fails_or_stops_early_stores_nothing(
    cache: AsyncS3Cache,
) -> None:
    @cache.cached()
    async def broken() -> AsyncIterator[int]:
        yield 1
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        [i async for i in broken()]
    assert not await cache.exists(h(broken).key())

    @cache.cached()
    async def endless() -> AsyncGenerator[int, None]:
        i = 0
        while True:
            yield i
            i += 1

    stream = endless()
    assert [await anext(stream), await anext(stream)] == [0, 1]
    await stream.aclose()
    assert not await cache.exists(h(endless).key())


async def test_cached_async_generator_condition_and_refusals(cache: AsyncS3Cache) -> None:
    @cache.cached(condition=lambda items: len(items) > 1)
    async def upto(n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i

    assert [i async for i in upto(1)] == [0]
    assert not await cache.exists(h(upto).key(1))
    assert [i async for i in upto(2)] == [0, 1]
    assert await cache.exists(h(upto).key(2))

    async def gen() -> AsyncIterator[int]:
        yield 1

    with pytest.raises(TypeError, match="lease=, stale_ttl="):
        cache.cached(lease=5)(gen)
    with pytest.raises(TypeError, match="neither"):
        cache.cached()(cast(Any, lambda: 1))


def test_sync_cached_hands_async_generators_to_the_core(cache_kwargs: dict[str, Any]) -> None:
    with S3Cache(**cache_kwargs, on_error="raise") as cache:

        @cache.cached()
        async def letters() -> AsyncIterator[str]:
            yield "a"

        assert inspect.isasyncgenfunction(letters)
        assert letters.key().startswith("tests.test_habits:")  # type: ignore[attr-defined]


# -- $S3CACHE_URL in the command line (the litellm backend's: tests/integrations) -----------


@pytest.fixture
def url_env(monkeypatch: pytest.MonkeyPatch, s3_endpoint: str, bucket: str) -> str:
    """The environment of a user who configured s3cache by ``S3CACHE_URL`` alone."""
    for name in ("S3CACHE_BUCKET", "S3CACHE_PREFIX", "S3CACHE_ENDPOINT_URL", "S3CACHE_PLAIN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CREDENTIALS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CREDENTIALS["aws_secret_access_key"])
    url = _url(bucket, s3_endpoint, prefix="fromurl", ttl="15m", timeout="5")
    monkeypatch.setenv("S3CACHE_URL", url)
    return url


@pytest.mark.usefixtures("url_env")
def test_the_cli_takes_its_store_from_s3cache_url(
    capsys: pytest.CaptureFixture[str], s3: Any, bucket: str
) -> None:
    from s3cache.cli import main

    assert main(["set", "k", "hello"]) == 0
    assert _stored(s3, bucket, "fromurl/k") == {TTL_METADATA: "900"}  # the URL's prefix and ttl
    capsys.readouterr()
    assert main(["get", "k"]) == 0
    assert capsys.readouterr().out.strip() == "hello"
    assert main(["--prefix", "flag", "set", "k", "x"]) == 0  # a flag wins over the URL
    assert _stored(s3, bucket, "flag/k") is not None


def test_the_cli_refuses_a_bad_s3cache_url(
    url_env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from s3cache.cli import main

    monkeypatch.setenv("S3CACHE_URL", url_env + "&aws_session_token=hush")
    assert main(["get", "k"]) == 2
    err = capsys.readouterr().err
    assert "S3CACHE_URL" in err
    assert "hush" not in err


# -- serializer= -----------------------------------------------------------------------------

SIGNING_KEY = b"s" * 32


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: int


class Reversed:
    """A custom serializer: JSON text, reversed (a name of its own is recorded)."""

    content_type = "text/x-reversed"
    name = "reversed"

    def dumps(self, value: Any) -> bytes:
        return json.dumps(value).encode()[::-1]

    def loads(self, data: bytes) -> Any:
        return json.loads(data[::-1])


async def test_pickle_needs_a_signing_key(cache_kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="signing_key"):
        AsyncS3Cache(**cache_kwargs, serializer="pickle")
    with pytest.raises(ValueError, match="serializer must be 'json', 'pickle', 'msgpack'"):
        AsyncS3Cache(**cache_kwargs, serializer="yaml")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="serializer must be"):
        AsyncS3Cache(**cache_kwargs, serializer=object())  # type: ignore[arg-type]


async def test_pickle_round_trips_python_values(
    cache_kwargs: dict[str, Any], s3: Any, bucket: str
) -> None:
    async with AsyncS3Cache(
        **cache_kwargs, serializer="pickle", signing_key=SIGNING_KEY, on_error="raise"
    ) as cache:
        value = {"point": Point(1, 2), "tags": {"a", "b"}, "pair": (1, 2)}
        await cache.set("k", value)
        assert await cache.get("k") == value
        await cache.set("raw", b"\x00bytes")
        assert await cache.expire("k", "1h")  # re-timed, still signed and still pickle
        assert await cache.get("k") == value
    assert _stored(s3, bucket, "k")["s3cache-serializer"] == "pickle"  # type: ignore[index]
    assert "s3cache-serializer" not in (_stored(s3, bucket, "raw") or {})


async def test_a_reader_with_another_serializer_fails_typed(cache_kwargs: dict[str, Any]) -> None:
    signed: dict[str, Any] = {"signing_key": SIGNING_KEY, "on_error": "raise"}
    async with (
        AsyncS3Cache(**cache_kwargs, serializer="pickle", **signed) as pickled,
        AsyncS3Cache(**cache_kwargs, **signed) as jsoned,
        AsyncS3Cache(**cache_kwargs, serializer=Reversed(), **signed) as custom,
        AsyncS3Cache(**cache_kwargs, signing_key=SIGNING_KEY) as logged,
    ):
        await pickled.set("p", [1, 2])
        await jsoned.set("j", [1, 2])
        await custom.set("c", [1, 2])
        await jsoned.set("b", b"raw")
        assert await custom.get("c") == [1, 2]
        for reader, key, written in [
            (jsoned, "p", "'pickle'"),
            (pickled, "j", "'json'"),
            (jsoned, "c", "'reversed'"),
            (pickled, "c", "'reversed'"),
        ]:
            with pytest.raises(CorruptEntryError, match=f"written with serializer {written}"):
                await reader.get(key)
        with pytest.raises(CorruptEntryError):  # no field (JSON, or legacy): a custom one
            await custom.get("j")  # tries it, and its loads refuses: typed still
        assert await pickled.get("b") == b"raw"  # raw bytes need no serializer
        assert await logged.get("p", "miss") == "miss"  # fail-soft: a miss, counted
        assert logged.stats().errors.get("corrupt") == 1


async def test_the_serializer_field_is_signed(
    cache_kwargs: dict[str, Any], s3: Any, bucket: str
) -> None:
    async with AsyncS3Cache(
        **cache_kwargs, serializer="pickle", signing_key=SIGNING_KEY, on_error="raise"
    ) as cache:
        await cache.set("k", 1)
        head = s3.head_object(Bucket=bucket, Key="k")
        metadata = dict(head["Metadata"])
        metadata["s3cache-serializer"] = "json"  # a forger relabels the entry
        s3.copy_object(
            Bucket=bucket,
            Key="k",
            CopySource={"Bucket": bucket, "Key": "k"},
            Metadata=metadata,
            MetadataDirective="REPLACE",
            ContentType=head["ContentType"],
        )
        assert await cache.get("k", "miss") == "miss"
        assert cache.stats().unverified == {"altered": 1}


async def test_msgpack_round_trips(cache_kwargs: dict[str, Any], s3: Any, bucket: str) -> None:
    pytest.importorskip("msgpack")
    async with AsyncS3Cache(**cache_kwargs, serializer="msgpack", on_error="raise") as cache:
        await cache.set("k", {"bytes": b"\x00\x01", "n": [1, 2.5, None]})
        assert await cache.get("k") == {"bytes": b"\x00\x01", "n": [1, 2.5, None]}
    assert _stored(s3, bucket, "k")["s3cache-serializer"] == "msgpack"  # type: ignore[index]


def test_a_url_names_a_serializer(s3_endpoint: str, bucket: str, s3: Any) -> None:
    url = _url(bucket, s3_endpoint, serializer="pickle")
    with pytest.raises(ValueError, match="signing_key"):
        S3Cache.from_url(url, **SECRETS)  # the constructor's own check, before any request
    with S3Cache.from_url(url, signing_key=SIGNING_KEY, **SECRETS) as cache:
        cache.set("k", Point(3, 4))
        assert cache.get("k") == Point(3, 4)
    assert _stored(s3, bucket, "app/k")["s3cache-serializer"] == "pickle"  # type: ignore[index]
