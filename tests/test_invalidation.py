"""Invalidation by tag, against a real S3 server (moto's, or ``--server``): set with tags,
``invalidate``, and what every reader makes of it: a miss, judged on the server's clock at its
one-second resolution, in this process at once and in another within ``tag_check_interval``;
never served stale; no extra request for untagged entries (counted at the fault proxy); bad
tags refused before any request; the metadata cap; a lost ``invalidate`` response; the sync
facade; tag records and the purge of invalidated entries. The pure rules are in
``tests/test_tags.py``."""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import AsyncIterator, Iterator
from email.utils import parsedate_to_datetime
from typing import Any

import pytest

from harness.faultproxy import Fault, FaultProxy
from harness.fleet import CONTEXT
from s3cache import AsyncS3Cache, LocalTier, S3Cache, maintenance
from s3cache._core import OnError, set_many
from s3cache._tags import MAX_TAG_LENGTH, MAX_TAGS, tag_record_key
from tests.conftest import Requests

#: Waits on events and processes: generous, real servers (Ceph) are slow.
WAIT = 60.0


@pytest.fixture
async def tagged(cache_kwargs: dict[str, Any]) -> AsyncIterator[AsyncS3Cache]:
    """A cache under prefix ``t``, errors raised."""
    async with AsyncS3Cache(**cache_kwargs, prefix="t", on_error="raise") as cache:
        yield cache


def last_modified(s3: Any, bucket: str, key: str) -> float:
    """The object's ``Last-Modified`` (epoch seconds), by a plain boto3 HEAD."""
    headers = s3.head_object(Bucket=bucket, Key=key)["ResponseMetadata"]["HTTPHeaders"]
    return parsedate_to_datetime(headers["last-modified"]).timestamp()


async def next_second() -> None:
    """Return just after this machine's clock enters a new second (so that two quick requests
    likely land within one second on the server's clock as well)."""
    await asyncio.sleep(math.ceil(time.time()) - time.time() + 0.02)


# -- tag, invalidate, miss --------------------------------------------------------------------


async def test_tag_invalidate_miss(tagged: AsyncS3Cache, s3: Any, bucket: str) -> None:
    await tagged.set("doc:42:summary", "old", tags=["doc:42", "model=x"])
    await tagged.set("doc:7:summary", "other", tags=["doc:7"])
    await tagged.set("plain", "untagged")
    assert await tagged.get("doc:42:summary") == "old"
    assert await tagged.invalidate("doc:42") is True
    assert await tagged.get("doc:42:summary", "MISS") == "MISS"
    assert not await tagged.exists("doc:42:summary")
    assert await tagged.get("doc:7:summary") == "other"
    assert await tagged.get("plain") == "untagged"
    stats = tagged.stats()
    assert stats.invalidated == 2  # the get and the exists
    assert stats.misses == 1
    assert stats.sets == 3  # the invalidation stores a record, not an entry
    # the record is one small object in the reserved namespace, which listings leave out
    record = tag_record_key("t/", "doc:42")
    assert record == "t/.s3cache/tags/doc:42"
    assert s3.head_object(Bucket=bucket, Key=record)["ContentLength"] > 0
    assert sorted([k async for k in tagged.iter_keys()]) == [
        "doc/42/summary",
        "doc/7/summary",
        "plain",
    ]


async def test_an_entry_lists_its_tags_in_metadata_and_an_untagged_one_nothing(
    tagged: AsyncS3Cache, s3: Any, bucket: str
) -> None:
    await tagged.set("a", 1, tags=["z", "b:1", "z"])
    await tagged.set("b", 2)
    meta = s3.head_object(Bucket=bucket, Key="t/a")["Metadata"]
    assert meta["s3cache-tags"] == "b:1 z"
    assert s3.head_object(Bucket=bucket, Key="t/b")["Metadata"] == {}


