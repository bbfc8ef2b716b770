"""s3cache.maintenance against moto's S3 server: scan, stats, clear, purge, lifecycle, doctor."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from harness.faultproxy import Fault, FaultProxy
from s3cache import AsyncS3Cache, _transport, maintenance
from s3cache._expiry import TTL_METADATA
from s3cache.errors import AccessDeniedError, BatchError, ServerError
from s3cache.maintenance import _purge
from tests.conftest import fail_later_pages

MISSING = object()
#: With one-second server dates, a ttl of 1 s is over after at most a second.
TTL_WAIT = 1.5


def keys(s3: Any, bucket: str) -> set[str]:
    """Every object key in the bucket, read behind the cache's back."""
    found: set[str] = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        found.update(o["Key"] for o in page.get("Contents", []))
    return found


@pytest.fixture
async def sibling(cache_kwargs: dict[str, Any]) -> AsyncIterator[AsyncS3Cache]:
    """A cache on the same bucket under ``cache2/``, a prefix that ``cache/`` must not reach."""
    async with AsyncS3Cache(**cache_kwargs, prefix="cache2", on_error="raise") as c:
        yield c


async def all_entries(cache: AsyncS3Cache, prefix: str = "") -> list[maintenance.Entry]:
    return [e async for e in maintenance.scan(cache, prefix)]


# -- scan and stats ---------------------------------------------------------------------------


async def test_scan_reports_size_ttl_and_expiry(cache: AsyncS3Cache, sibling: AsyncS3Cache) -> None:
    await cache.set("short", "x", ttl=1)
    await cache.set("long", {"v": 1}, ttl=3600)
    await cache.set("forever", b"\x00" * 10)
    await sibling.set("other", "y")
    await asyncio.sleep(TTL_WAIT)
    entries = {e.key: e for e in await all_entries(cache)}
    assert set(entries) == {"short", "long", "forever"}  # nothing from cache2/
    assert entries["short"].expired
    assert entries["short"].ttl_s == 1.0
    assert not entries["long"].expired
    assert entries["long"].ttl_s == 3600.0
    assert entries["long"].remaining_s is not None
    assert 3500 < entries["long"].remaining_s < 3600
    assert entries["forever"].remaining_s is None
    assert not entries["forever"].expired
    assert entries["forever"].size == 10
    assert entries["forever"].object_key == "cache/forever"
    assert all(0 <= e.age_s < 60 for e in entries.values())


async def test_scan_under_a_sub_prefix(cache: AsyncS3Cache) -> None:
    await cache.set_many({"user:1": 1, "user:2": 2, "users": 3, "team:1": 4})
    assert sorted(e.key for e in await all_entries(cache, "user:")) == ["user/1", "user/2"]
    assert sorted(e.key for e in await all_entries(cache, "user")) == ["user/1", "user/2", "users"]


async def test_scan_in_small_batches_sees_every_entry(cache: AsyncS3Cache) -> None:
    await cache.set_many({f"k{i}": i for i in range(7)})
    found = [e.key async for e in maintenance.scan(cache, batch=2)]
    assert sorted(found) == [f"k{i}" for i in range(7)]


async def test_expiry_verdicts_match_reads(cache: AsyncS3Cache, s3: Any) -> None:
    """Every entry ``scan`` calls expired is a miss for ``get``, and every live one a hit."""
    await cache.set("short", 1, ttl=1)
    await cache.set("long", 2, ttl=3600)
    await cache.set("none", 3)
    past = datetime.now(UTC) - timedelta(hours=1)
    future = datetime.now(UTC) + timedelta(hours=1)
    bucket = cache.bucket
    s3.put_object(Bucket=bucket, Key="cache/litellm-old", Body=b"{}", Expires=past)
    s3.put_object(Bucket=bucket, Key="cache/litellm-new", Body=b"{}", Expires=future)
    s3.put_object(Bucket=bucket, Key="cache/bad-ttl", Body=b"{}", Metadata={TTL_METADATA: "abc"})
    await asyncio.sleep(TTL_WAIT)
    verdicts = {e.key: e.expired for e in await all_entries(cache)}
    assert verdicts == {
        "short": True,
        "long": False,
        "none": False,
        "litellm-old": True,
        "litellm-new": False,
        "bad-ttl": True,
    }
    for key, expired in verdicts.items():
        assert (await cache.get(key, MISSING) is MISSING) == expired, key


