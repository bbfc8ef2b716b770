"""Batches (get_many, set_many, delete_many, clear): paced through the concurrency bound, so that
they complete on a healthy server whatever their size, and partial failures reported per key."""

from __future__ import annotations

import json
import logging
import pickle
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.config import Config

import s3cache._transport
from harness.faultproxy import Fault, FaultProxy
from s3cache import (
    AsyncS3Cache,
    BatchError,
    CredentialsError,
    DeleteResult,
    S3Cache,
    S3CacheError,
    ServerError,
    StoreTimeoutError,
)
from tests.conftest import CREDENTIALS

ONE_ATTEMPT = Config(retries={"mode": "standard", "total_max_attempts": 1})


@pytest.fixture
def proxy(s3_endpoint: str) -> Iterator[FaultProxy]:
    """A fault proxy in front of the session's S3 server, faithful until told otherwise."""
    parts = urlsplit(s3_endpoint)
    assert parts.hostname is not None
    assert parts.port is not None
    with FaultProxy((parts.hostname, parts.port)) as p:
        yield p


def listed(s3: Any, bucket: str, prefix: str = "") -> list[str]:
    """Every object key under ``prefix``, through boto3 (behind the cache's back)."""
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


async def warm(cache: AsyncS3Cache, deadline: float) -> None:
    """Open the client under the default deadline (loading botocore's models can take a second
    on a loaded machine), then shorten the deadline to ``deadline`` seconds."""
    await cache.exists("warm-up")
    cache._transport.timeout = deadline


# -- results and errors -----------------------------------------------------------------


def test_delete_result_is_an_int_that_carries_the_failures() -> None:
    error = ServerError("boom")
    result = DeleteResult(3, {"k": error})
    assert isinstance(result, int)
    assert result == 3
    assert result + 1 == 4
    assert json.dumps({"deleted": result}) == '{"deleted": 3}'
    assert f"{result}" == "3"
    assert result.failed == {"k": error}
    assert DeleteResult(2).failed == {}
    copy = pickle.loads(pickle.dumps(result))
    assert (copy, list(copy.failed)) == (3, ["k"])


def test_batch_error_names_the_failed_keys_and_pickles() -> None:
    error = BatchError("set_many", {"a": StoreTimeoutError("slow"), "b": ServerError("5xx")}, 10)
    assert isinstance(error, S3CacheError)
    assert error.kind == "batch"
    assert (error.operation, error.total, list(error.failed)) == ("set_many", 10, ["a", "b"])
    assert "2 of 10 keys failed; first 'a'" in str(error)
    assert isinstance(error.__cause__, StoreTimeoutError)
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), list(copy.failed)) == (str(error), ["a", "b"])


# -- large batches on a healthy server -----------------------------------------------------


async def test_batches_of_3000_complete_on_a_healthy_server(
    cache_kwargs: dict[str, Any], s3: Any
) -> None:
    """3,000 writes, then 3,000 deletes, through 4 slots and a 5 s deadline: far more time than
    one deadline in all, so queued requests must not start their deadline before their slot."""
    count = 3000
    keys = [f"k{i:04d}" for i in range(count)]
    async with AsyncS3Cache(
        **cache_kwargs, prefix="big", max_concurrency=4, on_error="raise"
    ) as cache:
        await warm(cache, 5.0)
        assert await cache.set_many(dict.fromkeys(keys, "v"), ttl=3600) == {}
        assert len(listed(s3, cache.bucket, "big/")) == count
        removed = await cache.delete_many(keys)
        assert (removed, removed.failed) == (count, {})
        assert listed(s3, cache.bucket, "big/") == []
        assert cache.stats().errors == {}


