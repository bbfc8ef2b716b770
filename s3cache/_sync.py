"""The sync facade: :class:`S3Cache` runs an :class:`AsyncS3Cache` on the private loop.

Every method delegates to the core; nothing here knows about S3, keys or expiry.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine, Generator, Iterable, Mapping
from contextlib import AbstractContextManager
from datetime import timedelta
from typing import Any, Generic, Never, Self, TypeVar, cast, overload

from s3cache import _loop, _url
from s3cache._batch import DeleteResult
from s3cache._callkey import call_key
from s3cache._capabilities import Capabilities
from s3cache._core import AsyncS3Cache, CheckReport
from s3cache._disabling import carry
from s3cache._fleet import FleetLock, HeldLock
from s3cache._habits import with_handles
from s3cache._signatures import takes_method_parameters_of
from s3cache._stats import CacheStats
from s3cache._tagging import Tags, TagsOf, call_tags
from s3cache.errors import S3CacheError

__all__ = ["S3Cache", "SyncLock"]

T = TypeVar("T")
R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """``coro`` on the private loop, with the caller's ``cache.disabled()`` state carried."""
    return _loop.run(carry(coro))


class _FromCore(Generic[T]):
    """A read-only attribute of the facade that is its core's, with the core's docstring."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name
        self.__doc__ = getattr(AsyncS3Cache, name).__doc__

    @overload
    def __get__(self, facade: None, owner: type) -> Self: ...
    @overload
    def __get__(self, facade: S3Cache, owner: type) -> T: ...
    def __get__(self, facade: S3Cache | None, owner: type) -> Self | T:
        return self if facade is None else cast(T, getattr(facade._core, self._name))

    def __set__(self, facade: S3Cache, value: Never) -> None:
        """Refuse, as a property without a setter does (type checkers refuse it too)."""
        raise AttributeError(f"{type(facade).__name__}.{self._name} is read-only")


class S3Cache:
    """The blocking twin of :class:`AsyncS3Cache`: same constructor, same methods.

    Safe from many threads at once, from sync code called inside a running event loop, and in a
    forked child. All instances share one private event loop in a daemon thread.
    """

    @takes_method_parameters_of(AsyncS3Cache.__init__)
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._core = AsyncS3Cache(*args, **kwargs)

    @classmethod
    def _from_core(cls, core: AsyncS3Cache) -> S3Cache:
        """A facade over an existing core (integrations share one core between both APIs)."""
        facade = cls.__new__(cls)
        facade._core = core
        return facade

    @classmethod
    def from_url(cls, url: str, **overrides: Any) -> Self:
        """A cache configured by ``url`` (``s3://bucket/prefix?ttl=1h``); see
        :meth:`AsyncS3Cache.from_url`."""
        return cls(**_url.merge(_url.parse_url(url), overrides))

    def disabled(self) -> AbstractContextManager[None]:
        """``with cache.disabled():``: reads miss, writes are skipped, factories run, in this
        thread's context only; see :meth:`AsyncS3Cache.disabled`."""
        return self._core.disabled()

    def ttl(self, key: str) -> float | None:
        """Seconds the entry under ``key`` has left, or None; see :meth:`AsyncS3Cache.ttl`."""
        return _run(self._core.ttl(key))

    def expire(self, key: str, ttl: float | timedelta | str | None) -> bool:
        """Give the live entry under ``key`` a new ``ttl``; see :meth:`AsyncS3Cache.expire`."""
        return _run(self._core.expire(key, ttl))

    def get(self, key: str, default: Any = None) -> Any:
        """The value stored under ``key``, or ``default``; see :meth:`AsyncS3Cache.get`."""
        return _run(self._core.get(key, default))

    def _read_stale(self, key: str) -> tuple[Any, bool]:
        """:meth:`AsyncS3Cache._read_stale`, blocking (for the litellm backend's sync reads)."""
        return _run(self._core._read_stale(key))

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """The entries found among ``keys``; see :meth:`AsyncS3Cache.get_many`."""
        return _run(self._core.get_many(keys))

    def exists(self, key: str) -> bool:
        """Whether a live entry is stored under ``key``."""
        return _run(self._core.exists(key))

    def set(
        self, key: str, value: Any, ttl: float | timedelta | str | None = None, tags: Tags = ()
    ) -> None:
        """Store ``value`` under ``key`` (with ``tags``); see :meth:`AsyncS3Cache.set`."""
        return _run(self._core.set(key, value, ttl, tags))

    def set_many(
        self,
        mapping: Mapping[str, Any],
        ttl: float | timedelta | str | None = None,
        tags: Tags = (),
    ) -> dict[str, S3CacheError]:
        """Store every item of ``mapping``; returns the keys not stored, with why; see
        :meth:`AsyncS3Cache.set_many`."""
        return _run(self._core.set_many(mapping, ttl, tags))

    def add(self, key: str, value: Any, ttl: float | timedelta | str | None = None) -> bool:
        """Store ``value`` only if no live entry exists; see :meth:`AsyncS3Cache.add`."""
        return _run(self._core.add(key, value, ttl))

    @takes_method_parameters_of(AsyncS3Cache.get_or_set)
    def get_or_set(self, key: str, factory: Callable[[], Any], *args: Any, **options: Any) -> Any:
        """The value under ``key``, made by ``factory()`` on a miss; see
        :meth:`AsyncS3Cache.get_or_set`. A sync factory runs in the calling thread; concurrent
        callers from any thread share one run of it (with a ``lease``: one in the fleet). A
        background refresh (``stale_ttl``) runs it in a worker thread once the caller has its
        value."""
        return _loop.run_with_caller(
            lambda caller: carry(
                self._core.get_or_set(
                    key, functools.partial(caller.call_anywhere, factory), *args, **options
                )
            )
        )

    @takes_method_parameters_of(AsyncS3Cache.cached)
    def cached(
        self,
        ttl: float | timedelta | str | None = None,
        key: Callable[..., str] | None = None,
        *,
        tags: TagsOf = (),
        **options: Any,
    ) -> Callable[[F], F]:
        """Decorate a function (sync or async) so that its results are cached.

        Sync functions block and run in their caller's thread; their wrapper's ``.key(*args)``
        is a call's key and ``.invalidate(*args)`` deletes its entry (blocking). Coroutine and
        async generator functions are wrapped by :meth:`AsyncS3Cache.cached` and run on the
        caller's event loop. ``tags``: a list, or a function of the call's arguments giving
        one (see :meth:`AsyncS3Cache.cached`).
        """
        core_decorator = self._core.cached(ttl, key, tags=tags, **options)  # validates
        tags_of = call_tags(tags)

        def decorate(func: F) -> F:
            if inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func):
                return cast(F, core_decorator(func))

            @functools.wraps(func)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                cache_key = call_key(func, key, args, kwargs)
                factory, call = functools.partial(func, *args, **kwargs), tags_of(args, kwargs)
                return self.get_or_set(cache_key, factory, ttl, tags=call, **options)

            return cast(F, with_handles(wrapper, func, key, self.delete))

        return decorate

    def lock(
        self, name: str, ttl: float | timedelta, *, wait: float | timedelta | None = None
    ) -> SyncLock:
        """A fleet-wide lock: ``with cache.lock("nightly-report", ttl=60, wait=10) as held``; see
        :meth:`AsyncS3Cache.lock`. It is renewed on the private loop, so a block that keeps
        this thread busy does not starve the renewals."""
        return SyncLock(self._core.lock(name, ttl, wait=wait))

    def invalidate(self, *tags: str) -> bool:
        """Invalidate every entry carrying one of ``tags``, fleet-wide; True once stored; see
        :meth:`AsyncS3Cache.invalidate`."""
        return _run(self._core.invalidate(*tags))

    def delete(self, key: str) -> bool:
        """Remove ``key``; True when a live entry was there."""
        return _run(self._core.delete(key))

    def delete_many(self, keys: Iterable[str]) -> DeleteResult:
        """Remove ``keys``; returns how many live entries were removed (an ``int``) and which
        keys failed; see :meth:`AsyncS3Cache.delete_many`."""
        return _run(self._core.delete_many(keys))

    def clear(self, prefix: str = "") -> DeleteResult:
        """Delete every object under the prefix (+ ``prefix``); returns how many went; see
        :meth:`AsyncS3Cache.clear`."""
        return _run(self._core.clear(prefix))

    def iter_keys(self, prefix: str = "") -> Generator[str, None, None]:
        """The keys under the prefix (+ ``prefix``); see :meth:`AsyncS3Cache.iter_keys`.

        Listed on the private loop a page at a time, as the iterator is consumed.
        """
        return _loop.iterate(self._core.iter_keys(prefix))

    def check(self) -> CheckReport:
        """Prove the bucket is reachable and writable; see :meth:`AsyncS3Cache.check`."""
        return _run(self._core.check())

    def supports_conditional_writes(self) -> bool:
        """Whether the server honours ``If-None-Match: *``; see
        :meth:`AsyncS3Cache.supports_conditional_writes`."""
        return _run(self._core.supports_conditional_writes())

    def supports_conditional_replace(self) -> bool:
        """Whether the server honours ``If-Match`` on PutObject; see
        :meth:`AsyncS3Cache.supports_conditional_replace`."""
        return _run(self._core.supports_conditional_replace())

    def capabilities(self) -> Capabilities:
        """What the server does with conditional writes; see :meth:`AsyncS3Cache.capabilities`."""
        return _run(self._core.capabilities())

    def stats(self) -> CacheStats:
        """A snapshot of this cache's counters."""
        return self._core.stats()

    def close(self) -> None:
        """Close the clients; idempotent."""
        return _run(self._core.close())

    prefix = _FromCore[str]()
    bucket = _FromCore[str]()
    endpoint_url = _FromCore[str | None]()

    def __enter__(self) -> S3Cache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return repr(self._core).replace("AsyncS3Cache(", "S3Cache(", 1)


class SyncLock:
    """``with cache.lock(...) as held:``, the blocking twin of the core's lock context manager."""

    def __init__(self, inner: FleetLock) -> None:
        self._inner = inner

    def __enter__(self) -> HeldLock:
        return _run(self._inner.__aenter__())

    def __exit__(self, *exc_info: object) -> None:
        _run(self._inner.__aexit__(*exc_info))