async def test_set_many_get_or_set_and_cached_carry_tags(tagged: AsyncS3Cache) -> None:
    assert await tagged.set_many({"m1": 1, "m2": 2}, tags=["batch"]) == {}
    calls: list[int] = []

    async def factory() -> str:
        calls.append(1)
        return "made"

    assert await tagged.get_or_set("g", factory, tags=["batch"]) == "made"

    @tagged.cached(tags=lambda user_id, **_: [f"user:{user_id}"])
    async def profile(user_id: int, lang: str = "en") -> dict[str, Any]:
        calls.append(user_id)
        return {"id": user_id, "lang": lang}

    assert await profile(1) == {"id": 1, "lang": "en"}
    assert await profile(2, lang="fr") == {"id": 2, "lang": "fr"}
    assert await profile(1) == {"id": 1, "lang": "en"}
    assert calls == [1, 1, 2]
    assert await tagged.invalidate("batch", "user:1")
    assert await tagged.get_many(["m1", "m2"]) == {}
    assert await tagged.get_or_set("g", factory, tags=["batch"]) == "made"
    assert await profile(1) == {"id": 1, "lang": "en"}
    assert await profile(2, lang="fr") == {"id": 2, "lang": "fr"}  # user:2 untouched
    assert calls == [1, 1, 2, 1, 1]


async def test_add_replaces_an_invalidated_entry(tagged: AsyncS3Cache) -> None:
    await tagged.set("slot", "old", tags=["g"])
    assert await tagged.add("slot", "live") is False
    assert await tagged.invalidate("g")
    assert await tagged.add("slot", "new") is True  # invalidated counts as absent (If-Match)
    assert await tagged.get("slot") == "new"  # untagged: live whatever the second
    assert await tagged.add("slot", "newer") is False


# -- the one-second tie, on the server's clock -------------------------------------------------


async def test_an_entry_written_in_the_second_of_an_invalidation_is_invalidated(
    cache_kwargs: dict[str, Any], tagged: AsyncS3Cache, s3: Any, bucket: str
) -> None:
    record = tag_record_key("t/", "race")
    for _ in range(5):  # until the write lands in the record's second (one try, nearly always)
        await next_second()
        await tagged.invalidate("race")
        await tagged.set("racer", "v", tags=["race"])
        if last_modified(s3, bucket, "t/racer") == last_modified(s3, bucket, record):
            break
    else:
        pytest.fail("never wrote in the invalidation's second")
    # A reader with no knowledge of its own judges on the server's dates: equal is invalidated.
    async with AsyncS3Cache(**cache_kwargs, prefix="t", on_error="raise") as reader:
        assert await reader.get("racer", "MISS") == "MISS"
        assert reader.stats().invalidated == 1
    # Written in a later second than the record: live.
    deadline = time.monotonic() + WAIT
    while last_modified(s3, bucket, "t/racer") <= last_modified(s3, bucket, record):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.2)
        await tagged.set("racer", "later", tags=["race"])
    async with AsyncS3Cache(**cache_kwargs, prefix="t", on_error="raise") as reader:
        assert await reader.get("racer", "MISS") == "later"


async def test_an_entry_written_in_an_earlier_second_is_invalidated(
    tagged: AsyncS3Cache, s3: Any, bucket: str
) -> None:
    await tagged.set("early", "v", tags=["t1"])
    written = last_modified(s3, bucket, "t/early")
    # into the next second (the server's clock is this machine's here)
    await asyncio.sleep(max(0.0, written + 1.02 - time.time()))
    await tagged.invalidate("t1")
    assert last_modified(s3, bucket, tag_record_key("t/", "t1")) >= written
    assert await tagged.get("early", "MISS") == "MISS"


# -- another process ------------------------------------------------------------------------------


def read_until_invalidated(kwargs: dict[str, Any], go: Any, out: Any) -> None:
    """A reader in another process: read ``shared`` once (its tag check is then good for the
    interval), report ``ready``, wait for ``go`` (sent after the invalidation returned, with
    the monotonic time it did), then read every 20 ms and report each read's start and what
    it got, until a miss."""
    asyncio.run(_read_until_invalidated(kwargs, go, out))


async def _read_until_invalidated(kwargs: dict[str, Any], go: Any, out: Any) -> None:
    async with AsyncS3Cache(**kwargs) as cache:
        out.put(("ready", os.getpid(), await cache.get("shared", "MISS")))
        invalidated_at = await asyncio.to_thread(go.get, True, WAIT)
        reads: list[tuple[float, Any]] = []
        while time.monotonic() < invalidated_at + WAIT:
            started = time.monotonic()
            value = await cache.get("shared", "MISS")
            reads.append((started, value))
            if value == "MISS":
                break
            await asyncio.sleep(0.02)
        out.put(("reads", reads, cache.stats().invalidated))


