"""Single-flight: concurrent callers of the same key on one event loop share one task.

Callers await the shared task through ``asyncio.shield``, so a cancelled caller never cancels
the work the others are waiting for; when the last waiter is cancelled, the task leaves the table
and is cancelled too, so that an abandoned request does not hold its connection slot until its
deadline. A caller never receives a cancellation that is not its own.
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["Flights"]

T = TypeVar("T")


class Flights:
    """Shared tasks by key, one table per event loop (tasks cannot cross loops)."""

    __slots__ = ("_tables", "_waiters")

    def __init__(self) -> None:
        self._tables: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[str, asyncio.Task[Any]]
        ] = weakref.WeakKeyDictionary()
        self._waiters: dict[asyncio.Task[Any], int] = {}  # callers awaiting each task

    async def join(self, key: str, start: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Await the task running for ``key``, starting it with ``start()`` if there is none.

        A caller only ever sees its own cancellation: if the shared task is cancelled by anyone
        else, its waiters start it afresh (once; work that cancels itself again propagates).
        """
        loop = asyncio.get_running_loop()
        table = self._tables.get(loop)
        if table is None:
            table = self._tables[loop] = {}
        retried = False
        while True:
            task = table.get(key)
            if task is None or task.cancelled():
                task = table[key] = loop.create_task(start())
                task.add_done_callback(functools.partial(_landed, table, key))
            self._waiters[task] = self._waiters.get(task, 0) + 1
            try:
                result: T = await asyncio.shield(task)
                return result
            except asyncio.CancelledError:
                if retried or not task.cancelled() or _being_cancelled():
                    raise
                retried = True  # someone else's cancellation: never hand it on
            finally:
                self._leave(table, key, task)

    def _leave(
        self, table: dict[str, asyncio.Task[Any]], key: str, task: asyncio.Task[Any]
    ) -> None:
        """One waiter fewer; the last one to leave early cancels the task nobody wants now."""
        left = self._waiters.pop(task) - 1
        if left:
            self._waiters[task] = left
        elif not task.done():
            # Out of the table at once, so that a caller arriving during the task's teardown
            # starts afresh instead of joining a cancellation.
            if table.get(key) is task:
                del table[key]
            task.cancel()

    def forget(self, key: str) -> None:
        """Later callers of ``key`` start afresh (a write made the running task's answer old)."""
        for table in list(self._tables.values()):
            table.pop(key, None)

    def forget_all(self) -> None:
        for table in list(self._tables.values()):
            table.clear()


def _being_cancelled() -> bool:
    """Whether the running task has a cancellation pending (its own, not a shared task's)."""
    current = asyncio.current_task()
    return current is not None and current.cancelling() > 0


def _landed(table: dict[str, asyncio.Task[Any]], key: str, task: asyncio.Task[Any]) -> None:
    if table.get(key) is task:
        del table[key]
    if not task.cancelled():
        task.exception()  # retrieved: every waiter has it, or none is left to care
