"""The wire path's HTTP/1.1 client (``_http_pool`` and ``_http11``) against servers that
misbehave on cue (:mod:`harness.rawhttp`): body framing, keep-alive and its races,
100-continue, early answers, broken responses, timeouts, and heads that would smuggle."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from botocore.exceptions import (
    ConnectionClosedError,
    EndpointConnectionError,
    ReadTimeoutError,
    SSLError,
)
from yarl import URL

from harness.faultproxy import FaultProxy, closed_port
from harness.rawhttp import Peer, ScriptedServer, SeenHead, response
from s3cache import AsyncS3Cache, S3CacheError, _http11
from s3cache._http11 import BadResponse, ConnectionLost, ReadTimedOut, Reply
from s3cache._http_head import request_head
from s3cache._http_pool import ConnectFailed, Pool, TLSFailed
from s3cache._keys import object_key
from s3cache._sigv4 import quote_key
from s3cache._wire import WireSession, tls_context

HOST = {"host": "127.0.0.1"}
BIG = os.urandom(4 * 1024 * 1024)


@asynccontextmanager
async def pool_for(**options: Any) -> AsyncIterator[Pool]:
    settings: dict[str, Any] = {
        "limit": 4,
        "tls": None,
        "connect_timeout": 5.0,
        "read_timeout": 5.0,
        **options,
    }
    pool = Pool(**settings)
    try:
        yield pool
    finally:
        await pool.close()
    assert pool.connections == 0


def origin(server: ScriptedServer) -> tuple[str, int, bool]:
    return ("127.0.0.1", server.port, False)


async def send(
    pool: Pool,
    server: ScriptedServer,
    method: str = "GET",
    target: str = "/b/k",
    body: bytes | None = None,
    **headers: str,
) -> Reply:
    return await pool.request(origin(server), method, target, {**HOST, **headers}, body)


def answering(answer: Callable[[SeenHead, bytes], bytes]) -> Callable[[Peer], None]:
    """A keep-alive script: read each request (and its body), send ``answer(head, body)``."""

    def script(peer: Peer) -> None:
        while (head := peer.head()) is not None:
            body = peer.body(int(head.headers.get("content-length", "0")))
            peer.send(answer(head, body))

    return script


def ok(head: SeenHead, body: bytes) -> bytes:
    return response(200, b"ok")


# -- framing ---------------------------------------------------------------------------------


async def test_sized_bodies_small_as_bytes_large_into_one_bytearray() -> None:
    def answer(head: SeenHead, body: bytes) -> bytes:
        return response(200, BIG if head.target.endswith("large") else b"s" * 1024)

    with ScriptedServer(answering(answer)) as server:
        async with pool_for() as pool:
            small = await send(pool, server, target="/b/small")
            large = await send(pool, server, target="/b/large")
            again = await send(pool, server, target="/b/small")
    assert (small.status, small.body, type(small.body)) == (200, b"s" * 1024, bytes)
    assert type(large.body) is bytearray
    assert large.body == BIG
    assert again.body == small.body
    assert large.headers["content-length"] == str(len(BIG))
    assert server.connections == 1  # all three on one keep-alive connection


async def test_a_body_buffer_is_reused_only_once_nothing_holds_it() -> None:
    """The next large body goes into the previous one's buffer when it was let go (no fresh
    pages to map), never into one somebody still holds."""
    other = os.urandom(len(BIG))

    def answer(head: SeenHead, body: bytes) -> bytes:
        return response(200, BIG if head.target.endswith("big") else other)

    with ScriptedServer(answering(answer)) as server:
        async with pool_for() as pool:
            kept = (await send(pool, server, target="/b/big")).body
            second = (await send(pool, server, target="/b/other")).body
            assert second is not kept
            assert kept == BIG  # untouched by the second response
            assert second == other
            first_id = id(second)
            del second
            third = (await send(pool, server, target="/b/big")).body
            assert id(third) == first_id  # the let-go buffer, refilled
            assert third == BIG
            assert kept == BIG


async def test_chunked_bodies_are_reassembled() -> None:
    chunked = b"4;ext=1\r\nabcd\r\n1\r\ne\r\n" + f"{len(BIG):x}\r\n".encode() + BIG
    chunked += b"\r\n0\r\nx-trailer: t\r\n\r\n"

    def answer(head: SeenHead, body: bytes) -> bytes:
        return response(200, chunked, "Transfer-Encoding: chunked", length=False)

    with ScriptedServer(answering(answer)) as server:
        async with pool_for() as pool:
            first = await send(pool, server)
            second = await send(pool, server)
    assert first.body == second.body == b"abcde" + BIG
    assert server.connections == 1


@pytest.mark.parametrize(
    ("method", "answer"),
    [
        ("HEAD", response(200, b"", "Content-Length: 1000", length=False)),
        ("HEAD", response(200, b"", "Transfer-Encoding: chunked", length=False)),
        ("GET", response(204, b"", "Content-Length: 5", length=False)),
        ("GET", response(304, b"", "Content-Length: 5", length=False)),
    ],
    ids=["head-sized", "head-chunked", "204", "304"],
)
async def test_heads_204_and_304_have_no_body(method: str, answer: bytes) -> None:
    """Whatever their headers announce; the connection stays in step for the next request."""

    def respond(head: SeenHead, body: bytes) -> bytes:
        return answer if head.target == "/b/first" else response(200, b"next")

    with ScriptedServer(answering(respond)) as server:
        async with pool_for() as pool:
            first = await send(pool, server, method, "/b/first")
            second = await send(pool, server, "GET", "/b/second")
    assert first.body == b""
    assert second.body == b"next"
    assert server.connections == 1


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "reset"])
async def test_a_body_delimited_by_the_close(reset: bool) -> None:
    """No length, not chunked: the body ends with a clean close; a reset is an error."""
    with ScriptedServer(sending(response(200, b"to the end", length=False), reset=reset)) as server:
        async with pool_for() as pool:
            if reset:
                with pytest.raises(
                    ConnectionLost, match="in the middle of a body read up to the close"
                ):
                    await send(pool, server)
            else:
                assert (await send(pool, server)).body == b"to the end"


async def test_bytes_past_the_response_close_the_connection() -> None:
    with ScriptedServer(answering(lambda h, b: response(200, b"abc")[:-3] + b"abcdef")) as server:
        async with pool_for() as pool:
            first = await send(pool, server)
            second = await send(pool, server)
    assert first.body == second.body == b"abc"
    assert server.connections == 2


# -- keep-alive and the server closing ---------------------------------------------------------


async def test_connection_close_is_honoured() -> None:
    closed: list[int] = []

    def script(peer: Peer) -> None:
        if peer.head() is not None:
            peer.send(response(200, b"bye", "Connection: close"))
            closed.append(peer.drain())  # returns when the client has closed its end

    with ScriptedServer(script) as server:
        async with pool_for() as pool:
            assert (await send(pool, server)).body == b"bye"
            assert (await send(pool, server)).body == b"bye"
            assert pool.connections == 0
    assert server.connections == 2
    assert closed == [0, 0]


async def test_an_idle_connection_the_server_closed_is_replaced() -> None:
    def script(peer: Peer) -> None:
        if (head := peer.head()) is not None:
            peer.send(response(200, head.target.encode()))  # then close, idle

    with ScriptedServer(script) as server:
        async with pool_for() as pool:
            await send(pool, server, target="/b/1")
            [idle] = pool._idle[origin(server)]
            await asyncio.wait_for(idle.closed, 5)
            assert (await send(pool, server, target="/b/2")).body == b"/b/2"
    assert [r.target for r in server.requests] == ["/b/1", "/b/2"]
    assert server.connections == 2


async def test_a_connection_made_while_the_pool_closes_is_ended_unused() -> None:
    """A request still connecting when ``close()`` runs gets no connection that close() never
    saw: it fails, nothing is sent, and no socket is left for the garbage collector."""
    with ScriptedServer(answering(ok)) as server:
        async with pool_for() as pool:
            request = asyncio.create_task(send(pool, server))
            await asyncio.sleep(0)  # the request is now inside create_connection
            await pool.close()
            with pytest.raises(ConnectionLost, match="pool is closed"):
                await request
    assert server.requests == []


def racing_close(peer: Peer) -> None:
    """Answer the first request; close the connection as the second arrives, unanswered
    (a server closing an idle connection just as the client reuses it). Later connections
    answer every request, with 100 Continue where asked."""
    while (head := peer.head()) is not None:
        if peer.index == 0 and len([r for r in peer.seen if r.connection == 0]) == 2:
            return
        if head.headers.get("expect") == "100-continue":
            peer.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = peer.body(int(head.headers.get("content-length", "0")))
        peer.send(response(200, str(len(body)).encode()))


@pytest.mark.parametrize(
    ("method", "body", "expect"),
    [("GET", None, False), ("HEAD", None, False), ("DELETE", None, False), ("PUT", BIG, True)],
    ids=["GET", "HEAD", "DELETE", "PUT-awaiting-100"],
)
async def test_a_request_racing_the_servers_close_is_sent_once_more_when_safe(
    method: str, body: bytes | None, expect: bool
) -> None:
    headers = {"expect": "100-continue"} if expect else {}
    with ScriptedServer(racing_close) as server:
        async with pool_for() as pool:
            await send(pool, server)
            reply = await send(pool, server, method, "/b/again", body, **headers)
    assert reply.status == 200
    assert reply.body == (b"" if method == "HEAD" else str(len(body or b"")).encode())
    assert [(r.method, r.connection) for r in server.requests] == [
        ("GET", 0),
        (method, 0),
        (method, 1),
    ]


async def test_a_put_the_server_may_have_read_is_not_sent_again() -> None:
    """Its body went with it: the server may have applied it, so the transport's retry
    policy decides (and sees the error), not the pool."""
    with ScriptedServer(racing_close) as server:
        async with pool_for() as pool:
            await send(pool, server)
            with pytest.raises(ConnectionLost, match="before any response") as caught:
                await send(pool, server, "PUT", "/b/put", b"x" * 1000)
    assert (caught.value.answered, caught.value.delivered) == (False, True)
    assert [r.connection for r in server.requests] == [0, 0]


def close_after_head(peer: Peer) -> None:
    peer.head()


def silent(peer: Peer) -> None:
    """Read the request, never answer, until the client closes."""
    if peer.head() is not None:
        peer.drain()


async def test_a_put_never_goes_on_a_connection_the_server_already_closed() -> None:
    """The server's FIN is in, the loop has not seen it yet: the PUT polls the idle socket
    and takes a fresh connection instead of one it could not safely repeat on."""
    closed = threading.Event()

    def script(peer: Peer) -> None:
        while (head := peer.head()) is not None:
            peer.send(
                response(
                    200, str(len(peer.body(int(head.headers.get("content-length", "0"))))).encode()
                )
            )
            if peer.index == 0:
                peer.sock.close()
                closed.set()
                return

    with ScriptedServer(script) as server:
        async with pool_for() as pool:
            await send(pool, server)
            closed.wait(5)  # blocks the loop on purpose: it must not see the close first
            [idle] = pool._idle[origin(server)]
            assert idle.usable()  # as far as the loop knows
            reply = await send(pool, server, "PUT", "/b/k", b"x" * 10)
    assert reply.body == b"10"
    assert [(r.method, r.connection) for r in server.requests] == [("GET", 0), ("PUT", 1)]


async def test_a_fresh_connection_closed_before_an_answer_is_not_retried() -> None:
    with ScriptedServer(close_after_head) as server:
        async with pool_for() as pool:
            with pytest.raises(ConnectionLost, match="before any response"):
                await send(pool, server)
    assert server.connections == 1


async def test_idle_connections_beyond_the_limit_or_the_keepalive_timeout_are_closed() -> None:
    with ScriptedServer(answering(ok)) as server:
        async with pool_for(limit=2, keepalive_timeout=0.3) as pool:
            await asyncio.gather(*(send(pool, server) for _ in range(4)))
            assert server.connections == 4
            assert pool.connections == 2
            idle = list(pool._idle[origin(server)])
            await asyncio.wait_for(asyncio.gather(*(c.closed for c in idle)), 5)
            assert pool.connections == 0


# -- request bodies: 100-continue and early answers ---------------------------------------------


async def test_a_large_put_waits_for_100_continue() -> None:
    received: list[int] = []

    def script(peer: Peer) -> None:
        while (head := peer.head()) is not None:
            assert not peer.pending  # nothing of the body came before the 100
            peer.send(b"HTTP/1.1 100 Continue\r\n\r\n")
            received.append(len(peer.body(int(head.headers["content-length"]))))
            peer.send(response(200, b"stored"))

    with ScriptedServer(script) as server:
        async with pool_for() as pool:
            for _ in range(2):
                reply = await send(pool, server, "PUT", "/b/k", BIG, expect="100-continue")
                assert reply.body == b"stored"
    assert received == [len(BIG)] * 2
    assert server.connections == 1


async def test_a_final_answer_before_100_means_the_body_is_never_sent() -> None:
    sent_after: list[int] = []

    def script(peer: Peer) -> None:
        if peer.head() is not None:
            peer.send(response(403, b"<Error><Code>AccessDenied</Code></Error>"))
            sent_after.append(peer.drain())  # until the client closes

    with ScriptedServer(script) as server:
        async with pool_for() as pool:
            reply = await send(pool, server, "PUT", "/b/k", BIG, expect="100-continue")
            assert pool.connections == 0
    assert reply.status == 403
    assert b"AccessDenied" in reply.body
    assert sent_after == [0]


async def test_a_server_ignoring_expect_gets_the_body_after_a_short_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_http11, "CONTINUE_TIMEOUT", 0.2)

    def answer(head: SeenHead, body: bytes) -> bytes:
        return response(200, str(len(body)).encode())

    with ScriptedServer(answering(answer)) as server:
        async with pool_for() as pool:
            reply = await send(pool, server, "PUT", "/b/k", BIG, expect="100-continue")
    assert reply.body == str(len(BIG)).encode()


async def test_an_answer_before_the_whole_body_is_read_and_the_connection_closed() -> None:
    """A 400 while the body is still going: read it, do not hang, and close the connection."""
    huge = bytes(48 * 1024 * 1024)  # more than the socket buffers of both ends hold
    drained: list[int] = []

    def script(peer: Peer) -> None:
        if peer.head() is not None:
            peer.send(response(400, b"<Error><Code>EntityTooLarge</Code></Error>"))
            drained.append(peer.drain())

    with ScriptedServer(script) as server:
        async with pool_for() as pool:
            async with asyncio.timeout(10):
                reply = await send(pool, server, "PUT", "/b/k", huge)
            assert pool.connections == 0
    assert reply.status == 400
    assert b"EntityTooLarge" in reply.body
    # How much of the body the server drained before the close is not asserted: on a loaded
    # machine the client's loop may flush all of it before it reads the early answer (seen with
    # two workers on two cores); what must hold is that the answer is read and nothing hangs.
    assert len(drained) == 1


# -- broken responses ----------------------------------------------------------------------------


def sending(raw: bytes, *, reset: bool = False) -> Callable[[Peer], None]:
    """A script that reads one request, sends ``raw`` and closes (or resets)."""

    def script(peer: Peer) -> None:
        if peer.head() is not None:
            peer.send(raw)
            if reset:
                peer.reset()

    return script


@pytest.mark.parametrize(
    ("raw", "reset", "match"),
    [
        (response(200, b"x" * 1000)[:-500], False, "after 500 of 1000 body bytes"),
        (response(200, b"x" * 1000)[:-500], True, "after 500 of 1000 body bytes"),
        (response(200, b"x" * 100_000)[:-1], False, "after 99999 of 100000 body bytes"),
        (
            response(200, b"10\r\n0123", "Transfer-Encoding: chunked", length=False),
            False,
            "in the middle of a chunked body",
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Le", False, "in the middle of the response head"),
    ],
    ids=["sized-fin", "sized-reset", "sized-one-short", "chunked", "head"],
)
async def test_truncated_responses_are_errors(raw: bytes, reset: bool, match: str) -> None:
    with ScriptedServer(sending(raw, reset=reset)) as server:
        async with pool_for() as pool:
            with pytest.raises(ConnectionLost, match=match) as caught:
                await send(pool, server)
    assert caught.value.answered


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n", "Invalid status code"),
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "malformed response"),
        (b"HTTP/1.1 200 OK\r\nX: a\0b\r\nContent-Length: 0\r\n\r\n", "Invalid header value"),
        (b"HTTP/1.1 200 OK\nContent-Length: 0\n\n", "malformed response"),
        (response(200, b"abc", "Content-Length: 4"), "Duplicate Content-Length"),
        (
            response(200, b"abc", "Transfer-Encoding: chunked"),
            "Content-Length can't be present with Transfer-Encoding",
        ),
        (response(200, b"", "X-Big: " + "v" * 70_000), "head is over 65536 bytes"),
        (response(200, b"", *(f"X-{i}: v" for i in range(300))), "over 256 headers"),
        (response(101, b"", "Upgrade: h2c", "Connection: upgrade"), "switched protocols"),
    ],
    ids=[
        "status",
        "not-http",
        "nul",
        "bare-lf",
        "two-lengths",
        "length-and-chunked",
        "oversized",
        "too-many",
        "upgrade",
    ],
)
async def test_malformed_or_oversized_responses_are_errors(raw: bytes, match: str) -> None:
    with ScriptedServer(sending(raw)) as server:
        async with pool_for() as pool:
            with pytest.raises(BadResponse, match=match):
                await send(pool, server)
            assert pool.connections == 0


async def test_no_answer_within_the_read_timeout() -> None:
    with ScriptedServer(silent) as server:
        async with pool_for(read_timeout=0.3) as pool:
            started = asyncio.get_running_loop().time()
            with pytest.raises(ReadTimedOut, match=r"no response data for 0\.3 s"):
                await send(pool, server)
            assert 0.3 <= asyncio.get_running_loop().time() - started < 3


async def test_the_read_timeout_counts_from_the_last_byte_read() -> None:
    """A slow answer whose bytes keep coming is not a timeout (the timer re-arms)."""
    raw = response(200, b"slow")

    def script(peer: Peer) -> None:
        if peer.head() is not None:
            for i in range(len(raw)):
                peer.send(raw[i : i + 1])
                time.sleep(0.02)  # the server's thread, pacing its answer

    with ScriptedServer(script) as server:
        async with pool_for(read_timeout=0.3) as pool:
            reply = await send(pool, server)  # takes about len(raw) * 0.02 s > 0.3 s
    assert reply.body == b"slow"
    assert len(raw) * 0.02 > 0.3


# -- connecting --------------------------------------------------------------------------------


async def test_connect_failures() -> None:
    host, port = closed_port().removeprefix("http://").split(":")
    async with pool_for() as pool:
        with pytest.raises(ConnectFailed, match="cannot connect"):
            await pool.request((host, int(port), False), "GET", "/b/k", HOST, None)


def plain_http(peer: Peer) -> None:
    """Answer whatever comes (a TLS ClientHello) in plain HTTP."""
    peer.recv()
    peer.send(response(400, b"plain http"))


async def test_tls_to_a_server_that_does_not_speak_it() -> None:
    with ScriptedServer(plain_http) as server:
        async with pool_for(tls=tls_context(True)) as pool:
            with pytest.raises(TLSFailed, match=r"TLS with 127\.0\.0\.1"):
                await pool.request(("127.0.0.1", server.port, True), "GET", "/b/k", HOST, None)


# -- what WireSession raises -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        (sending(response(200, b"x" * 10)[:-5]), ConnectionClosedError),
        (sending(b"HTTP/1.1 2x0\r\n\r\n"), ConnectionClosedError),
        (silent, ReadTimeoutError),
    ],
    ids=["truncated", "malformed", "timeout"],
)
async def test_the_wire_session_raises_what_aiobotocore_raises(
    script: Callable[[Peer], None], expected: type[Exception]
) -> None:
    with ScriptedServer(script) as server:
        session = WireSession(
            limit=2, verify=None, connect_timeout=1, read_timeout=0.3, connector_args={}
        )
        await session.start()
        try:
            with pytest.raises(expected):
                await session.send("GET", URL(f"{server.endpoint}/b/k"), dict(HOST), None)
        finally:
            await session.close()


async def test_the_wire_session_raises_endpoint_and_tls_errors() -> None:
    session = WireSession(
        limit=2, verify=True, connect_timeout=1, read_timeout=1, connector_args={}
    )
    await session.start()
    try:
        with pytest.raises(EndpointConnectionError):
            await session.send("GET", URL(closed_port() + "/b/k"), dict(HOST), None)
        with ScriptedServer(plain_http) as server:
            url = URL(f"https://127.0.0.1:{server.port}/b/k")
            with pytest.raises(SSLError):
                await session.send("GET", url, dict(HOST), None)
    finally:
        await session.close()


# -- request smuggling ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "headers", "match"),
    [
        ("/b/k", {"x-amz-meta-a": "1\r\nx-injected: 1"}, "'x-amz-meta-a' holds CR, LF or NUL"),
        ("/b/k", {"x-amz-meta-a": "1\nx"}, "holds CR, LF or NUL"),
        ("/b/k", {"x-amz-meta-a": "1\rx"}, "holds CR, LF or NUL"),
        ("/b/k", {"x-amz-meta-a": "nul\0"}, "holds CR, LF or NUL"),
        ("/b/k", {"x-amz-meta-a\r\nx-injected": "1"}, "is not an HTTP token"),
        ("/b/k", {"x-amz-meta a": "1"}, "is not an HTTP token"),
        ("/b/k", {"": "1"}, "is not an HTTP token"),
        ("/b/k HTTP/1.1\r\nx: y", {}, "target .* holds a space, CR, LF or NUL"),
        ("/b/k", {"x-amz-meta-a": "ünï"}, "ascii"),
    ],
)
async def test_heads_that_would_smuggle_are_refused_before_anything_is_sent(
    target: str, headers: dict[str, str], match: str
) -> None:
    with ScriptedServer(answering(ok)) as server:
        async with pool_for() as pool:
            with pytest.raises(ValueError, match=match):
                await pool.request(origin(server), "PUT", target, {**HOST, **headers}, b"x")
    assert server.connections == 0


def test_a_request_head_is_the_request_line_headers_and_length() -> None:
    head = request_head("PUT", "/b/k%20ey", {"host": "h", "x-amz-meta-t": "60"}, 3)
    assert head == (
        b"PUT /b/k%20ey HTTP/1.1\r\nhost: h\r\nx-amz-meta-t: 60\r\ncontent-length: 3\r\n\r\n"
    )


# -- end to end: what reaches the server --------------------------------------------------------


@pytest.mark.parametrize("fast_path", [True, False], ids=["wire", "aiobotocore"])
async def test_an_option_holding_a_line_break_sends_nothing(
    cache_kwargs: dict[str, Any], proxy: FaultProxy, fast_path: bool
) -> None:
    """A KMS key id with CR LF in it would add a header of the caller's choosing: refused with
    an error naming the header, and nothing reaches the server."""
    kwargs = {**cache_kwargs, "endpoint_url": proxy.endpoint, "fast_path": fast_path}
    async with AsyncS3Cache(
        **kwargs, on_error="raise", sse="aws:kms", sse_kms_key_id="k\r\nx-amz-acl: public-read"
    ) as cache:
        await cache.exists("warm-up")
        proxy.reset_counts()
        with pytest.raises(
            S3CacheError, match=r"holds CR, LF or NUL|control character detected in headers"
        ):
            await cache.set("k", 1)
    assert "PUT" not in proxy.methods


def test_keys_reach_the_path_percent_encoded_and_control_characters_are_refused() -> None:
    """The target never holds a space, CR, LF or NUL: ``quote_key`` encodes them, and cache
    keys may not hold control characters at all (refused before any request)."""
    for key in ("a b", "line\r\nbreak", "nul\0", "tab\t", "ünï/ключ"):
        quoted = quote_key(key)
        assert not set(quoted) & set(" \r\n\0\t"), quoted
        request_head("GET", f"/b/{quoted}", HOST, None)  # accepted: nothing to smuggle
    with pytest.raises(ValueError, match="control character"):
        object_key("", "line\r\nbreak")
