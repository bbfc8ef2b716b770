"""The async core: :class:`AsyncS3Cache`, the public API over its parts: settings, entries,
transport, recorder, coherence, capabilities, the read, write and removal paths, and leases and
locks (:mod:`s3cache._fleet`, through a :class:`~s3cache._fleet.FleetHost`)."""

from __future__ import annotations

import functools
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any, TypeVar

from botocore.config import Config

from s3cache import _fleet, _habits, _keys, _parameters, _probing, _redact, _sinks
from s3cache._batch import DeleteResult
from s3cache._breaker import Breaker
from s3cache._bucket_options import Checksum, RequestPayer, ServerSideEncryption
from s3cache._capabilities import Learner
from s3cache._check import CheckReport
from s3cache._coherence import Coherence
from s3cache._compression import Compression
from s3cache._concurrency import paced
from s3cache._entries import Entries
from s3cache._fleet import FleetHost, FleetLock
from s3cache._format import Serializer
from s3cache._local import LocalTier
from s3cache._parts import Parts
from s3cache._pricing import Cost, PriceTable
from s3cache._reads import MISSING, Reads
from s3cache._recorder import Recorder
from s3cache._refresh import Options, Refresher
from s3cache._removal import Removal
from s3cache._serializers import SerializerName
from s3cache._settings import DEFAULT_TIMEOUT, OnError, Settings
from s3cache._stats import CacheObserver, CacheStats
from s3cache._tagging import Tags, TagsOf
from s3cache._transport import Transport
from s3cache._writes import Writes
from s3cache.errors import S3CacheError

__all__ = ["AsyncS3Cache", "CheckReport", "OnError", "failed", "set_many"]

T = TypeVar("T")


