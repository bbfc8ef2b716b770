"""The conveniences users of aiocache and cashews reach for (issue 26, item 7), on the core:
:meth:`~Habits.from_url`, :meth:`~Habits.disabled`, :meth:`~Habits.ttl` and
:meth:`~Habits.expire` (a mixin :class:`~s3cache.AsyncS3Cache` inherits), and the ``@cached``
decorator with ``.key()``, ``.invalidate()``, ``condition=`` and async generator functions
(:func:`cached`, which the core's ``cached`` returns)."""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AbstractContextManager
from datetime import timedelta
from typing import Any, Final, ParamSpec, Protocol, Self, TypeVar, cast, overload

from s3cache import _expiry, _fleet, _url
from s3cache._callkey import call_key
from s3cache._capabilities import Learner
from s3cache._coherence import Coherence
from s3cache._entries import Entries
from s3cache._pricing import Cost, check_cost
from s3cache._recorder import Recorder
from s3cache._refresh import Options
from s3cache._tagging import TagsOf, call_tags
from s3cache._transport import Transport
from s3cache.errors import NotSupportedError, S3CacheError

__all__ = ["CachedDecorator", "CachedFunction", "CachedIterator", "Habits", "cached"]

P = ParamSpec("P")
R = TypeVar("R")
Y = TypeVar("Y")
R_co = TypeVar("R_co", covariant=True)
Y_co = TypeVar("Y_co", covariant=True)
#: What a lookup returns when there is no entry (a stored None is a value).
_NOTHING: Final[Any] = object()


class CachedFunction(Protocol[P, R_co]):
    """A coroutine function wrapped by ``@cache.cached()``: call it as before; ``.key(...)``
    is the cache key of a call with those arguments, ``await .invalidate(...)`` deletes its
    entry (True when a live one was there)."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R_co]: ...

    def key(self, *args: P.args, **kwargs: P.kwargs) -> str: ...

    def invalidate(self, *args: P.args, **kwargs: P.kwargs) -> Awaitable[bool]: ...


class CachedIterator(Protocol[P, Y_co]):
    """An async generator function wrapped by ``@cache.cached()``: its items are stored once
    it finishes, and a hit replays them; ``.key`` and ``.invalidate`` as for functions."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> AsyncGenerator[Y_co, None]: ...

    def key(self, *args: P.args, **kwargs: P.kwargs) -> str: ...

    def invalidate(self, *args: P.args, **kwargs: P.kwargs) -> Awaitable[bool]: ...


class CachedDecorator(Protocol):
    """What ``cache.cached(...)`` returns: it wraps coroutine and async generator functions.

    Type checkers see the wrapper as a plain callable of the function's signature, so that a
    decorated method still binds ``self``; its ``.key`` and ``.invalidate`` are there at run
    time, typed by ``cast(CachedFunction[[int], User], load_user)`` (or
    :class:`CachedIterator`) where a checker should know them.
    """

    @overload
    def __call__(
        self, func: Callable[P, AsyncIterator[Y]]
    ) -> Callable[P, AsyncGenerator[Y, None]]: ...

    @overload
    def __call__(
        self, func: Callable[P, Coroutine[Any, Any, R]]
    ) -> Callable[P, Coroutine[Any, Any, R]]: ...


class Habits:
    """The conveniences of :class:`~s3cache.AsyncS3Cache` that compose its public methods and
    parts: built from a URL, switched off for a block, an entry's ttl read and changed."""

    _coherence: Coherence
    _entries: Entries
    _recorder: Recorder
    _transport: Transport
    _capabilities: Learner

    def _object_key(self, key: str) -> str:  # the core's
        raise NotImplementedError

    @classmethod
    def from_url(cls, url: str, **overrides: Any) -> Self:
        """A cache configured by ``url``: ``s3://bucket/prefix?endpoint_url=...&region=...&ttl=1h``.

        The query takes the constructor's parameters whose values are text, numbers, booleans
        or durations (see "Configuration from a URL" in the README); secrets and objects are
        refused there and go in ``overrides``, keyword arguments that win over the URL (an
        override of None counts as not given). Bad URLs raise ValueError, never showing it.
        """
        return cast(Any, cls)(**_url.merge(_url.parse_url(url), overrides))  # type: ignore[no-any-return]

    def disabled(self) -> AbstractContextManager[None]:
        """``with cache.disabled():``: in this block (and the tasks it starts) reads miss,
        writes are skipped and ``get_or_set`` and ``@cached`` functions run the factory and
        return its value, storing nothing. Other tasks and threads are unaffected (a
        :class:`~contextvars.ContextVar`). Deletes, leases and locks still go to S3."""
        return self._coherence.switch.disabled()

    async def ttl(self, key: str) -> float | None:
        """Seconds the entry under ``key`` has left on the server's clock (``math.inf`` when it
        never expires), or None when no live entry is there: one HEAD, the local tier is not
        asked. Like every expiry here it errs early, by up to a second."""
        okey = self._object_key(key)
        if self._coherence.switch.off:
            return None
        with self._recorder.op("ttl", okey) as op:
            try:
                headers = await self._transport.head(okey)
            except S3CacheError as exc:
                return op.failed(exc, None)
            if headers is None:
                op.miss()
                return None
            reason = self._entries.unverified(okey, None, headers)
            if reason is not None:
                op.unverified(reason)
                return None
            remaining = self._entries.remaining(headers)
            if _expiry.is_expired(remaining):
                op.expired()
                return None
            op.hit(0)
            return math.inf if remaining is None else remaining

    async def expire(self, key: str, ttl: float | timedelta | str | None) -> bool:
        """Give the live entry under ``key`` a new ``ttl``, counted from now (None: it never
        expires); True when it was changed. The entry is read and written back unchanged but
        for its ttl, with ``If-Match`` on the ETag read, so an entry deleted or replaced in
        between is never resurrected or overwritten (False then, as for no live entry). A
        lost response is settled by the write's nonce. Needs ``If-Match``
        (:class:`~s3cache.errors.NotSupportedError` otherwise)."""
        okey, seconds = self._object_key(key), _expiry.normalize_ttl(ttl)
        if self._coherence.switch.off:
            return False
        with self._recorder.op("expire", okey) as op, self._coherence.writing([okey]) as write:
            try:
                found = await self._transport.get(okey)
                if found is None:
                    op.miss()
                    return False
                body, headers = found
                reason = self._entries.unverified(okey, body, headers)
                if reason is not None:
                    op.unverified(reason)
                    return False
                if not self._entries.is_live(headers) or not headers.get("etag"):
                    op.expired()
                    return False
                capabilities = await self._capabilities.require("expire()")
                payload = self._entries.retimed(okey, body, headers, seconds)
                condition = capabilities.if_match(headers["etag"])
                written = await self._transport.put_if(okey, payload, if_match=condition)
            except NotSupportedError:
                raise
            except S3CacheError as exc:  # whether it landed is unknown: the tier keeps nothing
                return op.failed(exc, False)
            if not written.stored:
                op.rejected(len(payload.body))
                return False
            write.stored(payload, seconds, op.started)
            op.stored(len(payload.body))
            return True