async def test_storage_stats_exact_on_a_small_cache(
    cache: AsyncS3Cache, sibling: AsyncS3Cache
) -> None:
    await cache.set("a", "x", ttl=1)
    await cache.set_many({"b": "yy", "c": "zzz"})
    await sibling.set("d", "not counted")
    await asyncio.sleep(TTL_WAIT)
    stats = await maintenance.storage_stats(cache)
    assert (stats.entries, stats.inspected, stats.expired_inspected) == (3, 3, 1)
    assert stats.bytes == len(b'"x"') + len(b'"yy"') + len(b'"zzz"')
    assert not stats.sampled
    assert stats.expired_share == pytest.approx(1 / 3)


async def test_storage_stats_samples_large_caches(cache: AsyncS3Cache) -> None:
    await cache.set_many({f"k{i}": i for i in range(10)})
    seen: list[tuple[int, int]] = []
    stats = await maintenance.storage_stats(
        cache,
        sample=4,
        rng=random.Random(1),
        on_progress=lambda s: seen.append((s.entries, s.inspected)),
    )
    assert stats.entries == 10
    assert stats.inspected == 4
    assert stats.sampled
    assert stats.expired_share == 0.0
    assert seen == [(10, 0), (10, 1), (10, 2), (10, 3), (10, 4)]  # the listing, then each HEAD
    assert stats.to_json()["sampled"] is True


async def test_storage_stats_of_an_empty_prefix(cache: AsyncS3Cache) -> None:
    stats = await maintenance.storage_stats(cache)
    assert (stats.entries, stats.bytes, stats.expired_share) == (0, 0, None)


# -- a slow but healthy server ----------------------------------------------------------------

#: The CLI's failure on a slow server (1,100 entries, HEADs of 0.4 s, 32 at a time, a 10 s
#: deadline), scaled down: one batch of SLOW_ENTRIES HEADs started at once would queue for
#: SLOW_ENTRIES / SLOW_WIDTH * SLOW_DELAY = 3 s, 1.5 times the deadline; paced, each waits for
#: one. (A 1 s deadline was too short for the LIST on a busy 2-core machine.)
SLOW_ENTRIES, SLOW_WIDTH, SLOW_DELAY, SLOW_TIMEOUT = 24, 2, 0.25, 2.0


@pytest.fixture
async def slow(cache_kwargs: dict[str, Any], proxy: FaultProxy) -> AsyncIterator[AsyncS3Cache]:
    """SLOW_ENTRIES entries behind a proxy that delays every HEAD by SLOW_DELAY seconds."""
    async with AsyncS3Cache(**cache_kwargs, prefix="slow", on_error="raise") as direct:
        await direct.set_many({f"k{i:02d}": i for i in range(SLOW_ENTRIES)})
    kwargs = {**cache_kwargs, "endpoint_url": proxy.endpoint}
    async with AsyncS3Cache(
        **kwargs, prefix="slow", max_concurrency=SLOW_WIDTH, on_error="raise"
    ) as c:
        await c.get("warm-up")  # its clients open under the default deadline (a loaded machine)
        c._transport.timeout = SLOW_TIMEOUT
        proxy.reset_counts()
        proxy.set_fault(Fault.DELAY, delay=SLOW_DELAY, methods={"HEAD"})
        yield c


async def test_scan_paces_its_heads_on_a_slow_server(slow: AsyncS3Cache, proxy: FaultProxy) -> None:
    found = [e.key async for e in maintenance.scan(slow, batch=SLOW_ENTRIES)]
    assert sorted(found) == [f"k{i:02d}" for i in range(SLOW_ENTRIES)]
    assert proxy.methods["HEAD"] == SLOW_ENTRIES


async def test_storage_stats_paces_its_heads_on_a_slow_server(slow: AsyncS3Cache) -> None:
    stats = await maintenance.storage_stats(slow)
    assert (stats.entries, stats.inspected, stats.expired_inspected) == (SLOW_ENTRIES,) * 2 + (0,)


