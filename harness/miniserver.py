"""A small, fast, in-memory S3-compatible HTTP/1.1 server for the benchmark (stdlib only).

moto's server answers ~150 requests/s here and closes the connection after every response, so
every benchmark cell from c=16 up measured moto rather than the clients. This server keeps
connections alive (HTTP/1.1 persistent connections, ``Content-Length`` framing,
``Expect: 100-continue``) and does little per request, so the clients are what is measured.

It implements only what the contenders use, path-style (``/bucket/key``): CreateBucket,
HeadBucket, DeleteBucket, PutObject (with ``If-None-Match: *`` and ``If-Match``), GetObject,
HeadObject, DeleteObject, DeleteObjects and ListObjectsV2. Signatures are not checked. With
``--limits`` (or ``PUT /_mini/limits``) it enforces S3's request-rate limits per partition as
:mod:`harness.s3limits` models them, answering 503 SlowDown beyond them. It is meant to run in
its own process (``python -m harness.miniserver --port 0``, from the repository's root): it prints
``READY <port>`` on stdout once listening, and exits when its stdin closes (its parent died or
let go of it) or on SIGTERM; SIGINT (Ctrl-C) stops it only when run with ``--no-stdin-watch``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import email.utils
import hashlib
import importlib.util
import itertools
import json
import signal
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Final, cast
from urllib.parse import parse_qsl, quote, unquote
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from harness import s3limits

__all__ = ["S3Protocol", "S3Store", "main", "serve"]

_MAX_HEADER_BYTES: Final = 64 * 1024
_MAX_BODY_BYTES: Final = 256 * 1024 * 1024
_PAGE: Final = 1000
_NS: Final = "http://s3.amazonaws.com/doc/2006-03-01/"
_QUOT: Final = {'"': "&quot;"}
_XML_DECL: Final = '<?xml version="1.0" encoding="UTF-8"?>\n'
#: Request headers stored with an object and returned by GET and HEAD, as given.
_STORED_HEADERS: Final = frozenset(
    {
        "content-type",
        "content-encoding",
        "cache-control",
        "expires",
        "content-disposition",
        "content-language",
    }
)
_REASONS: Final = {
    100: "Continue",
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    411: "Length Required",
    412: "Precondition Failed",
    413: "Payload Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
}


_REQUEST_IDS: Final = itertools.count(1)


class _Clock:
    """The ``Date`` header (IMF-fixdate, GMT), formatted at most once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def http_date(self, now: float) -> str:
        second = int(now)
        if second != self._second:
            self._second = second
            self._text = email.utils.formatdate(second, usegmt=True)
        return self._text


