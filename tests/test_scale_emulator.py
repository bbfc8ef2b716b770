"""S3's request-rate limits, emulated (``harness.s3limits`` in the mini server): read and write
buckets per partition, refill, S3's exact 503 SlowDown, partition splits after sustained load,
the control endpoint, and what boto3 and s3cache see through it.

The model is tested on a fake clock; the wire tests run the mini server in a thread of this
process with the same kind of clock (stepped by the test, never slept on), or as the benchmark
runs it (a subprocess) where only the control endpoint is exercised.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import re
import socket
import uuid
from collections import deque
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from benchmarks.server import EmbeddedServer
from harness import miniserver
from harness.loopthread import LoopThread
from harness.s3limits import (
    Emulator,
    Limits,
    _boundary,
    limited_key,
    read_limits,
    set_limits,
    slowdown_body,
)
from s3cache import AsyncS3Cache, ServerError

CREDS: dict[str, Any] = {
    "aws_access_key_id": "emulator",
    "aws_secret_access_key": "emulator",
    "region_name": "us-east-1",
}
# botocore's client config counts retries here: 0 is one attempt in all, 2 is three.
NO_RETRIES = Config(retries={"mode": "standard", "max_attempts": 0})
RETRIES = Config(retries={"mode": "standard", "max_attempts": 2})
BODY = re.compile(
    rb'<\?xml version="1\.0" encoding="UTF-8"\?>\n<Error><Code>SlowDown</Code>'
    rb"<Message>Please reduce your request rate\.</Message>"
    rb"<RequestId>([A-Z2-7]{16})</RequestId><HostId>([A-Za-z0-9+/]{76})</HostId></Error>"
)


class StepClock:
    """The emulator's clock: moves by ``step`` on every read (0: frozen) and on ``advance``."""

    def __init__(self, step: float = 0.0) -> None:
        self.now = 100.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def admit_many(emulator: Emulator, method: str, keys: list[str]) -> list[bool]:
    return [emulator.admit(method, "b", key) for key in keys]


# -- the model -------------------------------------------------------------------------------


def test_reads_and_writes_have_independent_buckets() -> None:
    emulator = Emulator(Limits(read_rate=10, write_rate=5), StepClock())
    assert admit_many(emulator, "GET", ["k"] * 6) == [True] * 6
    assert admit_many(emulator, "HEAD", ["k"] * 5) == [True] * 4 + [False]
    assert admit_many(emulator, "GET", ["k"]) == [False]
    # Reads exhausted; writes untouched. PUT, POST and DELETE share the write bucket.
    assert admit_many(emulator, "PUT", ["k"] * 3) == [True] * 3
    assert emulator.admit("DELETE", "b", "k") is True
    assert emulator.admit("POST", "b", "k") is True
    assert emulator.admit("PUT", "b", "k") is False
    snapshot = emulator.snapshot()
    assert snapshot["totals"] == {
        "admitted": {"read": 10, "write": 5},
        "throttled": {"read": 2, "write": 1},
    }
    [part] = snapshot["partitions"]
    assert (part["low"], part["high"]) == ("", None)
    assert part["throttled"] == {"read": 2, "write": 1}


def test_buckets_refill_at_their_rate_up_to_the_burst() -> None:
    clock = StepClock()
    emulator = Emulator(Limits(read_rate=10, write_rate=5, burst_s=2.0), clock)
    assert admit_many(emulator, "GET", ["k"] * 21).count(True) == 20  # 2 s of burst
    assert admit_many(emulator, "GET", ["k"] * 100) == [False] * 100  # refused take nothing
    clock.advance(0.25)
    assert admit_many(emulator, "GET", ["k"] * 3) == [True, True, False]  # 2.5 tokens
    clock.advance(60.0)
    assert admit_many(emulator, "GET", ["k"] * 22).count(True) == 20  # capped at the burst


def test_buckets_of_other_buckets_and_partitions_are_separate() -> None:
    emulator = Emulator(Limits(read_rate=1, write_rate=1), StepClock())
    assert emulator.admit("GET", "one", "k") is True
    assert emulator.admit("GET", "one", "k") is False
    assert emulator.admit("GET", "two", "k") is True
    assert [p.bucket for p in emulator.partitions("two")] == ["two"]


def sustained(emulator: Emulator, clock: StepClock, keys: list[str], seconds: int) -> list[int]:
    """``keys`` read once each per second for ``seconds``; throttled reads per second."""
    throttled = []
    for _ in range(seconds):
        start, before = clock.now, emulator.throttled[0]
        for i, key in enumerate(keys):
            clock.now = start + i / len(keys)
            emulator.admit("GET", "b", key)
        throttled.append(emulator.throttled[0] - before)
        clock.now = start + 1.0
    return throttled


