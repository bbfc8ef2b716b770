"""Conformance of the benchmark's mini S3 server: boto3 and s3cache work against it unchanged.

The server runs as the benchmark runs it (a subprocess on a free port); these tests check what
the contenders rely on, so that figures measured against it mean what they say.
"""

from __future__ import annotations

import asyncio
import http.client
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.exceptions import ClientError

from benchmarks.contenders import ContenderUnavailable, Setup
from benchmarks.expiry import expiry_under_load
from benchmarks.features import run_features
from benchmarks.outage import DEADLINE_S, s3_outage
from benchmarks.remote import RemoteContender
from benchmarks.server import DelayProxy, EmbeddedServer, Target, request_counts
from benchmarks.stale_outage import stale_outage
from benchmarks.tagging import READS, tag_invalidation
from benchmarks.xfetch import MAX_PER_PERIOD, early_refresh
from s3cache import AsyncS3Cache

CREDS: dict[str, Any] = {
    "aws_access_key_id": "bench",
    "aws_secret_access_key": "bench",
    "region_name": "us-east-1",
}


@pytest.fixture(scope="module")
def mini() -> Iterator[str]:
    """The mini server in a subprocess for this module; always stopped."""
    with EmbeddedServer("mini") as server:
        yield server.url


@pytest.fixture
def client(mini: str) -> Iterator[Any]:
    c = boto3.client("s3", endpoint_url=mini, **CREDS)
    yield c
    c.close()


@pytest.fixture
def bucket(client: Any) -> str:
    name = f"mini-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    return name


def _code(exc: ClientError) -> str:
    return str(exc.response["Error"]["Code"])


def test_boto3_object_round_trip_with_headers_and_metadata(client: Any, bucket: str) -> None:
    client.head_bucket(Bucket=bucket)
    put = client.put_object(
        Bucket=bucket,
        Key="dir/a key+é",
        Body=b"hello",
        ContentType="application/json",
        ContentEncoding="gzip",
        CacheControl="max-age=60",
        Expires=time.time() + 60,
        Metadata={"s3cache-ttl": "60"},
    )
    got = client.get_object(Bucket=bucket, Key="dir/a key+é")
    assert got["Body"].read() == b"hello"
    assert got["ETag"] == put["ETag"] == '"5d41402abc4b2a76b9719d911017c592"'
    assert got["ContentType"] == "application/json"
    assert got["ContentEncoding"] == "gzip"
    assert got["CacheControl"] == "max-age=60"
    assert got["Metadata"] == {"s3cache-ttl": "60"}
    assert got["ContentLength"] == 5
    headers = got["ResponseMetadata"]["HTTPHeaders"]
    assert headers["date"].endswith(" GMT")
    assert headers["last-modified"].endswith(" GMT")
    head = client.head_object(Bucket=bucket, Key="dir/a key+é")
    assert head["ContentLength"] == 5
    assert head["Metadata"] == {"s3cache-ttl": "60"}


def test_boto3_errors_are_s3_errors(client: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as missing:
        client.get_object(Bucket=bucket, Key="absent")
    assert _code(missing.value) == "NoSuchKey"
    with pytest.raises(ClientError) as head:
        client.head_object(Bucket=bucket, Key="absent")
    assert head.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(ClientError) as nobucket:
        client.head_bucket(Bucket="no-such-bucket-here")
    assert nobucket.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    client.put_object(Bucket=bucket, Key="k", Body=b"1")
    with pytest.raises(ClientError) as taken:
        client.put_object(Bucket=bucket, Key="k", Body=b"2", IfNoneMatch="*")
    assert _code(taken.value) == "PreconditionFailed"
    with pytest.raises(ClientError) as stale:
        client.put_object(Bucket=bucket, Key="k", Body=b"2", IfMatch='"not-the-etag"')
    assert _code(stale.value) == "PreconditionFailed"
    etag = client.head_object(Bucket=bucket, Key="k")["ETag"]
    client.put_object(Bucket=bucket, Key="k", Body=b"3", IfMatch=etag)
    assert client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"3"


def test_boto3_list_pages_and_batch_delete(client: Any, bucket: str) -> None:
    keys = [f"p/{i:04d}" for i in range(1005)]
    for key in keys:
        client.put_object(Bucket=bucket, Key=key, Body=b"x")
    client.put_object(Bucket=bucket, Key="other", Body=b"x")
    pages = list(client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="p/"))
    assert [p["KeyCount"] for p in pages] == [1000, 5]
    assert [o["Key"] for p in pages for o in p["Contents"]] == keys
    quiet = client.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[:1000]], "Quiet": True}
    )
    assert not quiet.get("Deleted")
    assert not quiet.get("Errors")
    loud = client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": keys[1000]}]})
    assert loud["Deleted"] == [{"Key": keys[1000]}]
    client.delete_object(Bucket=bucket, Key=keys[1001])
    left = client.list_objects_v2(Bucket=bucket)
    assert [o["Key"] for o in left["Contents"]] == ["other", *keys[1002:]]  # in key order


