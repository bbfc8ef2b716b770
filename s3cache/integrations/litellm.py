"""litellm backend: :class:`LiteLLMS3Cache`, drop-in for litellm's ``S3Cache``, and :func:`enable`.

Same constructor, same bucket layout and value shapes as litellm's ``S3Cache``, so an existing cache
bucket stays readable in both directions; but the async methods are native asyncio on s3cache's
core (no thread executor), ttls are enforced on read, and store failures are logged, not hidden.

Importing this module imports litellm when it is installed, to subclass its ``BaseCache`` (litellm
types ``Cache.cache`` and ``Cache(_backend=...)`` as ``BaseCache``); without litellm the class still
works on its own. Importing :mod:`s3cache` alone never imports litellm.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import os
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from botocore.config import Config

from s3cache import _url
from s3cache._bucket_options import BUCKET_ARGS
from s3cache._core import AsyncS3Cache
from s3cache._expiry import normalize_ttl
from s3cache._reads import MISSING
from s3cache._signatures import takes_parameters_of
from s3cache._stats import CacheStats
from s3cache._sync import S3Cache
from s3cache._tags import normalize_tags
from s3cache.errors import S3CacheError

if TYPE_CHECKING:
    from litellm.caching.base_cache import BaseCache as _BaseCache
    from litellm.caching.caching import Cache
else:
    try:
        from litellm.caching.base_cache import BaseCache as _BaseCache
    except ImportError:  # litellm not installed: the backend works standalone
        _BaseCache = object

__all__ = ["LiteLLMS3Cache", "enable"]

#: Constructor keywords passed through to :class:`~s3cache.AsyncS3Cache`.
CORE_KWARGS: Final = (
    frozenset(
        {
            "compression",  # litellm's own reader cannot decode compressed entries
            "compression_threshold",
            "default_ttl",
            "fast_path",
            "local",
            "max_concurrency",
            "observer",
            "on_error",
            "pacing",
            "serializer",
            "session",
            "signing_key",  # signed entries: unsigned or altered ones are misses
            "stale_ttl",  # stale-while-revalidate: see LiteLLMS3Cache
            "timeout",
        }
    )
    | BUCKET_ARGS
)  # company buckets: encryption, owner, checksums, storage class, requester pays
#: ``litellm.Cache`` keywords that still mean something when the backend is ours.
_CACHE_KWARGS: Final = frozenset(
    {"max_messages", "mode", "namespace", "supported_call_types", "ttl"}
)
#: How long a stale key stays claimed by the caller handed its miss (litellm's model call),
#: unless that caller writes it sooner: after this, another caller is handed the miss.
CLAIM_S: Final = 60.0
#: The ``stats().errors`` kind of writes refused before any request (a bad ttl or value), which
#: litellm would otherwise only log.
INVALID: Final = "invalid"


class LiteLLMS3Cache(_BaseCache):  # type: ignore[misc,unused-ignore]  # Any when litellm is absent
    """litellm's cache-backend interface (``BaseCache`` plus RedisCache's extras) on s3cache.

    Construct it exactly like litellm's ``S3Cache``; ``**kwargs`` may only hold s3cache options
    (``max_concurrency``, ``default_ttl``, ``timeout``, ``session``, ``serializer``,
    ``on_error``, ``fast_path``, ``pacing``, ``local``, ``observer``, ``compression``,
    ``compression_threshold``, and the company-bucket options ``sse``, ``sse_kms_key_id``,
    ``sse_bucket_key_enabled``, ``sse_customer_key``, ``expected_bucket_owner``, ``checksum``,
    ``storage_class``, ``request_payer``, ``signing_key`` and ``stale_ttl``: see
    :class:`~s3cache.AsyncS3Cache`). ``$S3CACHE_URL``, when set, supplies every option the
    arguments leave out (see :meth:`AsyncS3Cache.from_url`). Async methods
    run on the caller's event loop; sync ones on s3cache's private loop. Every method takes and
    ignores litellm's extra call keywords, except ``ttl``.

    ``stale_ttl``: litellm calls the model itself on a miss, so the backend cannot refresh in
    the background. Instead, an entry past its ttl and within ``stale_ttl`` is a miss for one
    caller per process (litellm recomputes and writes it), and a hit, at once, for every other
    caller until that write, or for :data:`CLAIM_S` seconds if it never comes. Per process:
    each process of a fleet hands out one miss. Batch reads treat a stale entry as a miss.
    """

    def __init__(
        self,
        s3_bucket_name: str,
        s3_region_name: str | None = None,
        s3_api_version: str | None = None,
        s3_use_ssl: bool | None = True,
        s3_verify: bool | str | None = None,
        s3_endpoint_url: str | None = None,
        s3_aws_access_key_id: str | None = None,
        s3_aws_secret_access_key: str | None = None,
        s3_aws_session_token: str | None = None,
        s3_config: Config | Mapping[str, Any] | None = None,
        s3_path: str | None = None,
        **kwargs: Any,
    ) -> None:
        unknown = sorted(set(kwargs) - CORE_KWARGS)
        if unknown:
            raise TypeError(
                f"LiteLLMS3Cache() got unexpected keyword argument(s) {', '.join(unknown)}; "
                f"besides the s3_* parameters it accepts only {', '.join(sorted(CORE_KWARGS))}"
            )
        if isinstance(s3_config, Mapping):  # litellm documents s3_config as a dict
            s3_config = Config(**s3_config)
        given: dict[str, Any] = {
            "bucket": s3_bucket_name,
            "prefix": s3_path or None,
            "region_name": s3_region_name,
            "api_version": s3_api_version,
            "use_ssl": None if s3_use_ssl in (None, True) else s3_use_ssl,  # True: the default
            "verify": s3_verify,
            "endpoint_url": s3_endpoint_url,
            "aws_access_key_id": s3_aws_access_key_id,
            "aws_secret_access_key": s3_aws_secret_access_key,
            "aws_session_token": s3_aws_session_token,
            "config": s3_config,
            **kwargs,
        }
        # $S3CACHE_URL under the arguments given, option by option (a None one is not given).
        self._core_kwargs = _url.merge(_url.from_environ(os.environ), given)
        if not self._core_kwargs.get("bucket"):  # litellm passes s3_bucket_name=None on
            raise TypeError("LiteLLMS3Cache needs s3_bucket_name (or $S3CACHE_URL naming one)")
        self._open()

    def _open(self) -> None:
        """A fresh core, and the sync facade over the same core."""
        self._core = AsyncS3Cache(**self._core_kwargs)
        self._sync = S3Cache._from_core(self._core)
        self._invalid_writes = 0
        self._claims = _Claims() if self._core_kwargs.get("stale_ttl") else None

    @contextlib.contextmanager
    def _counted(self) -> Iterator[None]:
        """Count a write refused for its arguments (litellm catches and only logs the error)."""
        try:
            yield
        except (TypeError, ValueError):
            self._invalid_writes += 1
            raise

    @property
    def core(self) -> AsyncS3Cache:
        """The :class:`~s3cache.AsyncS3Cache` serving this backend (a new one after disconnect)."""
        return self._core

    def stats(self) -> CacheStats:
        """Hits, misses, errors... of the current core (counting restarts after disconnect).

        ``errors["invalid"]`` counts writes refused before any request: a bad ``ttl`` or
        ``cache={"tags": ...}`` in the call keywords, or a value that cannot be stored.
        """
        stats = self._core.stats()
        if not self._invalid_writes:
            return stats
        errors = MappingProxyType({**stats.errors, INVALID: self._invalid_writes})
        return dataclasses.replace(stats, errors=errors)

    # -- writes ----------------------------------------------------------------------------

    def set_cache(self, key: str, value: Any, **kwargs: Any) -> None:
        """Store ``value`` under ``key``; ``ttl`` (seconds or timedelta) from the call keywords."""
        with self._counted():
            self._sync.set(key, value, _ttl(kwargs), _tags(kwargs))
        self._written(key)

    async def async_set_cache(self, key: str, value: Any, **kwargs: Any) -> None:
        """Store ``value`` under ``key`` without leaving the event loop."""
        with self._counted():
            await self._core.set(key, value, _ttl(kwargs), _tags(kwargs))
        self._written(key)

    async def async_set_cache_pipeline(
        self, cache_list: Iterable[tuple[str, Any]], **kwargs: Any
    ) -> None:
        """Store every ``(key, value)`` pair concurrently (bounded by ``max_concurrency``)."""
        entries = dict(cache_list)
        with self._counted():
            await self._core.set_many(entries, _ttl(kwargs), _tags(kwargs))
        self._written(*entries)

    async def batch_cache_write(self, key: str, value: Any, **kwargs: Any) -> None:
        """Store one entry now: S3 has no pipelining, so there is nothing to buffer."""
        with self._counted():
            await self._core.set(key, value, _ttl(kwargs), _tags(kwargs))
        self._written(key)

    def _written(self, *keys: str) -> None:
        """Keys just written: a stale one's claim ends (its new value is there)."""
        if self._claims is not None:
            self._claims.release(keys)

    # -- reads -----------------------------------------------------------------------------

    def get_cache(self, key: str, **kwargs: Any) -> Any:
        """The stored value (litellm's ``{"timestamp", "response"}`` dict), or None on a miss."""
        if self._claims is None:
            return self._sync.get(key)
        return self._claims.served(key, *self._sync._read_stale(key))

    async def async_get_cache(self, key: str, **kwargs: Any) -> Any:
        """The stored value, or None on a miss, expiry or logged store failure."""
        if self._claims is None:
            return await self._core.get(key)
        return self._claims.served(key, *await self._core._read_stale(key))

    def batch_get_cache(
        self,
        key_list: Sequence[str | None] | None = None,
        parent_otel_span: Any = None,
        *,
        keys: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any] | list[Any]:
        """Many reads at once, in the caller's shape: see :meth:`async_batch_get_cache`."""
        found = self._sync.get_many(_batch_keys(key_list, keys))
        return _batch_result(key_list, keys, found)

    async def async_batch_get_cache(
        self,
        key_list: Sequence[str | None] | None = None,
        parent_otel_span: Any = None,
        *,
        keys: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any] | list[Any]:
        """Many reads at once, concurrently.

        RedisCache's shape for ``key_list`` (a dict with None for misses; None keys dropped);
        InMemoryCache's for ``keys=`` (a list in the order of ``keys``).
        """
        found = await self._core.get_many(_batch_keys(key_list, keys))
        return _batch_result(key_list, keys, found)

    # -- deletes ---------------------------------------------------------------------------

    def delete_cache(self, key: str, **kwargs: Any) -> None:
        """Remove ``key`` (no error when it is absent)."""
        self._sync.delete(key)

    async def async_delete_cache(self, key: str, **kwargs: Any) -> int:
        """Remove ``key``; 1 when a live entry was there, else 0 (Redis's DEL count)."""
        return int(await self._core.delete(key))

    async def delete_cache_keys(self, keys: Iterable[str]) -> None:
        """Remove ``keys`` (litellm's ``Cache.delete_cache_keys`` and the proxy's /cache/delete)."""
        await self._core.delete_many(keys)

    def flush_cache(self) -> int:
        """Delete every object under ``s3_path``: the whole bucket when ``s3_path`` is empty.

        Returns how many objects went. litellm's own ``S3Cache.flush_cache`` does nothing.
        """
        return self._sync.clear()

    # -- connection ------------------------------------------------------------------------

    async def disconnect(self) -> None:
        """Close the S3 clients; a later call opens new ones, as RedisCache reconnects."""
        old = self._core
        self._open()
        await old.close()

    async def test_connection(self) -> dict[str, str]:
        """Probe the bucket (put, get, delete); litellm's ``{"status", "message"[, "error"]}``."""
        try:
            report = await self._core.check()
        except S3CacheError as exc:
            return {
                "status": "failed",
                "message": f"S3 connection to bucket {self._core.bucket!r} failed: {exc}",
                "error": str(exc),
            }
        return {
            "status": "success",
            "message": (
                f"S3 connection test successful: bucket {report.bucket!r} is readable and "
                f"writable, round trip {report.latency_ms:.1f} ms"
            ),
        }

    async def ping(self) -> bool:
        """True when the bucket is reachable and writable; raises the cause otherwise (as Redis)."""
        await self._core.check()
        return True

    def __repr__(self) -> str:
        return repr(self._core).replace("AsyncS3Cache(", "LiteLLMS3Cache(", 1)


