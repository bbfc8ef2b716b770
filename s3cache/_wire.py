"""The wire path's HTTP layer: one aiohttp session per event loop, one request per ``send``.

Only GetObject, HeadObject, PutObject and DeleteObject travel here, signed by
:mod:`s3cache._sigv4`; everything else stays on aiobotocore. Failures come out as the botocore
exceptions aiobotocore raises for the same failure, so the transport retries and translates
both paths alike.
"""

from __future__ import annotations

import asyncio
import http.client
import io
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from xml.etree import ElementTree

import aiohttp
from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    ProxyConnectionError,
    ReadTimeoutError,
    SSLError,
)
from botocore.httpsession import create_urllib3_context, get_cert_path
from yarl import URL

__all__ = ["Reply", "WireSession", "error_code", "error_response", "tls_context"]

#: aiohttp adds these unless told not to; S3 needs none of them (and must never get a
#: compressed body back: ``Accept-Encoding: identity`` is sent instead).
_SKIP_AUTO_HEADERS: Final = frozenset({"Accept", "Accept-Encoding", "User-Agent", "Content-Type"})
#: The largest body aiohttp takes as raw bytes without a ResourceWarning ("Sending a large body
#: directly with raw bytes might lock the event loop"); larger ones go as a stream.
_RAW_BODY_MAX: Final = 1024 * 1024


def _streamed(body: bytes) -> bytes | io.BytesIO:
    """``body`` as aiohttp sends it without a warning: bytes up to 1 MiB, above that a
    ``BytesIO`` (as botocore's own PutObject handler does for aiobotocore), which shares the
    bytes' buffer (no copy) and which aiohttp writes in chunks, yielding to the loop between."""
    return body if len(body) <= _RAW_BODY_MAX else io.BytesIO(body)


@dataclass(frozen=True, slots=True)
class Reply:
    """One HTTP response: status, lower-cased headers (as botocore reports them), body."""

    status: int
    headers: dict[str, str]
    body: bytes


class WireSession:
    """The aiohttp session of one event loop: keep-alive pool of ``limit`` connections.

    Responses are never decompressed (``auto_decompress=False``), redirects are never followed
    (S3's redirects are region redirects, handled above), and no cookies are kept.
    """

    __slots__ = ("_connector_args", "_limit", "_session", "_timeout", "_verify")

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
        None for plain HTTP. The rest are the client's ``config`` values."""
        self._limit = limit
        self._verify = verify
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=read_timeout
        )
        self._connector_args = dict(connector_args)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Create the session on the running loop (a connector is bound to its loop).

        A CA bundle is read in a worker thread, as aiobotocore reads it, off the loop.
        """
        context: ssl.SSLContext | bool = False
        if self._verify is not None:
            context = await asyncio.to_thread(tls_context, self._verify)
        connector = aiohttp.TCPConnector(limit=self._limit, ssl=context, **self._connector_args)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            auto_decompress=False,
            skip_auto_headers=_SKIP_AUTO_HEADERS,
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def send(
        self, method: str, url: URL, headers: dict[str, str], body: bytes | None
    ) -> Reply:
        """One attempt; connection failures raise what aiobotocore raises for them."""
        session = self._session
        if session is None:
            raise ConnectionClosedError(endpoint_url=str(url), error="the session is closed")
        try:
            response = await session.request(
                method,
                url,
                headers=headers,
                data=None if body is None else _streamed(body),
                allow_redirects=False,
                expect100="expect" in headers,
            )
            try:
                data = await response.read()
            finally:
                response.release()
            return Reply(
                response.status,
                {k.decode().lower(): v.decode() for k, v in response.raw_headers},
                data,
            )
        except aiohttp.ClientSSLError as exc:
            raise SSLError(endpoint_url=str(url), error=exc) from exc
        except (aiohttp.ClientProxyConnectionError, aiohttp.ClientHttpProxyError) as exc:
            raise ProxyConnectionError(proxy_url="?", error=exc) from exc
        except (
            aiohttp.ServerDisconnectedError,
            aiohttp.ClientPayloadError,
            aiohttp.http_exceptions.BadStatusLine,
        ) as exc:
            raise ConnectionClosedError(endpoint_url=str(url), error=exc) from exc
        except aiohttp.ServerTimeoutError as exc:
            if str(exc).lower().startswith("connect"):
                raise ConnectTimeoutError(endpoint_url=str(url), error=exc) from exc
            raise ReadTimeoutError(endpoint_url=str(url), error=exc) from exc
        except (aiohttp.ClientConnectionError, socket.gaierror) as exc:
            raise EndpointConnectionError(endpoint_url=str(url), error=exc) from exc
        except TimeoutError as exc:
            raise ReadTimeoutError(endpoint_url=str(url), error=exc) from exc
        except (asyncio.CancelledError, HTTPClientError, Warning):
            raise  # a Warning raised as an error is a bug here, not a connection failure
        except Exception as exc:
            raise HTTPClientError(error=exc) from exc


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


def error_code(reply: Reply) -> str:
    """The ``<Code>`` of an S3 error reply, cheaply; the status when there is none (HEAD)."""
    body = reply.body
    start = body.find(b"<Code>")
    if start >= 0:
        end = body.find(b"</Code>", start)
        if end > start:
            return body[start + 6 : end].decode(errors="replace")
    return str(reply.status)


def error_response(reply: Reply) -> dict[str, Any]:
    """botocore's parsed form of an S3 error reply: ``Error`` (Code, Message, ...) and
    ``ResponseMetadata``; a reply without an XML body (HEAD) gets the status as its code."""
    error: dict[str, Any] = {}
    if reply.body:
        try:
            root = ElementTree.fromstring(reply.body)  # noqa: S314 - small bodies from the server
        except ElementTree.ParseError:
            root = None
        if root is not None:
            error = {child.tag.rpartition("}")[2]: child.text or "" for child in root}
    request_id = error.pop("RequestId", None) or reply.headers.get("x-amz-request-id", "")
    host_id = error.pop("HostId", None) or reply.headers.get("x-amz-id-2", "")
    if "Code" not in error:
        error = {
            "Code": str(reply.status),
            "Message": http.client.responses.get(reply.status, ""),
        }
    return {
        "Error": error,
        "ResponseMetadata": {
            "RequestId": request_id,
            "HostId": host_id,
            "HTTPStatusCode": reply.status,
            "HTTPHeaders": reply.headers,
        },
    }
