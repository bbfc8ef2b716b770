"""Single-flight: concurrent callers of the same key on one event loop share one task.

Each caller waits on a future of its own, which the shared task settles in its own last step,
so a cancelled caller never cancels the work the others are waiting for; when the last waiter
is cancelled, the flight leaves the table and its task is cancelled too, so that an abandoned
request does not hold its connection slot until its deadline. A caller never receives a
cancellation that is not its own.

Why not ``asyncio.shield`` on the task: per caller, that is an outer future and two done
callbacks (each with a copy of the context), and the result reaches the caller two turns of
the loop after the task ends; here it is one future, settled in the task's last step, and the
caller resumes on the next turn. Under load every turn is milliseconds of other callers' work,
and every object kept alive while a request is on the wire is one more for the garbage
collector to traverse.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, Final, TypeVar

__all__ = ["Flights"]

T = TypeVar("T")

#: What a shared task cancelled by someone other than its waiters hands them: start afresh.
_RESTART: Final[Any] = object()


class _Flight:
    """One shared task and the futures of the callers waiting for it."""

    __slots__ = ("task", "waiters")

    def __init__(self) -> None:
        self.task: asyncio.Task[None] | None = None
        self.waiters: list[asyncio.Future[Any]] = []


class Flights:
    """Shared tasks by key, one table per event loop (tasks cannot cross loops)."""

    __slots__ = ("_tables",)

    def __init__(self) -> None:
        self._tables: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _Flight]] = (
            weakref.WeakKeyDictionary()
        )

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
            flight = table.get(key)
            if flight is None:
                flight = table[key] = _Flight()
                flight.task = loop.create_task(_drive(table, key, flight, start()))
            waiter: asyncio.Future[Any] = loop.create_future()
            flight.waiters.append(waiter)
            try:
                result = await waiter
            except asyncio.CancelledError:
                _leave(table, key, flight, waiter)
                raise
            if result is not _RESTART:
                return result  # type: ignore[no-any-return]
            if retried or _being_cancelled():
                raise asyncio.CancelledError
            retried = True  # someone else's cancellation: never hand it on

    def forget(self, key: str) -> None:
        """Later callers of ``key`` start afresh (a write made the running task's answer old)."""
        for table in list(self._tables.values()):
            table.pop(key, None)

    def forget_all(self) -> None:
        for table in list(self._tables.values()):
            table.clear()


async def _drive(
    table: dict[str, _Flight], key: str, flight: _Flight, work: Coroutine[Any, Any, Any]
) -> None:
    """The shared task: await ``work``, then hand its outcome to every waiter in this, the
    task's last step (a done callback would take one more turn of the loop)."""
    try:
        result = await work
    except asyncio.CancelledError:
        _land(table, key, flight, True, _RESTART)
        raise
    except BaseException as exc:  # every waiter gets the work's own error
        _land(table, key, flight, False, exc)
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise  # as an unshared task would: it stops the loop
        return
    _land(table, key, flight, True, result)


def _land(table: dict[str, _Flight], key: str, flight: _Flight, ok: bool, outcome: Any) -> None:
    """Out of the table, then settle every waiter still waiting."""
    if table.get(key) is flight:
        del table[key]
    waiters, flight.waiters = flight.waiters, []
    for waiter in waiters:
        if waiter.done():  # cancelled: its caller is leaving
            continue
        if ok:
            waiter.set_result(outcome)
        else:
            waiter.set_exception(outcome)


def _leave(
    table: dict[str, _Flight], key: str, flight: _Flight, waiter: asyncio.Future[Any]
) -> None:
    """A cancelled caller leaves; the last one to leave cancels the task nobody wants now."""
    task = flight.task
    if task is None or task.done():
        return
    if waiter in flight.waiters:
        flight.waiters.remove(waiter)
    if not flight.waiters:
        # Out of the table at once, so that a caller arriving during the task's teardown
        # starts afresh instead of joining a cancellation.
        if table.get(key) is flight:
            del table[key]
        task.cancel()


def _being_cancelled() -> bool:
    """Whether the running task has a cancellation pending (its own, not a shared task's)."""
    current = asyncio.current_task()
    return current is not None and current.cancelling() > 0