@pytest.mark.parametrize("interval", [1.0, 0.3])
async def test_another_process_sees_the_invalidation_within_the_interval(
    cache_kwargs: dict[str, Any], interval: float
) -> None:
    kwargs = {**cache_kwargs, "prefix": "p", "on_error": "raise", "tag_check_interval": interval}
    go, out = CONTEXT.Queue(), CONTEXT.Queue()
    async with AsyncS3Cache(**kwargs) as writer:
        await writer.set("shared", "v1", tags=["doc:1"])
        proc = CONTEXT.Process(target=read_until_invalidated, args=(kwargs, go, out))
        proc.start()
        try:
            assert await asyncio.to_thread(out.get, True, WAIT) == ("ready", proc.pid, "v1")
            assert await writer.invalidate("doc:1")
            returned = time.monotonic()  # CLOCK_MONOTONIC: one clock for every process
            go.put(returned)
            kind, reads, invalidated = await asyncio.to_thread(out.get, True, WAIT)
        finally:
            proc.join(WAIT)
            if proc.is_alive():
                proc.kill()
                proc.join()
            for queue in (go, out):
                queue.close()
                queue.join_thread()
    assert proc.exitcode == 0
    assert kind == "reads"
    assert reads[-1][1] == "MISS"
    assert invalidated == 1
    # every read that began later than the interval after invalidate() returned was a miss
    assert all(value == "MISS" for started, value in reads if started > returned + interval)
    assert reads[-1][0] <= returned + interval + 2.0  # the first miss: one read after the bound


# -- the local tier ---------------------------------------------------------------------------


async def test_the_local_tier_drops_a_tagged_entry_invalidated_here_at_once(
    cache_kwargs: dict[str, Any], requests: Requests
) -> None:
    kwargs = {**cache_kwargs, "endpoint_url": requests.proxy.endpoint}
    local = LocalTier(ttl=60)
    async with AsyncS3Cache(**kwargs, prefix="l", local=local, on_error="raise") as cache:
        await cache.set("k", "v", tags=["g"])
        await cache.set("other", "w", tags=["h"])
        assert await cache.get("k") == "v"  # from S3 (a tagged write is not kept locally)
        assert await cache.get("other") == "w"
        assert await cache.get("k") == "v"
        assert cache.stats().local_hits == 1
        tier = cache._coherence.local
        assert tier is not None
        assert len(tier) == 2
        assert await cache.invalidate("g")
        assert len(tier) == 1  # dropped by invalidate itself
        assert await cache.get("k", "MISS") == "MISS"
        assert await cache.get("other") == "w"
        assert cache.stats().local_hits == 2


async def test_the_local_tier_drops_an_entry_invalidated_elsewhere_on_its_next_check(
    cache_kwargs: dict[str, Any],
) -> None:
    local = LocalTier(ttl=60)
    async with (
        AsyncS3Cache(**cache_kwargs, prefix="l", local=local, tag_check_interval=0) as reader,
        AsyncS3Cache(**cache_kwargs, prefix="l", on_error="raise") as other,
    ):
        await other.set("k", "v", tags=["g"])
        assert await reader.get("k") == "v"
        assert await reader.get("k") == "v"
        assert reader.stats().local_hits == 1  # its tag checked once more (interval 0)
        assert await other.invalidate("g")
        assert await reader.get("k", "MISS") == "MISS"
        assert reader.stats().invalidated == 1
        assert reader.stats().local_hits == 1


# -- never stale --------------------------------------------------------------------------------