#: ``LiteLLMS3Cache``'s own parameters, litellm's ``s3_*`` ones (enable() passes them on).
_S3_KWARGS: Final = frozenset(
    name for name in inspect.signature(LiteLLMS3Cache).parameters if name.startswith("s3_")
)


@takes_parameters_of(
    LiteLLMS3Cache, inspect.Parameter("type", inspect.Parameter.KEYWORD_ONLY, default="s3")
)
def enable(*args: Any, type: str = "s3", **kwargs: Any) -> Cache:
    """Set ``litellm.cache`` to a ``litellm.Cache`` on :class:`LiteLLMS3Cache`, and return it.

    Takes what ``litellm.Cache(type="s3", ...)`` takes (the ``s3_*`` options, ``ttl``,
    ``namespace``, ``mode``, ``supported_call_types``, ``max_messages``) plus s3cache's options,
    so switching is renaming the call. Anything else is a TypeError, not silently ignored.
    """
    import litellm
    from litellm.caching.caching import Cache
    from litellm.types.caching import LiteLLMCacheType

    if type != LiteLLMCacheType.S3:
        raise ValueError(f"enable() makes an S3 cache; type must be 's3', not {type!r}")
    normalize_ttl(kwargs.get("ttl"))  # litellm passes it to every write: refuse a bad one now
    backend_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in CORE_KWARGS | _S3_KWARGS}
    unknown = sorted(set(kwargs) - _CACHE_KWARGS)
    if unknown:
        raise TypeError(
            f"enable() got unexpected keyword argument(s) {', '.join(unknown)}; besides the s3_* "
            f"parameters it accepts {', '.join(sorted(_CACHE_KWARGS | CORE_KWARGS))}"
        )
    backend = LiteLLMS3Cache(*args, **backend_kwargs)
    cache = Cache(type=LiteLLMCacheType.S3, _backend=backend, **kwargs)
    litellm.cache = cache
    return cache