def test_keep_alive_and_expect_continue(mini: str, bucket: str) -> None:
    """Two requests on one connection; a PUT that waits for ``100 Continue`` before its body."""
    host, port = urlsplit(mini).hostname, urlsplit(mini).port
    assert host is not None
    assert port is not None
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        conn.request("PUT", f"/{bucket}/ka", body=b"one")
        first = conn.getresponse()
        first.read()
        sock = conn.sock
        conn.request("GET", f"/{bucket}/ka")
        second = conn.getresponse()
        assert (first.status, second.status, second.read()) == (200, 200, b"one")
        assert conn.sock is sock  # the same connection served both
        assert second.getheader("Connection") is None
    finally:
        conn.close()
    with socket.create_connection((host, port), timeout=5) as raw:
        raw.sendall(
            f"PUT /{bucket}/cont HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
            "Expect: 100-continue\r\n\r\n".encode()
        )
        assert raw.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        raw.sendall(b"abc")
        assert raw.recv(1000).startswith(b"HTTP/1.1 200 OK\r\n")


async def test_s3cache_against_the_mini_server(mini: str, bucket: str) -> None:
    async with AsyncS3Cache(
        bucket=bucket, endpoint_url=mini, prefix="c", on_error="raise", **CREDS
    ) as cache:
        report = await cache.check()
        assert report.conditional_writes is True
        assert report.clock_skew_s is not None
        assert abs(report.clock_skew_s) < 2
        await cache.set("a", {"x": 1})
        await cache.set("b", b"raw bytes")
        assert await cache.get("a") == {"x": 1}
        assert await cache.get("b") == b"raw bytes"
        assert await cache.get("absent", "default") == "default"
        assert await cache.exists("a")
        assert not await cache.exists("absent")
        assert await cache.add("a", "other") is False
        assert await cache.get("a") == {"x": 1}
        assert await cache.add("new", "v") is True
        assert await cache.delete("new") is True
        assert await cache.delete("new") is False
        await cache.set_many({f"m{i}": i for i in range(5)})
        assert await cache.delete_many(["m0", "m1", "absent"]) == 2
        await cache.set("short", "v", ttl=1)
        assert await cache.get("short") == "v"
        await asyncio.sleep(1.1)  # a ttl of 1 s, on the server's whole-second clock
        assert await cache.get("short") is None
        assert await cache.exists("short") is False
        assert await cache.add("short", "again", ttl=60) is True  # an expired entry is absent
        assert await cache.get("short") == "again"
        assert await cache.clear() == 6  # a, b, m2, m3, m4, short
        assert await cache.get("a") is None


async def test_feature_cells_count_requests_factory_calls_and_puts(mini: str, bucket: str) -> None:
    """The feature cells as the benchmark runs them, requests counted by the server: one GET
    for 100 readers, one factory call."""
    stats = f"{mini}/_mini/stats"
    target = Target(mini, "us-east-1", bucket, "bench", "bench", True, "mini", stats)
    cells = await run_features(Setup(target, 2.0, 100, "run/"), 0.05)
    stampede, flight, local, signed, telemetry = cells
    assert local.met is True
    assert local.figures["requests"] == 0
    assert local.figures["hits"] > 0
    assert flight.met is True
    assert flight.figures["requests"] == 1
    assert flight.figures["raw_aiobotocore_requests"] == 100
    assert stampede.met is True
    assert (stampede.figures["factory_calls"], stampede.figures["puts"]) == (1, 1)
    assert signed.figures["cpu_us_per_verification"] > 0  # its target is read in the run
    assert telemetry.figures["cpu_us_per_get_on"] > 0  # so is this one's (1.10x off)


