"""The sync facade: same surface as the core, and safe from threads, loops, forks and exit."""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from s3cache import (
    AsyncS3Cache,
    CacheClosedError,
    S3Cache,
    _loop,
)
from s3cache._sync import _FromCore
from tests.conftest import CREDENTIALS

MISSING = object()


@pytest.fixture
def facade(cache_kwargs: dict[str, Any]) -> Iterator[S3Cache]:
    with S3Cache(**cache_kwargs, prefix="sync", on_error="raise") as cache:
        yield cache


def _public(cls: type) -> dict[str, Any]:
    return {name: getattr(cls, name) for name in dir(cls) if not name.startswith("_")}


#: The core's members the facade leaves out: ``transport`` is async (tools built on the cache
#: use the core's; a sync caller would get coroutines to await on no loop of theirs).
ASYNC_ONLY = {"transport"}


def test_public_surfaces_are_equal() -> None:
    sync, core = _public(S3Cache), _public(AsyncS3Cache)
    assert sorted(sync) == sorted(set(core) - ASYNC_ONLY)
    for name in ASYNC_ONLY:
        del core[name]
    assert inspect.signature(S3Cache.__init__).parameters.keys() == (
        inspect.signature(AsyncS3Cache.__init__).parameters.keys()
    )
    for name, member in core.items():
        if isinstance(member, property):
            assert isinstance(sync[name], property | _FromCore), name
            assert sync[name].__doc__ == member.__doc__, name
            continue
        core_sig, sync_sig = inspect.signature(member), inspect.signature(sync[name])
        assert list(core_sig.parameters.values()) == list(sync_sig.parameters.values()), name
        is_coroutine = inspect.iscoroutinefunction(member)
        assert is_coroutine is (
            name not in {"stats", "cached", "lock", "iter_keys", "disabled", "from_url"}
        ), name
        assert not inspect.iscoroutinefunction(sync[name]), f"S3Cache.{name} must block"


def test_constructor_defaults_are_the_cores() -> None:
    core = inspect.signature(AsyncS3Cache.__init__).parameters
    sync = inspect.signature(S3Cache.__init__).parameters
    assert [(p.name, p.default, p.kind) for p in core.values()] == [
        (p.name, p.default, p.kind) for p in sync.values()
    ]


def test_round_trip_and_batch(facade: S3Cache) -> None:
    facade.set("a", {"x": 1})
    facade.set_many({"b": None, "c": b"raw"}, ttl=60)
    assert facade.get("a") == {"x": 1}
    assert facade.get("b", MISSING) is None
    assert facade.get("zz", MISSING) is MISSING
    assert facade.get_many(["a", "b", "c", "zz"]) == {"a": {"x": 1}, "b": None, "c": b"raw"}
    assert facade.exists("c")
    assert facade.delete("a") is True
    assert facade.delete_many(["b", "c", "zz"]) == 2
    assert facade.clear() == 0
    assert facade.check().conditional_writes is True
    stats = facade.stats()
    assert (stats.hits, stats.sets) == (5, 3)
    assert facade.prefix == "sync/"
    assert repr(facade).startswith("S3Cache(")


def test_iter_keys_and_clear_under_a_sub_prefix(
    facade: S3Cache,
    two_per_page: Callable[[AsyncS3Cache], list[str | None]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked = two_per_page(facade._core)
    monkeypatch.setattr(_loop, "iterate", functools.partial(_loop.iterate, batch=3))
    facade.set_many({f"a:{i}": i for i in range(7)} | {"b": 0})
    listed = facade.iter_keys("a:")
    assert [next(listed) for _ in range(4)] == ["a/0", "a/1", "a/2", "a/3"]
    listed.close()  # stops the listing on the private loop
    assert asked == [None, "1", "2"]  # two hops of three keys, never the fourth page
    assert list(facade.iter_keys("a/")) == [f"a/{i}" for i in range(7)]
    monkeypatch.undo()  # real pages: the fake ones shift as clear deletes
    assert facade.clear("a:") == 7
    assert list(facade.iter_keys()) == ["b"]


def test_bad_input_raises_in_the_callers_thread(facade: S3Cache) -> None:
    with pytest.raises(ValueError, match="empty"):
        facade.get("")
    with pytest.raises(TypeError):
        facade.set("k", object())
    with pytest.raises(ValueError, match="ttl"):
        facade.set("k", 1, ttl=-1)


def test_an_unknown_option_is_named_before_any_request(facade: S3Cache) -> None:
    """The facade forwards its options to the core, whose signature rejects a misspelt one."""
    before = dict(facade.stats().requests)
    with pytest.raises(TypeError, match="stale_tll"):
        facade.get_or_set("k", lambda: 1, 60, stale_tll=5)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="bogus"):
        facade.cached(60, bogus=1)  # type: ignore[call-arg]
    assert dict(facade.stats().requests) == before


def test_core_attributes_are_read_only(facade: S3Cache) -> None:
    assert (facade.bucket, facade.prefix) == (facade._core.bucket, facade._core.prefix)
    with pytest.raises(AttributeError, match="read-only"):
        facade.bucket = "other"  # type: ignore[assignment]


def test_many_threads_at_once(facade: S3Cache) -> None:
    threads = 32
    barrier = threading.Barrier(threads)

    def work(i: int) -> Any:
        barrier.wait()
        facade.set(f"t{i}", {"thread": i})
        return facade.get(f"t{i}")

    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(work, range(threads)))
    assert results == [{"thread": i} for i in range(threads)]
    assert facade.stats().hits == threads


