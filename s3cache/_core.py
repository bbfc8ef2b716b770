"""The async core: :class:`AsyncS3Cache`, composing the storage format and the transport."""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any, Final, ParamSpec, TypeVar

from botocore.config import Config

from s3cache import _check, _fleet, _format, _options, _redact, _signing
from s3cache._batch import DeleteResult
from s3cache._bucket_options import (
    Checksum,
    RequestPayer,
    ServerSideEncryption,
)
from s3cache._callkey import call_key
from s3cache._capabilities import Capabilities, Learner
from s3cache._check import CheckReport
from s3cache._concurrency import paced
from s3cache._fleet import FleetLock
from s3cache._flight import Flights
from s3cache._format import Compression, Serializer
from s3cache._local import LocalLRU, LocalTier
from s3cache._settings import DEFAULT_TIMEOUT, OnError, Settings
from s3cache._stats import CacheEvent, CacheObserver, CacheStats, Counters, Outcome
from s3cache._transport import Transport
from s3cache.errors import (
    BatchError,
    CacheClosedError,
    CorruptEntryError,
    NotSupportedError,
    S3CacheError,
)

__all__ = ["AsyncS3Cache", "CheckReport", "OnError"]

logger = logging.getLogger("s3cache")

T = TypeVar("T")
R = TypeVar("R")
P = ParamSpec("P")

_MISSING: Final[Any] = object()
#: What each reason an entry failed verification means, for the log line.
_UNVERIFIED: Final[Mapping[str, str]] = {
    "unsigned": "not signed",
    "unknown_key": "signed with a key this cache does not hold",
    "altered": "altered since it was signed (key, body, type, encoding or ttl)",
}
_LOG_INTERVAL: Final = 10.0  # seconds between two log lines about the same kind of failure
#: The client's wall clock. It only stamps ``Expires`` for litellm's reader (and stands in for a
#: missing ``Date`` header); expiry is judged on the server's clock.
_clock = time.time
_monotonic = time.monotonic


class _ErrorLog:
    """Logs store failures at most once per interval and kind, with the count it held back."""

    __slots__ = ("_last", "_suppressed")

    def __init__(self) -> None:
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def __call__(self, exc: S3CacheError) -> None:
        self.note(exc.kind, f"s3cache {exc.kind} failure: {exc}")

    def note(self, kind: str, text: str) -> None:
        """Log ``text`` as a warning, unless a line of its ``kind`` went out within the interval."""
        now = time.monotonic()
        last = self._last.get(kind)
        if last is not None and now - last < _LOG_INTERVAL:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return
        self._last[kind] = now
        held = self._suppressed.pop(kind, 0)
        more = f" ({held} more like it since the last report)" if held else ""
        logger.warning("%s%s", text, more)