async def test_get_many_deadline_covers_each_read_not_the_queue(
    proxy: FaultProxy, bucket: str, s3: Any
) -> None:
    """20 reads of 0.3 s each through 2 slots take 3 s in all; each must fit a 1.5 s deadline."""
    for i in range(20):
        s3.put_object(Bucket=bucket, Key=f"g/k{i}", Body=b'"v"', ContentType="application/json")
    async with AsyncS3Cache(
        bucket,
        endpoint_url=proxy.endpoint,
        prefix="g",
        max_concurrency=2,
        on_error="raise",
        **CREDENTIALS,
    ) as cache:
        await warm(cache, 1.5)
        proxy.set_fault(Fault.DELAY, delay=0.3, methods={"GET"})
        found = await cache.get_many([f"k{i}" for i in range(20)])
    assert found == {f"k{i}": "v" for i in range(20)}


# -- partial failures ----------------------------------------------------------------------


def proxied(proxy: FaultProxy, bucket: str, **options: Any) -> AsyncS3Cache:
    return AsyncS3Cache(
        bucket,
        endpoint_url=proxy.endpoint,
        prefix="p",
        config=ONE_ATTEMPT,
        **CREDENTIALS,
        **options,
    )


async def test_set_many_returns_the_keys_it_could_not_store(
    proxy: FaultProxy, bucket: str, s3: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="s3cache")
    proxy.set_fault(Fault.HTTP_500, methods={"PUT"}, path_contains="poison")
    async with proxied(proxy, bucket) as cache:
        failed = await cache.set_many({"a": 1, "poison": 2, "b": 3})
        assert list(failed) == ["poison"]
        assert isinstance(failed["poison"], ServerError)
        assert cache.stats().errors == {"server": 1}
        assert cache.stats().sets == 2
    assert sorted(listed(s3, bucket)) == ["p/a", "p/b"]
    assert any("1 of 3 keys failed" in r.getMessage() for r in caplog.records)


async def test_set_many_raises_a_batch_error_after_trying_every_key(
    proxy: FaultProxy, bucket: str, s3: Any
) -> None:
    proxy.set_fault(Fault.HTTP_500, methods={"PUT"}, path_contains="poison")
    async with proxied(proxy, bucket, on_error="raise") as cache:
        with pytest.raises(BatchError) as caught:
            await cache.set_many({"a": 1, "poison1": 2, "b": 3, "poison2": 4})
    assert caught.value.operation == "set_many"
    assert caught.value.total == 4
    assert sorted(caught.value.failed) == ["poison1", "poison2"]
    assert all(isinstance(e, ServerError) for e in caught.value.failed.values())
    assert sorted(listed(s3, bucket)) == ["p/a", "p/b"]


