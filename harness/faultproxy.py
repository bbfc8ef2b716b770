"""A fault-injecting HTTP/1.1 proxy for loopback S3 servers, and a moto server in a subprocess.

:class:`FaultProxy` sits on a free loopback port in front of an S3 server (moto) and forwards
requests one at a time per connection, so a fault can be switched on for the *next* request of
every pooled keep-alive connection: refuse connections, accept and never answer, reset or
truncate a response body, flip a bit of one in flight, answer 500 InternalError or 503
SlowDown, hold responses back, or cut an upload in half; one request of each key
(``per_path``), or every request. It can also enforce S3's 15-minute window on ``X-Amz-Date``
(:meth:`FaultProxy.enforce_clock`) in front of a server that does not, and move the server's
clock on (:meth:`FaultProxy.move_clock`: answers' ``Date`` and ``Last-Modified`` as a server
whose clock jumped would give them, so stored entries age at once). It runs its own event
loop in a daemon thread, so sync and async callers alike can use it, and it counts every fault
it injects (with timestamps, to prove backoff).

Used by the reliability tests (``tests/test_faults.py`` …) and by ``python -m benchmarks.soak``.
Importing this module has no side effects.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import email.utils
import enum
import os
import random
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, deque
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, Final

from harness.loopthread import LoopThread
from harness.process import free_port

__all__ = [
    "Fault",
    "FaultProxy",
    "FaultRecord",
    "LoopLag",
    "MotoProcess",
    "SeenRequest",
    "client_sockets",
    "closed_port",
    "free_port",
    "open_fds",
    "tcp_census",
]

_HEAD_LIMIT: Final = 64 * 1024
_RESET_PAUSE: Final = 0.05  # let the client read the partial response before the reset

_CANNED: Final = {
    "http_500": (
        500,
        "Internal Server Error",
        b"<?xml version='1.0' encoding='UTF-8'?>\n<Error><Code>InternalError</Code>"
        b"<Message>We encountered an internal error. Please try again.</Message></Error>",
    ),
    "deny_403": (
        403,
        "Forbidden",
        b"<?xml version='1.0' encoding='UTF-8'?>\n<Error><Code>SignatureDoesNotMatch</Code>"
        b"<Message>The request signature we calculated does not match the signature you "
        b"provided. Check your key and signing method.</Message></Error>",
    ),
    "not_found_404": (
        404,
        "Not Found",
        b"<?xml version='1.0' encoding='UTF-8'?>\n<Error><Code>NoSuchKey</Code>"
        b"<Message>The specified key does not exist.</Message></Error>",
    ),
    "request_timeout_400": (
        400,
        "Bad Request",
        b"<?xml version='1.0' encoding='UTF-8'?>\n<Error><Code>RequestTimeout</Code>"
        b"<Message>Your socket connection to the server was not read from or written to "
        b"within the timeout period. Idle connections will be closed.</Message></Error>",
    ),
    "slowdown_503": (
        503,
        "Slow Down",
        b"<?xml version='1.0' encoding='UTF-8'?>\n<Error><Code>SlowDown</Code>"
        b"<Message>Please reduce your request rate.</Message></Error>",
    ),
}


class Fault(enum.Enum):
    """What the proxy does with the next request (``REFUSE`` acts on the listener instead)."""

    PASS = "pass"  # forward faithfully
    REFUSE = "refuse"  # close the listening socket: connection refused; drop open connections
    BLACKHOLE = "blackhole"  # read the request, never answer
    RESET_BODY = "reset_body"  # forward, send the head and half the body, then a TCP reset
    TRUNCATE = "truncate"  # forward, send the head and half the body, then a clean close (FIN)
    HTTP_500 = "http_500"  # answer 500 InternalError without forwarding
    SLOWDOWN_503 = "slowdown_503"  # answer 503 SlowDown without forwarding
    REQUEST_TIMEOUT_400 = "request_timeout_400"  # answer 400 RequestTimeout without forwarding
    DENY_403 = "deny_403"  # answer 403 SignatureDoesNotMatch: the server rejects the credentials
    NOT_FOUND_404 = "not_found_404"  # answer 404 NoSuchKey (a cheap miss, for load tests)
    DELAY = "delay"  # forward, hold the response back for ``delay`` seconds
    HOLD = "hold"  # forward, read the whole response, hold it back until ``release()``
    CUT_UPLOAD = "cut_upload"  # forward the head and half the request body, then drop both sides
    CORRUPT_BODY = "corrupt_body"  # forward, flip one bit in the middle of the response body
    # Forward without If-None-Match/If-Match: a server that ignores conditional writes. The
    # request's signature no longer matches, so only for servers that do not check it (moto).
    IGNORE_CONDITIONS = "ignore_conditions"


_CANNED_FAULTS: Final = frozenset(
    {
        Fault.HTTP_500,
        Fault.SLOWDOWN_503,
        Fault.REQUEST_TIMEOUT_400,
        Fault.DENY_403,
        Fault.NOT_FOUND_404,
    }
)


@dataclass(frozen=True, slots=True)
class FaultRecord:
    """One injected fault: when (monotonic), which, and on what request."""

    at: float
    fault: Fault
    method: str
    path: str


@dataclass(slots=True)
class _Rule:
    fault: Fault = Fault.PASS
    times: int | None = None  # faulted requests left, None: until changed
    methods: frozenset[str] | None = None  # only these HTTP methods, None: all
    delay: float = 0.0
    path_contains: str | None = None  # only requests whose path contains this
    chaos: tuple[Fault, ...] = ()  # pick one of these at random, with ``probability``
    probability: float = 0.0
    per_path: int | None = None  # only the per_path-th matching request of each path


class _Request:
    __slots__ = ("body", "head", "method", "path")

    def __init__(self, head: bytes, body: bytes) -> None:
        self.head = head
        self.body = body
        line = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
        self.method = line[0]
        self.path = line[1] if len(line) > 1 else ""


class FaultProxy:
    """A loopback HTTP/1.1 proxy with switchable faults; a context manager that closes all."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self._upstream = upstream
        self._rule = _Rule()
        self._lock = threading.Lock()
        self._seen = threading.Condition(self._lock)
        self._random = random.Random(0)
        self._thread = LoopThread("faultproxy")
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0
        #: Requests seen (faulted or not), and faults injected by kind, with their records.
        self.requests = 0
        self.held = 0  # responses that reached a HOLD (released or not)
        #: Requests seen by HTTP method, the most in flight at once, and the latest heads: what
        #: a client sent, counted where no client-side shortcut can hide it.
        self.methods: Counter[str] = Counter()
        self.in_flight = 0
        self.peak_in_flight = 0
        self.heads: deque[SeenRequest] = deque(maxlen=1000)
        #: Requests seen by (method, path), since the last :meth:`reset_counts`.
        self.paths: Counter[tuple[str, str]] = Counter()
        self._per_path: Counter[str] = Counter()  # matching requests per path, for ``per_path``
        #: With :meth:`enforce_clock`: the largest skew of ``X-Amz-Date`` accepted (seconds),
        #: and how many requests were refused for it.
        self.clock_window: float | None = None
        self.clock_refusals = 0
        #: With :meth:`move_clock`: how far the server's clock is ahead, the offset each
        #: object was written at (its ``Last-Modified`` is moved by that), and how many answers
        #: had their ``Date`` moved.
        self.clock_offset = 0.0
        self._written_at: dict[str, float] = {}
        self.dates_shifted = 0
        self._released: asyncio.Event | None = None  # made on the proxy loop
        self.faults: Counter[Fault] = Counter()
        self.records: list[FaultRecord] = []
        self._closed = False
        self._call(self._listen())

    # -- control (any thread) ----------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:<port>``: give this to the cache as ``endpoint_url``."""
        return f"http://127.0.0.1:{self.port}"

    def set_fault(
        self,
        fault: Fault,
        *,
        times: int | None = None,
        methods: set[str] | frozenset[str] | None = None,
        delay: float = 0.0,
        path_contains: str | None = None,
        per_path: int | None = None,
    ) -> None:
        """Apply ``fault`` to the next ``times`` requests (all when None) of ``methods``.

        ``per_path``: only to the ``per_path``-th matching request of each path, counted from
        now (``per_path=1``: the first write of every key from now on), so that one setting
        faults one request of each of many concurrent operations.
        """
        with self._lock:
            self._rule = _Rule(
                fault,
                times,
                frozenset(methods) if methods else None,
                delay,
                path_contains,
                per_path=per_path,
            )
            self._per_path.clear()
        if fault is Fault.REFUSE:
            self._call(self._refuse())
        else:
            self._call(self._listen())

    def set_chaos(
        self, faults: tuple[Fault, ...], probability: float, *, delay: float = 0.0, seed: int = 0
    ) -> None:
        """Fault each request with ``probability``, picking one of ``faults`` (seeded)."""
        if Fault.REFUSE in faults:
            raise ValueError("REFUSE acts on the listener, not on requests")
        with self._lock:
            self._random = random.Random(seed)
            self._rule = _Rule(Fault.PASS, delay=delay, chaos=faults, probability=probability)
        self._call(self._listen())

    def wait_requests(self, count: int, timeout: float = 10.0) -> bool:
        """Block until at least ``count`` requests have been seen in total (False on timeout)."""
        with self._seen:
            return self._seen.wait_for(lambda: self.requests >= count, timeout)

    def wait_for(self, predicate: Callable[[FaultProxy], bool], timeout: float = 10.0) -> bool:
        """Block until ``predicate(proxy)`` holds, checked as each request arrives (False on
        timeout). It runs under the proxy's lock: read attributes, call no methods."""
        with self._seen:
            return self._seen.wait_for(lambda: predicate(self), timeout)

    def enforce_clock(self, window: float | None = 900.0) -> None:
        """Refuse, as S3 does, every signed request whose ``X-Amz-Date`` is more than
        ``window`` seconds from this machine's clock: 403 ``RequestTimeTooSkewed`` with S3's
        XML (``RequestTime``, ``ServerTime``, ``MaxAllowedSkewMilliseconds``) and a ``Date``
        header, without forwarding it. None: stop checking."""
        with self._lock:
            self.clock_window = window

    def move_clock(self, offset: float) -> None:
        """From now on the server's clock reads ``offset`` seconds ahead of its own: objects
        stored before now age by the change at once (0: back to the server's own clock, and
        every object's own ``Last-Modified``)."""
        with self._lock:
            self.clock_offset = offset
            if not offset:
                self._written_at.clear()

    def wait_held(self, count: int = 1, timeout: float = 10.0) -> bool:
        """Block until ``count`` responses in all are held by :attr:`Fault.HOLD` (False on timeout).

        A held response has been read from the server in full: the server's answer is fixed.
        """
        with self._seen:
            return self._seen.wait_for(lambda: self.held >= count, timeout)

    def release(self) -> None:
        """Send every held response on; later HOLD faults hold again."""
        self._call(self._release())

    def clear(self) -> None:
        """Back to faithful forwarding."""
        self.set_fault(Fault.PASS)

    def reset_counts(self) -> None:
        """Forget the requests counted so far (:attr:`methods`, :attr:`heads`, the peak)."""
        with self._lock:
            self.methods.clear()
            self.heads.clear()
            self.paths.clear()
            self.peak_in_flight = self.in_flight

    def set_upstream(self, upstream: tuple[str, int]) -> None:
        """Forward to another server from now on; open connections are dropped."""
        self._upstream = upstream
        self._call(self._drop_all())

    def drop_connections(self) -> None:
        """Reset every open connection (both sides), as a server restart would."""
        self._call(self._drop_all())

    def count(self, fault: Fault) -> int:
        """How many times ``fault`` was injected."""
        with self._lock:
            return self.faults[fault]

    def close(self) -> None:
        """Stop listening, drop every connection, stop the thread; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._call(self._shutdown())
        self._thread.stop()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` on the proxy's loop and wait for it."""
        self._thread.call(coro)

    # -- the proxy loop ----------------------------------------------------------------------

    async def _listen(self) -> None:
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._accept, "127.0.0.1", self.port, reuse_address=True, limit=_HEAD_LIMIT
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _refuse(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
        await self._drop_all()

    async def _drop_all(self) -> None:
        for writer in list(self._writers):
            _reset(writer)
        self._writers.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _shutdown(self) -> None:
        await self._refuse()

    async def _hold(self) -> None:
        if self._released is None:
            self._released = asyncio.Event()
        released = self._released
        with self._lock:
            self.held += 1
            self._seen.notify_all()
        await released.wait()

    async def _release(self) -> None:
        released, self._released = self._released, None
        if released is not None:
            released.set()

    def _flight(self, change: int) -> None:
        with self._lock:
            self.in_flight += change
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def _take_rule(self, request: _Request) -> _Rule:
        """The fault for this request, consuming one of ``times``; counts it."""
        with self._lock:
            self.requests += 1
            self.methods[request.method] += 1
            self.paths[request.method, request.path] += 1
            self.heads.append(SeenRequest(request.method, request.path, request.head))
            self._seen.notify_all()
            rule = self._rule
            if rule.chaos:
                if self._random.random() >= rule.probability:
                    return _Rule()
                rule = _Rule(self._random.choice(rule.chaos), delay=rule.delay)
            elif (
                rule.fault is Fault.PASS
                or (rule.methods is not None and request.method not in rule.methods)
                or (rule.path_contains is not None and rule.path_contains not in request.path)
            ):
                return _Rule()
            if rule.per_path is not None and not self._nth_of_path(request.path, rule.per_path):
                return _Rule()
            if rule.times is not None:
                rule.times -= 1
                if rule.times <= 0:
                    self._rule = _Rule()
            self.faults[rule.fault] += 1
            self.records.append(
                FaultRecord(time.monotonic(), rule.fault, request.method, request.path)
            )
            return rule

    def _nth_of_path(self, path: str, nth: int) -> bool:
        """Count one more matching request of ``path``: whether it is the ``nth`` (under lock)."""
        self._per_path[path] += 1
        return self._per_path[path] == nth

    def _answer_here(self, request: _Request, rule: _Rule) -> bytes | None:
        """The answer the proxy gives itself, without forwarding: a refusal of the request's
        clock (:meth:`enforce_clock`) or a canned fault; None: forward the request."""
        refusal = self._clock_refusal(request)
        if refusal is not None:
            return refusal
        return _canned(rule.fault, request.method) if rule.fault in _CANNED_FAULTS else None

    def _shifted(self, head: bytes, request: _Request) -> bytes:
        """``head`` as a server whose clock is :attr:`clock_offset` ahead would send it: its
        ``Date`` moved on by the offset, an object's ``Last-Modified`` by the offset it was
        written at (a PUT's answer records it)."""
        path = request.path.partition("?")[0]
        status = int(head.split(b" ", 2)[1])
        with self._lock:
            if request.method == "PUT" and 200 <= status < 300:
                self._written_at[path] = self.clock_offset
            written = self._written_at.get(path, 0.0)
            self.dates_shifted += 1
        moves = {b"date": self.clock_offset, b"last-modified": written}
        lines = head.split(b"\r\n")
        for i, line in enumerate(lines):
            name, sep, value = line.partition(b":")
            offset = moves.get(name.strip().lower()) if sep else None
            if offset:
                when = email.utils.parsedate_to_datetime(value.strip().decode("latin-1"))
                moved = email.utils.formatdate(when.timestamp() + offset, usegmt=True)
                lines[i] = name + b": " + moved.encode()
        return b"\r\n".join(lines)

    def _clock_refusal(self, request: _Request) -> bytes | None:
        """S3's refusal of a request signed too far from our clock, or None (see
        :meth:`enforce_clock`)."""
        window = self.clock_window
        sent = _headers(request.head).get("x-amz-date")
        if window is None or sent is None:
            return None
        now = time.time()
        try:
            signed_at = calendar.timegm(time.strptime(sent, "%Y%m%dT%H%M%SZ"))
        except ValueError:
            return None
        if abs(signed_at - now) <= window:
            return None
        with self._lock:
            self.clock_refusals += 1
        return _skewed(sent, now, window, request.method)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while True:
                request = await _read_request(reader, writer)
                if request is None:
                    return
                rule = self._take_rule(request)
                self._flight(+1)  # from its arrival until its answer is written
                try:
                    if rule.fault is Fault.BLACKHOLE:
                        await reader.read()  # until the client gives up
                        return
                    answer = self._answer_here(request, rule)
                    if answer is not None:
                        writer.write(answer)
                        await writer.drain()
                        continue
                    if upstream is None:
                        upstream = await asyncio.open_connection(*self._upstream, limit=_HEAD_LIMIT)
                        self._writers.add(upstream[1])
                    up_reader, up_writer = upstream
                    if rule.fault is Fault.CUT_UPLOAD:
                        up_writer.write(request.head + request.body[: len(request.body) // 2])
                        await up_writer.drain()
                        _reset(up_writer)
                        _reset(writer)
                        return
                    sent = request.head
                    if rule.fault is Fault.IGNORE_CONDITIONS:
                        sent = _without_conditions(sent)
                    up_writer.write(sent + request.body)
                    await up_writer.drain()
                    head, body, close = await _read_response(up_reader, request.method)
                    if self.clock_offset or self._written_at:
                        head = self._shifted(head, request)
                    if rule.fault in (Fault.RESET_BODY, Fault.TRUNCATE):
                        partial = head + body[: len(body) // 2] if body else head[: len(head) // 2]
                        writer.write(partial)
                        await writer.drain()
                        await asyncio.sleep(_RESET_PAUSE)
                        if rule.fault is Fault.RESET_BODY:
                            _reset(writer)
                        else:
                            writer.close()
                        return
                    if rule.fault is Fault.CORRUPT_BODY:
                        body = _corrupt(body)
                    if rule.fault is Fault.DELAY:
                        await asyncio.sleep(rule.delay)
                    elif rule.fault is Fault.HOLD:
                        await self._hold()
                    writer.write(head + body)
                    await writer.drain()
                    if close:
                        return
                finally:
                    self._flight(-1)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            return
        except asyncio.CancelledError:
            # Dropped by drop_connections/close: end quietly (asyncio's stream server would
            # otherwise log the cancelled handler as an unretrieved exception).
            return
        finally:
            self._tasks.discard(task)
            self._writers.discard(writer)
            writer.close()
            if upstream is not None:
                self._writers.discard(upstream[1])
                upstream[1].close()


@dataclass(frozen=True, slots=True)
class SeenRequest:
    """A request the proxy saw: method, path (as sent, still percent-encoded) and raw head."""

    method: str
    path: str
    head: bytes

    @property
    def headers(self) -> dict[str, str]:
        """The request's headers, names lower-cased."""
        return _headers(self.head)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (SO_LINGER 0) rather than a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _headers(head: bytes) -> dict[str, str]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    out: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if sep:
            out[name.strip().lower()] = value.strip()
    return out


async def _read_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> _Request | None:
    """One request (head and body), or None at a clean end of the connection."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    headers = _headers(head)
    if headers.get("expect", "").lower() == "100-continue":
        # Answer the interim response ourselves and forward the request without the header.
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await writer.drain()
        head = b"\r\n".join(
            line for line in head.split(b"\r\n") if not line.lower().startswith(b"expect:")
        )
        if not head.endswith(b"\r\n\r\n"):
            head = head.rstrip(b"\r\n") + b"\r\n\r\n"
    body = await _read_body(reader, headers, until_eof=False)
    return _Request(head, body)


async def _read_response(reader: asyncio.StreamReader, method: str) -> tuple[bytes, bytes, bool]:
    """Head, raw body and whether the connection ends after it."""
    while True:
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if status != 100:
            break
    headers = _headers(head)
    close = headers.get("connection", "").lower() == "close" or head.startswith(b"HTTP/1.0")
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return head, b"", close
    body = await _read_body(reader, headers, until_eof=True)
    return (
        head,
        body,
        close
        or (
            "content-length" not in headers
            and "chunked" not in headers.get("transfer-encoding", "")
        ),
    )


async def _read_body(
    reader: asyncio.StreamReader, headers: dict[str, str], *, until_eof: bool
) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        parts: list[bytes] = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            parts.append(size_line)
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while True:  # trailers, then the empty line
                    trailer = await reader.readuntil(b"\r\n")
                    parts.append(trailer)
                    if trailer == b"\r\n":
                        return b"".join(parts)
            parts.append(await reader.readexactly(size + 2))
    length = headers.get("content-length")
    if length is not None:
        return await reader.readexactly(int(length))
    return await reader.read() if until_eof else b""


def _corrupt(body: bytes) -> bytes:
    """``body`` with one bit flipped in its middle (same length: the framing stays valid)."""
    if not body:
        return body
    middle = len(body) // 2
    return body[:middle] + bytes([body[middle] ^ 0x01]) + body[middle + 1 :]


def _without_conditions(head: bytes) -> bytes:
    """A request head without its ``If-None-Match`` and ``If-Match`` lines."""
    lines = head.split(b"\r\n")
    kept = [
        line for line in lines if not line.lower().startswith((b"if-none-match:", b"if-match:"))
    ]
    return b"\r\n".join(kept)


def _skewed(sent: str, now: float, window: float, method: str) -> bytes:
    """S3's 403 RequestTimeTooSkewed for a request signed at ``sent`` (its X-Amz-Date)."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>RequestTimeTooSkewed</Code>'
        "<Message>The difference between the request time and the current time is too large."
        f"</Message><RequestTime>{sent}</RequestTime>"
        f"<ServerTime>{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(now))}</ServerTime>"
        f"<MaxAllowedSkewMilliseconds>{round(window * 1000)}</MaxAllowedSkewMilliseconds>"
        "<RequestId>FAULTPROXY</RequestId><HostId>FAULTPROXY</HostId></Error>"
    ).encode()
    head = (
        f"HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\n"
        f"Date: {email.utils.formatdate(now, usegmt=True)}\r\n"
        f"Content-Length: {len(body)}\r\nx-amz-request-id: FAULTPROXY\r\n\r\n"
    ).encode("latin-1")
    return head if method == "HEAD" else head + body


def _canned(fault: Fault, method: str) -> bytes:
    status, reason, body = _CANNED[fault.value]
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\n"
        f"Content-Length: {len(body)}\r\nx-amz-request-id: FAULTPROXY\r\n\r\n"
    ).encode("latin-1")
    return head if method == "HEAD" else head + body


# -- ports and a moto server in a subprocess ------------------------------------------------------


def closed_port() -> str:
    """An ``http://`` endpoint on a loopback port nobody listens on: connection refused."""
    return f"http://127.0.0.1:{free_port()}"


class MotoProcess:
    """moto's S3 server in a child process (its own core, its own GIL), stopped on close."""

    def __init__(self, *, startup_timeout: float = 30.0) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        deadline = time.monotonic() + startup_timeout
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"moto server exited with status {self._proc.returncode}")
            try:
                with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1):
                    break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    self.close()
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def close(self) -> None:
        """Terminate and reap the server; idempotent."""
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def __enter__(self) -> MotoProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@contextlib.contextmanager
def moto_process() -> Iterator[MotoProcess]:
    """A :class:`MotoProcess` for a ``with`` block."""
    server = MotoProcess()
    try:
        yield server
    finally:
        server.close()