async def test_an_invalidated_entry_is_never_served_stale(tagged: AsyncS3Cache) -> None:
    made: list[str] = []

    def factory(name: str) -> Any:
        def make() -> str:
            made.append(name)
            return f"{name}-{len(made)}"

        return make

    for key in ("kept", "dropped"):
        await tagged.get_or_set(key, factory(key), ttl=1, stale_ttl=60, tags=[key])
    await asyncio.sleep(2.1)  # both past their one-second ttl, within their stale window
    assert await tagged.invalidate("dropped")
    # the control: a stale value is served (and refreshed in the background)...
    assert await tagged.get_or_set("kept", factory("kept"), ttl=1, stale_ttl=60) == "kept-1"
    assert tagged.stats().stale_served == {"revalidating": 1}
    # ...but an invalidated one never: the factory runs for the caller
    value = await tagged.get_or_set("dropped", factory("dropped"), ttl=1, stale_ttl=60)
    assert value.startswith("dropped-")
    assert value != "dropped-2"
    assert tagged.stats().stale_served == {"revalidating": 1}
    assert tagged.stats().invalidated == 1


# -- requests ---------------------------------------------------------------------------------


async def test_an_untagged_entry_makes_no_extra_request(
    counted: AsyncS3Cache, requests: Requests
) -> None:
    await counted.set("plain", 1)
    requests.clear()
    for _ in range(3):
        assert await counted.get("plain") == 1
    assert await counted.exists("plain")
    assert requests.sent == {"GetObject": 3, "HeadObject": 1}


async def test_a_tagged_read_costs_one_get_per_tag_per_interval(
    cache_kwargs: dict[str, Any], requests: Requests
) -> None:
    kwargs = {**cache_kwargs, "endpoint_url": requests.proxy.endpoint, "prefix": "f"}
    async with AsyncS3Cache(**kwargs, on_error="raise", tag_check_interval=60) as cache:
        await cache.set("three", 1, tags=["a", "b", "c"])
        requests.clear()
        assert await cache.get("three") == 1
        assert requests.sent == {"GetObject": 4}  # the entry and its three records
        paths = {path for method, path in requests.proxy.paths if method == "GET"}
        assert sum("/.s3cache/tags/" in p for p in paths) == 3
        requests.clear()
        for _ in range(10):
            assert await cache.get("three") == 1
        assert requests.sent == {"GetObject": 10}  # checks good for the interval
        requests.clear()
        assert await cache.invalidate("b")  # one PUT, known here at once: no GET
        assert requests.sent == {"PutObject": 1}
        assert await cache.get("three", "MISS") == "MISS"
        assert requests.sent == {"PutObject": 1, "GetObject": 1}


async def test_concurrent_reads_share_one_get_per_tag(
    cache_kwargs: dict[str, Any], requests: Requests
) -> None:
    kwargs = {**cache_kwargs, "endpoint_url": requests.proxy.endpoint, "prefix": "f"}
    async with AsyncS3Cache(**kwargs, on_error="raise") as cache:
        await cache.set_many({f"k{i}": i for i in range(8)}, tags=["shared"])
        requests.clear()
        values = await asyncio.gather(*(cache.get(f"k{i}") for i in range(8)))
        assert values == list(range(8))
        record = [p for m, p in requests.proxy.paths if m == "GET" and "/.s3cache/tags/" in p]
        assert len(record) == 1
        assert requests.proxy.paths[("GET", record[0])] == 1


# -- validation ---------------------------------------------------------------------------------


async def test_bad_tags_are_refused_before_any_request(
    counted: AsyncS3Cache, requests: Requests
) -> None:
    requests.clear()
    before = requests.proxy.requests
    with pytest.raises(TypeError, match="single str"):
        await counted.set("k", 1, tags="user:1")
    with pytest.raises(ValueError, match="holds ' '"):
        await counted.set("k", 1, tags=["a b"])
    with pytest.raises(ValueError, match="must not be empty"):
        await counted.set_many({"k": 1}, tags=[""])
    with pytest.raises(ValueError, match=f"over {MAX_TAG_LENGTH}"):
        await counted.get_or_set("k", lambda: 1, tags=["x" * (MAX_TAG_LENGTH + 1)])
    with pytest.raises(ValueError, match=f"over the {MAX_TAGS}"):
        await counted.set("k", 1, tags=[f"t{i}" for i in range(MAX_TAGS + 1)])
    with pytest.raises(ValueError, match="holds '/'"):
        await counted.invalidate("a/b")
    with pytest.raises(ValueError, match="path segment"):
        await counted.invalidate("ok", "..")
    with pytest.raises(TypeError, match="at least one tag"):
        await counted.invalidate()
    with pytest.raises(TypeError, match="each tag must be a str"):
        counted.cached(tags=[1])  # type: ignore[list-item]

    @counted.cached(tags=lambda n: [f"bad tag {n}"])
    async def compute(n: int) -> int:
        return n

    with pytest.raises(ValueError, match="holds ' '"):
        await compute(1)
    assert requests.proxy.requests == before
    assert requests.sent == {}