class AsyncS3Cache(_habits.Habits, _probing.Probing):
    """A cache whose entries are S3 objects, for asyncio code: ``await cache.get(key)``.

    One long-lived client per event loop (aiobotocore, and s3cache's own HTTP/1.1 path for
    object requests), at most ``max_concurrency`` requests in flight, each operation under a
    ``timeout``-second deadline. With ``on_error="log"`` store failures are logged, counted in
    :meth:`stats` and treated as misses; with ``"raise"`` they raise
    :class:`~s3cache.errors.S3CacheError` subclasses. Bad arguments always raise, before any
    request. No request is sent until the first operation.

    {parameters}
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
        default_ttl: float | timedelta | str | None = None,
        max_concurrency: int = 64,
        timeout: float = DEFAULT_TIMEOUT,
        serializer: Serializer | SerializerName | None = None,
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
        stale_ttl: float | timedelta | str | None = None,
        pacing: bool = False,
        create_bucket: bool = False,
        tag_check_interval: float = 1.0,
        breaker: Breaker | bool | None = True,
        stale_if_error: float | timedelta | str | None = None,
        negative_ttl: float | timedelta | str | None = None,
        telemetry: bool = False,
        pricing: str | PriceTable | None = None,
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
            stale_ttl=stale_ttl,
            pacing=pacing,
            create_bucket=create_bucket,
            tag_check_interval=tag_check_interval,
            breaker=breaker,
            stale_if_error=stale_if_error,
            negative_ttl=negative_ttl,
            telemetry=telemetry,
            pricing=pricing,
        )
        self._assemble(settings)

    def _assemble(self, settings: Settings) -> None:
        """Build the cache's parts from its validated ``settings``."""
        self._settings = settings
        self._entries = entries = Entries(settings)
        self._recorder = recorder = Recorder.of(settings)
        self._coherence = coherence = Coherence(settings.local, settings.tag_check_interval)
        self._unredact = _redact.hide(self, settings.secrets)  # from every log, while open
        self._transport = transport = Transport(settings, recorder.watch)
        transport.log = recorder  # every attempt and request counted (the bill) and told
        learner = Learner(transport, settings.prefix, settings.shown_endpoint or "AWS")
        self._capabilities = learner
        parts = Parts(transport, coherence, recorder, entries)
        self._reads, self._removal = Reads(parts, settings.prefix, self._check_open), Removal(parts)
        self._writes = writes = Writes(parts, learner, self._reads.tagging)
        lookup = functools.partial(self.get, default=_fleet.ABSENT)
        self._fleet = FleetHost(
            settings.prefix, transport, learner, recorder, lookup, writes.fill, self._check_open
        )
        self._refresher = Refresher(coherence, recorder, settings, self._fleet, writes)
        if settings.telemetry:  # s3cache.telemetry, imported only now
            _sinks.instrument(self)

    # -- reading ---------------------------------------------------------------------------

    async def get(self, key: str, default: Any = None) -> Any:
        """The value stored under ``key``, or ``default`` on a miss, expiry or (fail-soft) error.

        A stored ``None`` is returned as ``None``: pass a sentinel ``default`` to tell them apart.
        Concurrent gets of one key on one event loop share a single request.
        """
        value = await self._reads.read(self._object_key(key))
        return default if value is MISSING else value

    async def _read_stale(self, key: str) -> tuple[Any, bool]:
        """The value under ``key`` (or ``MISSING``) under the constructor's ``stale_ttl``, and
        whether it is stale: for integrations whose caller computes on a miss (litellm)."""
        return await self._reads.read_judged(self._object_key(key), self._refresher.policy())

    async def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """The entries found among ``keys`` (hits only), fetched at most ``max_concurrency`` at a
        time, so that each read's deadline covers that read, however many keys there are."""
        wanted = {key: self._object_key(key) for key in keys}
        width = self._transport.max_concurrency
        values = await paced(self._reads.read, list(wanted.values()), width)
        for value in values:
            if isinstance(value, S3CacheError):  # on_error="raise": already counted
                raise value
        return {key: v for key, v in zip(wanted, values, strict=True) if v is not MISSING}

    async def exists(self, key: str) -> bool:
        """Whether a live entry is stored under ``key`` (an expired one does not count).

        With a signing key, an entry whose HEAD shows no signature, or one by a key this cache
        does not hold, does not count either; whether the signature matches the body only a
        read can tell (it has the body).
        """
        return await self._reads.exists(self._object_key(key))

    # -- writing ---------------------------------------------------------------------------

    async def set(
        self, key: str, value: Any, ttl: float | timedelta | str | None = None, tags: Tags = ()
    ) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds (default: the cache's ``default_ttl``),
        with ``tags`` (for :meth:`invalidate`; a bad one is a ``ValueError``).

        Raises ``TypeError`` before any request when ``value`` cannot be serialised, and
        ``ValueError`` when it is too large to compress (``_compression.MAX_DECOMPRESSED_BYTES``).
        """
        await self._writes.store(self._object_key(key), value, self._entries.ttl(ttl), tags=tags)

    async def set_many(
        self,
        mapping: Mapping[str, Any],
        ttl: float | timedelta | str | None = None,
        tags: Tags = (),
    ) -> dict[str, S3CacheError]:
        """Store every item of ``mapping`` (each with ``tags``); all validated before any request.

        Writes go at most ``max_concurrency`` at a time, so each one's deadline covers that write
        however large the batch. Returns the keys that were not stored, each with its error (an
        empty dict when all were); with ``on_error="raise"`` a failure raises
        :class:`~s3cache.errors.BatchError` instead, after every write has been tried.
        """
        return await set_many(self, mapping, ttl, {}, tags)

    async def add(self, key: str, value: Any, ttl: float | timedelta | str | None = None) -> bool:
        """Store ``value`` only if no live entry exists; True when it was stored.

        Uses a conditional write (``If-None-Match: *``). An expired entry counts as absent and is
        replaced with ``If-Match`` on its ETag, so two racing ``add`` calls never both win. On a
        server that ignores ``If-None-Match`` (detected once with a probe), or that cannot honour
        ``If-Match`` when an expired entry must be replaced, this raises
        :class:`~s3cache.errors.NotSupportedError` rather than overwrite silently.
        """
        okey = self._object_key(key)
        seconds = self._entries.ttl(ttl)
        return await self._writes.add(okey, self._entries.encode(okey, value, seconds), seconds)

    async def get_or_set(
        self,
        key: str,
        factory: Callable[[], Any],
        ttl: float | timedelta | str | None = None,
        *,
        lease: float | timedelta | None = None,
        stale_ttl: float | timedelta | str | None = None,
        tags: Tags = (),
        condition: Callable[[Any], object] | None = None,
        stale_if_error: float | timedelta | str | None = None,
        negative_ttl: float | timedelta | str | None = None,
        early: bool | float | None = None,
        cost: Cost | None = None,
    ) -> Any:
        """The value under ``key``; on a miss, ``factory()`` (sync or async) makes and stores it
        (only if ``condition(value)`` is true, when given: the value is returned either way).

        Concurrent callers on one event loop run the factory once and all receive its value; an
        exception from the factory reaches every waiter and nothing is stored. A cancelled
        waiter never cancels the factory for the others.

        With a ``lease`` (seconds or timedelta: the longest one computation may take), one
        caller in the whole fleet runs the factory and the others wait for its value; see
        "Fleet-wide single flight" in the README. Needs conditional writes
        (:class:`~s3cache.errors.NotSupportedError` otherwise). ``stale_ttl``,
        ``stale_if_error``, ``negative_ttl`` (a factory returning ``ABSENT``) and ``early``
        (XFetch): see "Freshness". ``cost``: dollars per factory call (or a function of its
        value): ``stats().savings``."""
        okey, seconds = self._object_key(key), self._entries.ttl(ttl)
        options = Options(stale_ttl, stale_if_error, negative_ttl, early)
        fill = self._refresher.fill_of(
            key, okey, factory, seconds, lease, options, tags, condition, cost
        )
        return await self._refresher.get_or_set(self._reads, okey, fill)

    def cached(
        self,
        ttl: float | timedelta | str | None = None,
        key: Callable[..., str] | None = None,
        *,
        lease: float | timedelta | None = None,
        stale_ttl: float | timedelta | str | None = None,
        tags: TagsOf = (),
        condition: Callable[[Any], object] | None = None,
        stale_if_error: float | timedelta | str | None = None,
        negative_ttl: float | timedelta | str | None = None,
        early: bool | float | None = None,
        cost: Cost | None = None,
    ) -> _habits.CachedDecorator:
        """Decorate a coroutine function so that its results are cached (see :meth:`get_or_set`),
        or an async generator function (its items, once it finishes; a hit replays them).

        The default key is ``module:qualname:<sha256 of the arguments>`` (see the README for the
        argument types allowed); ``key`` builds one from the call's arguments instead. With a
        ``lease``, one call in the fleet computes each result (``stale_ttl``, ``condition``,
        ``cost``: as there). ``tags``: a list, or a function of the call's arguments. The
        wrapper's ``.key(*args)`` is a call's key, ``await .invalidate(*args)`` deletes its
        entry. For sync functions use :meth:`S3Cache.cached`.
        """
        options = Options(stale_ttl, stale_if_error, negative_ttl, early)
        return _habits.cached(self, ttl, key, lease, options, condition, tags, cost)

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
        return FleetLock(self._fleet, name, ttl, wait)

    async def invalidate(self, *tags: str) -> bool:
        """Invalidate every entry carrying one of ``tags`` fleet-wide (one PUT each); True once
        stored (else per ``on_error``). See "Invalidation" in the README for the staleness bound."""
        return await self._reads.tagging.invalidate(tags)

    # -- deleting --------------------------------------------------------------------------

    async def delete(self, key: str) -> bool:
        """Remove ``key``; True when a live entry was there (expired objects go too, uncounted)."""
        okey = self._object_key(key)
        live, failures = await self._removal.remove([okey])
        if failures:
            return self._recorder.failed(failures[okey], False)
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
        return await self._removal.remove_many(names)

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
        scope = _keys.sub_prefix(self.prefix, prefix)
        return await self._removal.clear(self.prefix, scope, spare_reserved=bool(prefix))

    def iter_keys(self, prefix: str = "") -> AsyncGenerator[str, None]:
        """The keys under the cache's prefix (+ ``prefix``, matched as in :meth:`clear`).

        Keys come without the cache prefix and with ``/`` where they were written with ``:`` (the
        same entry), in S3's listing order, one request per 1,000. A listing carries no expiry
        metadata, so expired entries not yet deleted are listed too; s3cache's own objects
        (leases, locks) are not keys and are never listed. A store failure ends the iteration
        (logged) or raises, per ``on_error``. Bad input raises here, not on iteration.
        """
        self._check_open()
        return self._removal.keys(self.prefix, _keys.sub_prefix(self.prefix, prefix))

    # -- operations ------------------------------------------------------------------------

    def stats(self) -> CacheStats:
        """A snapshot of this cache's counters (see :class:`CacheStats`)."""
        sender = self._transport
        return self._recorder.snapshot(sender.recovered, sender.clock.offset, sender.pacing)

    async def close(self) -> None:
        """Close the clients; idempotent. Requests already in flight finish first (each within
        its deadline; refreshes too, then cancelled); any other use raises CacheClosedError."""
        try:
            await self._refresher.aclose(self._settings.timeout)
            await self._transport.aclose()
        finally:
            if self._unredact is not None:
                self._unredact()

    async def __aenter__(self) -> AsyncS3Cache:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        endpoint = self._settings.shown_endpoint
        where = f", endpoint_url={endpoint!r}" if endpoint else ""
        state = ", closed" if self._transport.closed else ""
        return (
            f"{type(self).__name__}(bucket={self.bucket!r}, prefix={self.prefix!r}{where}{state})"
        )

    # -- plumbing --------------------------------------------------------------------------

    @property
    def prefix(self) -> str:
        """The normalised key prefix (empty, or ending in ``/``)."""
        return self._settings.prefix

    @property
    def bucket(self) -> str:
        """The bucket name."""
        return self._settings.bucket

    @property
    def endpoint_url(self) -> str | None:
        """The endpoint URL (None: AWS's default), with any user:password part removed."""
        return self._settings.shown_endpoint

    @property
    def transport(self) -> Transport:
        """The object-level operations under this cache (list, HEAD, delete; bucket settings in
        ``transport.admin``), for tools built on it such as :mod:`s3cache.maintenance`: they
        bypass the local tier, single flight and :meth:`stats`."""
        return self._transport

    def _object_key(self, key: str) -> str:
        self._check_open()
        return _keys.object_key(self.prefix, key)


async def set_many(
    cache: AsyncS3Cache,
    mapping: Mapping[str, Any],
    ttl: float | timedelta | str | None,
    metadata: Mapping[str, Mapping[str, str]],
    tags: Tags = (),
) -> dict[str, S3CacheError]:
    """:meth:`AsyncS3Cache.set_many`, with extra user ``metadata`` for some keys: how the
    integrations keep the original of a key they had to hash (s3cache's own fields win)."""
    seconds = cache._entries.ttl(ttl)
    items = cache._writes.encoded(cache._object_key, mapping, seconds, metadata, tags)
    return await cache._writes.put_many(items, seconds)


AsyncS3Cache.__doc__ = _parameters.document(AsyncS3Cache.__doc__)


def failed(cache: AsyncS3Cache, exc: S3CacheError, fallback: T) -> T:
    """A store failure met by a tool built on ``cache`` (an integration), counted and then
    raised or logged (returning ``fallback``) as the cache's ``on_error`` says."""
    return cache._recorder.failed(exc, fallback)