async def test_purge_paces_its_heads_on_a_slow_server(slow: AsyncS3Cache) -> None:
    result = await maintenance.purge_expired(slow, dry_run=True, batch=SLOW_ENTRIES)
    assert (result.scanned, result.expired) == (SLOW_ENTRIES, 0)


# -- clear and purge --------------------------------------------------------------------------


async def test_purge_deletes_only_expired_entries_under_the_prefix(
    cache: AsyncS3Cache, sibling: AsyncS3Cache, s3: Any
) -> None:
    await cache.set_many({"old1": 1, "old2": 2}, ttl=1)
    await cache.set("fresh", 3, ttl=3600)
    await cache.set("forever", 4)
    await sibling.set("old-sibling", 5, ttl=1)
    past = datetime.now(UTC) - timedelta(hours=1)
    s3.put_object(Bucket=cache.bucket, Key="outside", Body=b"x", Expires=past)
    await asyncio.sleep(TTL_WAIT)

    dry = await maintenance.purge_expired(cache, dry_run=True)
    assert (dry.scanned, dry.expired, dry.deleted, dry.dry_run) == (4, 2, 0, True)
    assert "cache/old1" in keys(s3, cache.bucket)

    progress: list[tuple[int, int]] = []
    result = await maintenance.purge_expired(
        cache, batch=1, on_progress=lambda r: progress.append((r.scanned, r.deleted))
    )
    assert (result.scanned, result.expired, result.deleted) == (4, 2, 2)
    assert result.bytes == 2  # the bodies "1" and "2"
    # as each HEAD returns (forever, fresh, old1, old2), after each delete, and at the end
    assert progress == [(1, 0), (2, 0), (3, 0), (3, 1), (4, 1), (4, 2), (4, 2)]
    assert keys(s3, cache.bucket) == {
        "cache/fresh",
        "cache/forever",
        "cache2/old-sibling",
        "outside",
    }


async def test_purge_and_clear_refuse_an_empty_prefix(
    cache_kwargs: dict[str, Any], s3: Any
) -> None:
    async with AsyncS3Cache(**cache_kwargs, on_error="raise") as whole:
        await whole.set("a", 1, ttl=1)
        with pytest.raises(ValueError, match="empty prefix"):
            await maintenance.purge_expired(whole)
        with pytest.raises(ValueError, match="empty prefix"):
            await maintenance.clear_prefix(whole)
        with pytest.raises(ValueError, match="empty prefix"):
            await maintenance.lifecycle_set(whole, 1)
        assert keys(s3, whole.bucket) == {"a"}
        await asyncio.sleep(TTL_WAIT)
        result = await maintenance.purge_expired(whole, all_bucket=True)
        assert result.deleted == 1
        assert keys(s3, whole.bucket) == set()


async def test_clear_deletes_under_the_prefix_only(
    cache: AsyncS3Cache, sibling: AsyncS3Cache, s3: Any
) -> None:
    await cache.set_many({"a": 1, "b:c": 2})
    await sibling.set("keep", 3)
    dry = await maintenance.clear_prefix(cache, dry_run=True)
    assert (dry.matched, dry.deleted) == (2, 0)
    assert keys(s3, cache.bucket) == {"cache/a", "cache/b/c", "cache2/keep"}
    result = await maintenance.clear_prefix(cache)
    assert (result.matched, result.deleted, result.bytes) == (2, 2, 2)
    assert keys(s3, cache.bucket) == {"cache2/keep"}


