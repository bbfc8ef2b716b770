"""``python -m benchmarks.parsers``: client CPU per GET of httptools (llhttp) against h11.

The measurement that chose the wire path's HTTP/1.1 response parser. Both parsers sit in the
same minimal keep-alive client (an ``asyncio.Protocol`` writing a fixed request head and
collecting the body), so only the parsing differs; each does ``--requests`` GETs of a 1 KiB
and a 1 MiB object from the embedded mini server (no latency), ``--concurrency`` at a time,
in interleaved rounds, and the median CPU µs per GET is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from typing import Final

import h11
import httptools

from benchmarks.server import EmbeddedServer

__all__ = ["main"]

_SIZES: Final = {"1KiB": 1024, "1MiB": 1024 * 1024}
_BUCKET: Final = "parsers"


class _Client(asyncio.Protocol):
    """One keep-alive connection; ``get`` sends one request and waits for its body."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.done: asyncio.Future[bytes | bytearray] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_exception(ConnectionError("closed"))

    async def get(self, head: bytes) -> bytes | bytearray:
        assert self.transport is not None
        self.done = asyncio.get_running_loop().create_future()
        self.begin()
        self.transport.write(head)
        return await self.done

    def begin(self) -> None:
        """Get ready for a response."""

    def finish(self, body: bytes | bytearray) -> None:
        assert self.done is not None
        self.done.set_result(body)


class _Llhttp(_Client):
    """httptools: a parser per response, headers by callback, the body into one bytearray."""

    def begin(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = bytearray()

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.finish(self.body)


class _Preallocated(asyncio.BufferedProtocol, _Llhttp):
    """httptools for the head; a body with a Content-Length is read straight into one
    preallocated bytearray (``recv_into``), past the parser: what the wire path does."""

    def begin(self) -> None:
        super().begin()
        self.scratch = memoryview(bytearray(16 * 1024))
        self.view = self.scratch
        self.filled = 0
        self.length = -1

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.view

    def buffer_updated(self, nbytes: int) -> None:
        if self.view is self.scratch:
            self.parser.feed_data(self.scratch[:nbytes])
            return
        self.filled += nbytes
        self.view = self.view[nbytes:]
        if self.filled == self.length:
            self.finish(self.body)

    def on_headers_complete(self) -> None:
        for name, value in self.headers:
            if name.lower() == b"content-length":
                self.length = int(value)
                self.body = bytearray(self.length)

    def on_body(self, body: bytes) -> None:
        self.body[self.filled : self.filled + len(body)] = body
        self.filled += len(body)
        if self.filled < self.length:
            self.view = memoryview(self.body)[self.filled :]


class _H11(_Client):
    """h11: one connection state machine, cycled after each response."""

    def __init__(self) -> None:
        super().__init__()
        self.connection = h11.Connection(h11.CLIENT)

    def begin(self) -> None:
        if self.connection.our_state is h11.DONE:
            self.connection.start_next_cycle()
        self.connection.send(h11.Request(method="GET", target="/", headers=[("host", "x")]))
        self.connection.send(h11.EndOfMessage())
        self.body = bytearray()

    def data_received(self, data: bytes) -> None:
        self.connection.receive_data(data)
        while True:
            event = self.connection.next_event()
            if isinstance(event, h11.Data):
                self.body += event.data
            elif isinstance(event, h11.EndOfMessage):
                self.finish(self.body)
                return
            elif event is h11.NEED_DATA:
                return


async def _round(
    factory: Callable[[], _Client], port: int, key: str, requests: int, concurrency: int
) -> float:
    """CPU µs per GET of ``requests`` GETs over ``concurrency`` connections."""
    loop = asyncio.get_running_loop()
    head = f"GET /{_BUCKET}/{key} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n".encode()
    clients = []
    for _ in range(concurrency):
        _, client = await loop.create_connection(factory, "127.0.0.1", port)
        clients.append(client)
    await asyncio.gather(*(c.get(head) for c in clients))  # warm every connection up
    each = requests // concurrency

    async def run(client: _Client) -> None:
        for _ in range(each):
            await client.get(head)

    cpu = time.process_time()
    await asyncio.gather(*(run(c) for c in clients))
    cpu = time.process_time() - cpu
    for client in clients:
        assert client.transport is not None
        client.transport.close()
    return cpu / (each * concurrency) * 1e6


def _put(url: str, size: int) -> None:
    request = urllib.request.Request(url, data=b"x" * size, method="PUT")
    with urllib.request.urlopen(request, timeout=30):
        pass


async def _measure(
    port: int, requests: int, concurrency: int, rounds: int
) -> dict[str, dict[str, float]]:
    parsers: dict[str, Callable[[], _Client]] = {
        "httptools": _Llhttp,
        "h11": _H11,
        "httptools, body into one buffer": _Preallocated,
    }
    figures: dict[str, dict[str, list[float]]] = {p: {s: [] for s in _SIZES} for p in parsers}
    for _ in range(rounds):
        for size in _SIZES:
            n = requests if size == "1KiB" else max(concurrency, requests // 16)
            for name, factory in parsers.items():
                figures[name][size].append(await _round(factory, port, size, n, concurrency))
    return {p: {s: statistics.median(v) for s, v in by.items()} for p, by in figures.items()}


def main(argv: Sequence[str] | None = None) -> int:
    """Start the mini server, store the objects, measure, print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=20000, help="1 KiB GETs per round")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    ns = parser.parse_args(argv)
    with EmbeddedServer("mini") as server:
        port = int(server.url.rsplit(":", 1)[1])
        _put(f"{server.url}/{_BUCKET}", 0)
        for key, size in _SIZES.items():
            _put(f"{server.url}/{_BUCKET}/{key}", size)
        figures = asyncio.run(_measure(port, ns.requests, ns.concurrency, ns.rounds))
    print(f"client CPU µs per GET, median of {ns.rounds} rounds, c={ns.concurrency}")
    print(f"{'parser':<32}" + "".join(f"{size:>10}" for size in _SIZES))
    for name, by_size in figures.items():
        print(f"{name:<32}" + "".join(f"{by_size[size]:>10.1f}" for size in _SIZES))
    return 0


if __name__ == "__main__":
    sys.exit(main())
