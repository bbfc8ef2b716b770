"""The wire path's keep-alive pool of one event loop: HTTP/1.1 connections per origin.

At most ``limit`` idle connections are kept (the transport's semaphore already bounds the
requests in flight, hence the connections in use), the most recently used first; one idle
longer than the keep-alive timeout is closed. A request whose reused connection turns out
to have been closed by the server before any answer is sent once more on a fresh
connection, but only when repeating it is safe: GET, HEAD, DELETE, or a request the server
cannot have acted on (nothing sent, or a PUT whose body still waited for 100 Continue). A
request that cannot be repeated (PUT) first checks that its idle connection's socket shows
no close from the server (one poll), which narrows that race to the network's round trip.
Connections are opened with the loop's own TCP and TLS support.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import Mapping
from typing import Any, Final

from s3cache._http11 import Connection, ConnectionLost, HTTPFailure, Reply
from s3cache._http_head import request_head

__all__ = ["ConnectFailed", "ConnectTimedOut", "Origin", "Pool", "TLSFailed"]

#: (host, port, TLS): where a connection goes.
Origin = tuple[str, int, bool]
#: Methods that may be sent again when their connection was closed before any answer.
REPEATABLE: Final = frozenset({"GET", "HEAD", "DELETE"})
#: Methods sent without a ``Content-Length`` when they have no body (others get
#: ``content-length: 0``, as botocore's and aiohttp's DELETE does).
_BODILESS: Final = frozenset({"GET", "HEAD"})
#: aiohttp's delay before racing the next address of a host (RFC 8305 happy eyeballs).
_HAPPY_EYEBALLS_DELAY: Final = 0.25


class ConnectFailed(HTTPFailure):
    """No connection: refused, unreachable, or the host name does not resolve."""


class ConnectTimedOut(HTTPFailure):
    """No connection within the connect timeout (TCP and TLS handshakes)."""


class TLSFailed(HTTPFailure):
    """The TLS handshake failed (certificate, protocol)."""


class Pool:
    """Keep-alive HTTP/1.1 connections of one event loop; :meth:`request` sends one request."""

    def __init__(
        self,
        *,
        limit: int,
        tls: ssl.SSLContext | None,
        connect_timeout: float | None,
        read_timeout: float | None,
        keepalive_timeout: float | None = 15.0,
        force_close: bool = False,
    ) -> None:
        """``limit``: idle connections kept; ``tls``: the context of ``https`` origins;
        ``connect_timeout``/``read_timeout``: seconds or None (no limit), as botocore's
        config; ``keepalive_timeout``: seconds an idle connection is kept (None: until the
        server closes it); ``force_close``: a new connection for every request."""
        self._loop = asyncio.get_running_loop()
        self._limit = limit
        self._tls = tls
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._keepalive = keepalive_timeout
        self._force_close = force_close
        self._idle: dict[Origin, list[Connection]] = {}
        self._idle_count = 0
        self._open: set[Connection] = set()
        self._sweep: asyncio.TimerHandle | None = None
        self._closed = False
        # asyncio's own loops race a host's addresses as aiohttp does; uvloop has no option.
        self._connect_options: dict[str, Any] = (
            {"happy_eyeballs_delay": _HAPPY_EYEBALLS_DELAY}
            if isinstance(self._loop, asyncio.BaseEventLoop)
            else {}
        )

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def connections(self) -> int:
        """Connections open now, idle or in use (not those closing)."""
        return sum(not c.closing() for c in self._open)

    async def request(
        self,
        origin: Origin,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: bytes | None,
    ) -> Reply:
        """Send one request to ``origin`` and return its response; raises ``ValueError``
        (before sending) for a head that could smuggle a request, :class:`HTTPFailure`
        for a failed exchange."""
        length = len(body) if body is not None else None if method in _BODILESS else 0
        head = request_head(method, target, headers, length)
        expect = body is not None and headers.get("expect") == "100-continue"
        connection = self._reuse(origin, method)
        fresh = connection is None
        if connection is None:
            connection = await self._connect(origin)
        while True:  # one coroutine for the whole exchange: a request in flight keeps few alive
            try:
                reply = await connection.exchange(method, head, body, expect, self._read_timeout)
            except ConnectionLost as exc:
                connection.abort()
                if fresh or exc.answered or (exc.delivered and method not in REPEATABLE):
                    raise
            except BaseException:  # failed, timed out or cancelled: its state is unknown
                connection.abort()
                raise
            else:
                self._release(origin, connection)
                return reply
            # The server had closed the idle connection as the request went: once more.
            fresh = True
            connection = await self._connect(origin)

    def _reuse(self, origin: Origin, method: str) -> Connection | None:
        """The most recently used idle connection to ``origin`` still open, if any; for a
        request that cannot be repeated, one whose socket shows no close from the server."""
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()
            self._idle_count -= 1
            if (
                connection.usable()
                and not self._expired(connection, self._loop.time())
                and (method in REPEATABLE or not connection.peer_closed())
            ):
                return connection
            connection.abort()
        return None

    def _release(self, origin: Origin, connection: Connection) -> None:
        if (
            self._closed
            or self._force_close
            or not connection.usable()
            or self._idle_count >= self._limit
        ):
            connection.abort()
            return
        connection.idle_since = self._loop.time()
        self._idle.setdefault(origin, []).append(connection)
        self._idle_count += 1
        if self._sweep is None and self._keepalive is not None:
            self._sweep = self._loop.call_later(self._keepalive, self._on_sweep)

    def _expired(self, connection: Connection, now: float) -> bool:
        return self._keepalive is not None and now - connection.idle_since >= self._keepalive

    def _on_sweep(self) -> None:
        """Close the connections idle for the keep-alive timeout; come back for the rest."""
        self._sweep = None
        now = self._loop.time()
        oldest = now
        for idle in self._idle.values():
            for connection in [c for c in idle if self._expired(c, now)]:
                idle.remove(connection)
                self._idle_count -= 1
                connection.abort()
            oldest = min([oldest, *(c.idle_since for c in idle)])
        if self._idle_count and self._keepalive is not None:
            self._sweep = self._loop.call_at(oldest + self._keepalive, self._on_sweep)

    def _lost(self, connection: Connection) -> None:
        """A connection ended (either side closed it): forget it."""
        self._open.discard(connection)
        for idle in self._idle.values():
            if connection in idle:
                idle.remove(connection)
                self._idle_count -= 1

    async def _connect(self, origin: Origin) -> Connection:
        if self._closed:
            raise ConnectionLost("the connection pool is closed", answered=False, delivered=False)
        host, port, tls = origin
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, connection = await self._loop.create_connection(
                    lambda: Connection(self._loop, self._lost),
                    host,
                    port,
                    ssl=self._tls if tls else None,
                    server_hostname=host if tls else None,
                    # An IP literal has one address: nothing to race, and Python 3.11's race
                    # leaks its socket when cancelled mid-connect (a ResourceWarning in tests).
                    **({} if _is_ip(host) else self._connect_options),
                )
        except TimeoutError as exc:
            raise ConnectTimedOut(
                f"no connection to {host}:{port} within {self._connect_timeout:g} s"
            ) from exc
        except (ssl.SSLError, ssl.CertificateError) as exc:
            raise TLSFailed(f"TLS with {host}:{port} failed: {exc}") from exc
        except OSError as exc:
            raise ConnectFailed(f"cannot connect to {host}:{port}: {exc}") from exc
        if self._closed:  # closed while this connected: close() never saw it, so end it here
            connection.abort()
            raise ConnectionLost("the connection pool is closed", answered=False, delivered=False)
        self._open.add(connection)
        return connection

    async def close(self) -> None:
        """Close every connection and wait until each has ended."""
        self._closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        connections = list(self._open)
        self._idle.clear()
        self._idle_count = 0
        for connection in connections:
            connection.abort()
        await asyncio.gather(*(c.closed for c in connections))


def _is_ip(host: str) -> bool:
    """Whether ``host`` is an IPv4 or IPv6 literal (not a name to resolve)."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True