@pytest.mark.parametrize("interval", [-1, math.nan, math.inf, "1s", True])
def test_a_bad_tag_check_interval_is_refused(
    cache_kwargs: dict[str, Any], interval: object
) -> None:
    with pytest.raises((TypeError, ValueError), match="tag_check_interval"):
        AsyncS3Cache(**cache_kwargs, tag_check_interval=interval)  # type: ignore[arg-type]


async def test_the_metadata_limit(
    cache_kwargs: dict[str, Any], requests: Requests, s3: Any, bucket: str
) -> None:
    """Ten tags of the longest length fit beside every field s3cache writes (signature
    included); extra metadata that would pass S3's 2 KB cap is refused before the PUT."""
    kwargs = {**cache_kwargs, "endpoint_url": requests.proxy.endpoint, "prefix": "m"}
    tags = [f"{i}{'x' * (MAX_TAG_LENGTH - 1)}" for i in range(MAX_TAGS)]
    async with AsyncS3Cache(**kwargs, on_error="raise", signing_key=b"k" * 32) as cache:
        await cache.set("full", {"v": 1}, ttl=60, tags=tags)
        assert await cache.get("full") == {"v": 1}
        meta = s3.head_object(Bucket=bucket, Key="m/full")["Metadata"]
        assert sorted(meta["s3cache-tags"].split(" ")) == sorted(tags)
        requests.clear()
        with pytest.raises(ValueError, match="2048-byte cap"):
            await set_many(cache, {"over": 1}, 60, {"over": {"origin": "o" * 800}}, tags)
        assert requests.sent == {}
        assert await cache.invalidate(tags[3])
        assert await cache.get("full", "MISS") == "MISS"


# -- a lost response --------------------------------------------------------------------------


@pytest.mark.parametrize("on_error", ["raise", "log"])
async def test_invalidate_with_its_response_lost_reports_the_true_outcome(
    cache_kwargs: dict[str, Any], proxy: FaultProxy, on_error: OnError
) -> None:
    kwargs = {**cache_kwargs, "prefix": "r"}
    faulty = {**kwargs, "endpoint_url": proxy.endpoint}
    async with (
        AsyncS3Cache(**faulty, on_error=on_error) as cache,
        AsyncS3Cache(**kwargs, on_error="raise") as reader,
    ):
        await cache.set("k", "v", tags=["lost"])
        assert await reader.get("k") == "v"
        proxy.set_fault(Fault.RESET_BODY, times=1, methods={"PUT"})
        assert await cache.invalidate("lost") is True
        assert proxy.faults[Fault.RESET_BODY] == 1
        assert cache.stats().error_count == 0
        assert await cache.get("k", "MISS") == "MISS"
    async with AsyncS3Cache(**kwargs, on_error="raise") as fresh:
        assert await fresh.get("k", "MISS") == "MISS"


async def test_invalidate_that_fails_says_so(
    cache_kwargs: dict[str, Any], proxy: FaultProxy
) -> None:
    kwargs = {**cache_kwargs, "prefix": "r", "endpoint_url": proxy.endpoint, "timeout": 5}
    async with AsyncS3Cache(**kwargs, on_error="log") as cache:
        await cache.set("k", "v", tags=["down"])
        proxy.set_fault(Fault.HTTP_500, methods={"PUT"})
        assert await cache.invalidate("down") is False
        assert cache.stats().errors == {"server": 1}
        proxy.clear()
        assert await cache.get("k") == "v"  # not invalidated: nothing was stored


# -- clear, and the reserved namespace ----------------------------------------------------------


async def test_check_reports_the_tag_records(tagged: AsyncS3Cache) -> None:
    assert (await tagged.check()).tag_records == 0
    assert await tagged.invalidate("g", "h", "user:7")
    await tagged.set("k", 1, tags=["g"])  # an entry is not a record
    assert (await tagged.check()).tag_records == 3


