"""The newest value this process has seen for each key, for ``stale_if_error``: pure, bounded.

While the store fails (:data:`~s3cache._freshness.STALE_IF_ERROR_KINDS`), ``get`` and
``get_or_set`` may serve the value last read or written through the cache for a key, when it is
at most ``stale_if_error`` seconds past its ttl. Each value is kept with when its ttl runs out on
this process's monotonic clock (estimated from the server's answer: ``remaining`` seconds from
when it was seen), at most ``max_keys`` keys, the least recently seen forgotten first. A write of
a key through the cache replaces its value (even when the write failed: the process has seen the
new value), a delete forgets it; only caches that use ``stale_if_error`` keep anything
(:attr:`LastSeen.armed`).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final

from s3cache._numbers import whole_number

__all__ = ["NOTHING", "LastSeen"]

#: What :meth:`LastSeen.within` returns when it has no value to serve.
NOTHING: Final[Any] = object()


class LastSeen:
    """Values by object key, each with the monotonic time its ttl runs out (inf: never)."""

    __slots__ = ("_clock", "_lock", "_max_keys", "_values", "armed")

    def __init__(
        self, max_keys: int = 1024, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._max_keys = whole_number(max_keys, "max_keys")
        self._clock = clock
        self._values: OrderedDict[str, tuple[Any, float]] = OrderedDict()
        self._lock = threading.Lock()
        #: Whether anything is kept: set once a policy with ``stale_if_error`` is used.
        self.armed = False

    def keep(self, okey: str, value: Any, remaining: float | None) -> None:
        """``value`` is the newest seen for ``okey``, with ``remaining`` seconds of ttl left
        now (negative: already past it; None: it never expires). Nothing unless armed."""
        if not self.armed:
            return
        expires = math.inf if remaining is None else self._clock() + remaining
        with self._lock:
            self._values[okey] = (value, expires)
            self._values.move_to_end(okey)
            while len(self._values) > self._max_keys:
                self._values.popitem(last=False)

    def within(self, okey: str, window: float) -> Any:
        """The value seen for ``okey`` if it is at most ``window`` seconds past its ttl, else
        :data:`NOTHING` (one past the window is forgotten)."""
        found = self._values.get(okey)
        if found is None:
            return NOTHING
        value, expires = found
        if self._clock() > expires + window:
            self.forget(okey)
            return NOTHING
        return value

    def forget(self, okey: str) -> None:
        """``okey`` was written or deleted: its old value is not the newest any more."""
        if self._values:
            with self._lock:
                self._values.pop(okey, None)

    def clear(self) -> None:
        """Forget every key (a ``clear()``)."""
        with self._lock:
            self._values.clear()

    def __len__(self) -> int:
        return len(self._values)
