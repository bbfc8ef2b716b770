"""``cache.disabled()``: caching switched off for one block of code, in one context only.

Each cache has a :class:`Switch`. Inside ``with cache.disabled():`` reads of that cache miss,
its writes are skipped and ``get_or_set`` runs the factory and returns its value, storing
nothing. The state is a :class:`~contextvars.ContextVar`, so it follows the code that entered
the block (and the tasks it creates, which copy its context) and nothing else: other tasks and
threads keep their cache. The sync facade runs its coroutines on a private loop, in another
thread; :func:`carry` hands them the caller's state. Pure: no I/O, no asyncio.
"""

from __future__ import annotations

import contextlib
from collections.abc import Coroutine, Iterator
from contextvars import ContextVar
from typing import Any, Final, TypeVar

__all__ = ["Switch", "carry"]

T = TypeVar("T")

#: The switches turned off in the current context (one variable for every cache: a
#: ContextVar is made once, at import, as the docs advise).
_OFF: Final[ContextVar[frozenset[Switch]]] = ContextVar("s3cache_disabled", default=frozenset())


class Switch:
    """Whether one cache is on in the current context; ``with switch.disabled():`` turns it
    off there. Compared by identity: one per cache."""

    __slots__ = ()

    @property
    def off(self) -> bool:
        """Whether caching is off in the current context."""
        return self in _OFF.get()

    @contextlib.contextmanager
    def disabled(self) -> Iterator[None]:
        """Turn the cache off until the block ends (nested blocks are fine)."""
        token = _OFF.set(_OFF.get() | {self})
        try:
            yield
        finally:
            _OFF.reset(token)


def carry(coro: Coroutine[Any, Any, T]) -> Coroutine[Any, Any, T]:
    """``coro``, to run in another context (the private loop's thread) with the switches that
    are off here; ``coro`` itself when none is (the common case costs nothing)."""
    state = _OFF.get()
    return _within(state, coro) if state else coro


async def _within(state: frozenset[Switch], coro: Coroutine[Any, Any, T]) -> T:
    token = _OFF.set(state)  # the task runs in a context of its own: no leak to the loop
    try:
        return await coro
    finally:
        _OFF.reset(token)
