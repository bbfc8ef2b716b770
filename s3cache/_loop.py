"""The private event loop that the sync facade runs the async core on.

One daemon thread runs one loop for the whole process, started on first use. A forked child
starts its own on first use (the parent's thread does not exist there). At interpreter exit the
loop finalises its async generators, which closes every client opened on it, then stops.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import os
import threading
from collections.abc import Coroutine
from typing import Any, Final, TypeVar

__all__ = ["run"]

T = TypeVar("T")

_SHUTDOWN_TIMEOUT: Final = 5.0


class _LoopThread:
    """An event loop running forever in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._main, name="s3cache-loop", daemon=True)
        self.thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if threading.get_ident() == self.thread.ident:
            coro.close()
            raise RuntimeError(
                "s3cache.S3Cache was called from its own event-loop thread, which would deadlock; "
                "await the AsyncS3Cache methods there instead"
            )
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # KeyboardInterrupt and friends: do not leave the work running
            raise

    def stop(self) -> None:
        """Finalise async generators (closing clients), stop the loop, join the thread."""
        if not self.thread.is_alive():
            return
        finalise = asyncio.run_coroutine_threadsafe(self.loop.shutdown_asyncgens(), self.loop)
        with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
            finalise.result(_SHUTDOWN_TIMEOUT)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(_SHUTDOWN_TIMEOUT)
        if not self.thread.is_alive():
            self.loop.close()


_lock = threading.Lock()
_current: _LoopThread | None = None


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the private loop and block until it is done."""
    global _current
    current = _current
    if current is None:
        with _lock:
            if _current is None:
                _current = _LoopThread()
            current = _current
    return current.run(coro)


def _shutdown() -> None:
    global _current
    with _lock:
        current, _current = _current, None
    if current is not None:
        current.stop()


def _after_fork_in_child() -> None:
    # The thread is gone in the child and the lock may have been held at fork time.
    global _current, _lock
    _current = None
    _lock = threading.Lock()


atexit.register(_shutdown)
os.register_at_fork(after_in_child=_after_fork_in_child)
