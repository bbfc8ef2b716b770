"""The transport: clients per event loop, tuned defaults, a concurrency bound, per-operation
deadlines, retries, and translation of every failure into :mod:`s3cache.errors`.

Object gets, heads, puts and deletes take the wire path (:mod:`s3cache._route`,
:mod:`s3cache._wire`, :mod:`s3cache._sigv4`) where it is equivalent; everything else goes
through aiobotocore. It knows object keys and payloads, not cache semantics: expiry and
decoding belong to the format layer and the core above it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.metadata
import inspect
import logging
import os
import platform
from collections import Counter
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Final, Literal, TypeVar

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    FlexibleChecksumError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from s3cache import _nonce
from s3cache._bucket_options import BucketOptions, checksum_mismatch
from s3cache._clock import SKEW_CODES, SigningClock, correct_signing, describe
from s3cache._concurrency import paced
from s3cache._format import Body, Payload
from s3cache._policy import required_encryption
from s3cache._refusal import explain, key_too_long
from s3cache._route import Ineligible, Route, plan_route
from s3cache._wire import Reply, WireSession, error_code, error_response
from s3cache.errors import (
    AccessDeniedError,
    BucketNotFoundError,
    CacheClosedError,
    ChecksumMismatchError,
    CredentialsError,
    EncryptionError,
    EndpointUnreachableError,
    KeyTooLongError,
    NotSupportedError,
    S3CacheError,
    ServerError,
    StoreTimeoutError,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "DELETE_BATCH",
    "IfMatchForm",
    "ListedObject",
    "Transport",
    "Written",
    "client_config",
]

logger = logging.getLogger("s3cache")
T = TypeVar("T")

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
#: A conditional write refused: its condition failed, or a conflicting conditional write was in
#: progress (S3's 409, which :meth:`Transport.put_if` verifies like a 412).
_REFUSED_CODES: Final = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict"})
_NO_SUCH_KEY: Final = "NoSuchKey"
#: A key the server finds too long although S3 would take it (SeaweedFS: an object name over
#: 255 bytes).
_KEY_TOO_LONG_CODES: Final = frozenset({"KeyTooLongError", "KeyTooLong"})
#: The operations the transport sends, each with its parameters from the options.
_OPERATIONS: Final = (
    "GetObject",
    "HeadObject",
    "PutObject",
    "DeleteObject",
    "DeleteObjects",
    "ListObjectsV2",
    "HeadBucket",
    "GetBucketLifecycleConfiguration",
    "PutBucketLifecycleConfiguration",
    "DeleteBucketLifecycle",
    "GetBucketPolicy",
)
_NO_OPTIONS: Final = BucketOptions()
#: How a server takes the ETag in ``If-Match`` on PutObject: ``"quoted"`` as S3 returns it (AWS,
#: MinIO, SeaweedFS, moto), ``"unquoted"`` (Ceph RGW 16.2 answers 412 to the quoted form even
#: when it matches), or ``"unsupported"`` (refused in both forms, or ignored).
IfMatchForm = Literal["quoted", "unquoted", "unsupported"]
#: An ETag no object has, to see whether a server really compares If-Match.
_NO_SUCH_ETAG: Final = '"00000000000000000000000000000000"'
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


@dataclass(frozen=True, slots=True)
class Written:
    """What a conditional PutObject came to (see :meth:`Transport.put_if`).

    ``stored``: the write is on the server. ``found``: the object's lower-cased HEAD headers
    after a refusal (None when there is none, or nothing was refused). Both set: the write was
    refused by its own earlier attempt (a lost response), and ``found`` describes it.
    """

    stored: bool
    found: Mapping[str, str] | None = None


async def _open_http_session(client: Any) -> None:
    """Open aiobotocore's own aiohttp session now, as its first request would have (it reads
    the CA bundle in a worker thread): with the object requests on the wire path, that first
    request may come much later, and no operation past the opening should touch a thread."""
    opener = getattr(client._endpoint.http_session, "_get_session", None)
    if opener is not None:
        with contextlib.suppress(Exception):  # best effort: the first request opens it anyway
            await opener(None)


class _HandOff(Exception):
    """This request cannot go on the wire path: send it through aiobotocore instead."""


#: What botocore's retry quota reads from a successful response.
_SUCCESS: Final = SimpleNamespace(status_code=200)


class _LoopClient:
    """The clients, semaphore, requests in flight and lifetime of one event loop.

    The aiobotocore client, and the wire path's route and aiohttp session when the client is
    eligible (see :mod:`s3cache._route`), are entered inside an async generator that the
    loop's ``shutdown_asyncgens`` (run by ``asyncio.run`` and every ``asyncio.Runner``)
    finalises, so a loop that ends closes them on that loop, and a closed loop is never touched.
    """

    __slots__ = (
        "_idle",
        "_lifetime",
        "_opening",
        "client",
        "in_flight",
        "loop",
        "route",
        "semaphore",
        "wire",
        "wire_refused",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, max_concurrency: int) -> None:
        self.loop = loop
        self.semaphore = asyncio.Semaphore(max_concurrency)
        self.client: Any = None
        self.route: Route | None = None
        self.wire: WireSession | None = None
        self.wire_refused: str | None = None  # why requests stay on aiobotocore
        self.in_flight = 0  # requests admitted: waiting for a slot, or on the wire
        self._idle: asyncio.Future[None] | None = None  # set when in_flight drops to 0
        self._opening = asyncio.Lock()
        self._lifetime: AsyncGenerator[None, None] | None = None

    async def open(self, transport: Transport) -> None:
        async with self._opening:
            if self.client is None:
                lifetime = self._live(transport)
                await anext(lifetime)
                self._lifetime = lifetime

    async def _live(self, transport: Transport) -> AsyncGenerator[None, None]:
        try:
            async with transport.new_client() as client:
                correct_signing(client, transport.clock)
                wire = await self._plan(transport, client) if transport.fast_path else None
                self.client, self.wire = client, wire
                try:
                    yield
                finally:
                    self.wire = self.route = None
                    if wire is not None:
                        await wire.close()
        finally:
            self.client = None
            transport.forget(self)

    async def _plan(self, transport: Transport, client: Any) -> WireSession | None:
        """The wire path's route and session for ``client``, or None (and the reason why)."""
        try:
            route = await plan_route(
                client, transport.bucket, transport.max_concurrency, transport.clock.now
            )
        except Ineligible as exc:
            self.wire_refused = str(exc)
            logger.debug("s3cache: requests go through aiobotocore: %s", exc)
            return None
        wire = WireSession(
            limit=transport.max_concurrency,
            verify=route.verify,
            connect_timeout=route.connect_timeout,
            read_timeout=route.read_timeout,
            connector_args=route.connector_args,
        )
        await wire.start()
        try:
            await _open_http_session(client)
        except BaseException:  # the deadline or a cancellation cut the opening short
            await wire.close()
            raise
        self.route = route
        return wire

    async def replan(self, transport: Transport) -> Route:
        """Resolve the route again (after a region redirect botocore has cached)."""
        try:
            self.route = await plan_route(
                self.client, transport.bucket, transport.max_concurrency, transport.clock.now
            )
        except Ineligible as exc:
            self.route = None
            self.wire_refused = str(exc)
            raise _HandOff from exc
        return self.route

    def leave(self) -> None:
        """One request fewer in flight."""
        self.in_flight -= 1
        if not self.in_flight and self._idle is not None and not self._idle.done():
            self._idle.set_result(None)

    async def aclose(self, drain: float) -> None:
        """Wait up to ``drain`` seconds for the requests in flight, then close the clients."""
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


