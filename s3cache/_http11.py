"""One keep-alive HTTP/1.1 client connection of the wire path, on ``asyncio.BufferedProtocol``.

Only what S3's object requests need: one request at a time, ``Content-Length`` and chunked
response bodies, ``Expect: 100-continue``, no redirects, no decompression, no proxies.
Response heads are parsed by httptools (llhttp, Node's parser); a body with a
``Content-Length`` is read by the loop straight into one preallocated ``bytearray``, past the
parser, and a small one that arrives with its head is handed up as the parser's ``bytes``.
Failures raise the :class:`HTTPFailure` family; :mod:`s3cache._wire` maps it to botocore's
exceptions. The pool around connections is :mod:`s3cache._http_pool`.
"""

from __future__ import annotations

import asyncio
import select
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, TypeVar, cast

import httptools

__all__ = [
    "MAX_HEADERS",
    "MAX_HEAD_BYTES",
    "BadResponse",
    "Connection",
    "ConnectionLost",
    "HTTPFailure",
    "ReadTimedOut",
    "Reply",
]

#: A response head (status line and headers) over this many bytes is refused.
MAX_HEAD_BYTES: Final = 64 * 1024
#: A response with more header lines than this is refused (S3's user metadata is 2 KiB).
MAX_HEADERS: Final = 256
#: How long a request with ``Expect: 100-continue`` waits for the server's 100 (or a final
#: answer) before it sends its body anyway, as curl and Go do for servers that ignore it.
CONTINUE_TIMEOUT: Final = 1.0
#: Response header names seen, lower-cased once each (S3 sends the same few every time).
_header_names: dict[bytes, str] = {}
_HEADER_NAMES_KEPT: Final = 1024
#: Whether reference counts tell when nothing holds a buffer any more (CPython).
_REFCOUNTED: Final = sys.implementation.name == "cpython"
#: The largest body buffer a connection keeps for its next response.
_SPARE_MAX_BYTES: Final = 16 * 1024 * 1024
#: Where a response head (and a small body with it) is read: one buffer per connection.
_SCRATCH_BYTES: Final = 16 * 1024

T = TypeVar("T")

# What the connection is reading.
_IDLE, _HEAD, _SIZED, _DIRECT, _STREAMED, _DONE = range(6)


@dataclass(frozen=True, slots=True)
class Reply:
    """One HTTP response: status, lower-cased headers (as botocore reports them), body.

    The body is ``bytes``, or the ``bytearray`` a large body was read into (no copy made)."""

    status: int
    headers: dict[str, str]
    body: bytes | bytearray


class HTTPFailure(Exception):
    """A request that did not get a whole, well-formed response."""


class ConnectionLost(HTTPFailure):
    """The connection ended or broke before the whole response arrived.

    ``answered``: some of a response had arrived. ``delivered``: the server was sent
    something it could act on (False when nothing was written, or only the head of a
    request whose body waited for a 100 Continue that never came).
    """

    def __init__(self, message: str, *, answered: bool, delivered: bool) -> None:
        super().__init__(message)
        self.answered = answered
        self.delivered = delivered


class BadResponse(HTTPFailure):
    """The server's bytes are not an HTTP/1.1 response: malformed, oversized or surplus."""


class ReadTimedOut(HTTPFailure):
    """No byte of the response arrived for the read timeout."""