def test_a_partition_splits_after_sustained_load_and_doubles_capacity() -> None:
    clock = StepClock()
    limits = Limits(read_rate=10, write_rate=10, split_after_s=3.0, split_load=0.8)
    emulator = Emulator(limits, clock)
    keys = [f"cache/k{i:02d}" for i in range(20)]  # 20 reads a second against 10 a second
    per_second = sustained(emulator, clock, keys, 6)
    [split] = emulator.splits
    assert 103.0 <= split.at < 104.0  # three loaded windows, then the split
    assert split.boundary == "cache/k1"  # the median key, cut to the shortest separating prefix
    assert (split.low, split.high) == ("", None)
    assert split.admitted[0] > 0
    assert split.throttled[0] > 0
    parts = emulator.partitions("b")
    assert [(p.low, p.high) for p in parts] == [("", "cache/k1"), ("cache/k1", None)]
    assert per_second[1:3] == [10, 10]  # one partition: 10 of 20 refused every second
    assert per_second[-1] == 0  # two partitions of 10/s each serve 10 keys a second each
    snapshot = emulator.snapshot()
    assert snapshot["splits"][0]["boundary"] == "cache/k1"
    assert list(snapshot["splits"][0]["children"]) == [p.id for p in parts]


def test_load_below_the_threshold_never_splits() -> None:
    clock = StepClock()
    emulator = Emulator(Limits(read_rate=10, split_after_s=2.0, split_load=0.8), clock)
    sustained(emulator, clock, [f"k{i}" for i in range(7)], 10)  # 7 < 0.8 * 10
    assert emulator.splits == []


def test_load_must_be_sustained_without_a_quiet_window() -> None:
    clock = StepClock()
    emulator = Emulator(Limits(read_rate=10, split_after_s=3.0), clock)
    keys = [f"k{i:02d}" for i in range(20)]
    for _ in range(3):
        sustained(emulator, clock, keys, 2)
        clock.advance(1.0)  # a quiet second resets the count
    assert emulator.splits == []
    sustained(emulator, clock, keys, 4)
    assert len(emulator.splits) == 1


def test_one_hot_key_cannot_split() -> None:
    clock = StepClock()
    emulator = Emulator(Limits(read_rate=10, split_after_s=1.0), clock)
    sustained(emulator, clock, ["hot"] * 30, 5)
    assert emulator.splits == []
    assert len(emulator.partitions("b")) == 1


def test_splits_stop_at_max_partitions() -> None:
    clock = StepClock()
    emulator = Emulator(Limits(read_rate=5, split_after_s=1.0, max_partitions=3), clock)
    sustained(emulator, clock, [f"k{i:03d}" for i in range(100)], 12)
    assert len(emulator.partitions("b")) == 3
    assert len(emulator.splits) == 2
    lows = [p.low for p in emulator.partitions("b")]
    assert lows == sorted(lows)
    assert lows[0] == ""


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        (["a", "b", "c", "d"], "c"),
        (["a", "a", "a", "b"], "b"),
        (["llm/3f00", "llm/3f01", "llm/a000", "llm/a001"], "llm/a"),
        (["same", "same"], None),
    ],
)
def test_split_points_are_the_shortest_separating_prefix(keys: list[str], expected: str) -> None:
    assert _boundary(deque(keys)) == expected


def test_requests_are_charged_to_the_key_they_name() -> None:
    assert limited_key("GET", "a/b", {}, b"") == "a/b"
    assert limited_key("GET", "", {"list-type": "2", "prefix": "cache/"}, b"") == "cache/"
    body = b"<Delete><Object><Key>cache/x</Key></Object><Object><Key>y</Key></Object></Delete>"
    assert limited_key("POST", "", {"delete": ""}, body) == "cache/x"
    assert limited_key("HEAD", "", {}, b"") is None  # HeadBucket
    assert limited_key("PUT", "", {}, b"") is None  # CreateBucket


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="read_rate must be a positive number"):
        Limits(read_rate=0)
    with pytest.raises(ValueError, match="unknown Limits field"):
        Limits.from_json({"reads": 5})
    assert Limits.scaled(1.0).read_rate == 5500
    assert Limits.scaled(1.0).write_rate == 3500
    assert Limits.from_json(Limits(read_rate=7).to_json()) == Limits(read_rate=7)


# -- the wire --------------------------------------------------------------------------------


class _Tracked(miniserver.S3Protocol):
    """The mini server's protocol, remembered so that the test server can close it."""

    open: set[_Tracked]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.open.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.open.discard(self)
        super().connection_lost(exc)


