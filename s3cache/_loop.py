"""The private event loop that the sync facade runs the async core on.

One daemon thread runs one loop for the whole process, started on first use. A forked child
starts its own on first use (the parent's thread does not exist there). At interpreter exit the
calls still in flight are cancelled (their daemon threads wait quietly for the end), then the loop
finalises its async generators, which closes every client opened on it, and stops.

Hand-offs are batched both ways, because with hundreds of caller threads the cost of a call is
mostly threads waking each other and fighting for the GIL: calls handed over while the loop has
not yet taken the earlier ones wake it once between them, and the callers whose calls ended in a
turn of the loop are released together just before it polls for I/O (where it lets go of the
GIL anyway), not one by one in the middle of a turn, each stealing the GIL at the loop's next
socket read or write.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import inspect
import os
import queue
import selectors
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine, Generator
from typing import Any, Final, TypeVar

__all__ = ["CallerThread", "iterate", "run", "run_with_caller"]

T = TypeVar("T")

_SHUTDOWN_TIMEOUT: Final = 5.0


_OWN_THREAD: Final = (
    "s3cache.S3Cache was called from its own event-loop thread, which would deadlock; "
    "await the AsyncS3Cache methods there instead"
)


class _CallerGone(RuntimeError):
    """The sync caller no longer waits for this cache call (a RuntimeError, as always)."""


class CallerThread:
    """Runs functions in a sync caller's thread on behalf of a coroutine on the private loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._closed = False
        self.requests: queue.SimpleQueue[tuple[Callable[[], Any], asyncio.Future[Any]] | None] = (
            queue.SimpleQueue()
        )

    async def call(self, func: Callable[[], Any]) -> Any:
        """``func()`` in the caller's thread; an awaitable result is awaited here, on the loop."""
        if self._closed:
            raise _CallerGone("the calling thread is no longer waiting for this cache call")
        reply: asyncio.Future[Any] = self._loop.create_future()
        self.requests.put((func, reply))
        result = await reply
        if inspect.isawaitable(result):
            result = await result
        return result

    async def call_anywhere(self, func: Callable[[], Any]) -> Any:
        """``func()`` in the caller's thread while it waits; once it has its answer (a stale
        value whose refresh runs in the background), in a worker thread."""
        try:
            return await self.call(func)
        except _CallerGone:
            result = await asyncio.to_thread(func)
        if inspect.isawaitable(result):
            result = await result
        return result

    def close(self) -> None:
        """Fail what the caller will never run (it stopped waiting: interrupt, error)."""
        self._closed = True
        while True:
            try:
                request = self.requests.get_nowait()
            except queue.Empty:
                return
            if request is not None:
                error = _CallerGone("the calling thread stopped waiting for this cache call")
                self._loop.call_soon_threadsafe(_settle, request[1], False, error)


def _interrupted(exc: BaseException) -> RuntimeError:
    """What the other waiters of a function interrupted in its caller's thread receive (the
    interrupt itself belongs to that thread; raised on the loop it would stop the loop)."""
    error = RuntimeError(
        f"the function run in the calling thread was interrupted by {type(exc).__name__}"
    )
    error.__cause__ = exc
    return error


def _settle(reply: asyncio.Future[Any], ok: bool, outcome: Any) -> None:
    if reply.done():
        return
    if ok:
        reply.set_result(outcome)
    else:
        reply.set_exception(outcome)


class _Selector(selectors.DefaultSelector):
    """The private loop's selector: before each poll, it releases the callers whose calls
    ended during the turn just run (:attr:`finished`)."""

    def __init__(self) -> None:
        super().__init__()
        self.finished: list[threading.Lock] = []

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if self.finished:
            self.release()
        return super().select(timeout)

    def release(self) -> None:
        """Release every finished caller now."""
        finished = self.finished  # the same list stays: tasks running hold it
        locks = finished.copy()
        finished.clear()
        for lock in locks:
            lock.release()