# -- resource probes ------------------------------------------------------------------------------


def open_fds() -> int:
    """File descriptors this process holds (Linux ``/proc``)."""
    return len(os.listdir("/proc/self/fd"))


def _socket_inodes() -> set[int]:
    inodes: set[int] = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def client_sockets(port: int | None = None, *, established: bool = False) -> int:
    """TCP sockets this process holds whose *remote* port is ``port`` (all TCP sockets if None).

    The in-process servers (moto, the proxy) hold the accepted ends, whose *local* port is the
    server's, so they are not counted: this is the client side's pool. ``established`` counts
    only connections in use or idle in the pool, not those the server has already closed and
    whose descriptor the client's loop is about to release (CLOSE_WAIT).
    """
    in_pool, every = tcp_census(port)
    return in_pool if established else every


def tcp_census(port: int | None = None) -> tuple[int, int]:
    """(established, all) client sockets to ``port`` in one read of the TCP tables."""
    mine = _socket_inodes()
    in_pool = every = 0
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        try:
            with open(table) as fh:
                rows = fh.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if int(fields[9]) not in mine:
                continue
            if port is None or int(fields[2].rsplit(":", 1)[1], 16) == port:
                every += 1
                in_pool += fields[3] == "01"
    return in_pool, every


class LoopLag:
    """A heartbeat task that measures how late the event loop wakes it (max lag, seconds)."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.max_lag = 0.0
        self.beats = 0
        self._task: asyncio.Task[None] | None = None

    async def _beat(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(self.interval)
            self.max_lag = max(self.max_lag, loop.time() - start - self.interval)
            self.beats += 1

    async def __aenter__(self) -> LoopLag:
        self._task = asyncio.create_task(self._beat())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