def _iso8601(t: float) -> str:
    """``2024-01-31T12:00:00.000Z``, as S3 writes timestamps in XML."""
    millis = int(t * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{millis:03d}Z"


@dataclass(slots=True)
class StoredObject:
    """One object: body, ETag (quoted MD5 hex), write time, and its stored headers."""

    body: bytes
    etag: str
    modified: float
    headers: list[tuple[str, str]]  # stored request headers, then ETag and Last-Modified


@dataclass(slots=True)
class S3Store:
    """Buckets of objects, in memory; shared by every connection of the server.

    ``delay`` (seconds) holds back every answer, the interim ``100 Continue`` included, as a
    network round trip would: latency emulated on the wire, for every client alike. Requests
    are counted by method (``GET /_mini/stats`` returns the counts as JSON). ``limits``, when
    set, decides every object request first (:class:`harness.s3limits.Emulator`).
    """

    buckets: dict[str, dict[str, StoredObject]] = field(default_factory=dict)
    requests: int = 0
    methods: dict[str, int] = field(default_factory=dict)
    delay: float = 0.0
    limits: s3limits.Emulator | None = None


class HTTPError(Exception):
    """An S3 error response: status, code and message (rendered as S3's XML error body)."""

    def __init__(self, status: int, code: str, message: str, resource: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.resource = resource


@dataclass(slots=True)
class Request:
    """A parsed request: method, bucket, key, query, lower-cased headers, body."""

    method: str
    bucket: str
    key: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes = b""


Response = tuple[int, list[tuple[str, str]], bytes]


class S3Protocol(asyncio.Protocol):
    """One client connection: parse requests as bytes arrive, answer each in order."""

    def __init__(self, store: S3Store, clock: _Clock) -> None:
        self.store = store
        self.clock = clock
        self.loop = asyncio.get_running_loop()
        self.not_before = 0.0  # delayed writes keep their order
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        # The request whose head has been parsed and whose body is still arriving.
        self.pending: tuple[Request, int, bool] | None = None
        self.continued = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's is not an asyncio.Transport subclass, hence no assert).
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.buffer.clear()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        try:
            while self.transport is not None and self._step():
                pass
        except HTTPError as exc:  # the stream cannot be framed any more: answer and hang up
            self._send(*_error(exc, self.clock), keep_alive=False, head=False)

    def _step(self) -> bool:
        """Handle what the buffer holds; True when a whole request was answered."""
        if self.pending is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > _MAX_HEADER_BYTES:
                    raise HTTPError(431, "RequestHeaderSectionTooLarge", "headers too large")
                return False
            head = bytes(self.buffer[:end]).decode("latin-1")
            del self.buffer[: end + 4]
            self.pending = _parse_head(head)
            self.continued = False
        request, length, keep_alive = self.pending
        if len(self.buffer) < length:
            expect = request.headers.get("expect", "").lower()
            if expect == "100-continue" and not self.continued and self.transport is not None:
                self.continued = True
                self._write(b"HTTP/1.1 100 Continue\r\n\r\n")
            return False
        request.body = bytes(self.buffer[:length])
        del self.buffer[:length]
        self.pending = None
        if request.bucket == "_mini" and request.key in ("stats", "limits"):
            self._send(
                *_control(self.store, request), keep_alive=keep_alive, head=False, delayed=False
            )
            return True
        self.store.requests += 1
        methods = self.store.methods
        methods[request.method] = methods.get(request.method, 0) + 1
        if self.store.limits is not None and self._throttled(request, self.store.limits):
            return True
        try:
            status, headers, body = handle(self.store, request, time.time())
        except HTTPError as exc:
            status, headers, body = _error(exc, self.clock)
            if request.method == "HEAD":  # S3 answers HEAD errors with the status alone
                headers, body = [], b""
        self._send(status, headers, body, keep_alive=keep_alive, head=request.method == "HEAD")
        return True

    def _throttled(self, request: Request, limits: s3limits.Emulator) -> bool:
        """Answer 503 SlowDown (and hang up, as S3 does) when the limits refuse ``request``."""
        key = s3limits.limited_key(request.method, request.key, request.query, request.body)
        if key is None or limits.admit(request.method, request.bucket, key):
            return False
        close = limits.limits.close
        date = self.clock.http_date(time.time())
        self._write(
            s3limits.slowdown_reply(date, head=request.method == "HEAD", close=close), close
        )
        if close:
            self.buffer.clear()  # nothing more is read from a connection being closed
        return True

    def _write(self, data: bytes, close: bool = False, delayed: bool = True) -> None:
        """Write now, or after the store's delay (and after any write still held back)."""
        delay = self.store.delay if delayed else 0.0
        if delay <= 0 and self.not_before <= self.loop.time():
            self._write_now(data, close)
            return
        when = max(self.loop.time() + delay, self.not_before)
        self.not_before = when
        self.loop.call_at(when, self._write_now, data, close)

    def _write_now(self, data: bytes, close: bool) -> None:
        if self.transport is None:
            return
        self.transport.write(data)
        if close:
            self.transport.close()
            self.transport = None

    def _send(
        self,
        status: int,
        headers: list[tuple[str, str]],
        body: bytes,
        *,
        keep_alive: bool,
        head: bool,
        delayed: bool = True,
    ) -> None:
        if self.transport is None:
            return
        lines = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}",
            f"Date: {self.clock.http_date(time.time())}",
            "Server: s3cache-bench-miniserver",
            f"x-amz-request-id: {next(_REQUEST_IDS):016X}",
        ]
        lines += [f"{name}: {value}" for name, value in headers]
        if not any(name == "Content-Length" for name, _ in headers):
            lines.append(f"Content-Length: {len(body)}")
        if not keep_alive:
            lines.append("Connection: close")
        payload = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self._write(payload if head or not body else payload + body, not keep_alive, delayed)