@contextlib.contextmanager
def mini_in_thread(emulator: Emulator) -> Iterator[str]:
    """The mini server with ``emulator``, on a loop in a thread of this process; its URL."""
    thread = LoopThread("mini-server")
    store = miniserver.S3Store(limits=emulator)
    clock = miniserver._Clock()
    protocols: set[_Tracked] = set()

    def protocol() -> _Tracked:
        tracked = _Tracked(store, clock)
        tracked.open = protocols
        return tracked

    async def start() -> asyncio.Server:
        return await asyncio.get_running_loop().create_server(protocol, "127.0.0.1", 0)

    async def stop(server: asyncio.Server) -> None:
        server.close()
        for tracked in list(protocols):
            if tracked.transport is not None:
                tracked.transport.close()
        await server.wait_closed()

    server = thread.call(start())
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        thread.call(stop(server))
        thread.stop()


@pytest.fixture
def clock() -> StepClock:
    return StepClock()


@pytest.fixture
def emulated(clock: StepClock) -> Iterator[tuple[str, Emulator]]:
    """A mini server whose limits run on ``clock``: 4 reads and 4 writes a second, bursts of
    one; and its bucket ``emu``."""
    emulator = Emulator(Limits(read_rate=4, write_rate=4, burst_s=0.25), clock)
    with mini_in_thread(emulator) as url:
        client = boto3.client("s3", endpoint_url=url, **CREDS)
        client.create_bucket(Bucket="emu")  # bucket requests are not limited
        client.close()
        yield url, emulator


def raw(url: str, method: str, path: str, body: bytes | None = None) -> tuple[Any, bytes]:
    """One request on a fresh connection: (response, body)."""
    connection = http.client.HTTPConnection(urlsplit(url).netloc, timeout=10)
    try:
        connection.request(method, path, body=body)
        response = connection.getresponse()
        return response, response.read()
    finally:
        connection.close()


def drain(url: str, clock: StepClock, step: float = 0.0) -> None:
    """Fill both buckets (a full second passes), take their one token each, then let the clock
    move by ``step`` per request: with 4 a second and steps of 0.125 s, every other request
    finds its bucket empty."""
    clock.step = 0.0
    clock.advance(1.0)
    raw(url, "GET", "/emu/drain")
    raw(url, "PUT", "/emu/drain", b"d")
    clock.step = step


def test_slowdown_is_s3s_status_headers_and_body(
    emulated: tuple[str, Emulator], clock: StepClock
) -> None:
    url, emulator = emulated
    drain(url, clock)
    response, body = raw(url, "PUT", "/emu/refused", b"never stored")
    assert (response.status, response.reason) == (503, "Slow Down")
    match = BODY.fullmatch(body)
    assert match is not None, body
    assert body == slowdown_body(match[1].decode(), match[2].decode())
    assert response.getheader("x-amz-request-id") == match[1].decode()
    assert response.getheader("x-amz-id-2") == match[2].decode()
    assert response.getheader("Content-Type") == "application/xml"
    assert response.getheader("Transfer-Encoding") == "chunked"
    assert response.getheader("Server") == "AmazonS3"
    assert response.getheader("Connection") == "close"
    assert response.getheader("Date", "").endswith(" GMT")
    head, head_body = raw(url, "HEAD", "/emu/drain")
    assert (head.status, head_body) == (503, b"")
    assert head.getheader("x-amz-request-id") is not None
    clock.advance(1.0)
    missing, _ = raw(url, "GET", "/emu/refused")
    assert missing.status == 404  # a throttled write is not applied
    assert emulator.throttled == [1, 1]


def test_the_server_hangs_up_after_a_slowdown(
    emulated: tuple[str, Emulator], clock: StepClock
) -> None:
    url, _ = emulated
    drain(url, clock)
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    received = b""
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(b"GET /emu/k HTTP/1.1\r\nHost: emulator\r\n\r\n")
        while chunk := sock.recv(65536):  # until the server closes (a timeout otherwise)
            received += chunk
    assert received.startswith(b"HTTP/1.1 503 Slow Down\r\n")
    assert received.endswith(b"</Error>\r\n0\r\n\r\n")  # the whole chunked body, then EOF


def test_boto3_sees_slowdown_and_retries_through_it(
    emulated: tuple[str, Emulator], clock: StepClock
) -> None:
    url, emulator = emulated
    strict = boto3.client("s3", endpoint_url=url, config=NO_RETRIES, **CREDS)
    patient = boto3.client("s3", endpoint_url=url, config=RETRIES, **CREDS)
    try:
        drain(url, clock)
        with pytest.raises(ClientError) as caught:
            strict.put_object(Bucket="emu", Key="k", Body=b"v")
        error = caught.value.response
        assert error["Error"]["Code"] == "SlowDown"
        assert error["Error"]["Message"] == "Please reduce your request rate."
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 503
        drain(url, clock, step=0.125)
        patient.put_object(Bucket="emu", Key="k", Body=b"v")  # refused once, then stored
        drain(url, clock, step=0.125)
        assert patient.get_object(Bucket="emu", Key="k")["Body"].read() == b"v"
        assert emulator.throttled == [1, 2]
    finally:
        strict.close()
        patient.close()


