"""S3NodeCache with the real LangGraph, offline, against moto's S3 server.

Run with ``nox -s langchain`` (or ``pytest -m langchain``); skipped where langgraph is missing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, TypedDict

import pytest

pytest.importorskip("langgraph")

from langgraph.cache.base import BaseCache
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import CachePolicy

from s3cache import AsyncS3Cache, S3Cache
from s3cache.integrations._keys import encode_segment, hashed_segment
from s3cache.integrations.langgraph import S3NodeCache
from tests.integrations._support import PREFIX, object_keys, wait_until
from tests.integrations.conftest import MakeAdapter

pytestmark = [pytest.mark.langchain]

NODE = "expensive"
#: The namespace LangGraph gives this module's node (a tuple of str, as every namespace).
NODE_NAMESPACE = ("__pregel_ns_writes", f"{__name__}.expensive", NODE)


class State(TypedDict, total=False):
    question: str
    answer: str


#: Questions the node has run for, in this process.
RUNS: list[str] = []


def expensive(state: State) -> State:
    """A node whose answer differs on every run, so a cached answer shows as a repeat."""
    RUNS.append(state["question"])
    return {"answer": f"{state['question']} #{len(RUNS)} {time.time_ns()}"}


def build_graph(cache: BaseCache[Any], ttl: int | None = None) -> CompiledStateGraph[Any]:
    graph = StateGraph(State)
    graph.add_node(NODE, expensive, cache_policy=CachePolicy(ttl=ttl))
    graph.add_edge(START, NODE)
    graph.add_edge(NODE, END)
    return graph.compile(cache=cache)


@pytest.fixture(autouse=True)
def _no_runs_yet() -> None:
    RUNS.clear()


# -- with a graph ------------------------------------------------------------------------------


def test_second_invoke_is_cached_until_the_ttl_passes(cache_kwargs: dict[str, Any]) -> None:
    bucket = cache_kwargs.pop("bucket")
    cache: S3NodeCache = S3NodeCache(bucket, prefix=PREFIX, on_error="raise", **cache_kwargs)
    app = build_graph(cache, ttl=2)
    first = app.invoke({"question": "q"})
    written = time.time()
    assert app.invoke({"question": "q"}) == first  # within the ttl: the node did not run
    assert RUNS == ["q"]
    other = app.invoke({"question": "other"})
    assert other["answer"].startswith("other #2")
    wait_until(written + 2 + 1)  # entries may expire a second early, never late
    again = app.invoke({"question": "q"})
    cache.close()
    assert again != first
    assert RUNS == ["q", "other", "q"]


def test_clearing_the_nodes_namespace_makes_it_run_again(make_adapter: MakeAdapter) -> None:
    cache = make_adapter(S3NodeCache)
    app = build_graph(cache)
    first = app.invoke({"question": "q"})
    assert app.invoke({"question": "q"}) == first
    folder = "langgraph-nodes/" + "/".join(encode_segment(part) for part in NODE_NAMESPACE)
    (listed,) = S3Cache._from_core(cache.cache).iter_keys()
    assert listed.startswith(folder + "/")
    app.clear_cache(nodes=[NODE])  # LangGraph clears the node's namespace through the cache
    assert app.invoke({"question": "q"}) != first
    assert RUNS == ["q", "q"]
    cache.clear()
    app.invoke({"question": "q"})
    assert RUNS == ["q", "q", "q"]


async def test_async_invoke_and_clear(make_adapter: MakeAdapter) -> None:
    app = build_graph(make_adapter(S3NodeCache), ttl=60)
    first = await app.ainvoke({"question": "a"})
    assert await app.ainvoke({"question": "a"}) == first
    await app.aclear_cache()
    assert await app.ainvoke({"question": "a"}) != first
    assert RUNS == ["a", "a"]


# -- the cache's own interface ---------------------------------------------------------------


def test_namespaces_are_folders_and_values_keep_their_type_tag(
    make_adapter: MakeAdapter, s3: Any, cache_kwargs: dict[str, Any]
) -> None:
    cache = make_adapter(S3NodeCache)
    cache.set({(("ns", "a.b"), "k:1"): ({"x": [1, 2]}, 60), ((), "top"): (b"raw", None)})
    bucket = cache_kwargs["bucket"]
    assert object_keys(s3, bucket) == [
        f"{PREFIX}/langgraph-nodes/ns/a.2Eb/k.3A1",
        f"{PREFIX}/langgraph-nodes/top",
    ]
    got = s3.get_object(Bucket=bucket, Key=f"{PREFIX}/langgraph-nodes/ns/a.2Eb/k.3A1")
    tag, data = JsonPlusSerializer().dumps_typed({"x": [1, 2]})
    assert got["Body"].read() == tag.encode() + b":" + data
    assert got["Metadata"] == {"s3cache-ttl": "60"}
    assert s3.head_object(Bucket=bucket, Key=f"{PREFIX}/langgraph-nodes/top")["Metadata"] == {}
    assert cache.get([(("ns", "a.b"), "k:1"), ((), "top"), (("ns",), "absent")]) == {
        (("ns", "a.b"), "k:1"): {"x": [1, 2]},
        ((), "top"): b"raw",
    }


async def test_async_get_set_with_per_entry_ttls(make_adapter: MakeAdapter, s3: Any) -> None:
    cache = make_adapter(S3NodeCache)
    await cache.aset(
        {
            (("n",), "short"): ("s", 30),
            (("n",), "long"): (["l"], 3600),
            (("n",), "none"): (None, None),
        }
    )
    assert await cache.aget([(("n",), "short"), (("n",), "long"), (("n",), "none")]) == {
        (("n",), "short"): "s",
        (("n",), "long"): ["l"],
        (("n",), "none"): None,
    }
    core = S3Cache._from_core(cache.cache)
    ttls = {
        key: s3.head_object(Bucket=cache.cache.bucket, Key=f"{PREFIX}/{key}")["Metadata"]
        for key in core.iter_keys()
    }
    assert ttls == {
        "langgraph-nodes/n/short": {"s3cache-ttl": "30"},
        "langgraph-nodes/n/long": {"s3cache-ttl": "3600"},
        "langgraph-nodes/n/none": {},
    }


async def test_clear_is_per_namespace_folder(make_adapter: MakeAdapter) -> None:
    cache = make_adapter(S3NodeCache)
    entries = {
        (("a",), "k"): 1,
        (("a", "k"), "x"): 2,  # nested inside ("a",): goes with it
        (("ab",), "k"): 3,  # a sibling that shares the letters, not the folder
        (("b",), "k"): 4,
    }
    await cache.aset({key: (value, None) for key, value in entries.items()})
    await cache.aclear([("a",)])
    assert await cache.aget(list(entries)) == {(("ab",), "k"): 3, (("b",), "k"): 4}
    cache.clear([("b",), ("b",), ("missing",)])
    assert cache.get(list(entries)) == {(("ab",), "k"): 3}
    S3Cache._from_core(cache.cache).set("beside", "kept")
    await cache.aclear()
    assert cache.get(list(entries)) == {}
    assert list(S3Cache._from_core(cache.cache).iter_keys()) == ["beside"]


async def test_long_and_surrogate_keys_and_namespaces_round_trip_and_clear(
    make_adapter: MakeAdapter, s3: Any, cache_kwargs: dict[str, Any]
) -> None:
    """Keys too long to be written out are hashed in their namespace's folder, so clearing the
    namespace takes them too; lone surrogates are keys like any other."""
    cache = make_adapter(S3NodeCache)
    long_ns = ("n" * 600,)
    entries = {
        (("a",), "日" * 120): 1,
        (("a", "\ud800"), "k" * 1100): 2,
        (long_ns, "x" * 450): 3,  # a 600-character folder, the key hashed within it
        (("b",), "\udfff"): 4,
    }
    await cache.aset({key: (value, None) for key, value in entries.items()})
    assert await cache.aget(list(entries)) == entries
    stored = set(object_keys(s3, cache_kwargs["bucket"]))
    folder = f"{PREFIX}/langgraph-nodes"
    assert f"{folder}/a/{hashed_segment('日' * 120)}" in stored
    assert f"{folder}/{'n' * 600}/{hashed_segment('x' * 450)}" in stored
    assert f"{folder}/b/{encode_segment(chr(0xDFFF))}" in stored
    await cache.aclear([("a",), long_ns])
    assert cache.get(list(entries)) == {(("b",), "\udfff"): 4}


def test_a_namespace_too_long_for_any_key_is_refused_and_clears_nothing(
    make_adapter: MakeAdapter,
) -> None:
    cache = make_adapter(S3NodeCache)
    cache.set({(("b",), "k"): (1, None)})
    too_long = ("n" * 500, "m" * 520)  # a 1,037-character folder, over S3's 1,024 bytes
    with pytest.raises(ValueError, match="LangGraph namespace is too long"):
        cache.set({(too_long, "k"): (1, None)})
    with pytest.raises(ValueError, match="LangGraph namespace is too long"):
        cache.get([(too_long, "k")])
    cache.clear([too_long])  # nothing can be stored there: nothing to do, no error
    almost = ("n" * 500, "m" * 499)  # room for a key of one character, not for a hashed one
    cache.set({(almost, "k"): (2, None)})
    with pytest.raises(ValueError, match="LangGraph namespace is too long"):
        cache.set({(almost, "kk" * 10): (2, None)})
    assert cache.get([(almost, "k")]) == {(almost, "k"): 2}
    cache.clear([almost])
    assert cache.get([(almost, "k")]) == {}
    assert cache.get([(("b",), "k")]) == {(("b",), "k"): 1}


def test_unreadable_entries_are_logged_misses(
    make_adapter: MakeAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    cache = make_adapter(S3NodeCache)
    core = S3Cache._from_core(cache.cache)
    cache.set({(("n",), "k"): ("value", None)})
    for stored in (b"no tag", b"msgpack:\xc1", "not bytes"):
        core.set("langgraph-nodes/n/k", stored)
        with caplog.at_level(logging.WARNING, logger="s3cache"):
            assert cache.get([(("n",), "k")]) == {}
        assert "unreadable" in caplog.text
        caplog.clear()


def test_bad_input_raises_before_any_request(make_adapter: MakeAdapter) -> None:
    cache = make_adapter(S3NodeCache)
    with pytest.raises(TypeError, match="a namespace is a tuple of str"):
        cache.get([("ns", "k")])
    with pytest.raises(ValueError, match="ttl must be at least 1 second"):
        cache.set({(("n",), "k"): ("v", 0.5)})
    with pytest.raises(TypeError, match="key must be a str"):
        cache.clear([(1,)])
    assert list(S3Cache._from_core(cache.cache).iter_keys()) == []


# -- across processes --------------------------------------------------------------------------


def test_a_node_result_cached_by_another_process_is_a_hit(
    cache_kwargs: dict[str, Any], run_python: Any
) -> None:
    out = run_python(
        f"""
        from s3cache.integrations.langgraph import S3NodeCache
        from {__name__} import build_graph

        cache = S3NodeCache(BUCKET, **OPTIONS)
        print(build_graph(cache).invoke({{"question": "shared"}})["answer"])
        cache.close()
        """
    )
    bucket = cache_kwargs.pop("bucket")
    cache: S3NodeCache = S3NodeCache(bucket, prefix=PREFIX, **cache_kwargs)
    try:
        assert build_graph(cache).invoke({"question": "shared"})["answer"] == out.strip()
        assert RUNS == []
    finally:
        cache.close()


# -- construction ------------------------------------------------------------------------------


def test_construction_and_closing(cache_kwargs: dict[str, Any]) -> None:
    assert issubclass(S3NodeCache, BaseCache)
    with pytest.raises(TypeError, match="either cache= or connection arguments"):
        S3NodeCache("bucket", cache=S3Cache("bucket"))
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        S3NodeCache("bucket", namespace="x")
    company: S3NodeCache = S3NodeCache(
        "bucket", sse_customer_key=bytes(32), request_payer="requester"
    )
    options = company.cache.transport.options
    assert (options.sse_customer_key, options.request_payer) == (bytes(32), "requester")
    serde = JsonPlusSerializer(pickle_fallback=True)
    core = AsyncS3Cache(**cache_kwargs)
    shared: S3NodeCache = S3NodeCache(cache=core, serde=serde)
    assert shared.serde is serde
    assert shared.cache is core
    shared.close()
    assert S3Cache._from_core(core).get("open") is None  # a shared cache stays open
    S3Cache._from_core(core).close()
    bucket = cache_kwargs.pop("bucket")
    owned: S3NodeCache = S3NodeCache(bucket, **cache_kwargs)
    assert isinstance(owned.serde, JsonPlusSerializer)
    asyncio.run(owned.aclose())
    assert repr(owned).endswith(", closed))")