def cached(
    cache: Any,  # the AsyncS3Cache (which imports this module)
    ttl: float | timedelta | str | None,
    key: Callable[..., str] | None,
    lease: float | timedelta | None,
    options: Options,
    condition: Callable[[Any], object] | None,
    tags: TagsOf = (),
    cost: Cost | None = None,
) -> CachedDecorator:
    """:meth:`AsyncS3Cache.cached`, its arguments validated now, not at the first call."""
    tags_of = call_tags(tags)
    cache._entries.ttl(ttl)
    cache._refresher.check(options)
    check_cost(cost)
    if lease is not None:
        _fleet.lease_seconds(lease)
    if condition is not None and not callable(condition):
        raise TypeError(f"condition must be callable, not {type(condition).__name__}")

    def decorate(func: Callable[..., Any]) -> Any:
        if inspect.isasyncgenfunction(func):
            if lease is not None or cost is not None or any(v is not None for v in options):
                raise TypeError(
                    f"{func.__qualname__} is an async generator function: its items are stored "
                    "when it finishes, so lease=, stale_ttl=, stale_if_error=, negative_ttl=, "
                    "early= and cost= do not apply to it"
                )
            return _iterator(cache, func, ttl, key, condition, tags_of)
        if not inspect.iscoroutinefunction(func):
            raise TypeError(
                f"AsyncS3Cache.cached wraps coroutine and async generator functions and "
                f"{func.__qualname__} is neither; use S3Cache.cached for sync functions"
            )

        @functools.wraps(func)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            factory = functools.partial(func, *args, **kwargs)
            return await cache.get_or_set(
                call_key(func, key, args, kwargs),
                factory,
                ttl,
                lease=lease,
                tags=tags_of(args, kwargs),
                condition=condition,
                cost=cost,
                **options._asdict(),
            )

        return with_handles(wrapper, func, key, cache.delete)

    return cast(CachedDecorator, decorate)


def _iterator(
    cache: Any,
    func: Callable[..., AsyncIterator[Any]],
    ttl: float | timedelta | str | None,
    key: Callable[..., str] | None,
    condition: Callable[[Any], object] | None,
    tags_of: Callable[[tuple[Any, ...], dict[str, Any]], tuple[str, ...]],
) -> Any:
    """``@cached`` for an async generator function: a hit replays the stored items; a miss
    streams the generator's items and stores them all once it finishes (if ``condition``
    holds for their list); one that raises or is closed early stores nothing."""

    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        cache_key, tags = call_key(func, key, args, kwargs), tags_of(args, kwargs)
        stored = await cache.get(cache_key, _NOTHING)
        if stored is not _NOTHING and isinstance(stored, list):
            for item in stored:
                yield item
            return
        items: list[Any] = []
        async for item in func(*args, **kwargs):
            items.append(item)
            yield item
        if condition is None or condition(items):
            await cache.set(cache_key, items, ttl, tags)

    return with_handles(wrapper, func, key, cache.delete)


def with_handles(
    wrapper: Callable[..., Any],
    func: Callable[..., Any],
    key: Callable[..., str] | None,
    delete: Callable[[str], Any],
) -> Any:
    """``wrapper`` of ``func`` with ``.key(*args, **kwargs)`` (the call's cache key) and
    ``.invalidate(*args, **kwargs)`` (``delete`` of that key: awaitable, or the sync
    facade's blocking delete)."""

    def key_of(*args: Any, **kwargs: Any) -> str:
        return call_key(func, key, args, kwargs)

    def invalidate(*args: Any, **kwargs: Any) -> Any:
        return delete(call_key(func, key, args, kwargs))

    wrapper.key = key_of  # type: ignore[attr-defined]
    wrapper.invalidate = invalidate  # type: ignore[attr-defined]
    return wrapper