Call = Callable[[_LoopClient], Awaitable[T]]


class Transport:
    """S3 operations on one bucket, each bounded by a semaphore slot and a deadline.

    GetObject, HeadObject, PutObject and DeleteObject take the wire path (aiohttp and the
    signer in :mod:`s3cache._sigv4`) when ``fast_path`` is on and the client is eligible;
    every other request, and every request of an ineligible client, goes through aiobotocore.
    Both paths share the semaphore, the deadline, the retry policy and the error translation.
    """

    def __init__(
        self,
        *,
        bucket: str,
        client_kwargs: Mapping[str, Any],
        config: AioConfig,
        session: Any,
        max_concurrency: int,
        timeout: float,
        fast_path: bool = True,
        options: BucketOptions | None = None,
    ) -> None:
        self.bucket = bucket
        self.timeout = timeout
        self.fast_path = fast_path
        #: Requests in flight at most, per event loop (the semaphore's size).
        self.max_concurrency = max_concurrency
        self._client_kwargs = dict(client_kwargs)
        self._config = config
        self._session = session if session is not None else _new_session()
        self._loops: dict[asyncio.AbstractEventLoop, _LoopClient] = {}
        self._pid = os.getpid()
        self.closed = False
        #: Encryption, owner, checksum, storage class and payer options, validated.
        self.options = options = options if options is not None else BucketOptions()
        self._params = {op: options.params(op) for op in _OPERATIONS}
        self._checksum = options.checksummer()  # body -> checksum parameters of a PUT
        self._verify = options.checksum is not None  # GETs ask for the checksum: check it
        #: The ``If-Match`` form this server honours, once :meth:`learn_if_match` has run.
        self.if_match_form: IfMatchForm | None = None
        #: The clock requests are signed with, shared by every loop's client (one endpoint).
        self.clock = SigningClock()
        #: Writes whose response was lost and that proved done, by S3 request: ``PutObject``
        #: (a conditional write refused by its own earlier attempt), ``DeleteObject`` (404).
        self.recovered: Counter[str] = Counter()

    def if_match_value(self, etag: str) -> str:
        """``etag`` (as a response carries it) in the form this server honours in ``If-Match``.

        The one place that decides the quoting: every request that sends ``If-Match`` uses it.
        Quoted, the S3 form, unless :meth:`learn_if_match` found the server wants it bare.
        """
        bare = etag.strip().strip('"')
        return bare if self.if_match_form == "unquoted" else f'"{bare}"'

    async def learn_if_match(
        self, key: str, payload: Payload, *, botocore: bool = False
    ) -> IfMatchForm:
        """Find, on the existing probe object ``key``, how this server honours ``If-Match`` on
        PutObject: the matching ETag quoted, else unquoted, must be accepted, and a wrong ETag
        in that form refused. Rewrites ``key`` with ``payload``; remembers and returns the form.
        """
        headers = await self.head(key, botocore=botocore)
        etag = headers.get("etag") if headers is not None else None
        form: IfMatchForm = "unsupported"
        if etag:
            for candidate in ("quoted", "unquoted"):
                self.if_match_form = candidate
                if (await self.put_if(key, payload, if_match=etag, botocore=botocore)).stored:
                    wrong = _NO_SUCH_ETAG
                    written = await self.put_if(key, payload, if_match=wrong, botocore=botocore)
                    ignored = written.stored
                    form = "unsupported" if ignored else candidate
                    break
        self.if_match_form = form
        return form

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

    async def _call(self, op: str, key: str, wire: Call[T] | None, boto: Call[T]) -> T:
        """Run one operation: wait for a slot, then send it on the wire path (``wire``) or
        through aiobotocore (``boto``), all under the operation's deadline; every failure
        comes out as an :class:`S3CacheError`. Counted in flight until it ends, so that
        :meth:`aclose` lets it finish."""
        loop_client = self._loop_client()
        loop_client.in_flight += 1
        try:
            async with asyncio.timeout(self.timeout), loop_client.semaphore:
                if loop_client.client is None:
                    await loop_client.open(self)
                signed_offset = self.clock.offset  # another request may correct it meanwhile
                try:
                    return await self._send(loop_client, wire, boto)
                except ClientError as exc:
                    if not self._learn_clock(exc, signed_offset):
                        raise
                try:  # once more, signed on the server's clock, within the same deadline
                    return await self._send(loop_client, wire, boto)
                except ClientError as exc:
                    _raise_if_clock_refused(exc, op, key, self.clock)
                    raise
        except S3CacheError:
            raise
        except Exception as exc:
            warning = _warning_in(exc)
            if warning is not None:  # a Warning raised as an error: s3cache's bug, not the store's
                raise warning from None
            if self.closed and not isinstance(exc, TimeoutError):  # its client closed under it
                raise CacheClosedError(f"{op} {key!r}: the cache was closed meanwhile") from exc
            raise translate(exc, op, key, self.timeout, self.options) from exc
        finally:
            loop_client.leave()

    async def _send(self, loop_client: _LoopClient, wire: Call[T] | None, boto: Call[T]) -> T:
        """One attempt of an operation: on the wire path where it applies, else aiobotocore."""
        route = loop_client.route
        if wire is not None and route is not None and not route.bypassed():
            try:
                return await wire(loop_client)
            except _HandOff:
                pass
        return await boto(loop_client)

    def _learn_clock(self, exc: ClientError, signed_offset: float) -> bool:
        """Whether ``exc`` refused the request's time; if so, keep the server's clock offset
        for every later request to this endpoint (logged when it changes)."""
        offset = self.clock.refusal_offset(*_reply_of(exc), signed_offset)
        if offset is None:
            return False
        if abs(offset - self.clock.offset) >= 1.0:
            logger.warning(
                "s3cache: %s of bucket %r, which refused a request for its time: signing with "
                "the server's clock from now on; run NTP (or another time sync) on this machine",
                describe(offset),
                self.bucket,
            )
        self.clock.offset = offset
        return True

    async def _exchange(
        self,
        loop_client: _LoopClient,
        op: str,
        key: str,
        params: Mapping[str, Any],
        body: bytes | None = None,
    ) -> Reply:
        """Send one request on the wire path, re-signed for each attempt, retried (and region
        redirects followed) by the client's own retry handlers; returns the final reply.

        Raises :class:`_HandOff` when ``params`` cannot be sent this way.
        """
        route = loop_client.route
        wire = loop_client.wire
        if route is None or wire is None:
            raise _HandOff
        operation = route.operations[op]
        headers = route.headers(operation, params)
        if headers is None:
            raise _HandOff
        path, url = route.url(key)
        context: dict[str, Any] | None = None
        attempt = 1
        while True:
            signed = await route.sign(operation, path, headers, body)
            try:
                reply = await wire.send(operation.method, url, signed, body)
            except (BotoConnectionError, HTTPClientError) as exc:
                context = context or route.request_context(key)
                delay = await route.needs_retry(operation, attempt, str(url), None, exc, context)
                if delay is None:
                    raise
            else:
                status = reply.status
                if status < 300:
                    if route.release_quota is not None:
                        route.release_quota(context=context or {}, http_response=_SUCCESS)
                    return reply
                if status == 404 or status == 412:  # neither retried nor redirected by botocore
                    return reply
                context = context or route.request_context(key)
                response = (status, reply.headers, error_response(reply))
                delay = await route.needs_retry(
                    operation, attempt, str(url), response, None, context
                )
                if delay is None:
                    return reply
            if context["s3_redirect"]["redirected"]:  # botocore learnt the bucket's region
                route = await loop_client.replan(self)
                operation = route.operations[op]
                path, url = route.url(key)
                context["s3_redirect"]["redirected"] = False
                context["signing"] = {"region": route.signer.region, "signing_name": "s3"}
            if delay:
                await asyncio.sleep(delay)
            attempt += 1

    # -- the object operations: one place for each request's parameters --------------------

    def object_params(self, op: str) -> dict[str, Any]:
        """Parameters every request of ``op`` carries beyond bucket and key (encryption, bucket
        owner, requester pays, checksum mode: see :mod:`s3cache._options`), computed once: the
        one place both paths take them from, so options that add headers apply to both."""
        return dict(self._params[op])

    def put_params(self, payload: Payload, if_absent: bool, if_match: str | None) -> dict[str, Any]:
        """The PutObject parameters of an entry, besides Bucket, Key and Body."""
        params = self.object_params("PutObject")
        params["ContentType"] = payload.content_type
        params.update((name, v) for field, name in _ENTRY_FIELDS if (v := getattr(payload, field)))
        if if_absent:
            params["IfNoneMatch"] = "*"
        if if_match is not None:
            params["IfMatch"] = self.if_match_value(if_match)
        if self._checksum is not None:
            params.update(self._checksum(payload.body))
        return params

    def _checked(self, key: str, body: Body, headers: Mapping[str, str]) -> None:
        """Raise :class:`ChecksumMismatchError` when ``body`` does not match the checksum the
        server returned with it (GETs ask for one with ``checksum=``)."""
        wrong = checksum_mismatch(body, headers)
        if wrong is not None:
            raise ChecksumMismatchError(
                f"GetObject {key!r}: checksum mismatch: {wrong}; the body was damaged in "
                "transit or at rest"
            )

    async def get(
        self, key: str, *, botocore: bool = False
    ) -> tuple[Body, Mapping[str, str]] | None:
        """Body and lower-cased headers of an object, or None when there is none.

        ``botocore=True`` sends it through aiobotocore whatever the route (``check()``).
        """
        params = self.object_params("GetObject")

        async def wire(lc: _LoopClient) -> tuple[Body, Mapping[str, str]] | None:
            reply = await self._exchange(lc, "GetObject", key, params)
            if reply.status < 300:
                if self._verify:
                    self._checked(key, reply.body, reply.headers)
                return reply.body, reply.headers
            if reply.status == 404 and error_code(reply) in _MISSING_CODES:
                return None
            raise ClientError(error_response(reply), "GetObject")

        async def boto(lc: _LoopClient) -> tuple[Body, Mapping[str, str]] | None:
            try:
                resp = await lc.client.get_object(Bucket=self.bucket, Key=key, **params)
            except ClientError as exc:
                if _code(exc) in _MISSING_CODES:
                    return None
                raise
            async with resp["Body"] as stream:
                body: bytes = await stream.read()
            headers: Mapping[str, str] = resp["ResponseMetadata"]["HTTPHeaders"]
            if self._verify:
                self._checked(key, body, headers)
            return body, headers

        return await self._call("GetObject", key, None if botocore else wire, boto)

    async def head(self, key: str, *, botocore: bool = False) -> Mapping[str, str] | None:
        """Lower-cased headers of an object, or None when there is none.

        ``botocore=True`` sends it through aiobotocore whatever the route (``check()``).
        """
        params = self.object_params("HeadObject")

        async def wire(lc: _LoopClient) -> Mapping[str, str] | None:
            reply = await self._exchange(lc, "HeadObject", key, params)
            if reply.status < 300:
                return reply.headers
            if reply.status == 404:
                return None
            if reply.status == 403:  # no body, so no code: ask a request that has one
                probe = await self._exchange(lc, "GetObject", key, {**params, "Range": _BYTE})
                if probe.status == 404 and error_code(probe) in _MISSING_CODES:
                    return None  # absent (the 403 was a refusal since corrected, e.g. the clock)
                if probe.status >= 300:
                    raise ClientError(error_response(probe), "GetObject")
            raise ClientError(error_response(reply), "HeadObject")

        async def boto(lc: _LoopClient) -> Mapping[str, str] | None:
            try:
                resp = await lc.client.head_object(Bucket=self.bucket, Key=key, **params)
            except ClientError as exc:
                if _code(exc) in _MISSING_CODES:
                    return None
                if _is_bodyless_403(exc):
                    probe = lc.client.get_object(Bucket=self.bucket, Key=key, Range=_BYTE, **params)
                    try:
                        await _explain_403(probe)
                    except ClientError as missing:  # absent: as on the wire path
                        if _code(missing) in _MISSING_CODES:
                            return None
                        raise
                raise
            headers: Mapping[str, str] = resp["ResponseMetadata"]["HTTPHeaders"]
            return headers

        return await self._call("HeadObject", key, None if botocore else wire, boto)

    async def put(self, key: str, payload: Payload, *, botocore: bool = False) -> None:
        """Write an object, unconditionally (conditional writes: :meth:`put_if`)."""
        await self._put(key, payload, False, None, botocore)

    async def put_if(
        self,
        key: str,
        payload: Payload,
        *,
        if_absent: bool = False,
        if_match: str | None = None,
        botocore: bool = False,
    ) -> Written:
        """A conditional write that learns its own outcome, even when its response is lost.

        ``if_absent`` sends ``If-None-Match: *``; ``if_match`` an ETag, quoted as
        :meth:`if_match_value` says. The write carries a fresh nonce (:mod:`s3cache._nonce`).
        A refusal (412, 409 ConditionalRequestConflict, or 404 to ``If-Match``) is checked with
        a HEAD: when the object there carries our nonce, an earlier attempt of this very write
        landed and its response was lost (botocore retries inside one call, so that attempt is
        not always seen): the write succeeded, and :attr:`recovered` counts it. Otherwise the
        refusal stands, with what the HEAD found.
        """
        if not if_absent and if_match is None:
            raise ValueError("put_if needs if_absent=True or an if_match ETag")
        sent, nonce = _nonce.stamped(payload)
        if await self._put(key, sent, if_absent, if_match, botocore):
            return Written(True)
        found = await self.head(key, botocore=botocore)
        if not _nonce.is_own(found, nonce):
            return Written(False, found)
        self.recovered["PutObject"] += 1
        logger.info(
            "s3cache: PutObject %r was refused by its own earlier attempt, whose response was "
            "lost: it is stored",
            key,
        )
        return Written(True, found)

    async def _put(
        self, key: str, payload: Payload, if_absent: bool, if_match: str | None, botocore: bool
    ) -> bool:
        """One PutObject; False when a conditional one is refused (see :meth:`put_if`)."""
        params = self.put_params(payload, if_absent, if_match)
        conditional = if_absent or if_match is not None
        refused = _REFUSED_CODES | (_MISSING_CODES if if_match is not None else frozenset())

        async def wire(lc: _LoopClient) -> bool:
            reply = await self._exchange(lc, "PutObject", key, params, payload.body)
            if reply.status < 300:
                return True
            if conditional and error_code(reply) in refused:
                return False
            raise ClientError(error_response(reply), "PutObject")

        async def boto(lc: _LoopClient) -> bool:
            try:  # botocore hands the body to aiohttp as a BytesIO (its own PutObject handler)
                await lc.client.put_object(Bucket=self.bucket, Key=key, Body=payload.body, **params)
            except ClientError as exc:
                if conditional and _code(exc) in refused:
                    return False
                raise
            return True

        return await self._call("PutObject", key, None if botocore else wire, boto)

    async def delete(self, key: str, *, botocore: bool = False) -> None:
        """Delete one object. A 404 NoSuchKey counts as deleted: S3 answers 204 for a missing
        key, but servers that answer 404 make a retry after a lost response meet one."""
        params = self.object_params("DeleteObject")

        async def wire(lc: _LoopClient) -> None:
            reply = await self._exchange(lc, "DeleteObject", key, params)
            if reply.status == 404 and error_code(reply) == _NO_SUCH_KEY:
                self._gone(key)
            elif reply.status >= 300:
                raise ClientError(error_response(reply), "DeleteObject")

        async def boto(lc: _LoopClient) -> None:
            try:
                await lc.client.delete_object(Bucket=self.bucket, Key=key, **params)
            except ClientError as exc:
                if _code(exc) != _NO_SUCH_KEY:
                    raise
                self._gone(key)

        await self._call("DeleteObject", key, None if botocore else wire, boto)

    def _gone(self, key: str) -> None:
        """A DeleteObject met 404 NoSuchKey: the object is gone, as the caller wanted."""
        self.recovered["DeleteObject"] += 1
        logger.debug("s3cache: DeleteObject %r: already gone (404 NoSuchKey)", key)

    async def delete_batch(self, keys: Sequence[str]) -> dict[str, S3CacheError]:
        """Delete up to :data:`DELETE_BATCH` objects in one request; returns the keys the server
        reported as not deleted, each with its error ({} when all went)."""
        if not keys:
            return {}
        if len(keys) > DELETE_BATCH:
            raise ValueError(f"DeleteObjects takes at most {DELETE_BATCH} keys, not {len(keys)}")
        request = {"Objects": [{"Key": k} for k in keys], "Quiet": True}

        async def boto(lc: _LoopClient) -> Any:
            return await lc.client.delete_objects(
                Bucket=self.bucket, Delete=request, **self._params["DeleteObjects"]
            )

        resp = await self._call("DeleteObjects", keys[0], None, boto)
        failed: dict[str, S3CacheError] = {}
        for error in resp.get("Errors") or []:
            key, code = str(error.get("Key")), str(error.get("Code") or "?")
            failed[key] = _class_for_code(code, 0)(f"DeleteObjects {key!r}: {code}")
        return failed

    async def delete_many(self, keys: Sequence[str]) -> dict[str, S3CacheError]:
        """Delete objects; returns those that could not be deleted, with why ({} when all went).

        The one home of batch deletes. One key is a DeleteObject; more go in DeleteObjects
        batches of up to 1,000, paced through the concurrency bound. A batch the server refuses
        as a whole (a 4xx about the request, or a 5xx: what one key its XML body cannot carry
        causes) is retried key by key, so such a key fails alone. A batch that timed out or
        could not connect is reported for all its keys: one by one would fare no better.
        """
        width = self.max_concurrency
        if len(keys) == 1:
            return _failures(keys, await paced(self.delete, keys, width))
        batches = [keys[i : i + DELETE_BATCH] for i in range(0, len(keys), DELETE_BATCH)]
        failed: dict[str, S3CacheError] = {}
        one_by_one: list[str] = []
        for batch, outcome in zip(
            batches, await paced(self.delete_batch, batches, width), strict=True
        ):
            if not isinstance(outcome, S3CacheError):
                failed.update(outcome)  # keys the server listed under Errors
            elif outcome.kind in _REFUSED_BATCH:
                one_by_one += batch
            else:
                failed.update(dict.fromkeys(batch, outcome))
        failed.update(_failures(one_by_one, await paced(self.delete, one_by_one, width)))
        return failed

    async def list_page(
        self, prefix: str, token: str | None
    ) -> tuple[list[ListedObject], str | None]:
        """One page (up to 1,000 objects) under ``prefix``, and the token of the next."""
        params: dict[str, Any] = {
            "Bucket": self.bucket,
            "Prefix": prefix,
            **self._params["ListObjectsV2"],
        }
        if token is not None:
            params["ContinuationToken"] = token

        async def boto(lc: _LoopClient) -> Any:
            return await lc.client.list_objects_v2(**params)

        resp = await self._call("ListObjectsV2", prefix, None, boto)
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

        async def boto(lc: _LoopClient) -> Mapping[str, str]:
            try:
                resp = await lc.client.head_bucket(Bucket=self.bucket, **self._params["HeadBucket"])
            except ClientError as exc:
                if _code(exc) in _MISSING_CODES or _code(exc) in _BUCKET_CODES:
                    raise BucketNotFoundError(
                        f"HeadBucket {self.bucket!r}: NoSuchBucket (HTTP 404): no such bucket "
                        "on this endpoint"
                    ) from exc
                if _is_bodyless_403(exc):
                    listing = {**self._params["ListObjectsV2"], "MaxKeys": 1}
                    await _explain_403(lc.client.list_objects_v2(Bucket=self.bucket, **listing))
                raise
            headers: Mapping[str, str] = resp["ResponseMetadata"]["HTTPHeaders"]
            return headers

        return await self._call("HeadBucket", self.bucket, None, boto)

    async def get_lifecycle_rules(self) -> list[dict[str, Any]]:
        """The bucket's lifecycle rules, [] when it has none; NotSupportedError without the API."""
        op = "GetBucketLifecycleConfiguration"

        async def boto(lc: _LoopClient) -> list[dict[str, Any]]:
            try:
                resp = await lc.client.get_bucket_lifecycle_configuration(
                    Bucket=self.bucket, **self._params[op]
                )
            except ClientError as exc:
                if _code(exc) == "NoSuchLifecycleConfiguration":
                    return []
                _raise_if_unsupported(exc, op)
                raise
            return list(resp.get("Rules") or [])

        return await self._call(op, self.bucket, None, boto)

    async def put_lifecycle_rules(self, rules: list[dict[str, Any]]) -> None:
        """Replace the bucket's whole lifecycle configuration with ``rules``."""
        op = "PutBucketLifecycleConfiguration"

        async def boto(lc: _LoopClient) -> None:
            try:
                await lc.client.put_bucket_lifecycle_configuration(
                    Bucket=self.bucket,
                    LifecycleConfiguration={"Rules": rules},
                    **self._params[op],
                )
            except ClientError as exc:
                _raise_if_unsupported(exc, op)
                raise

        await self._call(op, self.bucket, None, boto)

    async def delete_lifecycle(self) -> None:
        """Remove the bucket's lifecycle configuration (every rule)."""
        op = "DeleteBucketLifecycle"

        async def boto(lc: _LoopClient) -> None:
            try:
                await lc.client.delete_bucket_lifecycle(Bucket=self.bucket, **self._params[op])
            except ClientError as exc:
                _raise_if_unsupported(exc, op)
                raise

        await self._call(op, self.bucket, None, boto)

    async def get_bucket_policy(self) -> str | None:
        """The bucket policy's JSON text, None when the bucket has none (raises when denied)."""
        op = "GetBucketPolicy"

        async def boto(lc: _LoopClient) -> str | None:
            try:
                resp = await lc.client.get_bucket_policy(Bucket=self.bucket, **self._params[op])
            except ClientError as exc:
                if _code(exc) == "NoSuchBucketPolicy":
                    return None
                _raise_if_unsupported(exc, op)
                raise
            return str(resp.get("Policy") or "") or None

        return await self._call(op, self.bucket, None, boto)

    async def put_probe(self, key: str, payload: Payload, *, botocore: bool = False) -> None:
        """PUT a probe (for ``check()`` and the doctor); when it is refused, name the encryption
        the bucket policy requires, if the policy says (:class:`EncryptionError`)."""
        try:
            await self.put(key, payload, botocore=botocore)
        except AccessDeniedError as exc:
            required = await self.required_encryption()
            if required is None:
                raise
            raise EncryptionError(f"{exc}; {required}") from exc

    async def required_encryption(self) -> str | None:
        """What encryption the bucket policy requires of PutObject, in words with the options to
        set; None when it requires none, or cannot be read (s3:GetBucketPolicy)."""
        try:
            policy = await self.get_bucket_policy()
        except S3CacheError:
            return None
        return required_encryption(policy) if policy else None


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


