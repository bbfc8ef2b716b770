"""An asyncio event loop on a thread of its own, for the in-process test servers and proxies.

Stopping it settles what is left on the loop before closing it: tasks still pending (a
connection the listening socket accepted in the last moment, whose handler never ran) are
cancelled and run to their end, and the callbacks that close transports get their turn. A bare
``loop.stop(); loop.close()`` leaves such sockets to the garbage collector, which then warns
``unclosed <socket.socket ...>`` inside whichever test happens to be running.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["LoopThread"]

T = TypeVar("T")

#: Rounds of cancel-and-settle at stop: a cancelled task may start another (a handler).
_SETTLE_ROUNDS = 5


class LoopThread:
    """``loop = LoopThread("name")``; ``loop.call(coro)`` runs a coroutine on it from any other
    thread and returns its result; ``loop.stop()`` stops, settles and closes it (idempotent)."""

    def __init__(self, name: str) -> None:
        """Start a new event loop on a daemon thread called ``name``."""
        self.loop = asyncio.new_event_loop()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        """Run ``coro`` on the loop and wait (at most ``timeout`` seconds) for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop, let it settle (see the module), join the thread, close the loop."""
        if self._stopped:
            return
        self._stopped = True
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self.loop.close()

    def _run(self) -> None:
        loop = self.loop
        asyncio.set_event_loop(loop)
        loop.run_forever()
        for _ in range(_SETTLE_ROUNDS):
            tasks = asyncio.all_tasks(loop)
            if not tasks:
                break
            for task in tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        # Transports closed in those last steps close their sockets in a callback: two turns.
        loop.run_until_complete(asyncio.sleep(0))
        loop.run_until_complete(asyncio.sleep(0))
