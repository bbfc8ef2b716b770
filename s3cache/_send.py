"""Sending one request: a slot and a deadline, the wire path or aiobotocore, retries and region
redirects, clock-skew correction, and every failure typed.

With :mod:`s3cache._route`, the only code that drives botocore's internals (its retry and
redirect handlers, through their request context). A request goes in as a :class:`Request`;
what comes out is a :class:`~s3cache._reply.Reply` and its outcome (:mod:`s3cache._rules`),
or an :class:`~s3cache.errors.S3CacheError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Final

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from s3cache._breaker import CircuitBreaker
from s3cache._bucket_options import BucketOptions
from s3cache._client import Clients, HandOff, LoopClient
from s3cache._clock import SKEW_CODES, describe
from s3cache._paced import PaceRefused, Pacing, current_send, end_send, start_send
from s3cache._reply import ErrorReply, Reply
from s3cache._route import OPERATIONS
from s3cache._rules import FAILURES, RULES, Outcome, Rules, failure, translate, warning_in
from s3cache._settings import Settings
from s3cache.errors import (
    BucketNotFoundError,
    CacheClosedError,
    CredentialsError,
    S3CacheError,
    StoreTimeoutError,
)

__all__ = ["Request", "Sender", "unguarded"]

logger = logging.getLogger("s3cache")

#: True within :func:`unguarded`: requests bypass the circuit breaker.
_UNGUARDED: Final[ContextVar[bool]] = ContextVar("s3cache_unguarded", default=False)
#: What botocore's retry quota reads from a successful response.
_SUCCESS: Final = SimpleNamespace(status_code=200)
_monotonic = time.monotonic
#: The aiobotocore client method of each operation the transport sends.
_METHODS: Final = {
    "GetObject": "get_object",
    "HeadObject": "head_object",
    "PutObject": "put_object",
    "DeleteObject": "delete_object",
    "DeleteObjects": "delete_objects",
    "ListObjectsV2": "list_objects_v2",
    "HeadBucket": "head_bucket",
    "GetBucketLifecycleConfiguration": "get_bucket_lifecycle_configuration",
    "PutBucketLifecycleConfiguration": "put_bucket_lifecycle_configuration",
    "DeleteBucketLifecycle": "delete_bucket_lifecycle",
    "GetBucketPolicy": "get_bucket_policy",
    "CreateBucket": "create_bucket",
}


@contextlib.contextmanager
def unguarded() -> Iterator[None]:
    """Requests sent within bypass the circuit breaker, neither refused nor counted:
    ``check()`` (which must say what the store does now) and the inner requests of an
    operation the breaker already admitted."""
    token = _UNGUARDED.set(True)
    try:
        yield
    finally:
        _UNGUARDED.reset(token)


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs a GET's hot path
class Request:
    """One operation to send: ``op`` (S3's name) on ``key`` (an object key; for bucket
    operations the bucket or prefix, named in messages), with ``params`` besides Bucket, Key
    and Body, read by ``rules``. ``probe``: what to send when the reply is a bodyless 403
    (``explain``), to learn its cause."""

    op: str
    key: str
    params: Mapping[str, Any]
    rules: Rules
    body: bytes | None = None
    has_key: bool = True
    probe: Request | None = None


class Sender(Clients):
    """Sends requests on the clients of :class:`~s3cache._client.Clients`: each bounded by a
    semaphore slot and the operation's deadline, on the wire path where it applies (object
    requests of an eligible client), else through aiobotocore; both share the retry policy,
    the clock-skew correction and the error translation."""

    def __init__(
        self, settings: Settings, watch: Callable[[CircuitBreaker], None] | None = None
    ) -> None:
        """The sender of a cache with these (validated) ``settings``; ``watch`` is handed its
        circuit breaker, if it has one (the recorder, which counts and logs its changes)."""
        super().__init__(settings)
        #: Encryption, owner, checksum, storage class and payer options, validated.
        self.options: BucketOptions = settings.options
        #: Adaptive pacing on SlowDown (None: ``pacing=False``); see :mod:`s3cache._paced`.
        self.pacing = Pacing(settings.endpoint_url, settings.bucket) if settings.pacing else None
        #: ``create_bucket=True``: a request that finds no bucket creates it, then is resent.
        self.create_bucket = settings.create_bucket
        #: The circuit breaker of this transport's endpoint (None: ``breaker=False``); see
        #: :mod:`s3cache._breaker`. It brackets each operation, retries inside it.
        self.breaker: CircuitBreaker | None = None
        if settings.breaker is not None:
            name = settings.shown_endpoint or f"S3 (bucket {settings.bucket!r})"
            self.breaker = CircuitBreaker(settings.breaker, name=name, probe_timeout=self.timeout)
            if watch is not None:
                watch(self.breaker)

    async def call(
        self, request: Request, *, botocore: bool = False, create: bool = True
    ) -> tuple[Outcome, Reply]:
        """:meth:`send` ``request`` through the circuit breaker: refused at once with
        :class:`~s3cache.errors.CircuitOpenError` while it is open; its outcome (any answer
        of the server is a success, a timeout, connection failure or 5xx a failure) recorded.
        Outside :func:`unguarded` only."""
        breaker = self.breaker
        if breaker is None or _UNGUARDED.get():
            return await self.send(request, botocore, create)
        ticket = breaker.allow()
        if ticket is None:
            raise breaker.rejection(request.op, request.key)
        try:
            result = await self.send(request, botocore, create)
        except S3CacheError as exc:
            breaker.record(ticket, exc.kind)
            raise
        except BaseException:
            breaker.abandon(ticket)
            raise
        breaker.record(ticket)
        return result

    async def send(
        self, request: Request, botocore: bool = False, create: bool = True
    ) -> tuple[Outcome, Reply]:
        """:meth:`_call`, its end told to the request log (its outcome, or its error's kind)."""
        started = _monotonic()
        try:
            outcome, reply = await self._call(request, botocore, create)
        except S3CacheError as exc:
            self.log.sent(request.op, exc.kind, _monotonic() - started)
            raise
        self.log.sent(request.op, outcome, _monotonic() - started)
        return outcome, reply

    async def _call(self, request: Request, botocore: bool, create: bool) -> tuple[Outcome, Reply]:
        """Send ``request`` (``botocore=True``: through aiobotocore whatever the route): wait
        for a slot, then send it, all under the operation's deadline. Returns the reply and
        what it means; a failure raises its :class:`S3CacheError` (the reply chained as its
        cause). Counted in flight until it ends, so that :meth:`aclose` lets it finish. With
        ``create_bucket=True`` (and ``create``), a missing bucket is created and ``request``
        sent once more."""
        loop_client = self.loop_client()
        loop_client.in_flight += 1
        paced = None
        try:
            async with asyncio.timeout(self.timeout) as scope, loop_client.semaphore:
                if loop_client.client is None:
                    await loop_client.open(self)
                if self.pacing is not None:  # pacing hook: each attempt waits its turn
                    paced = start_send(self.pacing.start(scope.when() or 0.0))
                signed_offset = self.clock.offset  # another request may correct it meanwhile
                reply = await self._attempt(loop_client, request, botocore)
                if reply.status < 300:  # the common case, without a look at the rules
                    return "ok", reply
                return await self._judged(loop_client, request, botocore, reply, signed_offset)
        except BucketNotFoundError:
            if not (create and self.create_bucket) or request.op == "CreateBucket":
                raise
        except S3CacheError:
            raise
        except PaceRefused:
            raise StoreTimeoutError(
                f"{request.op} {request.key!r}: not sent: requests to bucket {self.bucket!r} "
                "are paced after SlowDown replies, and the wait for a turn would pass the "
                f"{self.timeout:g} s deadline"
            ) from None
        except Exception as exc:
            warning = warning_in(exc)
            if warning is not None:  # a Warning raised as an error: s3cache's bug, not the store's
                raise warning from None
            op, key = request.op, request.key
            if self.closed and not isinstance(exc, TimeoutError):  # its client closed under it
                raise CacheClosedError(f"{op} {key!r}: the cache was closed meanwhile") from exc
            raise translate(exc, op, key, self.timeout, self.options) from exc
        finally:
            if paced is not None:
                end_send(paced)
            loop_client.leave()
        return await self._in_new_bucket(request, botocore)

    async def _in_new_bucket(self, request: Request, botocore: bool) -> tuple[Outcome, Reply]:
        """``create_bucket=True``: create the bucket ``request`` found missing, send it again
        (both within the operation the breaker admitted)."""
        with unguarded():
            await self.make_bucket()
            return await self._call(request, botocore, False)

    async def make_bucket(self) -> bool:
        """CreateBucket in the client's region (or the one given; None: us-east-1's form, no
        LocationConstraint). True: created; False: it already was ours. Idempotent."""
        client = self.loop_client().client
        given = self._client_kwargs.get("region_name")
        region = client.meta.region_name if client is not None else given
        params: dict[str, Any] = {}
        if region and region != "us-east-1":
            params["CreateBucketConfiguration"] = {"LocationConstraint": region}
        request = Request("CreateBucket", self.bucket, params, RULES["CreateBucket"], has_key=False)
        outcome, _ = await self.call(request, botocore=True)
        if outcome == "ok":
            logger.info("s3cache: created bucket %r (create_bucket=True)", self.bucket)
        return outcome == "ok"

    def _raise_failure(self, request: Request, outcome: Outcome, reply: Reply) -> None:
        """Raise the typed error of a failed ``request`` (a cache closed meanwhile says so)."""
        op, key = request.op, request.key
        cause = ErrorReply(op, reply)
        if self.closed:
            raise CacheClosedError(f"{op} {key!r}: the cache was closed meanwhile") from cause
        raise failure(op, key, outcome, reply, self.options) from cause

    async def _judged(
        self,
        loop_client: LoopClient,
        request: Request,
        botocore: bool,
        reply: Reply,
        signed_offset: float,
    ) -> tuple[Outcome, Reply]:
        """What an error ``reply`` to ``request`` (signed with the clock offset
        ``signed_offset``) means: an outcome, or a failure raised. A request refused for its
        time is sent once more, signed on the server's clock."""
        outcome, reply = await self._answer(loop_client, request, botocore, reply)
        if outcome == "error" and self._learn_clock(reply, signed_offset):
            # once more, signed on the server's clock, within the same deadline
            reply = await self._attempt(loop_client, request, botocore)
            outcome, reply = await self._answer(loop_client, request, botocore, reply)
            if outcome == "error":
                self._raise_if_clock_refused(request, reply)
        if outcome in FAILURES:
            self._raise_failure(request, outcome, reply)
        return outcome, reply

    async def _answer(
        self, loop_client: LoopClient, request: Request, botocore: bool, reply: Reply
    ) -> tuple[Outcome, Reply]:
        """What ``reply`` means for ``request``; a bodyless 403 is explained by the request's
        probe (whose own refusal, if any, is the failure)."""
        outcome = request.rules.outcome(reply)
        if outcome == "explain":
            outcome = "error"
            if request.probe is not None:
                probe = await self._attempt(loop_client, request.probe, botocore)
                if request.rules.outcome(probe) == "missing":
                    return "missing", probe  # the 403 was a refusal since corrected (the clock)
                if probe.status >= 300:  # e.g. SignatureDoesNotMatch: credentials, not access
                    reply = probe
        return outcome, reply

    async def _attempt(self, loop_client: LoopClient, request: Request, botocore: bool) -> Reply:
        """Send ``request`` on the wire path where it applies, else through aiobotocore."""
        route = loop_client.route
        if not botocore and route is not None and request.op in OPERATIONS and not route.bypassed():
            try:
                return await self._exchange(loop_client, request)
            except HandOff:
                pass
        return await self._boto(loop_client, request)

    async def _boto(self, loop_client: LoopClient, request: Request) -> Reply:
        """Send ``request`` through aiobotocore: its response dict, or its ``ClientError``,
        becomes a :class:`Reply` here (a GetObject's body read whole)."""
        kwargs = {"Bucket": self.bucket, **request.params}
        if request.has_key:
            kwargs["Key"] = request.key
        if request.body is not None:  # botocore hands it to aiohttp as a BytesIO
            kwargs["Body"] = request.body
        try:
            resp = await getattr(loop_client.client, _METHODS[request.op])(**kwargs)
        except ClientError as exc:
            return Reply.of_client_error(exc)
        meta = resp["ResponseMetadata"]
        body: bytes = b""
        stream = resp.get("Body")
        if stream is not None:
            async with stream:
                body = await stream.read()
        return Reply(int(meta.get("HTTPStatusCode") or 200), meta["HTTPHeaders"], body, data=resp)

    def _learn_clock(self, reply: Reply, signed_offset: float) -> bool:
        """Whether ``reply`` (to a request signed with ``signed_offset``) refused the request's
        time; if so, keep the server's clock offset for every later request to this endpoint
        (logged when it changes)."""
        offset = self.clock.refusal_offset(
            reply.code, reply.status, reply.fields, reply.headers, signed_offset
        )
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

    def _raise_if_clock_refused(self, request: Request, reply: Reply) -> None:
        """After a retry on the corrected clock: a request still refused for its time raises a
        :class:`CredentialsError` naming the offset measured and the fix."""
        code, status = reply.code, reply.status
        if code not in SKEW_CODES:
            return
        offset = self.clock.refusal_offset(code, status, reply.fields, reply.headers)
        measured = describe(offset) if offset is not None else "the client clock is off"
        raise CredentialsError(
            f"{request.op} {request.key!r}: {code} (HTTP {status or '?'}): {measured}, and "
            "requests signed with the server's time were refused too: run NTP (or another "
            "time sync) on this machine"
        ) from ErrorReply(request.op, reply)

    async def _exchange(self, loop_client: LoopClient, request: Request) -> Reply:
        """Send ``request`` on the wire path, re-signed for each attempt, retried (and region
        redirects followed) by the client's own retry handlers; returns the final reply.

        Raises :class:`HandOff` when its parameters cannot be sent this way.
        """
        route = loop_client.route
        wire = loop_client.wire
        if route is None or wire is None:
            raise HandOff
        op, key, body = request.op, request.key, request.body
        operation = route.operations[op]
        headers = route.headers(operation, request.params)
        if headers is None:
            raise HandOff
        path, url = route.url(key)
        context: dict[str, Any] | None = None
        attempt = 1
        send = current_send()  # pacing hook: None when pacing is off
        while True:
            if send is not None:
                await send.pacing.before(send)
            signed = await route.sign(operation, path, headers, body)
            try:
                sent = await wire.send(operation.method, url, signed, body)
            except (BotoConnectionError, HTTPClientError) as exc:
                self.log.attempted(op, attempt, 0, None)
                context = context or route.request_context(key)
                delay = await route.needs_retry(operation, attempt, str(url), None, exc, context)
                if delay is None:
                    raise
            else:
                reply = Reply(sent.status, sent.headers, sent.body)
                status = reply.status
                self.log.attempted(op, attempt, status, reply.code if status >= 400 else None)
                if send is not None:
                    send.pacing.after(send, status, reply.code if status >= 400 else None)
                if status < 300:
                    if route.release_quota is not None:
                        route.release_quota(context=context or {}, http_response=_SUCCESS)
                    return reply
                if status == 404 or status == 412:  # neither retried nor redirected by botocore
                    return reply
                context = context or route.request_context(key)
                response = (status, sent.headers, reply.error_response())
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