#: An entry's optional PutObject parameters, sent when set: (payload attribute, parameter).
_ENTRY_FIELDS: Final = (
    ("metadata", "Metadata"),
    ("expires", "Expires"),
    ("cache_control", "CacheControl"),
    ("content_encoding", "ContentEncoding"),
)
#: Error kinds of a DeleteObjects refused as a whole that single deletes may get past: 400s about
#: the request (``other``: Ceph's answer to an XML body it cannot parse) and 5xx (moto's).
_REFUSED_BATCH: Final = frozenset({"other", "server"})


def _failures(keys: Sequence[str], outcomes: Sequence[object]) -> dict[str, S3CacheError]:
    return {k: r for k, r in zip(keys, outcomes, strict=True) if isinstance(r, S3CacheError)}


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
    if code in _KEY_TOO_LONG_CODES:
        return KeyTooLongError
    if code in _CREDENTIAL_CODES:
        return CredentialsError
    if code in _ACCESS_CODES or status == 403:
        return AccessDeniedError
    if status >= 500 or code in {"SlowDown", "ServiceUnavailable", "InternalError"}:
        return ServerError
    return S3CacheError


def translate(
    exc: BaseException,
    op: str,
    key: str,
    timeout: float,
    options: BucketOptions | None = None,
) -> S3CacheError:
    """The :class:`S3CacheError` for a failure; its message names no credentials and no values,
    and, for refusals the options can cause, the likely cause (:mod:`s3cache._refusal`)."""
    where = f"{op} {key!r}"
    if isinstance(exc, ClientError):
        code = _code(exc) or "?"
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        cls = _class_for_code(code, status)
        text = f"{where}: {code} (HTTP {status or '?'})"
        if cls is KeyTooLongError:
            text = f"{text}: {key_too_long(key)}"
        if cls is AccessDeniedError or cls is S3CacheError:
            message = str(exc.response.get("Error", {}).get("Message") or "")
            explained = explain(options or _NO_OPTIONS, op, code, status, message)
            if explained is not None:
                cls, hint = explained
                text = f"{text}: {hint}"
        return cls(text)
    if isinstance(exc, FlexibleChecksumError):  # botocore's own check of a GET's checksum
        return ChecksumMismatchError(
            f"{where}: checksum mismatch ({_short(exc)}); the body was damaged in transit or "
            "at rest"
        )
    if isinstance(exc, (TimeoutError, ReadTimeoutError)):
        return StoreTimeoutError(f"{where}: no answer within the {timeout:g} s deadline")
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return CredentialsError(f"{where}: {exc}")
    if isinstance(exc, _CONNECTION_ERRORS) or _is_aiohttp_error(exc):
        return EndpointUnreachableError(f"{where}: {type(exc).__name__}: {_short(exc)}")
    return S3CacheError(f"{where}: {type(exc).__name__}: {_short(exc)}")