async def test_called_from_sync_code_inside_a_running_loop(facade: S3Cache) -> None:
    """A sync library called from async code: blocks this loop briefly, never deadlocks."""
    assert asyncio.get_running_loop().is_running()
    facade.set("inside", "loop")
    assert facade.get("inside") == "loop"


def test_calling_from_the_private_loop_thread_raises(facade: S3Cache) -> None:
    async def misuse() -> Any:
        return facade.get("k")

    with pytest.raises(RuntimeError, match="own event-loop thread"):
        _loop.run(misuse())


def test_close_is_idempotent_and_use_after_close_raises(cache_kwargs: dict[str, Any]) -> None:
    cache = S3Cache(**cache_kwargs)
    cache.set("k", 1)
    cache.close()
    cache.close()
    with pytest.raises(CacheClosedError):
        cache.get("k")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_works_in_a_forked_child(facade: S3Cache) -> None:
    facade.set("before-fork", "parent")  # the private loop and a client exist in the parent
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            ok = facade.get("before-fork") == "parent"
            facade.set("from-child", os.getpid())
            code = 0 if ok else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert facade.get("from-child") == pid
    assert facade.get("before-fork") == "parent"  # the parent's loop and client still work


EXIT_SCRIPT = textwrap.dedent(
    """
    import sys
    from s3cache import S3Cache
    cache = S3Cache(sys.argv[1], endpoint_url=sys.argv[2], aws_access_key_id=sys.argv[3],
                    aws_secret_access_key=sys.argv[4], region_name="us-east-1")
    cache.set("exit", "value")
    assert cache.get("exit") == "value"
    print("done")
    # no close(): the interpreter must exit promptly and quietly
    """
)


def _suite_keys() -> tuple[str, str]:
    """The suite's access key and secret (real servers check them; moto accepts any)."""
    return CREDENTIALS["aws_access_key_id"], CREDENTIALS["aws_secret_access_key"]


def test_interpreter_exit_with_an_unclosed_cache(bucket: str, s3_endpoint: str) -> None:
    result = subprocess.run(
        # -W error turns a ResourceWarning or an unraisable exception at exit into stderr output
        [sys.executable, "-W", "error", "-c", EXIT_SCRIPT, bucket, s3_endpoint, *_suite_keys()],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "done"
    assert result.stderr == ""


def test_an_interrupted_call_cancels_its_work_on_the_loop() -> None:
    """Ctrl-C while a facade call waits: the caller gets KeyboardInterrupt, and the coroutine
    it handed to the private loop is cancelled there rather than left running."""
    import signal

    started, cancelled = threading.Event(), threading.Event()

    async def work() -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    def interrupt() -> None:
        assert started.wait(10)
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        _loop.run(work())
    assert cancelled.wait(10)
    assert _loop.run(asyncio.sleep(0, "still serving")) == "still serving"


def test_sync_cached_and_get_or_set_through_the_facade(cache_kwargs: dict[str, Any]) -> None:
    calls: list[int] = []
    caller_threads: set[int] = set()
    with S3Cache(**cache_kwargs, prefix="sync", on_error="raise") as cache:

        @cache.cached(ttl=60)
        def square(x: int) -> int:
            calls.append(x)
            caller_threads.add(threading.get_ident())
            return x * x

        assert square(4) == 16
        assert square(4) == 16
        assert calls == [4]
        assert caller_threads == {threading.get_ident()}, "a sync factory runs in its caller"

        def boom() -> None:
            raise KeyError("factory failed")

        with pytest.raises(KeyError, match="factory failed"):
            cache.get_or_set("boom", boom)
        assert cache.get("boom", MISSING) is MISSING


def test_sync_get_or_set_from_many_threads_runs_the_factory_once(
    cache_kwargs: dict[str, Any],
) -> None:
    threads = 8
    barrier = threading.Barrier(threads)
    entered = threading.Event()
    release = threading.Event()
    calls = 0

    def factory() -> str:
        nonlocal calls
        calls += 1
        entered.set()
        release.wait(10)
        return "shared"

    def worker(_: int) -> Any:
        barrier.wait()
        return cache.get_or_set("k", factory)

    with S3Cache(**cache_kwargs, on_error="raise") as cache, ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(worker, i) for i in range(threads)]
        assert entered.wait(10)
        release.set()
        results = [f.result(timeout=30) for f in futures]
    assert results == ["shared"] * threads
    assert calls == 1


def test_facade_cached_wraps_coroutine_functions_natively(cache_kwargs: dict[str, Any]) -> None:
    with S3Cache(**cache_kwargs, on_error="raise") as cache:

        @cache.cached()
        async def double(x: int) -> int:
            return 2 * x

        assert asyncio.run(double(5)) == 10
        assert asyncio.run(double(5)) == 10
        assert cache.stats().hits == 1