async def test_clear_pages_and_batches_past_a_thousand(
    cache_kwargs: dict[str, Any], s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two listing pages (1,000 + 5) and DeleteObjects batches split at the batch size."""
    monkeypatch.setattr(_transport, "DELETE_BATCH", 400)
    # moto serves a few hundred requests/s: a long deadline, since it covers the slot wait too.
    async with AsyncS3Cache(**cache_kwargs, prefix="cache", on_error="raise", timeout=120) as c:
        await c.set_many({f"k{i:04d}": i for i in range(1005)})
        progress: list[int] = []
        result = await maintenance.clear_prefix(c, on_progress=lambda r: progress.append(r.matched))
    assert result.deleted == 1005
    assert progress == [1000, 1005]
    assert keys(s3, cache_kwargs["bucket"]) == set()


# -- a run stopped part-way: what was done is reported, and a rerun finishes -----------------

PAGED = 6  #: entries in the paged tests: three listing pages of two


@pytest.fixture
async def paged(
    cache_kwargs: dict[str, Any],
    proxy: FaultProxy,
    small_pages: Callable[[AsyncS3Cache, int], None],
) -> AsyncIterator[AsyncS3Cache]:
    """A cache behind the fault proxy, listing two objects a page, holding PAGED entries that
    have expired."""
    kwargs = {**cache_kwargs, "endpoint_url": proxy.endpoint}
    async with AsyncS3Cache(**kwargs, prefix="p", on_error="raise") as c:
        await c.set_many({f"k{i:02d}": i for i in range(PAGED)}, ttl=1)
        small_pages(c, 2)
        await asyncio.sleep(TTL_WAIT)
        yield c


def assert_stopped_after_one_page(error: BatchError, operation: str) -> None:
    assert (error.operation, error.done, error.total, error.failed) == (operation, 2, 2, {})
    assert isinstance(error.stopped, ServerError)
    assert error.stopped_after == "p/k01"
    assert "SlowDown" in str(error.stopped)
    assert str(error).startswith(f"{operation}: deleted 2 of at least 2; stopped after 'p/k01': ")
    assert error.__cause__ is error.stopped


Run = Callable[[AsyncS3Cache], Awaitable[int]]
RUNS: dict[str, tuple[str, Run]] = {
    "AsyncS3Cache.clear": ("clear", lambda c: c.clear()),
    "clear_prefix": ("clear_prefix", lambda c: _deleted(maintenance.clear_prefix(c))),
    "purge_expired": ("purge_expired", lambda c: _deleted(maintenance.purge_expired(c, batch=2))),
}


async def _deleted(run: Awaitable[maintenance.ClearResult | maintenance.PurgeResult]) -> int:
    return (await run).deleted


@pytest.mark.parametrize("name", list(RUNS))
async def test_a_run_stopped_by_a_listing_counts_what_it_deleted_and_a_rerun_finishes(
    paged: AsyncS3Cache, proxy: FaultProxy, s3: Any, name: str
) -> None:
    cache = paged
    operation, run = RUNS[name]
    fail_later_pages(proxy)
    with pytest.raises(BatchError) as caught:
        await run(cache)
    assert_stopped_after_one_page(caught.value, operation)
    assert len(keys(s3, cache.bucket)) == PAGED - 2  # the first page's two are gone
    assert cache.stats().errors.get("server", 0) == (1 if name == "AsyncS3Cache.clear" else 0)
    proxy.clear()
    assert await run(cache) == PAGED - 2  # the rerun deletes the rest: 2 + 4 = PAGED
    assert keys(s3, cache.bucket) == set()


async def test_clear_that_logs_returns_the_count_and_the_stop(
    cache_kwargs: dict[str, Any],
    proxy: FaultProxy,
    small_pages: Callable[[AsyncS3Cache, int], None],
    s3: Any,
) -> None:
    for i in range(PAGED):
        s3.put_object(Bucket=cache_kwargs["bucket"], Key=f"p/k{i:02d}", Body=b"1")
    fail_later_pages(proxy)
    async with AsyncS3Cache(**{**cache_kwargs, "endpoint_url": proxy.endpoint}, prefix="p") as soft:
        small_pages(soft, 2)
        result = await soft.clear()
        assert (result, result.failed, result.stopped_after) == (2, {}, "p/k01")
        assert isinstance(result.stopped, ServerError)
        assert soft.stats().errors["server"] == 1


@pytest.mark.parametrize("name", list(RUNS))
async def test_a_first_listing_that_fails_raises_its_own_error(
    paged: AsyncS3Cache, proxy: FaultProxy, s3: Any, name: str
) -> None:
    cache = paged
    proxy.set_fault(Fault.SLOWDOWN_503, methods={"GET"})
    with pytest.raises(ServerError, match="SlowDown"):  # nothing was done: no BatchError
        await RUNS[name][1](cache)
    assert len(keys(s3, cache.bucket)) == PAGED


async def test_purge_stops_where_the_store_fails_and_a_rerun_finishes(
    paged: AsyncS3Cache, proxy: FaultProxy, s3: Any
) -> None:
    cache = paged
    proxy.set_fault(Fault.SLOWDOWN_503, methods={"HEAD"}, path_contains="k02")
    with pytest.raises(BatchError) as caught:
        await maintenance.purge_expired(cache, batch=2)
    error = caught.value
    assert (error.done, list(error.failed), error.stopped_after) == (2, ["p/k02"], "p/k03")
    assert error.stopped is error.failed["p/k02"]
    assert error.stopped.kind == "server"
    assert len(keys(s3, cache.bucket)) == PAGED - 2  # k00, k01; k03 was not deleted either
    proxy.clear()
    assert (await maintenance.purge_expired(cache, batch=2)).deleted == PAGED - 2
    assert keys(s3, cache.bucket) == set()


async def test_purge_carries_on_past_one_objects_failure(
    paged: AsyncS3Cache, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure of one object (access denied to it) is reported; the run goes on."""
    cache = paged
    head = cache.transport.head

    async def denied_for_k02(key: str, *, botocore: bool = False) -> Any:
        if key == "p/k02":
            raise AccessDeniedError(f"HeadObject {key!r}: AccessDenied")
        return await head(key, botocore=botocore)

    monkeypatch.setattr(cache.transport, "head", denied_for_k02)
    with pytest.raises(BatchError) as caught:
        await maintenance.purge_expired(cache, batch=2)
    error = caught.value
    assert (error.done, error.total, list(error.failed), error.stopped) == (5, 6, ["p/k02"], None)
    assert keys(s3, cache.bucket) == {"p/k02"}


@pytest.mark.parametrize("name", ["clear_prefix", "purge_expired"])
async def test_a_delete_whose_answer_was_lost_is_counted_once(
    paged: AsyncS3Cache, proxy: FaultProxy, s3: Any, name: str
) -> None:
    """The server applies the first DeleteObjects but its answer is cut: the retry finds the
    keys gone, and the count is still what was deleted."""
    proxy.set_fault(Fault.RESET_BODY, times=1, methods={"POST"})
    assert await RUNS[name][1](paged) == PAGED
    assert proxy.faults[Fault.RESET_BODY] == 1
    assert keys(s3, paged.bucket) == set()


async def test_delete_guard_refuses_keys_outside_the_prefix(cache: AsyncS3Cache, s3: Any) -> None:
    s3.put_object(Bucket=cache.bucket, Key="cache2/x", Body=b"1")
    with pytest.raises(ValueError, match="outside prefix"):
        await _purge._delete(cache, ["cache2/x"])
    assert keys(s3, cache.bucket) == {"cache2/x"}


# -- lifecycle --------------------------------------------------------------------------------


async def test_lifecycle_set_show_remove_keeps_other_rules(cache: AsyncS3Cache, s3: Any) -> None:
    assert await maintenance.lifecycle_rules(cache) == []
    foreign = {
        "ID": "logs",
        "Filter": {"Prefix": "logs/"},
        "Status": "Enabled",
        "Expiration": {"Days": 30},
    }
    s3.put_bucket_lifecycle_configuration(
        Bucket=cache.bucket, LifecycleConfiguration={"Rules": [foreign]}
    )
    assert await maintenance.lifecycle_rules(cache) == []  # logs/ does not reach cache/

    rule_id = await maintenance.lifecycle_set(cache, 3)
    assert rule_id == "s3cache:cache/"
    (rule,) = await maintenance.lifecycle_rules(cache)
    assert (rule.id, rule.prefix, rule.days, rule.covers, rule.ours) == (
        rule_id,
        "cache/",
        3,
        "all",
        True,
    )
    await maintenance.lifecycle_set(cache, 7)  # replaces, does not add
    stored = s3.get_bucket_lifecycle_configuration(Bucket=cache.bucket)["Rules"]
    assert sorted(r["ID"] for r in stored) == ["logs", rule_id]
    assert [r["Expiration"]["Days"] for r in stored if r["ID"] == rule_id] == [7]

    assert await maintenance.lifecycle_remove(cache) is True
    assert await maintenance.lifecycle_remove(cache) is False
    stored = s3.get_bucket_lifecycle_configuration(Bucket=cache.bucket)["Rules"]
    assert [r["ID"] for r in stored] == ["logs"]


async def test_lifecycle_remove_of_the_last_rule_deletes_the_configuration(
    cache: AsyncS3Cache,
) -> None:
    await maintenance.lifecycle_set(cache, 1)
    assert await maintenance.lifecycle_remove(cache) is True
    assert await cache.transport.admin.get_lifecycle_rules() == []


async def test_lifecycle_rules_that_reach_the_prefix(cache: AsyncS3Cache, s3: Any) -> None:
    rules = [
        {"ID": "all", "Filter": {"Prefix": ""}, "Status": "Enabled", "Expiration": {"Days": 9}},
        {"ID": "sub", "Filter": {"Prefix": "cache/tmp/"}, "Status": "Enabled",
         "Expiration": {"Days": 1}},
        {"ID": "sibling", "Filter": {"Prefix": "cache2/"}, "Status": "Enabled",
         "Expiration": {"Days": 1}},
    ]  # fmt: skip
    s3.put_bucket_lifecycle_configuration(
        Bucket=cache.bucket, LifecycleConfiguration={"Rules": rules}
    )
    found = {r.id: r.covers for r in await maintenance.lifecycle_rules(cache)}
    assert found == {"all": "all", "sub": "some"}


def test_lifecycle_rule_id_fits_s3s_limit() -> None:
    assert maintenance.lifecycle_rule_id("cache/") == "s3cache:cache/"
    long_id = maintenance.lifecycle_rule_id("p" * 600 + "/")
    assert len(long_id) <= 255
    assert long_id.startswith("s3cache:")
    assert long_id == maintenance.lifecycle_rule_id("p" * 600 + "/")


async def test_set_lifecycle_rejects_bad_days(cache: AsyncS3Cache) -> None:
    with pytest.raises(ValueError, match="whole days"):
        await maintenance.lifecycle_set(cache, 0)
    with pytest.raises(TypeError):
        await maintenance.lifecycle_set(cache, 1.5)  # type: ignore[arg-type]


# -- doctor -----------------------------------------------------------------------------------


def verdicts(items: list[maintenance.DoctorItem]) -> dict[str, str]:
    return {item.name: item.status for item in items}


async def test_doctor_passes_on_a_healthy_bucket(
    cache: AsyncS3Cache, s3: Any, s3_server: str
) -> None:
    items = await maintenance.doctor(cache)
    found = verdicts(items)
    details = {item.name: item.detail for item in items}
    quoting = "unquoted" if s3_server == "ceph" else "on the ETag is honoured"
    assert quoting in details["conditional replace"]
    for name in ("endpoint reachable", "credentials accepted", "bucket exists", "list", "put"):
        assert found[name] == "pass", name
    assert found["get"] == found["delete"] == "pass"
    assert found["conditional writes"] == "pass"  # If-None-Match: * is honoured
    assert found["conditional replace"] == "pass"  # so is If-Match (unquoted on Ceph)
    assert found["clock skew"] == "pass"
    assert found["lifecycle rule"] == "warn"  # none set: a warning, not a failure
    assert not any(item.failed for item in items)
    assert keys(s3, cache.bucket) == set()  # the probe is gone

    await maintenance.lifecycle_set(cache, 2)
    assert verdicts(await maintenance.doctor(cache))["lifecycle rule"] == "pass"


async def test_doctor_on_a_missing_bucket(cache_kwargs: dict[str, Any]) -> None:
    kwargs = dict(cache_kwargs, bucket=f"no-such-bucket-{uuid.uuid4().hex[:12]}")
    async with AsyncS3Cache(**kwargs, prefix="cache") as missing:
        items = await maintenance.doctor(missing)
    found = verdicts(items)
    assert found["endpoint reachable"] == "pass"
    assert found["bucket exists"] == "fail"
    assert found["put"] == "skip"
    assert any(item.failed for item in items)


async def test_doctor_on_an_unreachable_endpoint(cache_kwargs: dict[str, Any]) -> None:
    kwargs = dict(cache_kwargs, endpoint_url="http://127.0.0.1:9", timeout=2.0)
    async with AsyncS3Cache(**kwargs, prefix="cache") as nowhere:
        items = await maintenance.doctor(nowhere)
    assert items[0].name == "endpoint reachable"
    assert items[0].status == "fail"
    assert {item.status for item in items[1:]} == {"skip"}