async def test_delete_many_reports_the_keys_a_failed_batch_held(
    proxy: FaultProxy, bucket: str, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three DeleteObjects batches, one at a time; the server rejects the first."""
    monkeypatch.setattr(s3cache._transport, "DELETE_BATCH", 2)
    keys = [f"k{i}" for i in range(5)]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=f"p/{key}", Body=b"1", ContentType="application/json")
    async with proxied(proxy, bucket, max_concurrency=1) as soft:
        proxy.set_fault(Fault.DENY_403, methods={"POST"}, times=1)
        removed = await soft.delete_many(keys)
        assert removed == 3
        assert sorted(removed.failed) == ["k0", "k1"]
        assert all(isinstance(e, CredentialsError) for e in removed.failed.values())
        assert soft.stats().errors == {"credentials": 2}
        assert soft.stats().deletes == 3
    assert sorted(listed(s3, bucket)) == ["p/k0", "p/k1"]
    async with proxied(proxy, bucket, max_concurrency=1, on_error="raise") as hard:
        proxy.set_fault(Fault.DENY_403, methods={"POST"}, times=1)
        with pytest.raises(BatchError) as caught:
            await hard.delete_many(["k0", "k1", "k2"])
        assert caught.value.operation == "delete_many"
        assert sorted(caught.value.failed) == ["k0", "k1"]


# -- a batch the server refuses as a whole ---------------------------------------------------

POISON = "p/written-elsewhere\uffff"  # a key another tool stored; XML 1.0 cannot carry it


@pytest.mark.parametrize("on_error", ["log", "raise"])
async def test_clear_deletes_everything_despite_a_key_xml_cannot_carry(
    cache_kwargs: dict[str, Any], s3: Any, on_error: Any
) -> None:
    """moto answers 500 to a DeleteObjects holding the key (Ceph 400): the batch goes key by
    key, and DeleteObject, whose key travels in the URL, deletes it."""
    s3.put_object(Bucket=cache_kwargs["bucket"], Key=POISON, Body=b"x")
    async with AsyncS3Cache(
        **cache_kwargs, prefix="p", config=ONE_ATTEMPT, on_error=on_error
    ) as cache:
        await cache.set_many({f"k{i}": i for i in range(3)})
        cleared = await cache.clear()
        assert (cleared, cleared.failed) == (4, {})
        assert cache.stats().errors == {}
    assert listed(s3, cache_kwargs["bucket"]) == []


async def test_maintenance_clear_shares_the_fallback(cache_kwargs: dict[str, Any], s3: Any) -> None:
    from s3cache import maintenance

    s3.put_object(Bucket=cache_kwargs["bucket"], Key=POISON, Body=b"x")
    async with AsyncS3Cache(**cache_kwargs, prefix="p", config=ONE_ATTEMPT) as cache:
        await cache.set("k", 1)
        result = await maintenance.clear_prefix(cache)
    assert (result.matched, result.deleted) == (2, 2)
    assert listed(s3, cache_kwargs["bucket"]) == []


async def test_a_refused_batch_goes_key_by_key_and_reports_the_keys_that_failed(
    proxy: FaultProxy, bucket: str, s3: Any
) -> None:
    """Every DeleteObjects (POST /bucket?delete) and the DELETE of key "delete" answer 500."""
    keys = ["a", "b", "delete"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=f"p/{key}", Body=b"1", ContentType="application/json")
    proxy.set_fault(Fault.HTTP_500, methods={"POST", "DELETE"}, path_contains="delete")
    async with proxied(proxy, bucket) as soft:
        removed = await soft.delete_many(keys)
        assert removed == 2
        assert list(removed.failed) == ["delete"]
        assert isinstance(removed.failed["delete"], ServerError)
    assert listed(s3, bucket) == ["p/delete"]
    s3.put_object(Bucket=bucket, Key="p/c", Body=b"1")
    async with proxied(proxy, bucket, on_error="raise") as hard:
        with pytest.raises(BatchError) as caught:
            await hard.clear()
        assert list(caught.value.failed) == ["p/delete"]  # clear names object keys
    assert listed(s3, bucket) == ["p/delete"]


async def test_a_key_whose_lookup_failed_is_reported_not_deleted_blind(
    proxy: FaultProxy, bucket: str, s3: Any
) -> None:
    """delete_many HEADs each key first (to count live entries); a failed HEAD fails its key."""
    for key in ("a", "poison", "b"):
        s3.put_object(Bucket=bucket, Key=f"p/{key}", Body=b"1", ContentType="application/json")
    proxy.set_fault(Fault.HTTP_500, methods={"HEAD"}, path_contains="poison")
    async with proxied(proxy, bucket) as cache:
        removed = await cache.delete_many(["a", "poison", "b"])
        assert removed == 2
        assert list(removed.failed) == ["poison"]
        assert isinstance(removed.failed["poison"], ServerError)
        assert cache.stats().errors == {"server": 1}
    assert listed(s3, bucket) == ["p/poison"]


def test_the_facade_returns_what_the_core_returns(cache_kwargs: dict[str, Any]) -> None:
    with S3Cache(**cache_kwargs, prefix="sync") as cache:
        assert cache.set_many({"a": 1, "b": 2}) == {}
        removed = cache.delete_many(["a", "b", "c"])
        assert (removed, removed.failed) == (2, {})
        cleared = cache.clear()
        assert (cleared, cleared.failed) == (0, {})