def test_latency_on_the_wire_and_requests_counted_by_the_server(client: Any, bucket: str) -> None:
    """The mini server's --delay-ms, and a delaying proxy in front of any server, hold every
    answer back (whatever the client); the server counts requests by method."""
    with EmbeddedServer("mini", delay_ms=50) as slow:
        delayed = boto3.client("s3", endpoint_url=slow.url, **CREDS)
        try:
            delayed.create_bucket(Bucket=bucket)
            started = time.perf_counter()
            delayed.put_object(Bucket=bucket, Key="k", Body=b"v")  # 100 Continue, then 200
            delayed.get_object(Bucket=bucket, Key="k")["Body"].read()
            assert time.perf_counter() - started >= 3 * 0.05
        finally:
            delayed.close()
        target = Target(
            slow.url, "us-east-1", bucket, "b", "b", True, "mini", slow.url + "/_mini/stats"
        )
        assert request_counts(target) == {"PUT": 2, "GET": 1}
    with DelayProxy(client.meta.endpoint_url, 50) as proxy:
        proxied = boto3.client("s3", endpoint_url=proxy.url, **CREDS)
        try:
            started = time.perf_counter()
            proxied.head_bucket(Bucket=bucket)
            assert time.perf_counter() - started >= 0.05
        finally:
            proxied.close()


async def test_the_outage_cell_answers_every_get_as_a_miss(mini: str, bucket: str) -> None:
    """While the proxy refuses connections or never answers, gets are misses (no exception, no
    hang), local-tier keys stay hits, every failure is counted, and gets hit again afterwards.
    (How fast is the benchmark's to report, not this test's.)"""
    stats = f"{mini}/_mini/stats"
    target = Target(mini, "us-east-1", bucket, "bench", "bench", True, "mini", stats)
    result = await s3_outage(Setup(target, 2.0, 100, "run/"))
    figures = result.figures
    assert figures["misses"] == figures["gets_during_outage"], result.summary
    assert figures["tier_hits"] == 20
    assert "NOT hits again" not in result.summary
    counted = sum(v for k, v in figures.items() if k.startswith("errors_"))
    assert counted == figures["gets_during_outage"]  # fail-soft, but every failure counted
    assert figures["blackhole_miss_ms"] >= 0.9 * DEADLINE_S * 1000  # it waited for the deadline
    assert figures["slowest_miss_ms"] < DEADLINE_S * 1000 + 5000  # and not for ever
    # with the default breaker: five timeouts in a row open it, the other gets fail fast
    assert figures["breaker_opened_after"] == 5
    assert figures["breaker_fast_gets"] == 200 - 5


async def test_the_tag_cell_counts_record_gets_and_one_put_per_invalidate(
    mini: str, bucket: str
) -> None:
    """The tag cell's figures come from the proxy's counts: record GETs within their bound,
    one request per invalidate, nothing served after it."""
    stats = f"{mini}/_mini/stats"
    target = Target(mini, "us-east-1", bucket, "bench", "bench", True, "mini", stats)
    result = await tag_invalidation(Setup(target, 0.0, 100, "run/"))
    figures = result.figures
    assert figures["entry_gets"] == READS, result.summary
    assert 1 <= figures["record_gets"] <= figures["record_get_bound"], result.summary
    assert figures["invalidate_requests"] == 1
    assert figures["served_after"] == 0
    assert result.met is True


async def test_the_expiry_cell_serves_stale_without_waiting(mini: str, bucket: str) -> None:
    """With stale_ttl, no caller waits for the factory as the hot key expires under load, and
    the factory runs at most once per expiry; without it, callers wait."""
    stats = f"{mini}/_mini/stats"
    target = Target(mini, "us-east-1", bucket, "bench", "bench", True, "mini", stats)
    result = await expiry_under_load(Setup(target, 0.0, 64, "run/"))
    figures = result.figures
    assert figures["swr_waited"] == 0, result.summary
    assert 1 <= figures["swr_factory_calls"] <= figures["swr_expiries"], result.summary
    assert figures["plain_waited"] > 0, result.summary  # the cell measures what it claims
    assert figures["plain_factory_calls"] >= 1


