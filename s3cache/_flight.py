"""Single-flight: concurrent callers of the same key on one event loop share one task.

Callers await the shared task through ``asyncio.shield``, so a cancelled caller never cancels
the work the others are waiting for; when the last waiter is cancelled, the task is cancelled
too, so that an abandoned request does not hold its connection slot until its deadline.
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
        """Await the task running for ``key``, starting it with ``start()`` if there is none."""
        loop = asyncio.get_running_loop()
        table = self._tables.get(loop)
        if table is None:
            table = self._tables[loop] = {}
        task = table.get(key)
        if task is None:
            task = table[key] = loop.create_task(start())
            task.add_done_callback(functools.partial(_landed, table, key))
        self._waiters[task] = self._waiters.get(task, 0) + 1
        try:
            result: T = await asyncio.shield(task)
        finally:
            left = self._waiters.pop(task) - 1
            if left:
                self._waiters[task] = left
            elif not task.done():
                task.cancel()  # the last waiter was cancelled: nobody wants the answer
        return result

    def forget(self, key: str) -> None:
        """Later callers of ``key`` start afresh (a write made the running task's answer old)."""
        for table in list(self._tables.values()):
            table.pop(key, None)

    def forget_all(self) -> None:
        for table in list(self._tables.values()):
            table.clear()


def _landed(table: dict[str, asyncio.Task[Any]], key: str, task: asyncio.Task[Any]) -> None:
    if table.get(key) is task:
        del table[key]
    if not task.cancelled():
        task.exception()  # retrieved: every waiter has it, or none is left to care