def _reply_of(exc: ClientError) -> tuple[str, int, Mapping[str, Any], Mapping[str, str]]:
    """Code, status, error fields and lower-cased headers of an S3 error reply."""
    meta = exc.response.get("ResponseMetadata", {})
    status = int(meta.get("HTTPStatusCode") or 0)
    return _code(exc), status, exc.response.get("Error", {}), meta.get("HTTPHeaders") or {}


def _raise_if_clock_refused(exc: ClientError, op: str, key: str, clock: SigningClock) -> None:
    """After a retry on the corrected clock: a request still refused for its time raises a
    :class:`CredentialsError` naming the offset measured and the fix."""
    code, status, error, headers = _reply_of(exc)
    if code not in SKEW_CODES:
        return
    offset = clock.refusal_offset(code, status, error, headers)
    measured = describe(offset) if offset is not None else "the client clock is off"
    raise CredentialsError(
        f"{op} {key!r}: {code} (HTTP {status or '?'}): {measured}, and requests signed with "
        "the server's time were refused too: run NTP (or another time sync) on this machine"
    ) from exc


def _warning_in(exc: BaseException) -> Warning | None:
    """The Warning behind ``exc`` (``-W error`` turns warnings into exceptions): raised as is,
    or wrapped by aiobotocore in an HTTPClientError (which botocore even retries)."""
    if isinstance(exc, Warning):
        return exc
    inner = getattr(exc, "kwargs", {}).get("error") if isinstance(exc, HTTPClientError) else None
    return inner if isinstance(inner, Warning) else None


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