async def test_the_early_refresh_cell_keeps_the_hot_key_fresh(mini: str, bucket: str) -> None:
    """With early=True the hot key is refreshed in the background before it expires: no call
    waits for the factory, at most two refreshes a ttl period; without it, callers wait."""
    stats = f"{mini}/_mini/stats"
    target = Target(mini, "us-east-1", bucket, "bench", "bench", True, "mini", stats)
    result = await early_refresh(Setup(target, 0.0, 64, "run/"), seconds=6.0)  # past one ttl
    figures = result.figures
    assert figures["early_waited"] == 0, result.summary
    assert figures["early_refreshes"] >= 1, result.summary
    assert figures["early_per_period"] <= MAX_PER_PERIOD, result.summary
    assert figures["plain_waited"] > 0, result.summary  # the cell measures what it claims
    assert result.met is True


async def test_the_stale_outage_cell_answers_seen_keys_without_the_factory(
    mini: str, bucket: str
) -> None:
    """Through an outage (shortened here), the cache with stale_if_error answers every call
    with a value seen before it and never calls the factory; the one without misses its gets
    and calls the factory for its get_or_sets."""
    stats = f"{mini}/_mini/stats"
    target = Target(mini, "us-east-1", bucket, "bench", "bench", True, "mini", stats)
    result = await stale_outage(Setup(target, 0.0, 100, "run/"), outage_s=1.5)
    figures = result.figures
    assert figures["on_outage_calls"] > 0, result.summary
    assert figures["on_outage_answered_share"] >= 0.99, result.summary
    assert figures["on_answered_share"] >= 0.99, result.summary
    assert figures["on_outage_factory_calls"] == figures["on_factory_calls"] == 0
    # the outage's answers were stale values: a call that started in its last moments may be
    # answered by S3 itself once the proxy forwards again (CI saw 48 stale of 49 calls)
    assert figures["on_stale_served"] >= figures["on_outage_calls"] * 0.9, result.summary
    assert figures["on_raised"] == figures["off_raised"] == 0  # fail-soft: nothing escapes
    assert result.met is True
    # the cell measures what it claims: without stale_if_error the outage shows
    assert figures["off_outage_answered_share"] < 0.9, result.summary
    assert figures["off_answered_share"] < figures["on_answered_share"]
    assert figures["off_outage_factory_calls"] > 0
    assert figures["off_stale_served"] == 0


async def test_a_contender_measured_in_a_process_of_its_own(mini: str, bucket: str) -> None:
    """The remote contender (how litellm is measured) gives the same kind of cell result, with
    the requests counted by the server."""
    stats = f"{mini}/_mini/stats"
    target = Target(mini, "us-east-1", bucket, "bench", "bench", True, "mini", stats)
    remote = RemoteContender("s3cache")
    await remote.start()
    try:
        info = await remote.ready()
        assert info["import_s"] >= 0
        assert info["heartbeat_cpu_s"] > 0
        await remote.bind(Setup(target, 0.0, 4, "remote/")).open()
        assert "measured in a process of its own" in remote.describe()
        await remote.preload(1024, 4)
        result = await remote.measure(
            "get-hit", 1024, 4, latency_ms=0.0, seconds=5.0, warmup_s=0.0, max_ops=20
        )
        await remote.close()
    finally:
        await remote.stop()
    assert (result.contender, result.workload, result.concurrency) == ("s3cache", "get-hit", 4)
    assert (result.ops, result.errors) == (20, 0)
    assert result.requests_per_op == 1.0
    assert result.cpu_us_per_op > 0
    unknown = RemoteContender("no-such-client")
    await unknown.start()
    try:
        with pytest.raises(ContenderUnavailable, match="unknown contender"):
            await unknown.ready()
    finally:
        await unknown.stop()