class _Call:
    """One facade call handed to the loop: its task, and a lock released when it is done."""

    __slots__ = ("coro", "done", "error", "result", "task")

    def __init__(self, coro: Coroutine[Any, Any, Any]) -> None:
        self.coro: Coroutine[Any, Any, Any] | None = coro
        self.done = threading.Lock()
        self.done.acquire()
        self.task: asyncio.Task[Any] | None = None
        self.result: Any = None
        self.error: BaseException | None = None

    def start(self, loop: asyncio.AbstractEventLoop, finished: list[threading.Lock]) -> None:
        """On the loop: start the task (unless the caller gave up first); once it ends, the
        caller's lock goes to ``finished``."""
        coro, self.coro = self.coro, None
        if coro is None:
            return
        try:
            self.task = loop.create_task(self._run(coro, finished))
        except RuntimeError as exc:  # the loop is closing
            coro.close()
            self.error = exc
            self.done.release()

    async def _run(self, coro: Coroutine[Any, Any, Any], finished: list[threading.Lock]) -> None:
        """Await ``coro``; in the task's own last step (a done callback would take one more
        turn of the loop), queue the caller's release for the loop's next poll."""
        try:
            self.result = await coro
        except asyncio.CancelledError:
            self.error = concurrent.futures.CancelledError()
            raise
        except BaseException as exc:  # noqa: BLE001 - every outcome goes back to the caller
            self.error = exc
        finally:
            finished.append(self.done)

    def cancel(self) -> None:
        """On the loop: the caller stopped waiting; cancel the task, or never start it."""
        coro, self.coro = self.coro, None
        if coro is not None:
            coro.close()
        elif self.task is not None:
            self.task.cancel()