class AsyncS3Cache:
    """A cache whose entries are S3 objects, for asyncio code: ``await cache.get(key)``.

    One long-lived client per event loop (aiobotocore, and a lean aiohttp path for object
    requests), at most ``max_concurrency`` requests in flight, each operation under a
    ``timeout``-second deadline. With ``on_error="log"`` store failures are logged, counted in
    :meth:`stats` and treated as misses; with ``"raise"`` they raise
    :class:`~s3cache.errors.S3CacheError` subclasses. Bad arguments always raise, before any
    request. No request is sent until the first operation.

    Parameters:
        bucket: The bucket that holds the entries.
        prefix: Folder for the entries inside the bucket (``""``: the whole bucket). Keys map
            ``:`` to ``/`` under it.
        region_name: The bucket's region (botocore's default chain when None).
        endpoint_url: An S3-compatible server (``http://localhost:9000``); None for AWS.
        use_ssl: False for plain HTTP where the endpoint is not given as a URL.
        verify: TLS verification: True, False, or a CA bundle path.
        aws_access_key_id: Static credentials, with ``aws_secret_access_key`` (and optionally
            ``aws_session_token``); None: botocore's credential chain (env, profile, IMDS...).
        aws_secret_access_key: See ``aws_access_key_id``.
        aws_session_token: See ``aws_access_key_id``.
        session: An aiobotocore ``AioSession`` or aioboto3 ``Session`` to take credentials,
            profiles and event hooks from (default: a session of its own).
        api_version: Passed to ``create_client``.
        config: A botocore ``Config`` merged over s3cache's defaults (standard retries, three
            attempts; checksums only when required; a pool of ``max_concurrency``).
        default_ttl: Seconds (or a ``timedelta``) for writes without a ttl; None: no expiry.
        max_concurrency: Requests in flight at most, per event loop (also the pool size).
        timeout: Each operation's deadline in seconds, waiting for a slot included.
        serializer: Encodes values to bodies and back (default: :class:`JsonSerializer`);
            ``bytes`` are always stored raw.
        on_error: ``"log"`` (store failures are misses, logged and counted) or ``"raise"``.
        local: A :class:`LocalTier` to keep recent entries in process (None: off).
        observer: A :class:`CacheObserver` told of every finished operation.
        compression: ``"zstd"`` or ``"gzip"`` for bodies of at least ``compression_threshold``
            bytes (None: off); recorded in ``Content-Encoding``.
        compression_threshold: The smallest body, in bytes, that is compressed.
        fast_path: True (the default) sends object gets, heads, puts and deletes over aiohttp
            with s3cache's own SigV4 signer where that is equivalent to aiobotocore; False
            sends every request through aiobotocore (botocore event hooks, Stubber, tracing).
        sse: Server-side encryption of PUTs: None (the bucket's default), ``"AES256"``
            (SSE-S3), ``"aws:kms"`` (SSE-KMS) or ``"aws:kms:dsse"`` (DSSE-KMS).
        sse_kms_key_id: The KMS key (id, ARN or alias) of a KMS mode; None: AWS's ``aws/s3``
            key. A key id without a KMS mode is a ValueError.
        sse_bucket_key_enabled: True or False turns S3 Bucket Keys on or off for KMS PUTs
            (fewer KMS calls); None leaves the bucket's setting. Only with a KMS mode.
        sse_customer_key: 32 bytes for SSE-C; the key and its MD5 go on every PUT, GET and
            HEAD. Never shown in ``repr``, logs, errors or stats. Not with ``sse``.
        expected_bucket_owner: A 12-digit account id, sent as ``x-amz-expected-bucket-owner``
            on every request: a bucket of another account is refused (``BucketOwnerError``).
        checksum: None (checksums only where S3 requires them), ``"crc32"``, ``"crc32c"``,
            ``"sha256"`` or ``"crc64nvme"`` (the last two with ``awscrt``): each PUT carries
            the body's checksum for the server to verify; each GET verifies the one it gets
            back (``ChecksumMismatchError``, a ``CorruptEntryError``: a miss when logging).
        storage_class: The S3 storage class of PUTs (``"STANDARD_IA"``...; the archive classes
            GLACIER and DEEP_ARCHIVE are refused: entries there could not be read).
        request_payer: ``"requester"`` for requester-pays buckets, on every request.
        signing_key: bytes (at least 16), or a list of them for rotation: every entry written
            carries an HMAC-SHA256 by the first key, and an entry read is served only when it
            verifies with one of them; unsigned, unknown-key or altered entries are misses,
            counted in ``stats().unverified``. Never shown in ``repr``, logs or errors.

    The company-bucket options (``sse`` to ``request_payer``) are off by default and apply to
    every request that takes them, on the wire path and through aiobotocore alike. An S3
    Express One Zone directory bucket (``<name>--<zone id>--x-s3``) is recognised by its name;
    its requests go through aiobotocore, which signs them with CreateSession credentials.
    """

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        region_name: str | None = None,
        endpoint_url: str | None = None,
        use_ssl: bool = True,
        verify: bool | str | None = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        session: Any = None,
        api_version: str | None = None,
        config: Config | None = None,
        default_ttl: float | timedelta | None = None,
        max_concurrency: int = 64,
        timeout: float = DEFAULT_TIMEOUT,
        serializer: Serializer | None = None,
        on_error: OnError = "log",
        local: LocalTier | None = None,
        observer: CacheObserver | None = None,
        compression: Compression | None = None,
        compression_threshold: int = 1024,
        fast_path: bool = True,
        sse: ServerSideEncryption | None = None,
        sse_kms_key_id: str | None = None,
        sse_bucket_key_enabled: bool | None = None,
        sse_customer_key: bytes | None = None,
        expected_bucket_owner: str | None = None,
        checksum: Checksum | None = None,
        storage_class: str | None = None,
        request_payer: RequestPayer | None = None,
        signing_key: bytes | Sequence[bytes] | None = None,
    ) -> None:
        """Validate every argument into the settings, then build the parts (see the class)."""
        settings = Settings.build(
            bucket=bucket,
            prefix=prefix,
            region_name=region_name,
            endpoint_url=endpoint_url,
            use_ssl=use_ssl,
            verify=verify,
            aws_access_key_id=aws_access_key_id,
            aws_secret_access_key=aws_secret_access_key,
            aws_session_token=aws_session_token,
            session=session,
            api_version=api_version,
            config=config,
            default_ttl=default_ttl,
            max_concurrency=max_concurrency,
            timeout=timeout,
            serializer=serializer,
            on_error=on_error,
            local=local,
            observer=observer,
            compression=compression,
            compression_threshold=compression_threshold,
            fast_path=fast_path,
            sse=sse,
            sse_kms_key_id=sse_kms_key_id,
            sse_bucket_key_enabled=sse_bucket_key_enabled,
            sse_customer_key=sse_customer_key,
            expected_bucket_owner=expected_bucket_owner,
            checksum=checksum,
            storage_class=storage_class,
            request_payer=request_payer,
            signing_key=signing_key,
        )
        self._settings = settings
        self._bucket = settings.bucket
        self._prefix = settings.prefix
        self._default_ttl = settings.default_ttl
        self._endpoint_url = settings.endpoint_url
        self._serializer = settings.serializer
        self._compressor = settings.compressor
        self._raise = settings.raise_errors
        self._observer = settings.observer

        self._counters = Counters()
        self._log_error = _ErrorLog()
        self._local = LocalLRU(settings.local) if settings.local is not None else None
        self._reads, self._fills = Flights(), Flights()  # shared GETs; shared factory runs
        keys = settings.signing_keys
        self._signer = _signing.Signer(keys) if keys else None
        # botocore's DEBUG logs print the SSE-C key: hidden from every log while this is open
        self._unredact = _redact.hide(self, settings.secrets)
        self._transport = transport = Transport(settings)
        self._capabilities = Learner(transport, settings.prefix, settings.shown_endpoint or "AWS")

    # -- reading ---------------------------------------------------------------------------

    async def get(self, key: str, default: Any = None) -> Any:
        """The value stored under ``key``, or ``default`` on a miss, expiry or (fail-soft) error.

        A stored ``None`` is returned as ``None``: pass a sentinel ``default`` to tell them apart.
        Concurrent gets of one key on one event loop share a single request.
        """
        value = await self._read(self._object_key(key))
        return default if value is _MISSING else value

    async def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """The entries found among ``keys`` (hits only), fetched at most ``max_concurrency`` at a
        time, so that each read's deadline covers that read, however many keys there are."""
        wanted = {key: self._object_key(key) for key in keys}
        values = await self._paced(self._read, list(wanted.values()))
        for value in values:
            if isinstance(value, S3CacheError):  # on_error="raise": already counted
                raise value
        return {key: v for key, v in zip(wanted, values, strict=True) if v is not _MISSING}

    async def exists(self, key: str) -> bool:
        """Whether a live entry is stored under ``key`` (an expired one does not count).

        With a signing key, an entry whose HEAD shows no signature, or one by a key this cache
        does not hold, does not count either; whether the signature matches the body only a
        read can tell (it has the body).
        """
        okey = self._object_key(key)
        started = _monotonic()
        if self._local is not None and self._local.get(okey, started) is not None:
            self._record_and_notify("exists", okey, "local_hit", started)
            return True
        try:
            headers = await self._transport.head(okey)
        except S3CacheError as exc:
            self._record_and_notify("exists", okey, "error", started, error=exc)
            return self._failed(exc, False)
        live = headers is not None and self._is_live(headers)
        if live and self._signer is not None and self._unverified(okey, None, headers or {}):
            self._record_and_notify("exists", okey, "unverified", started)
            return False
        self._record_and_notify("exists", okey, "hit" if live else "miss", started)
        return live

    async def _read(self, okey: str) -> Any:
        """The value under ``okey`` or ``_MISSING``; counted, observed, errors per ``on_error``."""
        started = _monotonic()
        counters = self._counters
        local = self._local
        if local is not None:
            value = self._local_hit(local, okey, started)
            if value is not _MISSING:
                return value
        try:
            sent, generation, found = await self._reads.join(
                okey, functools.partial(self._fetch, okey)
            )
        except S3CacheError as exc:
            counters.misses += 1
            self._record_and_notify("get", okey, "error", started, error=exc)
            return self._failed(exc, _MISSING)
        if found is None:
            counters.misses += 1
            self._record_and_notify("get", okey, "miss", started)
            return _MISSING
        body, headers = found
        if self._signer is not None and self._unverified(okey, body, headers):
            counters.misses += 1
            self._record_and_notify("get", okey, "unverified", started)
            return _MISSING
        content_type = headers.get("content-type")
        content_encoding = headers.get("content-encoding")
        remaining = _format.safe_remaining_ttl(headers, _clock())
        try:
            if _format.is_expired(remaining):
                counters.misses += 1
                counters.expired += 1
                self._record_and_notify("get", okey, "expired", started)
                return _MISSING
            value = _format.decode(body, content_type, self._serializer, content_encoding)
        except (ValueError, KeyError) as exc:
            counters.misses += 1
            error = CorruptEntryError(f"GetObject {okey!r}: unreadable entry: {exc}")
            error.__cause__ = exc
            self._record_and_notify("get", okey, "error", started, error=error)
            return self._failed(error, _MISSING)
        counters.hits += 1
        counters.bytes_in += len(body)
        if local is not None:
            # ``remaining`` is as of the server's Date, which is after ``sent``: never later.
            # A bytearray body becomes bytes here, once, not at every local hit of its value.
            local.put(
                okey, bytes(body), content_type, content_encoding, sent, remaining, generation
            )
        self._record_and_notify("get", okey, "hit", started, len(body))
        return value

    def _local_hit(self, local: LocalLRU, okey: str, started: float) -> Any:
        """The value the local tier holds for ``okey`` (counted and observed), or ``_MISSING``.

        It holds only entries this cache wrote or verified, so it never serves an unverified one.
        """
        entry = local.get(okey, started)
        if entry is None:
            return _MISSING
        try:
            value = _format.decode(
                entry.body, entry.content_type, self._serializer, entry.content_encoding
            )
        except ValueError:
            local.discard(okey)
            return _MISSING
        self._counters.hits += 1
        self._counters.local_hits += 1
        self._record_and_notify("get", okey, "local_hit", started, len(entry.body))
        return value

    def _unverified(self, okey: str, body: _format.Body | None, headers: Mapping[str, str]) -> bool:
        """Whether the entry under ``okey`` fails its signature check (``body`` None: what a
        HEAD shows). Such an entry is a miss, counted by reason and logged (rate-limited); it is
        never served and never deleted."""
        assert self._signer is not None
        if body is None:
            reason = self._signer.check_headers(headers)
        else:
            reason = self._signer.verify(okey, body, headers)
        if reason is None:
            return False
        self._counters.unverified[reason] += 1
        self._log_error.note(
            f"unverified:{reason}",
            f"s3cache: entry {okey!r} is {_UNVERIFIED[reason]}: not served (a miss)",
        )
        return True

    async def _fetch(
        self, okey: str
    ) -> tuple[float, int, tuple[_format.Body, Mapping[str, str]] | None]:
        """GET ``okey`` for all the readers sharing it, with when it was sent (the local tier's
        deadline counts from then) and the tier's generation then (an answer overtaken by a
        write through this cache never fills it)."""
        generation = self._local.generation if self._local is not None else 0
        return _monotonic(), generation, await self._transport.get(okey)

    def _is_live(self, headers: Mapping[str, str]) -> bool:
        return not _format.is_expired(_format.safe_remaining_ttl(headers, _clock()))

    # -- writing ---------------------------------------------------------------------------

    async def set(self, key: str, value: Any, ttl: float | timedelta | None = None) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds (default: the cache's ``default_ttl``).

        Raises ``TypeError`` before any request when ``value`` cannot be serialised, and
        ``ValueError`` when it is too large to compress (see ``_format.MAX_DECOMPRESSED_BYTES``).
        """
        okey = self._object_key(key)
        seconds = self._ttl(ttl)
        await self._put_entry(okey, self._encode(okey, value, seconds), seconds)

    async def set_many(
        self, mapping: Mapping[str, Any], ttl: float | timedelta | None = None
    ) -> dict[str, S3CacheError]:
        """Store every item of ``mapping``; all are validated before any request.

        Writes go at most ``max_concurrency`` at a time, so each one's deadline covers that write
        however large the batch. Returns the keys that were not stored, each with its error (an
        empty dict when all were); with ``on_error="raise"`` a failure raises
        :class:`~s3cache.errors.BatchError` instead, after every write has been tried.
        """
        return await self._set_many(mapping, ttl, {})

    async def _set_many(
        self,
        mapping: Mapping[str, Any],
        ttl: float | timedelta | None,
        metadata: Mapping[str, Mapping[str, str]],
    ) -> dict[str, S3CacheError]:
        """:meth:`set_many`, with extra user ``metadata`` for some keys: how the integrations
        keep the original of a key they had to hash (s3cache's own fields win over it)."""
        seconds = self._ttl(ttl)
        items = [
            (
                key,
                okey := self._object_key(key),
                self._encode(okey, value, seconds, metadata.get(key)),
            )
            for key, value in mapping.items()
        ]
        errors = await self._paced(
            lambda item: self._try_put_entry(item[1], item[2], seconds), items
        )
        failed = {item[0]: e for item, e in zip(items, errors, strict=True) if e is not None}
        self._batch_failed("set_many", failed, len(items), len(items) - len(failed))
        return failed

    async def add(self, key: str, value: Any, ttl: float | timedelta | None = None) -> bool:
        """Store ``value`` only if no live entry exists; True when it was stored.

        Uses a conditional write (``If-None-Match: *``). An expired entry counts as absent and is
        replaced with ``If-Match`` on its ETag, so two racing ``add`` calls never both win. On a
        server that ignores ``If-None-Match`` (detected once with a probe), or that cannot honour
        ``If-Match`` when an expired entry must be replaced, this raises
        :class:`~s3cache.errors.NotSupportedError` rather than overwrite silently.
        """
        okey = self._object_key(key)
        seconds = self._ttl(ttl)
        payload = self._encode(okey, value, seconds)
        started = _monotonic()
        since = self._begin_write(okey)
        try:
            stored = await self._put_if_absent(okey, payload)
        except BaseException as exc:
            self._end_write(okey, since)  # whether it landed is unknown: keep nothing
            if isinstance(exc, NotSupportedError) or not isinstance(exc, S3CacheError):
                raise
            self._record_and_notify("add", okey, "error", started, error=exc)
            return self._failed(exc, False)
        if stored:
            self._record_put(okey, payload, seconds, started, since)
        else:
            self._end_write(okey, since)
        self._record_and_notify(
            "add", okey, "stored" if stored else "rejected", started, len(payload.body)
        )
        return stored

    async def _put_if_absent(self, okey: str, payload: _format.Payload) -> bool:
        """The conditional writes of :meth:`add`; True when ``payload`` was stored.

        A refused create is looked at (the HEAD that also tells a write whose response was
        lost, see :meth:`Transport.put_if`): an expired entry is replaced, a vanished one
        created once more.
        """
        transport = self._transport
        await self._capabilities.require_create("add()")
        written = await transport.put_if(okey, payload, if_absent=True)
        if written.stored:
            return True
        headers = written.found
        if headers is None:  # deleted in between: try once more
            return (await transport.put_if(okey, payload, if_absent=True)).stored
        if not self._is_live(headers) and headers.get("etag"):
            return await self._replace_expired(okey, payload, headers["etag"])
        return False

    async def _replace_expired(self, okey: str, payload: _format.Payload, etag: str) -> bool:
        """Overwrite an expired entry only if it is still the one seen (``If-Match`` on its ETag,
        in the form this server honours, learned once by a probe)."""
        capabilities = await self._capabilities.require("add() over an expired entry")
        written = await self._transport.put_if(okey, payload, if_match=capabilities.if_match(etag))
        return written.stored

    async def get_or_set(
        self,
        key: str,
        factory: Callable[[], Any],
        ttl: float | timedelta | None = None,
        *,
        lease: float | timedelta | None = None,
    ) -> Any:
        """The value under ``key``; on a miss, ``factory()`` (sync or async) makes and stores it.

        Concurrent callers on one event loop run the factory once and all receive its value; an
        exception from the factory reaches every waiter and nothing is stored. A cancelled
        waiter never cancels the factory for the others.

        With a ``lease`` (seconds or timedelta: the longest one computation may take), one
        caller in the whole fleet runs the factory and the others wait for its value; see
        "Fleet-wide single flight" in the README. Needs conditional writes
        (:class:`~s3cache.errors.NotSupportedError` otherwise).
        """
        okey = self._object_key(key)
        seconds = self._ttl(ttl)
        lease_s = None if lease is None else _fleet.lease_seconds(lease)
        value = await self._read(okey)
        if value is not _MISSING:
            return value
        if lease_s is None:
            fill = functools.partial(self._fill, okey, factory, seconds)
        else:
            fill = functools.partial(_fleet.fill, self, key, okey, factory, seconds, lease_s)
        return await self._fills.join(okey, fill)

    def cached(
        self,
        ttl: float | timedelta | None = None,
        key: Callable[..., str] | None = None,
        *,
        lease: float | timedelta | None = None,
    ) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
        """Decorate a coroutine function so that its results are cached (see :meth:`get_or_set`).

        The default key is ``module:qualname:<sha256 of the arguments>`` (see the README for the
        argument types allowed); ``key`` builds one from the call's arguments instead. With a
        ``lease``, one call in the fleet computes each result. For sync functions use
        :meth:`S3Cache.cached`.
        """
        self._ttl(ttl)  # validate now, not at the first call
        if lease is not None:
            _fleet.lease_seconds(lease)

        def decorate(func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
            if not inspect.iscoroutinefunction(func):
                raise TypeError(
                    f"AsyncS3Cache.cached wraps coroutine functions and {func.__qualname__} is "
                    "not one; use S3Cache.cached for sync functions"
                )

            @functools.wraps(func)
            async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
                cache_key = call_key(func, key, args, kwargs)
                result: R = await self.get_or_set(
                    cache_key, functools.partial(func, *args, **kwargs), ttl, lease=lease
                )
                return result

            return wrapper

        return decorate

    def lock(
        self, name: str, ttl: float | timedelta, *, wait: float | timedelta | None = None
    ) -> FleetLock:
        """A fleet-wide lock: ``async with cache.lock("nightly-report", ttl=60, wait=10) as held``.

        ``ttl`` (at least 1 s) is how long the lock outlives a holder that stops renewing it; it
        is renewed in the background every ``ttl / 3`` while the block runs and released on
        exit. ``wait=None`` tries once; otherwise it waits up to ``wait`` seconds. Raises
        :class:`~s3cache.errors.LockNotAcquiredError` when the lock stays busy, and store
        failures always (whatever ``on_error`` says). ``held.token`` is the fencing token and
        ``held.lost`` tells whether a renewal failed; see "Fleet-wide locks" in the README.
        """
        return FleetLock(self, name, ttl, wait)

    async def _fill(self, okey: str, factory: Callable[[], Any], seconds: float | None) -> Any:
        value = factory()
        if inspect.isawaitable(value):
            value = await value
        await self._put_entry(okey, self._encode(okey, value, seconds), seconds)
        return value

    def _ttl(self, ttl: float | timedelta | None) -> float | None:
        return self._default_ttl if ttl is None else _format.normalize_ttl(ttl)

    def _encode(
        self, okey: str, value: Any, seconds: float | None, extra: Mapping[str, str] | None = None
    ) -> _format.Payload:
        """The payload of ``value`` for ``okey``, with ``extra`` user metadata (s3cache's own
        fields win over it), signed when the cache has a signing key."""
        payload = _format.encode(value, seconds, self._serializer, _clock(), self._compressor)
        if extra:
            payload = replace(payload, metadata={**extra, **payload.metadata})
        return payload if self._signer is None else self._signer.sign(okey, payload)

    async def _put_entry(self, okey: str, payload: _format.Payload, seconds: float | None) -> None:
        """PUT one entry; a store failure is counted, then raised or logged per ``on_error``."""
        error = await self._try_put_entry(okey, payload, seconds)
        if error is not None:
            self._failed(error, None)

    async def _try_put_entry(
        self, okey: str, payload: _format.Payload, seconds: float | None
    ) -> S3CacheError | None:
        """PUT one entry, observed; a store failure is returned (for the caller to count)."""
        started = _monotonic()
        since = self._begin_write(okey)
        try:
            await self._transport.put(okey, payload)
        except BaseException as exc:
            self._end_write(okey, since)  # whether it landed is unknown: keep nothing
            if not isinstance(exc, S3CacheError):
                raise
            self._record_and_notify("set", okey, "error", started, error=exc)
            return exc
        self._record_put(okey, payload, seconds, started, since)
        self._record_and_notify("set", okey, "stored", started, len(payload.body))
        return None

    def _record_put(
        self,
        okey: str,
        payload: _format.Payload,
        seconds: float | None,
        started: float,
        since: int,
    ) -> None:
        """After a PUT landed: count it, and let the local tier keep it (see :meth:`_end_write`)."""
        self._counters.sets += 1
        self._counters.bytes_out += len(payload.body)
        self._end_write(okey, since, payload, seconds, started)

    def _begin_write(self, okey: str) -> int:
        """A write or delete of ``okey`` begins: no read already in flight may answer for it, or
        fill the local tier. Returns the tier generation for :meth:`_end_write`."""
        self._reads.forget(okey)
        return self._local.begin_write(okey) if self._local is not None else 0

    def _end_write(
        self,
        okey: str,
        since: int,
        payload: _format.Payload | None = None,
        seconds: float | None = None,
        started: float = 0.0,
    ) -> None:
        """It ended (``payload``: what was stored): a get from now on sends a request of its own,
        and the tier keeps ``payload`` unless another write of the key overlapped this one."""
        self._reads.forget(okey)
        if self._local is None:
            return
        if payload is None:
            self._local.end_write(okey, since)
            return
        # S3 may call the entry expired up to a second early: stay inside that.
        lifetime = None if seconds is None else seconds - 1.0
        self._local.end_write(
            okey,
            since,
            payload.body,
            payload.content_type,
            payload.content_encoding,
            started,
            lifetime,
        )

    # -- deleting --------------------------------------------------------------------------

    async def delete(self, key: str) -> bool:
        """Remove ``key``; True when a live entry was there (expired objects go too, uncounted)."""
        okey = self._object_key(key)
        live, failed = await self._remove([okey])
        if failed:
            return self._failed(failed[okey], False)
        return live == 1

    async def delete_many(self, keys: Iterable[str]) -> DeleteResult:
        """Remove ``keys``; returns how many live entries were removed, as a :class:`DeleteResult`
        (an ``int``) whose ``failed`` maps each key that could not be deleted to its error.

        Requests go at most ``max_concurrency`` at a time, so each deadline covers one request
        however many keys there are. With ``on_error="raise"`` a failure raises
        :class:`~s3cache.errors.BatchError`, after every key has been tried.
        """
        names: dict[str, str] = {}
        for key in keys:
            names.setdefault(self._object_key(key), key)
        live, failed = await self._remove(list(names))
        failed_keys = {names[okey]: error for okey, error in failed.items()}
        self._batch_failed("delete_many", failed_keys, len(names), live)
        return DeleteResult(live, failed_keys)

    async def _remove(self, okeys: list[str]) -> tuple[int, dict[str, S3CacheError]]:
        """Delete ``okeys``: how many live entries went, and the keys that failed, with why.

        S3 reports every key of a delete as deleted, so each key is looked up first (HEAD) and
        only objects that exist are deleted. A key whose HEAD failed is not deleted: it fails
        with that error (a second request would only spend a second deadline).
        """
        started = _monotonic()
        writes = [(okey, self._begin_write(okey)) for okey in okeys]
        try:
            heads = await self._paced(self._transport.head, okeys)
            failed: dict[str, S3CacheError] = {}
            present: list[str] = []
            live: list[str] = []
            for okey, head in zip(okeys, heads, strict=True):
                if isinstance(head, S3CacheError):
                    failed[okey] = head
                elif head is not None:
                    present.append(okey)
                    if self._is_live(head):
                        live.append(okey)
            failed.update(await self._transport.delete_many(present))
        finally:
            for okey, since in writes:
                self._end_write(okey, since)
        removed = sum(1 for okey in live if okey not in failed)
        self._counters.deletes += removed
        one = okeys[0] if len(okeys) == 1 else None
        if failed:
            self._record_and_notify(
                "delete", one, "error", started, error=next(iter(failed.values()))
            )
        else:
            self._record_and_notify("delete", one, "deleted", started)
        return removed, failed

    async def clear(self, prefix: str = "") -> DeleteResult:
        """Delete every object under the cache's prefix, or only those under ``prefix`` within it.

        ``prefix`` is matched as a string, ``:`` counting as ``/``: end it in ``/`` to mean one
        folder; s3cache's own objects (leases, locks) are then left alone. With an empty cache
        prefix and no ``prefix``, that is the whole bucket. Returns the number of objects
        deleted, expired ones included, as a :class:`DeleteResult` whose ``failed`` maps each
        object key that could not be deleted to its error, and whose ``stopped`` is the error of
        a listing that ended it early. With ``on_error="raise"``, failed keys or a listing that
        failed after some deletes raise :class:`~s3cache.errors.BatchError` with the count; a
        listing that fails before anything was deleted raises its own error.
        """
        self._check_open()
        scope = _format.sub_prefix(self._prefix, prefix)
        started = _monotonic()
        self._forget_all()
        deleted = 0
        failed: dict[str, S3CacheError] = {}
        stopped: S3CacheError | None = None
        last: str | None = None
        token: str | None = None
        try:
            while True:
                try:
                    page, token = await self._transport.list_page(scope, token)
                except S3CacheError as exc:  # nothing more can be found to delete
                    stopped = exc
                    break
                # Never trust a listing to stay under the prefix: check every key.
                okeys = [
                    o.key
                    for o in page
                    if o.key.startswith(scope)
                    and not (prefix and _format.is_reserved(self._prefix, o.key))
                ]
                page_failed = await self._transport.delete_many(okeys)
                deleted += len(okeys) - len(page_failed)
                failed.update(page_failed)
                last = page[-1].key if page else last
                if token is None:
                    break
        finally:
            self._forget_all()  # reads sent while the clear ran may have seen deleted entries
        self._counters.deletes += deleted
        error = stopped or next(iter(failed.values()), None)
        outcome: Outcome = "error" if error else "deleted"
        self._record_and_notify("clear", None, outcome, started, error=error)
        if stopped is not None and not deleted and not failed:
            self._failed(stopped, None)  # nothing was done: the failure itself
        else:
            self._batch_failed("clear", failed, deleted + len(failed), deleted, stopped, last)
        return DeleteResult(deleted, failed, stopped, last)

    def _forget_all(self) -> None:
        """No read in flight may answer for any key, or fill the local tier (a clear)."""
        self._reads.forget_all()
        if self._local is not None:
            self._local.clear()

    def iter_keys(self, prefix: str = "") -> AsyncGenerator[str, None]:
        """The keys under the cache's prefix (+ ``prefix``, matched as in :meth:`clear`).

        Keys come without the cache prefix and with ``/`` where they were written with ``:`` (the
        same entry), in S3's listing order, one request per 1,000. A listing carries no expiry
        metadata, so expired entries not yet deleted are listed too; s3cache's own objects
        (leases, locks) are not keys and are never listed. A store failure ends the iteration
        (logged) or raises, per ``on_error``. Bad input raises here, not on iteration.
        """
        self._check_open()
        return self._listed_keys(_format.sub_prefix(self._prefix, prefix))

    async def _listed_keys(self, scope: str) -> AsyncGenerator[str, None]:
        started = _monotonic()
        token: str | None = None
        while True:
            try:
                page, token = await self._transport.list_page(scope, token)
            except S3CacheError as exc:
                self._record_and_notify("iter_keys", None, "error", started, error=exc)
                self._failed(exc, None)
                return
            for obj in page:
                # Never trust a listing to stay under the prefix: check every key.
                if obj.key.startswith(scope) and not _format.is_reserved(self._prefix, obj.key):
                    yield obj.key[len(self._prefix) :]
            if token is None:
                return

    # -- operations ------------------------------------------------------------------------

    async def check(self) -> CheckReport:
        """Prove the bucket exists and is writable: HeadBucket, then put, get and delete a
        probe; with the server's conditional writes (learned once per cache, see
        :meth:`capabilities`), the report says what the server does not support.

        Always raises (whatever ``on_error`` says) an :class:`~s3cache.errors.S3CacheError` that
        names the cause: no such bucket, access denied, bad credentials, endpoint unreachable.
        Its probe's requests go through aiobotocore, whatever ``fast_path`` says.
        """
        self._check_open()
        return await _check.check(
            self._transport, self._capabilities, self._prefix, self._settings.shown_endpoint
        )

    async def capabilities(self) -> Capabilities:
        """What the server does with conditional writes: ``If-None-Match: *`` honoured, and the
        ETag form ``If-Match`` is honoured in. Probed once per cache (concurrent callers share
        the probe), then remembered; never half-learned."""
        self._check_open()
        return await self._capabilities.learn()

    async def supports_conditional_writes(self) -> bool:
        """Whether the server honours ``If-None-Match: *``: probed once, then remembered.

        :meth:`add`, leases and locks need it; some S3-compatible servers silently ignore the
        header.
        """
        self._check_open()
        return await self._capabilities.conditional_create()

    async def supports_conditional_replace(self) -> bool:
        """Whether the server honours ``If-Match`` on PutObject: probed once, then remembered.

        :meth:`add` needs it to replace an expired entry. Servers differ in the ETag form they
        take (Ceph RGW refuses it quoted, as S3 returns it); :meth:`capabilities` says which
        one s3cache found and sends.
        """
        self._check_open()
        return await self._capabilities.if_match_form() != "unsupported"

    def stats(self) -> CacheStats:
        """A snapshot of this cache's counters (see :class:`CacheStats`)."""
        transport = self._transport
        return self._counters.snapshot(transport.recovered, transport.clock.offset)

    async def close(self) -> None:
        """Close the clients; idempotent. Requests already in flight finish first (each within
        its deadline); any other use from now on raises CacheClosedError."""
        try:
            await self._transport.aclose()
        finally:
            if self._unredact is not None:
                self._unredact()

    async def __aenter__(self) -> AsyncS3Cache:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        endpoint = _options.redact_url(self._endpoint_url)
        where = f", endpoint_url={endpoint!r}" if endpoint else ""
        state = ", closed" if self._transport.closed else ""
        return (
            f"{type(self).__name__}(bucket={self._bucket!r}, prefix={self._prefix!r}{where}{state})"
        )

    # -- plumbing --------------------------------------------------------------------------

    @property
    def prefix(self) -> str:
        """The normalised key prefix (empty, or ending in ``/``)."""
        return self._prefix

    @property
    def bucket(self) -> str:
        """The bucket name."""
        return self._bucket

    @property
    def endpoint_url(self) -> str | None:
        """The endpoint URL (None: AWS's default), with any user:password part removed."""
        return _options.redact_url(self._endpoint_url)

    @property
    def transport(self) -> Transport:
        """The object-level operations under this cache (list, HEAD, delete, lifecycle).

        For tools built on the cache, such as :mod:`s3cache.maintenance`: they act on objects
        directly, bypassing the local tier, single flight and :meth:`stats`.
        """
        return self._transport

    def _check_open(self) -> None:
        if self._transport.closed:
            raise CacheClosedError(f"{self!r} is closed")

    def _object_key(self, key: str) -> str:
        self._check_open()
        return _format.object_key(self._prefix, key)

    def _batch_failed(
        self,
        op: str,
        failed: Mapping[str, S3CacheError],
        total: int,
        done: int,
        stopped: S3CacheError | None = None,
        stopped_after: str | None = None,
    ) -> None:
        """Count each failed key (and the error that ``stopped`` the batch) by its kind; then
        raise or log one :class:`BatchError` carrying ``done`` (always raised when the cache was
        closed under the batch: nothing is dropped silently)."""
        if not failed and stopped is None:
            return
        errors = [*failed.values(), *([stopped] if stopped is not None else [])]
        for error in errors:
            self._counters.errors[error.kind] += 1
        summary = BatchError(op, failed, total, done, stopped, stopped_after)
        if self._raise or any(isinstance(e, CacheClosedError) for e in errors):
            raise summary
        self._log_error(summary)

    def _failed(self, exc: S3CacheError, fallback: T) -> T:
        """Count and log a store failure; raise it or return ``fallback`` per ``on_error``
        (a closed cache always raises: nothing is dropped silently)."""
        self._counters.errors[exc.kind] += 1
        if self._raise or isinstance(exc, CacheClosedError):
            raise exc
        self._log_error(exc)
        return fallback

    def _record_and_notify(
        self,
        op: str,
        okey: str | None,
        outcome: Outcome,
        started: float,
        nbytes: int = 0,
        error: S3CacheError | None = None,
    ) -> None:
        """Record an operation's latency and tell the observer, which must never break us."""
        duration = _monotonic() - started
        self._counters.latency(op, duration)
        observer = self._observer
        if observer is None:
            return
        event = CacheEvent(op, okey, outcome, duration, nbytes, error.kind if error else None)
        try:
            observer.on_event(event)
        except Exception:
            logger.exception("s3cache observer %r failed on %s", observer, op)

    async def _paced(
        self, func: Callable[[T], Awaitable[R]], items: Sequence[T]
    ) -> list[R | S3CacheError]:
        """``func`` over ``items``, at most ``max_concurrency`` at a time (see :func:`paced`)."""
        return await paced(func, items, self._transport.max_concurrency)