async def test_clear_removes_tag_records(tagged: AsyncS3Cache, s3: Any, bucket: str) -> None:
    await tagged.set("k", 1, tags=["g"])
    assert await tagged.invalidate("g", "h")
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="t/")["Contents"]]
    assert sorted(listed) == ["t/.s3cache/tags/g", "t/.s3cache/tags/h", "t/k"]
    await tagged.clear("k")  # a sub-prefix: s3cache's own objects stay
    assert s3.list_objects_v2(Bucket=bucket, Prefix="t/")["KeyCount"] == 2
    assert await tagged.clear() == 2
    assert s3.list_objects_v2(Bucket=bucket, Prefix="t/")["KeyCount"] == 0
    # what this process knew of the records went with them: a write in their second is live
    await tagged.set("k", 2, tags=["g"])
    assert await tagged.get("k") == 2


# -- the sync facade --------------------------------------------------------------------------


@pytest.fixture
def facade(cache_kwargs: dict[str, Any]) -> Iterator[S3Cache]:
    with S3Cache(**cache_kwargs, prefix="s", on_error="raise") as cache:
        yield cache


def test_the_sync_facade(facade: S3Cache) -> None:
    facade.set("a", 1, tags=["grp"])
    assert facade.set_many({"b": 2}, tags=["grp"]) == {}
    assert facade.get_or_set("c", lambda: 3, tags=["other"]) == 3
    calls: list[int] = []

    @facade.cached(tags=lambda n: [f"n:{n}"])
    def square(n: int) -> int:
        calls.append(n)
        return n * n

    assert [square(2), square(3), square(2)] == [4, 9, 4]
    assert facade.get_many(["a", "b", "c"]) == {"a": 1, "b": 2, "c": 3}
    assert facade.invalidate("grp", "n:2") is True
    assert facade.get_many(["a", "b", "c"]) == {"c": 3}
    assert [square(2), square(3)] == [4, 9]
    assert calls == [2, 3, 2]
    assert facade.stats().invalidated == 3
    with pytest.raises(ValueError, match="holds"):
        facade.set("a", 1, tags=["no spaces"])


# -- maintenance: tag records, and purging invalidated entries -----------------------------------


async def test_tag_records_and_purge_of_invalidated_entries(
    cache_kwargs: dict[str, Any], requests: Requests, s3: Any, bucket: str
) -> None:
    kwargs = {**cache_kwargs, "endpoint_url": requests.proxy.endpoint, "prefix": "pg"}
    async with AsyncS3Cache(**kwargs, on_error="raise") as cache:
        await cache.set_many({f"gone{i}": i for i in range(3)}, tags=["doc:1", "x"])
        await cache.set("kept", 1, tags=["doc:2"])
        await cache.set("plain", 2)
        await cache.set("old", 3, ttl=1)
        assert await cache.invalidate("doc:1", "never-used")
        records = await maintenance.tag_records(cache)
        assert [(r.tag, r.object_key) for r in records] == [
            ("doc:1", "pg/.s3cache/tags/doc:1"),
            ("never-used", "pg/.s3cache/tags/never-used"),
        ]
        written = last_modified(s3, bucket, "pg/.s3cache/tags/doc:1")
        assert records[0].invalidated_at == written  # the listing's time, to the second
        await asyncio.sleep(2.1)  # "old" past its one-second ttl
        # without invalidated=True, an invalidated entry stays (as it always did)
        plain = await maintenance.purge_expired(cache, dry_run=True)
        assert (plain.expired, plain.invalidated, plain.tag_records) == (1, 0, 0)
        requests.clear()
        dry = await maintenance.purge_expired(cache, dry_run=True, invalidated=True)
        assert (dry.scanned, dry.expired, dry.invalidated, dry.tag_records) == (6, 1, 3, 2)
        # one HEAD per entry and per own object (the two records), three LISTs (GETs at the
        # proxy: the two record scopes, then the prefix), no delete
        assert requests.sent == {"HeadObject": 8, "GetObject": 3}
        done = await maintenance.purge_expired(cache, invalidated=True)
        assert done.deleted == 4
        assert sorted([k async for k in cache.iter_keys()]) == ["kept", "plain"]
        assert len(await maintenance.tag_records(cache)) == 2  # the records stay