def _parse_head(head: str) -> tuple[Request, int, bool]:
    """Request line and headers: (request without body, body length, keep the connection?)."""
    lines = head.split("\r\n")
    try:
        method, target, version = lines[0].split(" ")
    except ValueError:
        raise HTTPError(400, "BadRequest", f"bad request line {lines[0][:100]!r}") from None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise HTTPError(400, "BadRequest", f"bad header line {line[:100]!r}")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise HTTPError(411, "MissingContentLength", "chunked bodies are not supported here")
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        raise HTTPError(400, "BadRequest", "bad Content-Length") from None
    if length < 0 or length > _MAX_BODY_BYTES:
        raise HTTPError(413, "EntityTooLarge", f"bodies up to {_MAX_BODY_BYTES} bytes")
    connection = headers.get("connection", "").lower()
    keep_alive = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
    path, _, query_string = target.partition("?")
    bucket, _, key = path.lstrip("/").partition("/")
    query = dict(parse_qsl(query_string, keep_blank_values=True))
    request = Request(method, unquote(bucket), unquote(key), query, headers)
    return request, length, keep_alive


def _error(exc: HTTPError, clock: _Clock) -> Response:
    body = (
        f"{_XML_DECL}<Error><Code>{exc.code}</Code><Message>{escape(exc.message)}</Message>"
        f"<Resource>{escape(exc.resource)}</Resource>"
        f"<RequestId>{uuid.uuid4().hex[:16].upper()}</RequestId></Error>"
    ).encode()
    return exc.status, [("Content-Type", "application/xml")], body


def _control(store: S3Store, request: Request) -> Response:
    """``/_mini/stats`` (request counts) and ``/_mini/limits`` (:func:`s3limits.control`)."""
    if request.key == "limits":
        store.limits, status, body = s3limits.control(store.limits, request.method, request.body)
    else:
        status = 200
        body = json.dumps({"requests": store.requests, "methods": store.methods}).encode()
    return status, [("Content-Type", "application/json")], body


def _xml(text: str) -> Response:
    return 200, [("Content-Type", "application/xml")], (_XML_DECL + text).encode()


def handle(store: S3Store, request: Request, now: float) -> Response:
    """Route one request to its S3 operation; raises :class:`HTTPError` for S3 errors."""
    method, name = request.method, request.bucket
    if not name:
        raise HTTPError(501, "NotImplemented", "ListBuckets is not implemented here")
    if not request.key:
        return _bucket_op(store, request)
    bucket = store.buckets.get(name)
    if bucket is None:
        raise HTTPError(404, "NoSuchBucket", "The specified bucket does not exist", name)
    if method == "GET" or method == "HEAD":
        return _get_object(bucket, request, head=method == "HEAD")
    if method == "PUT":
        return _put_object(bucket, request, now)
    if method == "DELETE":
        bucket.pop(request.key, None)
        return 204, [], b""
    raise HTTPError(405, "MethodNotAllowed", f"{method} on an object is not supported here")


def _bucket_op(store: S3Store, request: Request) -> Response:
    method, name = request.method, request.bucket
    if method == "PUT" and not request.query:
        store.buckets.setdefault(name, {})
        return 200, [("Location", f"/{name}")], b""
    bucket = store.buckets.get(name)
    if bucket is None:
        raise HTTPError(404, "NoSuchBucket", "The specified bucket does not exist", name)
    if method == "HEAD":
        return 200, [("x-amz-bucket-region", "us-east-1")], b""
    if method == "GET" and request.query.get("list-type") == "2":
        return _list_v2(name, bucket, request.query)
    if method == "POST" and "delete" in request.query:
        return _delete_objects(bucket, request.body)
    if method == "DELETE" and not request.query:
        if bucket:
            raise HTTPError(409, "BucketNotEmpty", "The bucket you tried to delete is not empty")
        del store.buckets[name]
        return 204, [], b""
    what = ",".join(request.query) or "(no query)"
    raise HTTPError(501, "NotImplemented", f"{method} /{name}?{what} is not implemented here")


