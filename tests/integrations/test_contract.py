"""The contract every backend adapter keeps, run against each of them (as cashews and fsspec
share one suite across backends): litellm's backend, LangChain's LLM cache and byte store, and
LangGraph's node cache.

Each adapter is driven through a small :class:`Driver` that speaks its framework's own API, so a
new adapter joins the suite by adding one driver. Runs in the nox sessions that install the
frameworks (``litellm``, ``langchain``); elsewhere each adapter's cases skip.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

import pytest

from s3cache import CacheStats
from tests.integrations._support import PREFIX, object_keys, wait_until

#: The ttl of the expiry case, and the cases' default ttl for every entry.
TTL = 2
NAMESPACE = ("contract",)


class Driver(Protocol):
    """One adapter, spoken to through its framework's API; values are short strings."""

    async def put(self, key: str, value: str) -> None: ...

    async def get(self, key: str) -> str | None: ...

    def put_sync(self, key: str, value: str) -> None: ...

    def get_sync(self, key: str) -> str | None: ...

    async def clear(self) -> None: ...

    def stats(self) -> CacheStats: ...

    async def close(self) -> None: ...


class LiteLLMDriver:
    def __init__(self, options: dict[str, Any]) -> None:
        from s3cache.integrations.litellm import LiteLLMS3Cache

        self.adapter = LiteLLMS3Cache(
            s3_bucket_name=options.pop("bucket"),
            s3_endpoint_url=options.pop("endpoint_url"),
            s3_region_name=options.pop("region_name"),
            s3_aws_access_key_id=options.pop("aws_access_key_id"),
            s3_aws_secret_access_key=options.pop("aws_secret_access_key"),
            s3_path=options.pop("prefix"),
            **options,
        )

    async def put(self, key: str, value: str) -> None:
        await self.adapter.async_set_cache(key, value)

    async def get(self, key: str) -> str | None:
        found: str | None = await self.adapter.async_get_cache(key)
        return found

    def put_sync(self, key: str, value: str) -> None:
        self.adapter.set_cache(key, value)

    def get_sync(self, key: str) -> str | None:
        found: str | None = self.adapter.get_cache(key)
        return found

    async def clear(self) -> None:
        self.adapter.flush_cache()

    def stats(self) -> CacheStats:
        return self.adapter.stats()

    async def close(self) -> None:
        await self.adapter.disconnect()


class _Connected:
    """The LangChain and LangGraph adapters share their constructor and ``cache``."""

    adapter: Any

    def stats(self) -> CacheStats:
        stats: CacheStats = self.adapter.cache.stats()
        return stats

    async def close(self) -> None:
        await self.adapter.aclose()


class LLMCacheDriver(_Connected):
    def __init__(self, options: dict[str, Any]) -> None:
        from s3cache.integrations.langchain import S3LLMCache

        self.adapter = S3LLMCache(options.pop("bucket"), **options)

    @staticmethod
    def _generations(value: str) -> Any:
        from langchain_core.outputs import Generation

        return [Generation(text=value)]

    @staticmethod
    def _text(found: Any) -> str | None:
        return None if not found else str(found[0].text)

    async def put(self, key: str, value: str) -> None:
        await self.adapter.aupdate(key, "llm", self._generations(value))

    async def get(self, key: str) -> str | None:
        return self._text(await self.adapter.alookup(key, "llm"))

    def put_sync(self, key: str, value: str) -> None:
        self.adapter.update(key, "llm", self._generations(value))

    def get_sync(self, key: str) -> str | None:
        return self._text(self.adapter.lookup(key, "llm"))

    async def clear(self) -> None:
        await self.adapter.aclear()


class ByteStoreDriver(_Connected):
    def __init__(self, options: dict[str, Any]) -> None:
        from s3cache.integrations.langchain import S3ByteStore

        self.adapter = S3ByteStore(options.pop("bucket"), **options)

    async def put(self, key: str, value: str) -> None:
        await self.adapter.amset([(key, value.encode())])

    async def get(self, key: str) -> str | None:
        found = (await self.adapter.amget([key]))[0]
        return None if found is None else found.decode()

    def put_sync(self, key: str, value: str) -> None:
        self.adapter.mset([(key, value.encode())])

    def get_sync(self, key: str) -> str | None:
        found = self.adapter.mget([key])[0]
        return None if found is None else found.decode()

    async def clear(self) -> None:
        keys = [key async for key in self.adapter.ayield_keys()]
        await self.adapter.amdelete(keys)


class NodeCacheDriver(_Connected):
    def __init__(self, options: dict[str, Any]) -> None:
        from s3cache.integrations.langgraph import S3NodeCache

        self.adapter = S3NodeCache(options.pop("bucket"), **options)

    async def put(self, key: str, value: str) -> None:
        await self.adapter.aset({(NAMESPACE, key): (value, None)})

    async def get(self, key: str) -> str | None:
        found: dict[Any, str] = await self.adapter.aget([(NAMESPACE, key)])
        return found.get((NAMESPACE, key))

    def put_sync(self, key: str, value: str) -> None:
        self.adapter.set({(NAMESPACE, key): (value, None)})

    def get_sync(self, key: str) -> str | None:
        found: dict[Any, str] = self.adapter.get([(NAMESPACE, key)])
        return found.get((NAMESPACE, key))

    async def clear(self) -> None:
        await self.adapter.aclear()


