"""The transport: aiobotocore clients per event loop, tuned defaults, a concurrency bound,
per-operation deadlines, and translation of every failure into :mod:`s3cache.errors`.

This is the only module that talks to aiobotocore. It knows object keys and payloads, not
cache semantics: expiry and decoding belong to the format layer and the core above it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.metadata
import inspect
import os
import platform
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from s3cache._format import Payload
from s3cache.errors import (
    AccessDeniedError,
    BucketNotFoundError,
    CacheClosedError,
    CredentialsError,
    EndpointUnreachableError,
    NotSupportedError,
    S3CacheError,
    ServerError,
    StoreTimeoutError,
)

__all__ = ["DEFAULT_TIMEOUT", "DELETE_BATCH", "ListedObject", "Transport", "client_config"]

DEFAULT_TIMEOUT: Final = 10.0
#: DeleteObjects takes at most this many keys per request.
DELETE_BATCH: Final = 1000
_CONNECT_TIMEOUT: Final = 3.0
_READ_TIMEOUT: Final = 8.0

_MISSING_CODES: Final = frozenset({"NoSuchKey", "404", "NotFound"})
_BUCKET_CODES: Final = frozenset({"NoSuchBucket"})
_ACCESS_CODES: Final = frozenset({"AccessDenied", "AllAccessDisabled", "Forbidden", "403"})
_CREDENTIAL_CODES: Final = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "AuthorizationHeaderMalformed",
        "InvalidSecurity",
        "RequestTimeTooSkewed",
    }
)
_PRECONDITION_CODES: Final = frozenset({"PreconditionFailed", "412"})
_CONNECTION_ERRORS: Final = (
    BotoConnectionError,  # EndpointConnectionError, ConnectTimeoutError, SSLError, proxies
    HTTPClientError,  # ConnectionClosedError, ResponseStreamingError, ...
    ResponseStreamingError,
    IncompleteReadError,
    OSError,
)


#: Load the service model in a worker thread, once per session, instead of blocking the event
#: loop for a few hundred milliseconds when a loop opens its first client (aiobotocore >= 2.26;
#: the aioboto3 interop extra pins 2.25.1, which lacks the option).
_WARM_UP: Final[dict[str, bool]] = (
    {"warm_up_loader_caches": True}
    if "warm_up_loader_caches" in inspect.signature(AioConfig.__init__).parameters
    else {}
)


def client_config(max_concurrency: int, user: Config | None) -> AioConfig:
    """Our client defaults with the user's ``config`` merged over them.

    Standard retries (not botocore's ``legacy``), checksums only when an operation requires one
    (saves CPU; older S3-compatible servers reject the CRC32 trailers), parameter validation off
    (we build every request ourselves), a connection pool the size of the concurrency bound, and
    a fixed User-Agent (see :func:`_fixed_user_agent`).
    """
    if user is not None and not isinstance(user, Config):
        raise TypeError(f"config must be a botocore Config or AioConfig, not {type(user).__name__}")
    ours = AioConfig(
        max_pool_connections=max_concurrency,
        connect_timeout=_CONNECT_TIMEOUT,
        read_timeout=_READ_TIMEOUT,
        retries={"mode": "standard", "total_max_attempts": 3},  # the first try and two retries
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        parameter_validation=False,
        **_WARM_UP,
        **_user_agent_option(user),
    )
    if user is None:
        return ours
    merged: AioConfig = ours.merge(user)
    if merged.max_pool_connections < max_concurrency:
        raise ValueError(
            f"config.max_pool_connections={merged.max_pool_connections} is below "
            f"max_concurrency={max_concurrency}: requests would be signed and then wait for a "
            "connection (RequestTimeTooSkewed); lower max_concurrency instead"
        )
    return merged


def _user_agent_option(user: Config | None) -> dict[str, str]:
    """``user_agent=`` for our config, unless the user asked for botocore's own User-Agent.

    botocore rebuilds its structured User-Agent (``ua/2.1 os/... md/... m/<feature ids>``) from
    a dozen sanitised components on every request, twice: about a seventh of the client CPU of
    a small GET. ``Config(user_agent=...)`` is botocore's supported override and makes it a
    constant. Safe: the header has no protocol meaning; only AWS's SDK telemetry reads the
    feature ids. ``user_agent_extra`` still applies; a user who sets ``user_agent`` gets theirs
    (merge), and one who sets an app id (in ``config`` or ``AWS_SDK_UA_APP_ID``), which only
    the structured form carries, keeps botocore's builder.
    """
    if user is not None and (user.user_agent is not None or user.user_agent_appid is not None):
        return {}
    if os.environ.get("AWS_SDK_UA_APP_ID"):
        return {}
    return {"user_agent": _fixed_user_agent()}


@functools.cache
def _fixed_user_agent() -> str:
    """``s3cache/<v> aiobotocore/<v> botocore/<v> Python/<v>``, computed once."""
    import aiobotocore
    import botocore

    try:
        ours = importlib.metadata.version("s3cache-async")
    except importlib.metadata.PackageNotFoundError:
        ours = "dev"
    return (
        f"s3cache/{ours} aiobotocore/{aiobotocore.__version__} "
        f"botocore/{botocore.__version__} Python/{platform.python_version()}"
    )


@dataclass(frozen=True, slots=True)
class ListedObject:
    """One object from a listing."""

    key: str
    size: int
    last_modified: Any  # ISO 8601 text or a datetime, depending on the session's parser


class _LoopClient:
    """The client, semaphore, requests in flight and lifetime of one event loop.

    The client is entered inside an async generator that the loop's ``shutdown_asyncgens``
    (run by ``asyncio.run`` and every ``asyncio.Runner``) finalises, so a loop that ends closes
    its client on that loop, and a closed loop is never touched.
    """

    __slots__ = ("_idle", "_lifetime", "_opening", "client", "in_flight", "loop", "semaphore")

    def __init__(self, loop: asyncio.AbstractEventLoop, max_concurrency: int) -> None:
        self.loop = loop
        self.semaphore = asyncio.Semaphore(max_concurrency)
        self.client: Any = None
        self.in_flight = 0  # requests admitted: waiting for a slot, or on the wire
        self._idle: asyncio.Future[None] | None = None  # set when in_flight drops to 0
        self._opening = asyncio.Lock()
        self._lifetime: AsyncGenerator[Any, None] | None = None

    async def open(self, transport: Transport) -> Any:
        async with self._opening:
            if self.client is None:
                lifetime = self._live(transport)
                self.client = await anext(lifetime)
                self._lifetime = lifetime
        return self.client

    async def _live(self, transport: Transport) -> AsyncGenerator[Any, None]:
        try:
            async with transport.new_client() as client:
                yield client
        finally:
            self.client = None
            transport.forget(self)

    def leave(self) -> None:
        """One request fewer in flight."""
        self.in_flight -= 1
        if not self.in_flight and self._idle is not None and not self._idle.done():
            self._idle.set_result(None)

    async def aclose(self, drain: float) -> None:
        """Wait up to ``drain`` seconds for the requests in flight, then close the client."""
        try:
            if self.in_flight:
                self._idle = self.loop.create_future()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(drain):
                        await self._idle
        finally:
            lifetime, self._lifetime = self._lifetime, None
            if lifetime is not None:
                await lifetime.aclose()


class Transport:
    """S3 operations on one bucket, each bounded by a semaphore slot and a deadline."""

    def __init__(
        self,
        *,
        bucket: str,
        client_kwargs: Mapping[str, Any],
        config: AioConfig,
        session: Any,
        max_concurrency: int,
        timeout: float,
    ) -> None:
        self.bucket = bucket
        self.timeout = timeout
        self._client_kwargs = dict(client_kwargs)
        self._config = config
        self._session = session if session is not None else _new_session()
        #: Requests in flight at most, per event loop (the semaphore's size).
        self.max_concurrency = max_concurrency
        self._loops: dict[asyncio.AbstractEventLoop, _LoopClient] = {}
        self._pid = os.getpid()
        self.closed = False

    def new_client(self) -> Any:
        """A fresh client context manager (AioSession or aioboto3 Session alike)."""
        kwargs = dict(self._client_kwargs, config=self._config)
        create = getattr(self._session, "create_client", None)
        if create is None:  # an aioboto3.Session
            return self._session.client("s3", **kwargs)
        return create("s3", **kwargs)

    def forget(self, loop_client: _LoopClient) -> None:
        if self._loops.get(loop_client.loop) is loop_client:
            del self._loops[loop_client.loop]

    def _loop_client(self) -> _LoopClient:
        loop = asyncio.get_running_loop()
        found = self._loops.get(loop)
        if found is not None:
            return found
        if self.closed:
            raise CacheClosedError("the cache is closed")
        if os.getpid() != self._pid:
            # A forked child: the parent's clients share its sockets; leave them untouched.
            self._pid = os.getpid()
            self._loops = {}
        for stale in [lp for lp in self._loops if lp.is_closed()]:
            del self._loops[stale]
        created = self._loops[loop] = _LoopClient(loop, self.max_concurrency)
        return created

    @asynccontextmanager
    async def _call(self, op: str, key: str) -> AsyncIterator[Any]:
        """A client for one request: waits for a slot, all under the operation's deadline.

        Counted in flight until it ends, so that :meth:`aclose` lets it finish.
        """
        loop_client = self._loop_client()
        loop_client.in_flight += 1
        try:
            async with asyncio.timeout(self.timeout), loop_client.semaphore:
                yield loop_client.client or await loop_client.open(self)
        except S3CacheError:
            raise
        except Exception as exc:
            if self.closed and not isinstance(exc, TimeoutError):  # its client closed under it
                raise CacheClosedError(f"{op} {key!r}: the cache was closed meanwhile") from exc
            raise translate(exc, op, key, self.timeout) from exc
        finally:
            loop_client.leave()

    async def get(self, key: str) -> tuple[bytes, Mapping[str, str]] | None:
        """Body and lower-cased headers of an object, or None when there is none."""
        async with self._call("GetObject", key) as client:
            try:
                resp = await client.get_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if _code(exc) in _MISSING_CODES:
                    return None
                raise
            async with resp["Body"] as stream:
                body: bytes = await stream.read()
        return body, resp["ResponseMetadata"]["HTTPHeaders"]

    async def head(self, key: str) -> Mapping[str, str] | None:
        """Lower-cased headers of an object, or None when there is none."""
        async with self._call("HeadObject", key) as client:
            try:
                resp = await client.head_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if _code(exc) in _MISSING_CODES:
                    return None
                if _is_bodyless_403(exc):
                    await _explain_403(client.get_object(Bucket=self.bucket, Key=key, Range=_BYTE))
                raise
        headers: Mapping[str, str] = resp["ResponseMetadata"]["HTTPHeaders"]
        return headers

    async def put(
        self, key: str, payload: Payload, *, if_absent: bool = False, if_match: str | None = None
    ) -> bool:
        """Write an object; conditionally (``If-None-Match: *`` with ``if_absent``, ``If-Match``
        with an ETag in ``if_match``), returning False when the server answers 412."""
        params: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "Body": payload.body,
            "ContentType": payload.content_type,
        }
        if payload.metadata:
            params["Metadata"] = payload.metadata
        if payload.expires is not None:
            params["Expires"] = payload.expires
        if payload.cache_control is not None:
            params["CacheControl"] = payload.cache_control
        if payload.content_encoding is not None:
            params["ContentEncoding"] = payload.content_encoding
        if if_absent:
            params["IfNoneMatch"] = "*"
        if if_match is not None:
            params["IfMatch"] = if_match
        async with self._call("PutObject", key) as client:
            try:
                await client.put_object(**params)
            except ClientError as exc:
                if (if_absent or if_match) and _code(exc) in _PRECONDITION_CODES:
                    return False
                raise
        return True

    async def delete(self, key: str) -> None:
        async with self._call("DeleteObject", key) as client:
            await client.delete_object(Bucket=self.bucket, Key=key)

    async def delete_batch(self, keys: Sequence[str]) -> dict[str, S3CacheError]:
        """Delete up to :data:`DELETE_BATCH` objects in one request; returns the keys the server
        reported as not deleted, each with its error ({} when all went)."""
        if not keys:
            return {}
        if len(keys) > DELETE_BATCH:
            raise ValueError(f"DeleteObjects takes at most {DELETE_BATCH} keys, not {len(keys)}")
        request = {"Objects": [{"Key": k} for k in keys], "Quiet": True}
        async with self._call("DeleteObjects", keys[0]) as client:
            resp = await client.delete_objects(Bucket=self.bucket, Delete=request)
        failed: dict[str, S3CacheError] = {}
        for error in resp.get("Errors") or []:
            key, code = str(error.get("Key")), str(error.get("Code") or "?")
            failed[key] = _class_for_code(code, 0)(f"DeleteObjects {key!r}: {code}")
        return failed

    async def list_page(
        self, prefix: str, token: str | None
    ) -> tuple[list[ListedObject], str | None]:
        """One page (up to 1,000 objects) under ``prefix``, and the token of the next."""
        params: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        if token is not None:
            params["ContinuationToken"] = token
        async with self._call("ListObjectsV2", prefix) as client:
            resp = await client.list_objects_v2(**params)
        objects = [
            ListedObject(o["Key"], int(o.get("Size", 0)), o.get("LastModified"))
            for o in resp.get("Contents") or []
        ]
        return objects, resp.get("NextContinuationToken") if resp.get("IsTruncated") else None

    async def aclose(self) -> None:
        """Refuse new requests, let those in flight finish (each within its deadline), then
        close every client; those of other live loops are closed on their own loop, without
        waiting for them here."""
        self.closed = True
        loops, self._loops = self._loops, {}
        current = asyncio.get_running_loop()
        for loop, loop_client in loops.items():
            if loop is current:
                await loop_client.aclose(self.timeout)
            elif loop.is_running() and not loop.is_closed():
                asyncio.run_coroutine_threadsafe(loop_client.aclose(self.timeout), loop)

    # -- bucket-level operations (maintenance and the command line) ------------------------

    async def head_bucket(self) -> Mapping[str, str]:
        """Lower-cased headers of HeadBucket: proves the endpoint answers and the bucket exists."""
        async with self._call("HeadBucket", self.bucket) as client:
            try:
                resp = await client.head_bucket(Bucket=self.bucket)
            except ClientError as exc:
                if _code(exc) in _MISSING_CODES or _code(exc) in _BUCKET_CODES:
                    raise BucketNotFoundError(
                        f"HeadBucket {self.bucket!r}: no such bucket on this endpoint"
                    ) from exc
                if _is_bodyless_403(exc):
                    await _explain_403(client.list_objects_v2(Bucket=self.bucket, MaxKeys=1))
                raise
        headers: Mapping[str, str] = resp["ResponseMetadata"]["HTTPHeaders"]
        return headers

    async def get_lifecycle_rules(self) -> list[dict[str, Any]]:
        """The bucket's lifecycle rules, [] when it has none; NotSupportedError without the API."""
        op = "GetBucketLifecycleConfiguration"
        async with self._call(op, self.bucket) as client:
            try:
                resp = await client.get_bucket_lifecycle_configuration(Bucket=self.bucket)
            except ClientError as exc:
                if _code(exc) == "NoSuchLifecycleConfiguration":
                    return []
                _raise_if_unsupported(exc, op)
                raise
        return list(resp.get("Rules") or [])

    async def put_lifecycle_rules(self, rules: list[dict[str, Any]]) -> None:
        """Replace the bucket's whole lifecycle configuration with ``rules``."""
        op = "PutBucketLifecycleConfiguration"
        async with self._call(op, self.bucket) as client:
            try:
                await client.put_bucket_lifecycle_configuration(
                    Bucket=self.bucket, LifecycleConfiguration={"Rules": rules}
                )
            except ClientError as exc:
                _raise_if_unsupported(exc, op)
                raise

    async def delete_lifecycle(self) -> None:
        """Remove the bucket's lifecycle configuration (every rule)."""
        op = "DeleteBucketLifecycle"
        async with self._call(op, self.bucket) as client:
            try:
                await client.delete_bucket_lifecycle(Bucket=self.bucket)
            except ClientError as exc:
                _raise_if_unsupported(exc, op)
                raise


def _new_session() -> AioSession:
    """A session of our own, tuned by :func:`tune_session`."""
    return tune_session(AioSession())


def tune_session(session: AioSession) -> AioSession:
    """Tune ``session`` for s3cache through botocore's supported component API; returns it.

    Response timestamps are left as text: s3cache reads dates from raw headers, and parsing
    every ``Last-Modified`` into a datetime (dateutil) is one of the costliest steps of a GET.
    This changes what every client of ``session`` returns, so apply it only to a session that
    s3cache alone uses (the core never tunes a session passed in as ``session=``).
    """
    session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=_identity)
    return session


