"""A delaying TCP proxy, run as its own process: emulated network latency, on the wire.

Every byte a client sends is forwarded at once; every byte the server sends back reaches the
client ``--delay-ms`` later, in order. A request and its answer (an interim ``100 Continue``
included) therefore take one extra round trip of that length, whatever the client is (botocore
hooks, aiohttp, a Rust library): the latency is on the wire, not inside one client.

``python -m harness.delayproxy --upstream 127.0.0.1:9000 --delay-ms 20`` prints
``READY <port>`` once listening on a free loopback port, and exits when its stdin closes (its
parent died or let go of it) or on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from typing import Final

__all__ = ["main", "serve"]

_CHUNK: Final = 256 * 1024


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """Copy ``reader`` to ``writer``, each chunk ``delay`` seconds after it arrived."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, data = await queue.get()
            if not data:
                break
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()

    sender = asyncio.create_task(deliver())
    try:
        while data := await reader.read(_CHUNK):
            queue.put_nowait((loop.time() + delay, data))
    finally:
        queue.put_nowait((0.0, b""))
        await sender


async def _connection(
    client_reader: asyncio.StreamReader,
    client_writer: asyncio.StreamWriter,
    upstream: tuple[str, int],
    delay: float,
) -> None:
    try:
        server_reader, server_writer = await asyncio.open_connection(*upstream)
    except OSError:
        client_writer.close()
        return
    try:
        await asyncio.gather(
            _pump(client_reader, server_writer, 0.0),
            _pump(server_reader, client_writer, delay),
        )
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        for writer in (client_writer, server_writer):
            writer.close()


async def serve(
    upstream: tuple[str, int], delay: float, ready: asyncio.Future[int] | None = None
) -> None:
    """Listen on a free loopback port until cancelled; ``ready`` gets the port."""
    server = await asyncio.start_server(
        lambda r, w: _connection(r, w, upstream, delay), "127.0.0.1", 0, backlog=1024
    )
    if ready is not None:
        ready.set_result(server.sockets[0].getsockname()[1])
    async with server:
        await server.serve_forever()


async def _main(upstream: tuple[str, int], delay: float) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    ready: asyncio.Future[int] = loop.create_future()
    server = asyncio.create_task(serve(upstream, delay, ready))
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print(f"READY {await ready}", flush=True)
    stdin_closed = asyncio.create_task(reader.read())
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait([stdin_closed, stopped, server], return_when=asyncio.FIRST_COMPLETED)
    for task in (stdin_closed, stopped, server):
        task.cancel()
    await asyncio.gather(stdin_closed, stopped, server, return_exceptions=True)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``--upstream HOST:PORT --delay-ms MS``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--upstream", required=True, help="HOST:PORT of the S3 server")
    parser.add_argument("--delay-ms", type=float, default=20.0)
    ns = parser.parse_args(argv)
    host, _, port = ns.upstream.rpartition(":")
    asyncio.run(_main((host, int(port)), ns.delay_ms / 1000))
    return 0


if __name__ == "__main__":
    sys.exit(main())