DRIVERS: dict[str, tuple[str, type[Any]]] = {
    "litellm": ("litellm", LiteLLMDriver),
    "langchain-llm-cache": ("langchain_core", LLMCacheDriver),
    "langchain-byte-store": ("langchain_core", ByteStoreDriver),
    "langgraph-node-cache": ("langgraph", NodeCacheDriver),
}

MakeDriver = Callable[..., Driver]


@pytest.fixture(
    params=[
        pytest.param("litellm", marks=pytest.mark.litellm),
        pytest.param("langchain-llm-cache", marks=pytest.mark.langchain),
        pytest.param("langchain-byte-store", marks=pytest.mark.langchain),
        pytest.param("langgraph-node-cache", marks=pytest.mark.langchain),
    ]
)
async def make_driver(
    request: pytest.FixtureRequest, cache_kwargs: dict[str, Any]
) -> AsyncIterator[MakeDriver]:
    """``make_driver(**core_options)``: the adapter under test on the test bucket, prefix
    ``it``, errors raised and a default ttl of :data:`TTL` unless overridden; closed after."""
    module, driver = DRIVERS[request.param]
    pytest.importorskip(module)
    made: list[Driver] = []

    def make(**overrides: Any) -> Driver:
        options = {
            **cache_kwargs,
            "prefix": PREFIX,
            "on_error": "raise",
            "default_ttl": TTL,
            **overrides,
        }
        made.append(driver(options))
        return made[-1]

    yield make
    for one in made:
        await one.close()


async def test_async_and_sync_writes_read_back_both_ways(make_driver: MakeDriver) -> None:
    driver = make_driver()
    await driver.put("from-async", "a")
    assert await asyncio.to_thread(driver.get_sync, "from-async") == "a"
    await asyncio.to_thread(driver.put_sync, "from-sync", "s")
    assert await driver.get("from-sync") == "s"


async def test_a_miss_is_absent_and_the_last_write_wins(make_driver: MakeDriver) -> None:
    driver = make_driver()
    assert await driver.get("never-written") is None
    await driver.put("k", "first")
    await driver.put("k", "second")
    assert await driver.get("k") == "second"


async def test_another_instance_sees_the_entries(make_driver: MakeDriver) -> None:
    await make_driver().put("shared", "v")
    assert await make_driver().get("shared") == "v"


async def test_entries_expire_after_their_ttl(make_driver: MakeDriver) -> None:
    driver = make_driver()
    await driver.put("short", "v")
    written = time.time()
    assert await driver.get("short") == "v"
    wait_until(written + TTL + 1.2)  # server dates have whole seconds: a second of slack
    assert await driver.get("short") is None


async def test_clear_removes_the_entries_and_nothing_outside_the_prefix(
    make_driver: MakeDriver, s3: Any, bucket: str
) -> None:
    s3.put_object(Bucket=bucket, Key="elsewhere/object", Body=b"not ours")
    driver = make_driver()
    await driver.put("a", "1")
    await driver.put("b", "2")
    await driver.clear()
    assert await driver.get("a") is None
    assert await driver.get("b") is None
    assert object_keys(s3, bucket) == ["elsewhere/object"]


async def test_many_concurrent_operations_round_trip(make_driver: MakeDriver) -> None:
    driver = make_driver(max_concurrency=8)
    keys = [f"k{i}" for i in range(40)]
    await asyncio.gather(*(driver.put(k, k.upper()) for k in keys))
    found = await asyncio.gather(*(driver.get(k) for k in keys))
    assert found == [k.upper() for k in keys]


async def test_async_methods_never_use_a_thread_executor(
    make_driver: MakeDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    driver = make_driver()
    await driver.put("warm", "up")  # the client exists before the executor is forbidden

    def forbidden(*args: Any, **kwargs: Any) -> Awaitable[Any]:
        raise AssertionError("an async method used run_in_executor")

    monkeypatch.setattr(asyncio.get_running_loop(), "run_in_executor", forbidden)
    await driver.put("k", "v")
    assert await driver.get("k") == "v"
    await driver.clear()


async def test_store_failures_are_misses_and_counted_not_raised(
    make_driver: MakeDriver, closed_port_url: str
) -> None:
    driver = make_driver(endpoint_url=closed_port_url, on_error="log", timeout=3)
    await driver.put("k", "v")  # must not raise
    assert await driver.get("k") is None
    assert driver.stats().error_count >= 2  # both counted (connection, or the deadline)


def test_every_adapter_is_in_the_suite() -> None:
    """A new integration module must join :data:`DRIVERS` (and so this contract)."""
    import pkgutil

    import s3cache.integrations

    modules = {
        m.name
        for m in pkgutil.iter_modules(s3cache.integrations.__path__)
        if not m.name.startswith("_")
    }
    covered = {"litellm", "langchain", "langgraph", "litellm_proxy"}
    assert modules <= covered, f"integrations without a contract driver: {modules - covered}"