class Connection(asyncio.BufferedProtocol):
    """One HTTP/1.1 connection; :meth:`exchange` sends a request and reads its response.

    The pool owns it: ``on_lost`` is called once when the connection ends.
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, on_lost: Callable[[Connection], None]
    ) -> None:
        """``loop``: the loop it runs on; ``on_lost(connection)``: told when it ends."""
        self.loop = loop
        self.closed: asyncio.Future[None] = loop.create_future()  # set when it has ended
        self.reusable = False  # the last response left it ready for another request
        self.idle_since = 0.0
        self._on_lost = on_lost
        self._transport: asyncio.Transport | None = None
        self._scratch = memoryview(bytearray(_SCRATCH_BYTES))
        self._view = self._scratch  # where the loop reads next
        self._mode = _IDLE
        self._parser: httptools.HttpResponseParser | None = None
        self._waiter: asyncio.Future[Reply] | None = None
        self._continue: asyncio.Future[bool] | None = None
        self._method = ""
        self._status = 0
        self._headers: dict[str, str] = {}
        self._keep_alive = False
        self._body: bytes | bytearray | None = None
        self._spare: bytearray | None = None  # the last body buffer, for :meth:`_buffer`
        self._length = 0  # of a sized body
        self._filled = 0  # bytes of it read so far
        self._received = 0  # bytes received for this request (head bytes while in _HEAD)
        self._delivered = False
        self._surplus = False  # bytes beyond the response: never reuse the connection
        self._read_timeout: float | None = None
        self._last_read = 0.0
        self._timer: asyncio.TimerHandle | None = None

    # -- the request ----------------------------------------------------------------------------

    def usable(self) -> bool:
        """Whether a request may be sent on it now (it has not ended or broken)."""
        return self.reusable and not self.closing()

    def closing(self) -> bool:
        """Whether it has ended or is ending."""
        return self._transport is None or self._transport.is_closing()

    def peer_closed(self) -> bool:
        """Whether the server closed it (or sent something) while it sat idle, before the loop
        has said so: its socket is readable. One poll, for requests that cannot be repeated."""
        sock = None if self._transport is None else self._transport.get_extra_info("socket")
        if sock is None:
            return False
        try:
            return _readable(sock.fileno())
        except (OSError, ValueError):
            return True

    def exchange(
        self,
        method: str,
        head: bytes,
        body: bytes | None,
        expect_continue: bool,
        read_timeout: float | None,
    ) -> Awaitable[Reply]:
        """Send ``head`` (and ``body``); the response is what the returned awaitable gives, and
        raises :class:`HTTPFailure`.

        With ``expect_continue`` the body waits for the server's 100 Continue (or
        :data:`CONTINUE_TIMEOUT`); a final answer before it means the body is never sent.
        Otherwise the awaitable is the response's own future (no coroutine per request).
        """
        transport = self._transport
        if transport is None or transport.is_closing():
            raise ConnectionLost(
                "the connection had closed before the request", answered=False, delivered=False
            )
        self._start(method, read_timeout)
        waiter = self._waiter
        assert waiter is not None
        transport.write(head)
        if body:
            if expect_continue:
                return self._body_after_continue(transport, body, waiter)
            if not waiter.done():
                transport.write(memoryview(body))
        return waiter

    async def _body_after_continue(
        self, transport: asyncio.Transport, body: bytes, waiter: asyncio.Future[Reply]
    ) -> Reply:
        self._delivered = False
        if not await self._continued():
            return await waiter  # answered before the body: it was never sent
        if not waiter.done():
            transport.write(memoryview(body))
            self._delivered = True
        return await waiter

    def _start(self, method: str, read_timeout: float | None) -> None:
        self.reusable = False
        self._method = method
        self._mode = _HEAD
        self._waiter = self.loop.create_future()
        self._headers = {}
        self._body = None
        self._received = self._filled = 0
        self._delivered = True
        if self._parser is None:
            self._parser = httptools.HttpResponseParser(self)
        self._read_timeout = read_timeout
        if read_timeout is not None:
            self._last_read = self.loop.time()
            if self._timer is None:
                self._timer = self.loop.call_at(self._last_read + read_timeout, self._on_timer)

    async def _continued(self) -> bool:
        """Wait for 100 Continue: True to send the body (it came, or the wait timed out)."""
        waiter: asyncio.Future[bool] = self.loop.create_future()
        self._continue = waiter
        timer = self.loop.call_later(CONTINUE_TIMEOUT, _resolve, waiter, True)
        try:
            return await waiter
        finally:
            timer.cancel()
            self._continue = None

    def abort(self) -> None:
        """End the connection now (a request cut short leaves it in an unknown state)."""
        self.reusable = False
        if self._transport is not None:
            self._transport.abort()

    # -- asyncio's callbacks ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.reusable = True

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        mode = self._mode
        if self._read_timeout is not None:
            self._last_read = self.loop.time()
        if mode == _DIRECT:
            self._filled += nbytes
            if self._filled == self._length:
                self._view = self._scratch
                self._finish(self._body)
            else:
                self._view = self._view[nbytes:]
            return
        if mode in (_IDLE, _DONE):
            self._surplus = True  # nobody asked: a server talking out of turn
            self.abort()
            return
        if mode == _HEAD:
            self._received += nbytes
            if self._received > MAX_HEAD_BYTES:
                self._fail(BadResponse(f"the response head is over {MAX_HEAD_BYTES} bytes"))
                return
        assert self._parser is not None
        try:
            self._parser.feed_data(self._scratch[:nbytes])
        except httptools.HttpParserError as exc:
            self._parser = None
            self._surplus = True
            cause = exc.__context__ if isinstance(exc, httptools.HttpParserCallbackError) else exc
            if isinstance(cause, HTTPFailure):
                self._fail(cause)
            else:
                self._fail(BadResponse(f"malformed response: {cause}"))

    def eof_received(self) -> bool:
        return False  # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        self._transport = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._continue is not None:
            _resolve(self._continue, False)
        headers = self._headers
        if (
            exc is None
            and self._mode == _STREAMED
            and not ("content-length" in headers or "transfer-encoding" in headers)
        ):
            self._finish(self._body)  # a body delimited by a clean close: complete
        if self._waiter is not None and not self._waiter.done():
            self._fail(self._lost(exc))
        _resolve(self.closed, None)
        self._on_lost(self)

    def resume_writing(self) -> None:
        self._last_read = self.loop.time()  # the upload progresses: not a stalled read

    # -- httptools' callbacks -----------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._mode != _HEAD:
            if self._mode != _STREAMED:  # a chunked body's trailers are left out
                self._surplus = True
            return
        headers = self._headers
        if len(headers) >= MAX_HEADERS:
            raise BadResponse(f"the response has over {MAX_HEADERS} headers")
        lowered = _header_names.get(name)
        if lowered is None:
            lowered = name.decode("ascii").lower()  # llhttp let only token characters through
            if len(_header_names) < _HEADER_NAMES_KEPT:
                _header_names[name] = lowered
        headers[lowered] = value.decode("utf-8", "surrogateescape")

    def on_headers_complete(self) -> None:
        if self._mode != _HEAD:
            self._surplus = True
            return
        parser = self._parser
        assert parser is not None
        status = parser.get_status_code()
        if status < 200:
            self._interim(status)
            return
        self._status = status
        self._keep_alive = parser.should_keep_alive()
        if self._continue is not None:
            _resolve(self._continue, False)  # a final answer first: the body is not sent
        headers = self._headers
        if self._method == "HEAD":  # never a body, whatever Content-Length says
            self._parser = None  # llhttp would wait for the body it announces
            self._finish(b"")
        elif "transfer-encoding" in headers or "content-length" not in headers:
            self._mode = _STREAMED  # chunked, or up to the close
            self._body = bytearray()
        else:
            self._mode = _SIZED
            self._length = int(headers["content-length"])  # llhttp has checked it

    def _interim(self, status: int) -> None:
        if status == 101:
            raise BadResponse("the server switched protocols (101) on an S3 request")
        if status == 100 and self._continue is not None:
            _resolve(self._continue, True)
        self._headers = {}
        self._received = 0

    def on_body(self, body: bytes) -> None:
        mode = self._mode
        if mode == _STREAMED:
            self._body += body  # type: ignore[operator]  # a bytearray in this mode
        elif mode == _SIZED:
            if len(body) == self._length:
                self._body = body  # came whole with its head: no copy
                return
            buffer = self._buffer(self._length)  # the one buffer the body is read into
            buffer[: len(body)] = body
            self._body = buffer
            self._filled = len(body)
            self._view = memoryview(buffer)[self._filled :]
            self._mode = _DIRECT
            self._parser = None  # the rest of the body goes past it
        else:
            self._surplus = True

    def on_message_complete(self) -> None:
        mode = self._mode
        if mode == _HEAD:  # the end of a 1xx
            return
        if mode in (_SIZED, _STREAMED):
            self._finish(self._body)
        else:
            self._surplus = True

    def _buffer(self, length: int) -> bytearray:
        """A bytearray of ``length`` bytes to read a body into: the previous body's when
        nothing holds it any more (CPython's reference count says only this connection does,
        so nobody can see it change), else a new one. Reusing it spares the kernel mapping
        fresh pages for every large body (about 180 page faults per MiB)."""
        spare = self._spare
        if (
            _REFCOUNTED
            and spare is not None
            and length <= len(spare) <= 2 * length
            and sys.getrefcount(spare) == 3  # this name, the attribute, the argument
        ):
            del spare[length:]
            return spare
        buffer = bytearray(length)
        self._spare = buffer if length <= _SPARE_MAX_BYTES else None
        return buffer

    # -- ends ---------------------------------------------------------------------------------

    def _finish(self, body: bytes | bytearray | None) -> None:
        """The response is complete: hand it over; keep the connection only when it is clean."""
        self._mode = _DONE
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        transport = self._transport
        self.reusable = (
            self._keep_alive
            and self._delivered
            and not self._surplus
            and transport is not None
            and not transport.is_closing()
            and transport.get_write_buffer_size() == 0  # answered before the whole body went
        )
        waiter.set_result(Reply(self._status, self._headers, body or b""))

    def _fail(self, failure: HTTPFailure) -> None:
        self._mode = _DONE
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(failure)
        self.abort()

    def _lost(self, exc: Exception | None) -> ConnectionLost:
        why = f": {exc}" if exc is not None else ""
        answered = self._mode != _HEAD or self._received > 0
        if self._mode == _DIRECT or self._mode == _SIZED:
            what = f"after {self._filled} of {self._length} body bytes"
        elif self._mode == _STREAMED and "transfer-encoding" in self._headers:
            what = "in the middle of a chunked body"
        elif self._mode == _STREAMED:
            what = "in the middle of a body read up to the close"
        elif answered:
            what = "in the middle of the response head"
        else:
            what = "before any response"
        return ConnectionLost(
            f"the server closed the connection {what}{why}",
            answered=answered,
            delivered=self._delivered,
        )

    def _on_timer(self) -> None:
        """The read timeout's one timer: fires, and re-arms while reads keep arriving."""
        self._timer = None
        timeout = self._read_timeout
        if timeout is None or self._mode in (_IDLE, _DONE):
            return
        due = self._last_read + timeout
        if self.loop.time() >= due:
            self._fail(ReadTimedOut(f"no response data for {timeout:g} s"))
        else:
            self._timer = self.loop.call_at(due, self._on_timer)


def _readable(fd: int) -> bool:
    if not hasattr(select, "poll"):  # Windows: select() takes sockets of any number
        return bool(select.select([fd], [], [], 0)[0])
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


def _resolve(future: asyncio.Future[T], value: T) -> None:
    if not future.done():
        future.set_result(value)