def _identity(value: str) -> str:
    return value


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


#: A one-byte range: the cheapest GET that still carries an error body.
_BYTE: Final = "bytes=0-0"


def _is_bodyless_403(exc: ClientError) -> bool:
    """A 403 answer to a HEAD: no body, so no code says whether it is the credentials."""
    return _code(exc) in ("403", "Forbidden")


async def _explain_403(probe: Awaitable[Any]) -> None:
    """Send a request of the same permission that has a body: a 403 to it raises with its code
    (``SignatureDoesNotMatch`` is a credentials error, not a permissions one). Returns when it
    succeeds, and the caller raises its own 403 as access denied."""
    resp = await probe
    body = resp.get("Body")
    if body is not None:
        async with body:
            pass


def _class_for_code(code: str, status: int) -> type[S3CacheError]:
    if code in _BUCKET_CODES:
        return BucketNotFoundError
    if code in _CREDENTIAL_CODES:
        return CredentialsError
    if code in _ACCESS_CODES or status == 403:
        return AccessDeniedError
    if status >= 500 or code in {"SlowDown", "ServiceUnavailable", "InternalError"}:
        return ServerError
    return S3CacheError


def translate(exc: BaseException, op: str, key: str, timeout: float) -> S3CacheError:
    """The :class:`S3CacheError` for a failure; its message names no credentials and no values."""
    where = f"{op} {key!r}"
    if isinstance(exc, ClientError):
        code = _code(exc) or "?"
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        return _class_for_code(code, status)(f"{where}: {code} (HTTP {status or '?'})")
    if isinstance(exc, (TimeoutError, ReadTimeoutError)):
        return StoreTimeoutError(f"{where}: no answer within the {timeout:g} s deadline")
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return CredentialsError(f"{where}: {exc}")
    if isinstance(exc, _CONNECTION_ERRORS) or _is_aiohttp_error(exc):
        return EndpointUnreachableError(f"{where}: {type(exc).__name__}: {_short(exc)}")
    return S3CacheError(f"{where}: {type(exc).__name__}: {_short(exc)}")


def _is_aiohttp_error(exc: BaseException) -> bool:
    return type(exc).__module__.startswith("aiohttp")


def _short(exc: BaseException, limit: int = 200) -> str:
    text = str(exc)
    return text if len(text) <= limit else text[: limit - 1] + "…"


#: Error codes of servers that do not implement an S3 API (MinIO, Ceph, R2, B2, moto variants).
_UNSUPPORTED_CODES: Final = frozenset(
    {
        "NotImplemented",
        "XNotImplemented",
        "MethodNotAllowed",
        "UnsupportedOperation",
        "NotSupported",
    }
)


def _raise_if_unsupported(exc: ClientError, op: str) -> None:
    """Raise :class:`NotSupportedError` when the server says it lacks the API behind ``op``."""
    code = _code(exc)
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    if code in _UNSUPPORTED_CODES or status in (405, 501):
        detail = f"{code or '?'}, HTTP {status or '?'}"
        raise NotSupportedError(
            f"{op}: this server does not implement that S3 API ({detail})"
        ) from exc