@pytest.fixture(params=[True, False], ids=["wire", "aiobotocore"])
def fast_path(request: pytest.FixtureRequest) -> bool:
    """Both request paths."""
    flag: bool = request.param
    return flag


def cache_on(url: str, config: Config, fast_path: bool, **options: Any) -> AsyncS3Cache:
    return AsyncS3Cache(
        "emu", endpoint_url=url, config=config, fast_path=fast_path, **CREDS, **options
    )


async def test_s3cache_sees_a_server_error(
    emulated: tuple[str, Emulator], clock: StepClock, fast_path: bool
) -> None:
    url, emulator = emulated
    async with cache_on(url, NO_RETRIES, fast_path, on_error="raise") as cache:
        drain(url, clock)
        with pytest.raises(ServerError, match="SlowDown") as caught:
            await cache.set("k", 1)
        assert caught.value.kind == "server"
        with pytest.raises(ServerError, match="SlowDown"):
            await cache.get("k")
    async with cache_on(url, NO_RETRIES, fast_path) as cache:  # on_error="log": a miss
        assert await cache.get("k", "missing") == "missing"
        assert cache.stats().errors == {"server": 1}
    assert emulator.throttled == [2, 1]


async def test_s3cache_retries_through_slowdown(
    emulated: tuple[str, Emulator], clock: StepClock, fast_path: bool
) -> None:
    url, emulator = emulated
    async with cache_on(url, RETRIES, fast_path, on_error="raise") as cache:
        drain(url, clock, step=0.125)
        await cache.set("k", {"v": 1})
        drain(url, clock, step=0.125)
        assert await cache.get("k") == {"v": 1}
        assert cache.stats().errors == {}
    assert emulator.throttled == [1, 1]  # each operation was refused once, then served


def test_a_split_is_observable_on_the_control_endpoint(clock: StepClock) -> None:
    limits = Limits(read_rate=4, write_rate=4, burst_s=0.25, split_after_s=2.0)
    with mini_in_thread(Emulator(limits, clock)) as url:
        connection = http.client.HTTPConnection(urlsplit(url).netloc, timeout=10)
        try:
            for second in range(4):  # 8 reads a second over 8 keys, twice the capacity,
                for i in range(8):  # key-0, key-4, key-1, key-5...: both halves evenly spaced
                    clock.now = 1000.0 + second + i / 8
                    connection.request("GET", f"/emu/key-{i % 2 * 4 + i // 2}")
                    connection.getresponse().read()  # a 404, or a SlowDown that closes
        finally:
            connection.close()
        state = read_limits(url)
    assert state["enabled"] is True
    [split] = state["splits"]  # after two loaded seconds
    assert split["boundary"] == "key-4"
    assert split["at"] == 1002.0
    assert split["throttled"] == [8, 0]  # 4 of 8 reads refused in each of those seconds
    partitions = state["partitions"]
    assert [(p["low"], p["high"]) for p in partitions] == [("", "key-4"), ("key-4", None)]
    assert [p["throttled"]["read"] for p in partitions] == [0, 0]  # each half serves its 4/s
    assert state["totals"]["throttled"]["read"] == 8
    assert [row[0] for row in state["series"]] == [1000, 1001, 1002, 1003]
    assert [row[3] for row in state["series"]] == [4, 4, 0, 0]


def test_the_control_endpoint_installs_and_removes_limits() -> None:
    with EmbeddedServer("mini") as server:
        assert read_limits(server.url) == {"enabled": False}
        client = boto3.client("s3", endpoint_url=server.url, config=NO_RETRIES, **CREDS)
        try:
            bucket = f"limits-{uuid.uuid4().hex[:8]}"
            client.create_bucket(Bucket=bucket)
            slow = Limits(read_rate=0.1, write_rate=0.1, split_after_s=60)  # a token per 10 s
            state = set_limits(server.url, slow)
            assert state["enabled"] is True
            assert state["limits"]["write_rate"] == 0.1
            client.put_object(Bucket=bucket, Key="k", Body=b"v")
            with pytest.raises(ClientError, match="SlowDown"):
                client.put_object(Bucket=bucket, Key="k", Body=b"w")
            assert read_limits(server.url)["totals"]["throttled"]["write"] == 1
            assert set_limits(server.url, None) == {"enabled": False}
            for _ in range(5):  # no limits any more
                client.put_object(Bucket=bucket, Key="k", Body=b"x")
            refused, body = raw(server.url, "PUT", "/_mini/limits", b'{"reads": 3}')
            assert refused.status == 400
            assert b"unknown Limits field" in body
        finally:
            client.close()