class _Claims:
    """The stale keys a caller of this process was handed a miss for, to recompute (thread-safe:
    sync and async callers share a backend)."""

    __slots__ = ("_lock", "_until")

    def __init__(self) -> None:
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def served(self, key: str, value: Any, stale: bool) -> Any:
        """What a read of ``key`` returns: None on a miss; for a stale value, None for the
        first caller (it recomputes; the key is claimed) and the value for the others."""
        if value is MISSING:
            return None
        if not stale:
            return value
        now = time.monotonic()
        with self._lock:
            if self._until.get(key, 0.0) > now:
                return value
            if len(self._until) > 10_000:  # bounded: drop the claims that ran out
                self._until = {k: t for k, t in self._until.items() if t > now}
            self._until[key] = now + CLAIM_S
        return None

    def release(self, keys: Iterable[str]) -> None:
        """``keys`` were written: their claims end."""
        with self._lock:
            for key in keys:
                self._until.pop(key, None)


def _ttl(call_kwargs: Mapping[str, Any]) -> float | timedelta | None:
    """The ``ttl`` litellm passes among the call keywords (None: the backend's default_ttl)."""
    ttl: float | timedelta | None = call_kwargs.get("ttl")
    return ttl


def _tags(call_kwargs: Mapping[str, Any]) -> tuple[str, ...]:
    """The entry's tags: ``tags`` in the request's cache controls (``cache={"tags": [...]}``,
    which litellm hands every write untouched). Not ``metadata["tags"]``: litellm and its proxy
    use those for routing and spend tracking, and they need not be valid cache tags."""
    controls = call_kwargs.get("cache")
    if not isinstance(controls, Mapping) or controls.get("tags") is None:
        return ()
    given = controls["tags"]
    if isinstance(given, str):
        raise TypeError('cache={"tags": ...} takes a list of tags, not one string')
    return normalize_tags(given, 'cache={"tags": ...}')


def _batch_keys(key_list: Sequence[str | None] | None, keys: Sequence[str] | None) -> list[str]:
    """The keys to fetch; None keys (which RedisCache skips) are dropped."""
    if (key_list is None) == (keys is None):
        raise TypeError("pass exactly one of key_list (RedisCache style) or keys= (InMemoryCache)")
    chosen: Sequence[str | None] = key_list if key_list is not None else (keys or ())
    return list(dict.fromkeys(key for key in chosen if key is not None))


def _batch_result(
    key_list: Sequence[str | None] | None,
    keys: Sequence[str] | None,
    found: Mapping[str, Any],
) -> dict[str, Any] | list[Any]:
    """RedisCache's dict for ``key_list``; InMemoryCache's list, aligned with ``keys``."""
    if keys is not None:
        return [found.get(key) for key in keys]
    assert key_list is not None
    return {key: found.get(key) for key in key_list if key is not None}
