"""S3LLMCache and S3ByteStore with the real langchain-core (and langchain-classic's
CacheBackedEmbeddings), offline, against moto's S3 server.

Run with ``nox -s langchain`` (or ``pytest -m langchain`` where the pinned langchain-core,
langchain-classic and langgraph are installed); skipped where langchain-core is missing.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("langchain_core")

from langchain_core.caches import BaseCache
from langchain_core.embeddings import Embeddings
from langchain_core.globals import set_llm_cache
from langchain_core.language_models.fake import FakeListLLM
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.load import dumps, loads
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, Generation
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.stores import BaseStore

from harness.faultproxy import Fault, FaultProxy
from s3cache import AsyncS3Cache, S3Cache
from s3cache.integrations._keys import encode_segment, hashed_segment
from s3cache.integrations.langchain import MAX_HASHED_KEY, S3ByteStore, S3LLMCache
from tests.integrations._support import PREFIX, object_keys
from tests.integrations.conftest import MakeAdapter

pytestmark = [pytest.mark.langchain]

SHA256_HEX = "[0-9a-f]{64}"
RESPONSES = ["first", "second", "third", "fourth"]
#: Store keys that are not valid s3cache keys as they are.
AWKWARD_KEYS = ["", ".", "..", "a:b", "a/b", "a//b", " x ", "tab\there", "日本語", "~", ".2E"]


@pytest.fixture
def global_llm_cache() -> Iterator[None]:
    """Whatever a test sets with ``set_llm_cache`` is unset afterwards."""
    yield
    set_llm_cache(None)


class CountingEmbedder(Embeddings):  # type: ignore[misc,unused-ignore]
    """A fake embedder: a vector derived from each text, and a count of the texts it embedded."""

    def __init__(self) -> None:
        self.embedded: list[str] = []

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.embedded.extend(texts)
        return [[float(len(t)), float(sum(map(ord, t)) % 997), 0.5] for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


# -- S3LLMCache --------------------------------------------------------------------------------


def test_llm_cache_is_a_langchain_cache() -> None:
    assert issubclass(S3LLMCache, BaseCache)
    for name in ("alookup", "aupdate", "aclear"):  # native, not BaseCache's executor versions
        assert getattr(S3LLMCache, name) is not getattr(BaseCache, name)


@pytest.mark.usefixtures("global_llm_cache")
def test_fake_llm_second_call_is_the_cached_first_answer(make_adapter: MakeAdapter) -> None:
    set_llm_cache(make_adapter(S3LLMCache))
    llm = FakeListLLM(responses=RESPONSES)
    assert llm.invoke("What is S3?") == "first"
    assert llm.invoke("What is S3?") == "first"  # cached: the model was not called
    assert llm.i == 1
    assert llm.invoke("Another question") == "second"
    assert llm.invoke("What is S3?", stop=["\n"]) == "third"  # other parameters: a miss
    assert llm.invoke("What is S3?", stop=["\n"]) == "third"
    other_model = FakeListLLM(responses=["other"])  # another llm_string for the same prompt
    assert other_model.invoke("What is S3?") == "other"


@pytest.mark.usefixtures("global_llm_cache")
async def test_fake_llm_async_calls_hit_without_an_executor(
    make_adapter: MakeAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = make_adapter(S3LLMCache)
    set_llm_cache(cache)
    for name in ("lookup", "update"):  # the base class would run these in an executor
        monkeypatch.setattr(cache, name, _must_not_be_called)
    llm = FakeListLLM(responses=RESPONSES)
    assert await llm.ainvoke("async question") == "first"
    assert await llm.ainvoke("async question") == "first"
    assert await llm.ainvoke("async question", stop=["."]) == "second"
    assert llm.i == 2


@pytest.mark.usefixtures("global_llm_cache")
def test_fake_chat_model_sync_and_async(make_adapter: MakeAdapter) -> None:
    set_llm_cache(make_adapter(S3LLMCache))
    chat = FakeListChatModel(responses=RESPONSES)
    prompt = [SystemMessage("Be brief."), HumanMessage("Name a bucket.")]
    first = chat.invoke(prompt)
    assert isinstance(first, AIMessage)
    assert first.content == "first"
    assert chat.invoke(prompt).content == "first"
    assert asyncio.run(chat.ainvoke(prompt)).content == "first"  # async reads the same entry
    assert chat.invoke([HumanMessage("Name a bucket.")]).content == "second"
    assert chat.invoke(prompt, stop=["!"]).content == "third"  # another llm_string
    assert asyncio.run(chat.ainvoke(prompt, stop=["?"])).content == "fourth"
    assert asyncio.run(chat.ainvoke(prompt, stop=["?"])).content == "fourth"
    assert chat.i == 0  # wrapped around: exactly four model calls


def test_chat_generations_round_trip_with_their_messages(make_adapter: MakeAdapter) -> None:
    cache = make_adapter(S3LLMCache)
    message = AIMessage(
        "Use a prefix.",
        response_metadata={"model": "m", "finish_reason": "stop"},
        tool_calls=[{"name": "lookup", "args": {"q": "s3"}, "id": "call-1"}],
        usage_metadata={"input_tokens": 3, "output_tokens": 4, "total_tokens": 7},
    )
    generations = [ChatGeneration(message=message, generation_info={"seed": 1})]
    cache.update("prompt", "llm", generations)
    assert cache.lookup("prompt", "llm") == generations
    assert cache.lookup("prompt", "other llm") is None
    assert cache.lookup("other prompt", "llm") is None
    plain = [Generation(text="a"), Generation(text="b", generation_info={"n": 2})]
    asyncio.run(cache.aupdate("p", "llm", plain))
    assert asyncio.run(cache.alookup("p", "llm")) == plain


def test_keys_are_hashes_under_the_prefix_and_ttl_is_written(
    cache_kwargs: dict[str, Any], s3: Any
) -> None:
    bucket = cache_kwargs.pop("bucket")
    cache = S3LLMCache(bucket, prefix="llm", ttl=90, **cache_kwargs)
    try:
        cache.update("prompt", "llm-string", [Generation(text="x")])
    finally:
        cache.close()
    (key,) = object_keys(s3, bucket)
    assert re.fullmatch(f"llm/langchain-llm/{SHA256_HEX}/{SHA256_HEX}", key)
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["Metadata"] == {"s3cache-ttl": "90"}
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert body == dumps([Generation(text="x")]).encode()


def test_clear_removes_only_the_llm_entries(make_adapter: MakeAdapter) -> None:
    llm_cache = make_adapter(S3LLMCache)
    store = S3ByteStore(cache=llm_cache.cache)  # the same core, another folder
    llm_cache.update("p", "l", [Generation(text="x")])
    asyncio.run(llm_cache.aupdate("p2", "l", [Generation(text="y")]))
    store.mset([("kept", b"bytes")])
    S3Cache._from_core(llm_cache.cache).set("own:key", "kept")
    llm_cache.clear()
    assert llm_cache.lookup("p", "l") is None
    assert store.mget(["kept"]) == [b"bytes"]
    assert S3Cache._from_core(llm_cache.cache).get("own:key") == "kept"
    llm_cache.update("p", "l", [Generation(text="x")])
    asyncio.run(llm_cache.aclear())
    assert llm_cache.lookup("p", "l") is None
    with pytest.raises(TypeError, match="takes no options"):
        llm_cache.clear(asynchronous=True)


def test_constructor_tags_let_one_invalidate_drop_a_prompt_version(
    make_adapter: MakeAdapter,
) -> None:
    """Every entry an S3LLMCache (or S3ByteStore) writes carries its constructor's tags: one
    ``invalidate`` of a tag drops them all, and an adapter with other tags keeps its own."""
    v3 = make_adapter(S3LLMCache, tags=["prompt:v3", "model:small"])
    v4 = make_adapter(S3LLMCache, tags=["prompt:v4"])
    store = make_adapter(S3ByteStore, tags=["prompt:v3"])
    v3.update("p", "l", [Generation(text="old")])
    asyncio.run(v3.aupdate("p2", "l", [Generation(text="old2")]))
    v4.update("q", "l", [Generation(text="kept")])
    store.mset([("vec", b"bytes")])
    assert v3.lookup("p", "l") == [Generation(text="old")]
    facade = S3Cache._from_core(v3.cache)
    time.sleep(math.floor(time.time()) + 1.01 - time.time())  # S3 dates: the next second
    assert facade.invalidate("prompt:v3") is True
    assert v3.lookup("p", "l") is None
    assert asyncio.run(v3.alookup("p2", "l")) is None
    assert store.mget(["vec"]) == [None]
    assert v4.lookup("q", "l") == [Generation(text="kept")]
    with pytest.raises(ValueError, match="tag"):
        make_adapter(S3LLMCache, tags=["bad tag"])


def test_an_entry_that_cannot_be_revived_is_a_logged_miss(
    make_adapter: MakeAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    cache = make_adapter(S3LLMCache)
    core = S3Cache._from_core(cache.cache)
    cache.update("p", "l", [Generation(text="x")])
    (key,) = core.iter_keys()
    for body in (b"not json", b'{"lc": 1}', dumps([HumanMessage("not a generation")]).encode()):
        core.set(key, body)
        with caplog.at_level(logging.WARNING, logger="s3cache"):
            assert cache.lookup("p", "l") is None
        assert "could not be revived" in caplog.text
        caplog.clear()


def test_a_disallowed_class_is_never_built(make_adapter: MakeAdapter) -> None:
    """A tampered entry naming another class (here a prompt) is refused, not constructed."""
    cache = make_adapter(S3LLMCache)
    core = S3Cache._from_core(cache.cache)
    cache.update("p", "l", [Generation(text="x")])
    (key,) = core.iter_keys()
    payload = dumps([ChatPromptTemplate.from_messages([("human", "{question}")])])
    assert isinstance(loads(payload, allowed_objects="core")[0], ChatPromptTemplate)
    core.set(key, payload.encode())
    assert cache.lookup("p", "l") is None
    core.set(key, dumps([FakeListChatModel(responses=["x"])]).encode())  # not serialisable
    assert cache.lookup("p", "l") is None


def test_update_takes_only_generations(make_adapter: MakeAdapter) -> None:
    cache = make_adapter(S3LLMCache)
    with pytest.raises(TypeError, match="Generation"):
        cache.update("p", "l", ["not a generation"])
    assert list(S3Cache._from_core(cache.cache).iter_keys()) == []


# -- S3ByteStore -------------------------------------------------------------------------------


def test_byte_store_is_a_langchain_byte_store() -> None:
    assert issubclass(S3ByteStore, BaseStore)


def test_byte_store_sync_round_trip(make_adapter: MakeAdapter) -> None:
    store = make_adapter(S3ByteStore)
    pairs = [(key, f"value of {key!r}".encode()) for key in AWKWARD_KEYS]
    store.mset(pairs)
    assert store.mget([*AWKWARD_KEYS, "absent"]) == [v for _, v in pairs] + [None]
    assert sorted(store.yield_keys()) == sorted(AWKWARD_KEYS)
    assert sorted(store.yield_keys(prefix=".")) == [".", "..", ".2E"]
    assert sorted(store.yield_keys(prefix="a")) == ["a//b", "a/b", "a:b"]
    assert list(store.yield_keys(prefix="a/")) == ["a//b", "a/b"]
    assert list(store.yield_keys(prefix="none")) == []
    store.mdelete(["a:b", "absent", "."])
    assert store.mget(["a:b", ".", ".."]) == [None, None, b"value of '..'"]
    assert len(list(store.yield_keys())) == len(AWKWARD_KEYS) - 2


async def test_byte_store_async_round_trip(make_adapter: MakeAdapter) -> None:
    store = make_adapter(S3ByteStore)
    await store.amset([("k:1", b"\x00\xff"), ("k:2", bytearray(b"two")), ("j", memoryview(b"j"))])
    assert await store.amget(["k:1", "k:2", "j", "nope"]) == [b"\x00\xff", b"two", b"j", None]
    assert sorted([k async for k in store.ayield_keys()]) == ["j", "k:1", "k:2"]
    assert sorted([k async for k in store.ayield_keys(prefix="k:")]) == ["k:1", "k:2"]
    await store.amdelete(["k:1", "nope"])
    assert [k async for k in store.ayield_keys(prefix="k")] == ["k:2"]


#: Keys whose written-out object key would pass S3's 1,024 bytes, and lone surrogates.
LONG_KEYS = [
    "日" * 120,  # 360 UTF-8 bytes, 1,080 characters written out
    "x" * 1100,
    "x" * 1099 + "y",
    "x" * 500 + "é" * 150,
    "lone \ud800 surrogate",
    "\udfff" * 40,
]


def test_any_string_is_a_key_long_ones_hashed(
    make_adapter: MakeAdapter, s3: Any, cache_kwargs: dict[str, Any]
) -> None:
    store = make_adapter(S3ByteStore)
    pairs = [(key, f"value {i}".encode()) for i, key in enumerate(LONG_KEYS)]
    store.mset(pairs)
    assert store.mget([*LONG_KEYS, "x" * 1101]) == [v for _, v in pairs] + [None]
    assert sorted(store.yield_keys()) == sorted(LONG_KEYS)
    stored = set(object_keys(s3, cache_kwargs["bucket"]))
    for key in LONG_KEYS:
        written_out = f"{PREFIX}/langchain-bytes/{encode_segment(key)}"
        hashed = f"{PREFIX}/langchain-bytes/{hashed_segment(key)}"
        assert (hashed in stored) is (len(written_out) > 1024)
        assert (written_out in stored) is (len(written_out) <= 1024)
    head = s3.head_object(Bucket=cache_kwargs["bucket"], Key=f"{PREFIX}/langchain-bytes/"
                          + hashed_segment("日" * 120))  # fmt: skip
    assert head["Metadata"]["s3cache-key"] == encode_segment("日" * 120)
    store.mdelete(LONG_KEYS[:2])
    assert store.mget(LONG_KEYS[:3]) == [None, None, b"value 2"]
    assert sorted(store.yield_keys()) == sorted(LONG_KEYS[2:])


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("x", ["x" * 1100, "x" * 1099 + "y", "x" * 500 + "é" * 150, "x" * 200]),
        ("x" * 150, ["x" * 1100, "x" * 1099 + "y", "x" * 500 + "é" * 150, "x" * 200]),
        ("x" * 1099, ["x" * 1100, "x" * 1099 + "y"]),  # past the 128 characters a hash keeps
        ("x" * 1099 + "y", ["x" * 1099 + "y"]),
        ("x" * 500 + "é", ["x" * 500 + "é" * 150]),
        ("日", ["日" * 120, "日本"]),
        ("y", []),
    ],
)
async def test_yield_keys_by_prefix_is_exact_for_hashed_keys(
    make_adapter: MakeAdapter, prefix: str, expected: list[str]
) -> None:
    """Hashed keys are matched by their original key, as written-out ones are."""
    store = make_adapter(S3ByteStore)
    keys = [*LONG_KEYS, "x" * 200, "日本", "other"]
    await store.amset([(k, b"1") for k in keys])
    assert sorted([k async for k in store.ayield_keys(prefix=prefix)]) == sorted(expected)
    assert sorted(store.yield_keys(prefix=prefix)) == sorted(expected)


def test_a_hashed_object_that_does_not_name_its_key_is_not_listed(
    make_adapter: MakeAdapter, s3: Any, cache_kwargs: dict[str, Any]
) -> None:
    store = make_adapter(S3ByteStore)
    store.mset([("z" * 1100, b"1")])
    folder = f"{PREFIX}/langchain-bytes/"
    bucket = cache_kwargs["bucket"]
    planted = {  # a hashed name whose metadata names another key, or none
        hashed_segment("w" * 1100): encode_segment("q" * 1100),
        hashed_segment("v" * 1100): "",
    }
    for segment, original in planted.items():
        metadata = {"s3cache-key": original} if original else {}
        s3.put_object(Bucket=bucket, Key=folder + segment, Body=b"?", Metadata=metadata)
    assert list(store.yield_keys()) == ["z" * 1100]


def test_the_longest_key_that_fits_in_metadata(make_adapter: MakeAdapter) -> None:
    store = make_adapter(S3ByteStore)
    longest = "k" * MAX_HASHED_KEY
    store.mset([(longest, b"fits")])
    assert list(store.yield_keys()) == [longest]
    with pytest.raises(ValueError, match="hash such keys yourself"):
        store.mset([(longest + "k", b"too long")])
    assert store.mget([longest, longest + "k"]) == [b"fits", None]


@pytest.mark.parametrize("fast_path", [True, False])
async def test_a_hashed_key_whose_put_answer_was_lost_is_stored_with_its_original(
    cache_kwargs: dict[str, Any], proxy: FaultProxy, fast_path: bool
) -> None:
    """The server stores the PUT but its answer is cut: the retry stores it again, metadata
    included, on both request paths."""
    options = {**cache_kwargs, "endpoint_url": proxy.endpoint, "prefix": PREFIX}
    store = S3ByteStore(options.pop("bucket"), on_error="raise", fast_path=fast_path, **options)
    try:
        proxy.set_fault(Fault.RESET_BODY, times=1, methods={"PUT"})
        await store.amset([("日" * 120, b"value")])
        assert proxy.faults[Fault.RESET_BODY] == 1
        assert await store.amget(["日" * 120]) == [b"value"]
        assert [k async for k in store.ayield_keys(prefix="日")] == ["日" * 120]
    finally:
        await store.aclose()


def test_values_are_stored_raw_with_an_optional_ttl(cache_kwargs: dict[str, Any], s3: Any) -> None:
    bucket = cache_kwargs.pop("bucket")
    store = S3ByteStore(bucket, prefix="emb", ttl=120, **cache_kwargs)
    try:
        store.mset([("model:abc", b"\x01\x02raw")])
    finally:
        store.close()
    assert object_keys(s3, bucket) == ["emb/langchain-bytes/model.3Aabc"]
    got = s3.get_object(Bucket=bucket, Key="emb/langchain-bytes/model.3Aabc")
    assert got["Body"].read() == b"\x01\x02raw"
    assert got["ContentType"] == "application/octet-stream"
    assert got["Metadata"] == {"s3cache-ttl": "120"}


def test_a_signing_key_reaches_the_cache_and_forged_entries_are_misses(
    cache_kwargs: dict[str, Any], s3: Any
) -> None:
    """Both classes take signing_key= with the other AsyncS3Cache options: what they write is
    signed, and what someone else planted in the bucket is never returned."""
    bucket = cache_kwargs.pop("bucket")
    key = b"s" * 32
    store = S3ByteStore(bucket, prefix="signed", signing_key=key, **cache_kwargs)
    llm_cache = S3LLMCache(bucket, prefix="signed", signing_key=key, **cache_kwargs)
    try:
        store.mset([("genuine", b"real")])
        s3.put_object(Bucket=bucket, Key="signed/langchain-bytes/planted", Body=b"forged")
        assert store.mget(["genuine", "planted"]) == [b"real", None]
        llm_cache.update("prompt", "llm", [Generation(text="real")])
        (written,) = [k for k in object_keys(s3, bucket) if "/langchain-llm/" in k]
        forged = dumps([Generation(text="forged")]).encode()
        s3.put_object(Bucket=bucket, Key=written, Body=forged, ContentType="application/json")
        assert llm_cache.lookup("prompt", "llm") is None
        assert store.cache.stats().unverified == {"unsigned": 1}
        assert llm_cache.cache.stats().unverified == {"unsigned": 1}
    finally:
        store.close()
        llm_cache.close()
    head = s3.head_object(Bucket=bucket, Key="signed/langchain-bytes/genuine")
    assert head["Metadata"]["s3cache-sig"].startswith("v1:")


def test_bad_values_and_keys_raise_before_any_request(make_adapter: MakeAdapter) -> None:
    store = make_adapter(S3ByteStore)
    with pytest.raises(TypeError, match="values must be bytes"):
        store.mset([("ok", b"fine"), ("bad", "text")])
    with pytest.raises(TypeError, match="key must be a str"):
        store.mget([1])
    with pytest.raises(ValueError, match="too long: written out it is 2,400 characters"):
        store.mset([("ok", b"fine"), ("é" * 400, b"x")])  # its original cannot fit in metadata
    with pytest.raises(TypeError, match="prefix must be a str"):
        list(store.yield_keys(prefix=b"k"))
    assert list(store.yield_keys()) == []


def test_yield_keys_skips_objects_the_store_did_not_write(
    make_adapter: MakeAdapter, s3: Any, cache_kwargs: dict[str, Any]
) -> None:
    store = make_adapter(S3ByteStore)
    store.mset([("mine", b"1")])
    for foreign in ("langchain-bytes/a.zz", "langchain-bytes/x/y", "langchain-bytesx", "other"):
        s3.put_object(Bucket=cache_kwargs["bucket"], Key=f"{PREFIX}/{foreign}", Body=b"?")
    assert list(store.yield_keys()) == ["mine"]


async def test_batches_run_concurrently_and_bounded(cache_kwargs: dict[str, Any]) -> None:
    in_flight = 0
    peak = 0

    async def before_send(**_: Any) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)  # hold the slot so that callers pile up behind the bound

    async def after_call(**_: Any) -> None:
        nonlocal in_flight
        in_flight -= 1

    from aiobotocore.session import AioSession

    session = AioSession()
    session.register("before-send.s3", before_send)
    session.register("after-call.s3", after_call)
    async with AsyncS3Cache(**cache_kwargs, session=session, max_concurrency=4) as core:
        store = S3ByteStore(cache=core)
        keys = [f"k{i}" for i in range(24)]
        peaks = []
        for batch in (
            store.amset([(k, b"v") for k in keys]),
            store.amget(keys),
            store.amdelete(keys),
        ):
            peak = 0
            await batch
            peaks.append(peak)
    assert all(1 < p <= 4 for p in peaks), peaks


def test_cached_embeddings_call_the_embedder_once_per_text(make_adapter: MakeAdapter) -> None:
    pytest.importorskip("langchain_classic")
    from langchain_classic.embeddings import CacheBackedEmbeddings

    store = make_adapter(S3ByteStore)
    embedder = CountingEmbedder()
    embeddings = CacheBackedEmbeddings.from_bytes_store(
        embedder, store, namespace="fake-model:v1", key_encoder="sha256"
    )
    texts = ["S3 is an object store.", "Caches save calls.", "S3 is an object store."]
    first = embeddings.embed_documents(texts)
    assert len(embedder.embedded) == 3  # duplicates are embedded, then stored once
    again = embeddings.embed_documents(texts)
    assert len(embedder.embedded) == 3  # all from the store: zero embedder calls
    assert again == first
    assert asyncio.run(embeddings.aembed_documents(texts[:2])) == first[:2]
    assert len(embedder.embedded) == 3
    listed = list(store.yield_keys(prefix="fake-model:v1"))
    assert len(listed) == 2
    assert all(re.fullmatch(f"fake-model:v1{SHA256_HEX}", key) for key in listed)


# -- across processes --------------------------------------------------------------------------


@pytest.mark.usefixtures("global_llm_cache")
def test_entries_written_by_another_process_are_hits(
    cache_kwargs: dict[str, Any], run_python: Any
) -> None:
    pytest.importorskip("langchain_classic")
    from langchain_classic.embeddings import CacheBackedEmbeddings

    out = run_python(
        """
        from langchain_classic.embeddings import CacheBackedEmbeddings
        from langchain_core.globals import set_llm_cache
        from langchain_core.language_models.fake import FakeListLLM
        from s3cache.integrations.langchain import S3ByteStore, S3LLMCache
        from tests.integrations.test_langchain import RESPONSES, CountingEmbedder

        llm_cache = S3LLMCache(BUCKET, **OPTIONS)
        set_llm_cache(llm_cache)
        print(FakeListLLM(responses=RESPONSES).invoke("asked in another process"))
        store = S3ByteStore(BUCKET, **OPTIONS)
        embedder = CountingEmbedder()
        CacheBackedEmbeddings.from_bytes_store(
            embedder, store, namespace="m", key_encoder="sha256"
        ).embed_documents(["shared text"])
        print(len(embedder.embedded))
        llm_cache.close()
        store.close()
        """
    )
    assert out.split() == ["first", "1"]
    bucket = cache_kwargs.pop("bucket")
    options = {**cache_kwargs, "prefix": PREFIX}
    llm_cache = S3LLMCache(bucket, **options)
    store = S3ByteStore(bucket, **options)
    try:
        set_llm_cache(llm_cache)
        llm = FakeListLLM(responses=RESPONSES)  # the same model parameters: the same llm_string
        assert llm.invoke("warm-up, a miss here") == "first"
        assert llm.invoke("asked in another process") == "first"  # a miss would say "second"
        embedder = CountingEmbedder()
        embeddings = CacheBackedEmbeddings.from_bytes_store(
            embedder, store, namespace="m", key_encoder="sha256"
        )
        assert len(embeddings.embed_documents(["shared text"])[0]) == 3
        assert embedder.embedded == []
    finally:
        llm_cache.close()
        store.close()


# -- construction ------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [S3LLMCache, S3ByteStore])
def test_construction_is_validated_before_any_request(cls: type[Any]) -> None:
    with pytest.raises(TypeError, match="needs a bucket"):
        cls()
    with pytest.raises(TypeError, match="either cache= or connection arguments"):
        cls("bucket", cache=S3Cache("bucket"))
    with pytest.raises(TypeError, match="cache must be an AsyncS3Cache or an S3Cache"):
        cls(cache="bucket")
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) s3_path"):
        cls("bucket", s3_path="x")
    with pytest.raises(ValueError, match="ttl must be positive"):
        cls("bucket", ttl=0)
    with pytest.raises(ValueError, match="not a valid bucket name"):
        cls("b")
    with pytest.raises(ValueError, match="sse_kms_key_id goes with"):
        cls("bucket", sse_kms_key_id="alias/k")
    company = cls("bucket", sse="aws:kms", expected_bucket_owner="111122223333", checksum="crc32")
    options = company.cache.transport.options
    assert (options.sse, options.expected_bucket_owner, options.checksum) == (
        "aws:kms",
        "111122223333",
        "crc32",
    )


@pytest.mark.parametrize("cls", [S3LLMCache, S3ByteStore])
async def test_closing_leaves_a_shared_cache_open(
    cls: type[Any], cache_kwargs: dict[str, Any]
) -> None:
    async with AsyncS3Cache(**cache_kwargs) as core:
        adapter = cls(cache=core)
        await adapter.aclose()
        adapter.close()
        assert await core.get("still-open") is None
        assert adapter.cache is core
        assert repr(adapter).startswith(f"{cls.__name__}(AsyncS3Cache(bucket=")
    bucket = cache_kwargs.pop("bucket")
    owned = cls(bucket, **cache_kwargs)
    await owned.aclose()
    assert "closed" in repr(owned)


def _must_not_be_called(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("a sync method was called from an async one")