class _LoopThread:
    """An event loop running forever in a daemon thread."""

    def __init__(self) -> None:
        # asyncio's selector loop whatever the policy says (uvloop's would not call the hook).
        self._selector = _Selector()
        self.loop: asyncio.AbstractEventLoop = asyncio.SelectorEventLoop(self._selector)
        self.exiting = False
        self._incoming: deque[_Call] = deque()  # handed over, not yet started
        self._woken = False  # a _start_incoming is scheduled and has not yet begun
        self.thread = threading.Thread(target=self._main, name="s3cache-loop", daemon=True)
        self.thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self._selector.release()  # calls that ended in the loop's last turn

    def _start_incoming(self) -> None:
        """On the loop: start every call handed over since the last time."""
        self._woken = False  # first: a call handed over from now on wakes the loop again
        incoming, loop, finished = self._incoming, self.loop, self._selector.finished
        while incoming:
            incoming.popleft().start(loop, finished)

    def _hand_over(self, call: _Call) -> None:
        """Queue ``call`` for the loop; wake the loop only if no wake-up is pending already.
        (Two callers may both wake it: the second wake-up finds nothing to do.)"""
        self._incoming.append(call)
        if self._woken:
            return
        self._woken = True
        try:
            self.loop.call_soon_threadsafe(self._start_incoming)
        except RuntimeError:  # the loop is closed (interpreter exit)
            self._woken = False
            with contextlib.suppress(ValueError):
                self._incoming.remove(call)
            raise

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` as a task on the loop and block until it is done.

        The hand-off is a queue and one lock: the task stores the outcome, and the loop
        releases the lock the caller is blocked on before its next poll. (The general
        ``run_coroutine_threadsafe`` chains two futures and a condition variable; on the
        facade's hot path that was most of its cost.)
        """
        if threading.get_ident() == self.thread.ident:
            coro.close()
            raise RuntimeError(_OWN_THREAD)
        call = _Call(coro)
        handed = False
        try:  # one block: an interrupt between the hand-over and the wait cancels too
            self._hand_over(call)
            handed = True
            call.done.acquire()
        except BaseException as exc:
            if not handed and isinstance(exc, RuntimeError):  # the loop is closed
                coro.close()
                raise
            # KeyboardInterrupt and friends: do not leave the work running.
            with contextlib.suppress(RuntimeError):  # the loop may be closed at exit
                self.loop.call_soon_threadsafe(call.cancel)
            self._park_if_exiting()
            raise
        if call.error is not None:
            error, call.error = call.error, None  # no reference cycle through the traceback
            if isinstance(error, concurrent.futures.CancelledError):
                self._park_if_exiting()  # cancelled by interpreter exit
            raise error
        result: T = call.result
        return result

    def run_with_caller(self, make: Callable[[CallerThread], Coroutine[Any, Any, T]]) -> T:
        """Like :meth:`run`, but the coroutine may call functions back in this (the caller's)
        thread through the :class:`CallerThread` it is given: a sync factory then runs where
        its caller is, not on the shared loop."""
        if threading.get_ident() == self.thread.ident:
            raise RuntimeError(_OWN_THREAD)
        caller = CallerThread(self.loop)
        future = asyncio.run_coroutine_threadsafe(make(caller), self.loop)
        future.add_done_callback(lambda _: caller.requests.put(None))
        reply: asyncio.Future[Any] | None = None  # the request being answered, if any
        try:
            while (request := caller.requests.get()) is not None:
                func, reply = request
                try:
                    outcome: tuple[bool, Any] = (True, func())
                except Exception as exc:  # noqa: BLE001 - the factory's error goes to every waiter
                    outcome = (False, exc)
                self._answer(reply, *outcome)
                reply = None
            return future.result()
        except BaseException as exc:
            if reply is not None:  # KeyboardInterrupt, SystemExit: tell the waiters, then raise
                self._answer(reply, False, _interrupted(exc))
            future.cancel()
            self._park_if_exiting()
            raise
        finally:
            caller.close()

    def _answer(self, reply: asyncio.Future[Any], ok: bool, outcome: Any) -> None:
        """Settle ``reply`` on the loop (which interpreter exit may have closed meanwhile)."""
        try:
            self.loop.call_soon_threadsafe(_settle, reply, ok, outcome)
        except RuntimeError:
            self._park_if_exiting()
            raise

    def _park_if_exiting(self) -> None:
        """A call cut short by interpreter exit (only daemon threads are left then) waits for
        the end of the process instead of printing a traceback about it."""
        if self.exiting:
            threading.Event().wait()

    def stop(self) -> None:
        """At interpreter exit: end the calls still in flight, finalise async generators (closing
        clients), stop the loop, join the thread."""
        if not self.thread.is_alive():
            return
        self.exiting = True
        finalise = asyncio.run_coroutine_threadsafe(self._finish(), self.loop)
        with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
            finalise.result(_SHUTDOWN_TIMEOUT)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(_SHUTDOWN_TIMEOUT)
        if not self.thread.is_alive():
            self.loop.close()

    async def _finish(self) -> None:
        """Cancel the tasks still running and let them unwind first, each in its own context:
        finalising the async generators they are suspended in from here would fail
        (aiobotocore's "Token ... was created in a different Context")."""
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel()
        if tasks:
            done, _ = await asyncio.wait(tasks, timeout=_SHUTDOWN_TIMEOUT / 2)
            for task in done:
                if not task.cancelled():
                    task.exception()  # retrieved: nobody is left to report it to
        await self.loop.shutdown_asyncgens()


_lock = threading.Lock()
_current: _LoopThread | None = None


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the private loop and block until it is done."""
    return _get().run(coro)


def iterate(items: AsyncIterator[T], batch: int = 1000) -> Generator[T, None, None]:
    """Consume an async iterator on the private loop, up to ``batch`` items per hop to it."""
    try:
        while True:
            taken, done = run(_take(items, batch))
            yield from taken
            if done:
                return
    finally:
        with contextlib.suppress(RuntimeError):  # finalised on the loop's own thread: let it be
            run(_close(items))


async def _take(items: AsyncIterator[T], batch: int) -> tuple[list[T], bool]:
    """Up to ``batch`` items, and whether the iterator is exhausted."""
    taken: list[T] = []
    while len(taken) < batch:
        try:
            taken.append(await anext(items))
        except StopAsyncIteration:
            return taken, True
    return taken, False


async def _close(items: AsyncIterator[Any]) -> None:
    """Close an async generator where it ran (a listing stopped early releases its request)."""
    close = getattr(items, "aclose", None)
    if close is not None:
        await close()


def _get() -> _LoopThread:
    """The private loop thread, started on first use."""
    global _current
    current = _current
    if current is None:
        with _lock:
            if _current is None:
                _current = _LoopThread()
            current = _current
    return current


def run_with_caller(make: Callable[[CallerThread], Coroutine[Any, Any, T]]) -> T:
    """Run ``make(caller)`` on the private loop; it may run functions back in this thread."""
    return _get().run_with_caller(make)


def _shutdown() -> None:
    global _current
    with _lock:
        current, _current = _current, None
    if current is not None:
        current.stop()


def _after_fork_in_child() -> None:
    # The thread is gone in the child and the lock may have been held at fork time.
    global _current, _lock
    inherited, _current = _current, None
    _lock = threading.Lock()
    if inherited is not None:
        # Its clients' sockets and epoll instance are shared with the parent, so they are never
        # touched here; nor may their finalisers log "Unclosed client session" when this exits.
        inherited.loop.set_exception_handler(_ignore_exception)


def _ignore_exception(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The exception handler of a loop inherited through fork: it has nobody to report to."""


atexit.register(_shutdown)
os.register_at_fork(after_in_child=_after_fork_in_child)