def _get_object(bucket: dict[str, StoredObject], request: Request, *, head: bool) -> Response:
    obj = bucket.get(request.key)
    if obj is None:
        raise HTTPError(404, "NoSuchKey", "The specified key does not exist.", request.key)
    return 200, obj.headers, b"" if head else obj.body


def _put_object(bucket: dict[str, StoredObject], request: Request, now: float) -> Response:
    headers = request.headers
    if "x-amz-copy-source" in headers:
        raise HTTPError(501, "NotImplemented", "CopyObject is not implemented here")
    if headers.get("x-amz-content-sha256", "").startswith("STREAMING-"):
        raise HTTPError(501, "NotImplemented", "aws-chunked uploads are not implemented here")
    existing = bucket.get(request.key)
    if headers.get("if-none-match") == "*" and existing is not None:
        raise HTTPError(412, "PreconditionFailed", "At least one of the preconditions failed")
    if_match = headers.get("if-match")
    if if_match is not None:
        if existing is None:
            raise HTTPError(404, "NoSuchKey", "The specified key does not exist.", request.key)
        if if_match != "*" and if_match.strip() != existing.etag:
            raise HTTPError(412, "PreconditionFailed", "At least one of the preconditions failed")
    stored = [
        (name, value)
        for name, value in headers.items()
        if name in _STORED_HEADERS or name.startswith("x-amz-meta-")
    ]
    if "content-type" not in headers:
        stored.append(("content-type", "binary/octet-stream"))
    etag = f'"{hashlib.md5(request.body, usedforsecurity=False).hexdigest()}"'
    stored += [
        ("ETag", etag),
        ("Last-Modified", email.utils.formatdate(int(now), usegmt=True)),
        ("Accept-Ranges", "bytes"),
        ("Content-Length", str(len(request.body))),
    ]
    bucket[request.key] = StoredObject(request.body, etag, now, stored)
    return 200, [("ETag", etag)], b""


def _list_v2(name: str, bucket: dict[str, StoredObject], query: dict[str, str]) -> Response:
    prefix = query.get("prefix", "")
    url = query.get("encoding-type") == "url"
    try:
        max_keys = max(0, min(_PAGE, int(query.get("max-keys", _PAGE))))
    except ValueError:
        raise HTTPError(400, "InvalidArgument", "max-keys must be an integer") from None
    token = query.get("continuation-token")
    after = query.get("start-after", "")
    if token is not None:
        try:
            after = base64.urlsafe_b64decode(token.encode()).decode()
        except ValueError:
            raise HTTPError(400, "InvalidArgument", "The continuation token is not valid") from None
    keys = sorted(k for k in bucket if k.startswith(prefix) and k > after)
    page, truncated = keys[:max_keys], len(keys) > max_keys

    def enc(text: str) -> str:
        return escape(quote(text, safe="/") if url else text)

    parts = [
        f'<ListBucketResult xmlns="{_NS}"><Name>{escape(name)}</Name>',
        f"<Prefix>{enc(prefix)}</Prefix><KeyCount>{len(page)}</KeyCount>",
        f"<MaxKeys>{max_keys}</MaxKeys><IsTruncated>{str(truncated).lower()}</IsTruncated>",
    ]
    if url:
        parts.append("<EncodingType>url</EncodingType>")
    if token is not None:
        parts.append(f"<ContinuationToken>{escape(token)}</ContinuationToken>")
    for key in page:
        obj = bucket[key]
        parts.append(
            f"<Contents><Key>{enc(key)}</Key><LastModified>{_iso8601(obj.modified)}"
            f"</LastModified><ETag>{escape(obj.etag, _QUOT)}</ETag>"
            f"<Size>{len(obj.body)}</Size><StorageClass>STANDARD</StorageClass></Contents>"
        )
    if truncated and page:
        next_token = base64.urlsafe_b64encode(page[-1].encode()).decode()
        parts.append(f"<NextContinuationToken>{next_token}</NextContinuationToken>")
    parts.append("</ListBucketResult>")
    return _xml("".join(parts))


