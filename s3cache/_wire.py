"""The wire path's HTTP layer: one keep-alive connection pool per event loop, one request per
``send``.

Only GetObject, HeadObject, PutObject and DeleteObject travel here, signed by
:mod:`s3cache._sigv4`; everything else stays on aiobotocore. The HTTP/1.1 client is s3cache's
own (:mod:`s3cache._http_pool`, :mod:`s3cache._http11`: ``asyncio`` protocols, responses
parsed by httptools). Failures come out as the botocore exceptions aiobotocore raises for the
same failure, so the transport retries and translates both paths alike.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from typing import Any, NoReturn

from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
    SSLError,
)
from botocore.httpsession import create_urllib3_context, get_cert_path
from yarl import URL

from s3cache._http11 import HTTPFailure, ReadTimedOut, Reply
from s3cache._http_pool import ConnectFailed, ConnectTimedOut, Pool, TLSFailed

__all__ = ["WireSession", "tls_context"]


class WireSession:
    """The HTTP connections of one event loop: a keep-alive pool of ``limit`` connections.

    Responses are never decompressed (``Accept-Encoding: identity`` is sent), redirects are
    never followed (S3's redirects are region redirects, handled above), no cookies are kept.
    """

    __slots__ = ("_connector_args", "_limit", "_pool", "_timeouts", "_verify")

    def __init__(
        self,
        *,
        limit: int,
        verify: bool | str | None,
        connect_timeout: float | None,
        read_timeout: float | None,
        connector_args: Mapping[str, Any],
    ) -> None:
        """``verify`` is aiobotocore's: False, True (the default CA bundle) or a bundle path;
        None for plain HTTP. The rest are the client's ``config`` values; of aiohttp's
        ``connector_args``, ``keepalive_timeout`` and ``force_close`` apply (the DNS cache
        options do not: a new connection resolves its host through the loop)."""
        self._limit = limit
        self._verify = verify
        self._timeouts = (connect_timeout, read_timeout)
        self._connector_args = dict(connector_args)
        self._pool: Pool | None = None

    async def start(self) -> None:
        """Create the pool on the running loop (its connections are bound to that loop).

        A CA bundle is read in a worker thread, as aiobotocore reads it, off the loop.
        """
        context: ssl.SSLContext | None = None
        if self._verify is not None:
            context = await asyncio.to_thread(tls_context, self._verify)
        args = self._connector_args
        self._pool = Pool(
            limit=self._limit,
            tls=context,
            connect_timeout=self._timeouts[0],
            read_timeout=self._timeouts[1],
            keepalive_timeout=args.get("keepalive_timeout", 15.0),
            force_close=bool(args.get("force_close", False)),
        )

    async def close(self) -> None:
        """Close every connection of the pool (on its loop) and wait until each has ended."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def send(
        self, method: str, url: URL, headers: dict[str, str], body: bytes | None
    ) -> Reply:
        """One attempt; connection failures raise what aiobotocore raises for them, and a
        header that would smuggle a line break into the request raises ``ValueError``."""
        pool = self._pool
        if pool is None:
            raise ConnectionClosedError(endpoint_url=str(url), error="the session is closed")
        origin = (url.raw_host or "", url.port or 80, url.scheme == "https")
        try:
            return await pool.request(origin, method, url.raw_path_qs, headers, body)
        except HTTPFailure as exc:
            _raise_botocore_error(exc, url)


def _raise_botocore_error(exc: HTTPFailure, url: URL) -> NoReturn:
    """Raise what aiobotocore raises for the same failure."""
    endpoint = str(url)
    if isinstance(exc, ConnectFailed):
        raise EndpointConnectionError(endpoint_url=endpoint, error=exc) from exc
    if isinstance(exc, ConnectTimedOut):
        raise ConnectTimeoutError(endpoint_url=endpoint, error=exc) from exc
    if isinstance(exc, TLSFailed):
        raise SSLError(endpoint_url=endpoint, error=exc) from exc
    if isinstance(exc, ReadTimedOut):
        raise ReadTimeoutError(endpoint_url=endpoint, error=exc) from exc
    raise ConnectionClosedError(endpoint_url=endpoint, error=exc) from exc  # lost, malformed


def tls_context(verify: bool | str) -> ssl.SSLContext:
    """The TLS context aiobotocore builds for ``verify``: botocore's defaults and CA bundle."""
    context: ssl.SSLContext = create_urllib3_context()
    if verify:
        context.check_hostname = True
        bundle = get_cert_path(verify)
        if bundle:
            context.load_verify_locations(bundle, None, None)
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