def _delete_objects(bucket: dict[str, StoredObject], body: bytes) -> Response:
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        raise HTTPError(400, "MalformedXML", "The XML you provided was not well-formed") from None
    keys = [el.text or "" for el in root.iter() if el.tag.rpartition("}")[2] == "Key"]
    if len(keys) > _PAGE:
        raise HTTPError(400, "MalformedXML", f"at most {_PAGE} keys per request")
    quiet = any(
        el.tag.rpartition("}")[2] == "Quiet" and (el.text or "").strip().lower() == "true"
        for el in root.iter()
    )
    for key in keys:
        bucket.pop(key, None)
    deleted = "" if quiet else "".join(f"<Deleted><Key>{escape(k)}</Key></Deleted>" for k in keys)
    return _xml(f'<DeleteResult xmlns="{_NS}">{deleted}</DeleteResult>')


async def serve(
    host: str,
    port: int,
    ready: asyncio.Future[int] | None = None,
    delay: float = 0.0,
    limits: s3limits.Emulator | None = None,
) -> None:
    """Listen on ``host:port`` (0: any free port) until cancelled; ``ready`` gets the port.

    ``delay`` seconds are added to every answer (emulated round-trip latency); ``limits``
    enforces request-rate limits from the start.
    """
    loop = asyncio.get_running_loop()
    store, clock = S3Store(delay=delay, limits=limits), _Clock()
    server = await loop.create_server(lambda: S3Protocol(store, clock), host, port, backlog=1024)
    bound: int = server.sockets[0].getsockname()[1]
    if ready is not None:
        ready.set_result(bound)
    async with server:
        await server.serve_forever()


async def _watch_stdin() -> None:
    """Return when stdin reaches EOF (the parent closed it or died)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while await reader.read(4096):
        pass


async def _main(
    host: str,
    port: int,
    watch_stdin: bool,
    delay: float = 0.0,
    limits: s3limits.Limits | None = None,
) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    # Run as a child (stdin watched), a terminal's Ctrl-C must not stop the server under the
    # benchmark's feet: the parent stops it (SIGTERM, or closing stdin) once it has cleaned up.
    signals = (signal.SIGTERM,) if watch_stdin else (signal.SIGTERM, signal.SIGINT)
    if watch_stdin:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    for sig in signals:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    ready: asyncio.Future[int] = loop.create_future()
    emulator = None if limits is None else s3limits.Emulator(limits)
    server = asyncio.create_task(serve(host, port, ready, delay, emulator))
    waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(stop.wait()), server]
    if watch_stdin:
        waiters.append(asyncio.ensure_future(_watch_stdin()))
    try:
        started: list[asyncio.Future[Any]] = [ready, server]
        await asyncio.wait(started, return_when=asyncio.FIRST_COMPLETED)
        if ready.done():
            print(f"READY {ready.result()}", flush=True)
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waiters:
            task.cancel()
        results = await asyncio.gather(*waiters, return_exceptions=True)
    failure = results[1]  # the server's own error (bind failed, ...), if any
    if isinstance(failure, Exception):
        raise failure


def main(argv: list[str] | None = None) -> int:
    """Command line: ``--host``, ``--port`` (0 for a free one), ``--delay-ms``, ``--limits``,
    ``--no-stdin-watch``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--delay-ms",
        type=float,
        default=0.0,
        help="hold every answer back this long (emulated network round trip)",
    )
    parser.add_argument(
        "--limits",
        metavar="JSON",
        help="enforce S3's request-rate limits (harness/s3limits.py), e.g. '{}' for the "
        'defaults or \'{"read_rate": 100, "split_after_s": 3}\'',
    )
    parser.add_argument(
        "--no-stdin-watch", action="store_true", help="keep running when stdin closes"
    )
    ns = parser.parse_args(argv)
    limits = None if ns.limits is None else s3limits.Limits.from_json(json.loads(ns.limits))
    if importlib.util.find_spec("uvloop") is not None:  # optional, never a dependency
        import uvloop  # type: ignore[import-not-found,unused-ignore]

        uvloop.install()
    asyncio.run(_main(ns.host, ns.port, not ns.no_stdin_watch, ns.delay_ms / 1000, limits))
    return 0


if __name__ == "__main__":
    sys.exit(main())
