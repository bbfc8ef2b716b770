"""Worker processes for fleet-wide single-flight and lock tests and benchmarks.

Processes come from a fork server that has imported s3cache once (:data:`CONTEXT`): a clean,
single-threaded parent, and a start in milliseconds rather than a second of imports each.

:func:`start_workers` starts processes that each open an :class:`AsyncS3Cache`, report
``ready``, then, round after round, wait for the round's start event and run ``tasks``
concurrent ``get_or_set`` calls of one key. Everything they do is reported as tuples:
``("ready", pid)``, ``("waiting", pid)`` (the first time a caller pauses for another process's
lease), ``("factory", pid, round)``, and ``("done", pid, round, values, finished, latencies)``
with ``time.monotonic()`` of the last caller's answer (the clock is shared by all processes)
and each caller's seconds from its call to its answer. A round's background refreshes (a stale
value served) have ended when its ``done`` is sent, so its ``factory`` reports have all been
sent before it; neither ``finished`` nor the latencies include them. Each
worker reports on a pipe of its own: a worker killed while sending cannot leave a lock that the
others need held (as one multiprocessing Queue's write lock would).

:func:`start_load_workers` starts processes for load instead (the scale benchmark): each runs
a mixed workload of gets and sets for a fixed time once started, and reports every operation.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from s3cache import AsyncS3Cache, S3CacheError, _fleet

__all__ = [
    "CONTEXT",
    "INCREMENTS",
    "VALUE",
    "FleetJob",
    "LoadJob",
    "Round",
    "Workers",
    "count_under_lock",
    "hold_then_pause",
    "start_load_workers",
    "start_workers",
]

VALUE = {"answer": 42}
#: Lock increments per process in :func:`count_under_lock`.
INCREMENTS = 3
CONTEXT = multiprocessing.get_context("forkserver")
CONTEXT.set_forkserver_preload([__name__])


@dataclass(frozen=True, slots=True)
class Round:
    """One stampede: ``tasks`` callers per process on ``key``, with or without a lease;
    ``ttl`` and ``stale_ttl`` are passed to ``get_or_set`` (None: the cache's)."""

    key: str
    lease: float | None
    ttl: float | None = None
    stale_ttl: float | None = None


@dataclass(frozen=True, slots=True)
class FleetJob:
    """What every worker does. ``block_first``: the fleet's first factory call blocks until
    ``release`` is set (or forever, for a process that is to be killed); later calls and all
    calls without it take ``factory_s`` seconds."""

    cache_kwargs: dict[str, Any]
    rounds: list[Round]
    tasks: int = 1
    factory_s: float = 0.0
    block_first: bool = False
    report_waiting: bool = False


@dataclass
class Workers:
    """Handles on the spawned workers and their shared synchronisation objects."""

    processes: list[Any]
    channels: list[Connection]  # the reading end of each worker's report pipe
    starts: list[Any]  # one Event per round
    release: Any  # Event ending the blocked first factory call
    calls: Any  # shared count of factory calls (Value)
    _pending: list[tuple[Any, ...]] = field(default_factory=list)

    def expect(self, kind: str, count: int, timeout: float = 60.0) -> list[tuple[Any, ...]]:
        """The next ``count`` reports of ``kind`` (others are kept for later calls)."""
        deadline = time.monotonic() + timeout
        found = [m for m in self._pending if m[0] == kind][:count]
        for m in found:
            self._pending.remove(m)
        while len(found) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{len(found)} of {count} {kind!r} reports; {self._pending}")
            for message in self._receive(left):
                if message[0] == kind and len(found) < count:
                    found.append(message)
                else:
                    self._pending.append(message)
        return found

    def reports(self, kind: str) -> Iterator[tuple[Any, ...]]:
        """Reports of ``kind`` received so far and not yet taken (reads what has arrived first)."""
        while messages := self._receive(0):
            self._pending.extend(messages)
        return (m for m in self._pending if m[0] == kind)

    def _receive(self, timeout: float) -> list[tuple[Any, ...]]:
        """Reports that arrive within ``timeout`` seconds; a killed worker's pipe is dropped."""
        messages: list[tuple[Any, ...]] = []
        for ready in wait(self.channels, timeout):
            assert isinstance(ready, Connection)
            try:
                messages.append(ready.recv())
            except EOFError:
                self.channels.remove(ready)
                ready.close()
        return messages

    def stop(self) -> None:
        """Kill what is still running and reap every process."""
        for p in self.processes:
            if p.is_alive():
                p.kill()
        for p in self.processes:
            p.join(30)
        for channel in self.channels:
            channel.close()


def start_workers(job: FleetJob, count: int) -> Workers:
    """Start ``count`` workers running ``job``; returns at once (wait for ``ready`` reports)."""
    starts = [CONTEXT.Event() for _ in job.rounds]
    release = CONTEXT.Event()
    calls = CONTEXT.Value("i", 0)
    processes, channels = _spawn(count, _main, (job, starts, release, calls))
    return Workers(processes, channels, starts, release, calls)


def _spawn(
    count: int, target: Callable[..., None], args: tuple[Any, ...]
) -> tuple[list[Any], list[Connection]]:
    """``count`` processes running ``target(report_pipe, *args)``, and the pipes' reading ends."""
    processes, channels = [], []
    for _ in range(count):
        reader, writer = CONTEXT.Pipe(duplex=False)
        process = CONTEXT.Process(target=target, args=(writer, *args), daemon=True)
        process.start()
        writer.close()  # the child has its own copy; EOF on the reader once the child is gone
        processes.append(process)
        channels.append(reader)
    return processes, channels


def _main(events: Connection, job: FleetJob, starts: list[Any], release: Any, calls: Any) -> None:
    with events:
        asyncio.run(_work(job, events, starts, release, calls))


async def _work(
    job: FleetJob, events: Connection, starts: list[Any], release: Any, calls: Any
) -> None:
    pid = os.getpid()
    if job.report_waiting:
        _report_first_pause(_fleet, events, pid)
    current = 0

    async def factory() -> dict[str, int]:
        with calls.get_lock():
            calls.value += 1
            first = calls.value == 1
        events.send(("factory", pid, current))
        if first and job.block_first:
            await asyncio.to_thread(release.wait)
        else:
            await asyncio.sleep(job.factory_s)
        return VALUE

    async def timed(spec: Round) -> tuple[Any, float]:
        """One caller's value (or exception) and its seconds from call to answer."""
        began = time.monotonic()
        try:
            value = await cache.get_or_set(
                spec.key, factory, spec.ttl, lease=spec.lease, stale_ttl=spec.stale_ttl
            )
        except Exception as exc:  # reported, as gather(return_exceptions=True) did
            value = exc
        return value, time.monotonic() - began

    async with AsyncS3Cache(**job.cache_kwargs) as cache:
        await cache.check()  # opens the client and learns about conditional writes
        events.send(("ready", pid))
        for current, spec in enumerate(job.rounds):
            await asyncio.to_thread(starts[current].wait)
            answers = await asyncio.gather(*(timed(spec) for _ in range(job.tasks)))
            finished = time.monotonic()
            # A stale value served started a refresh in the background: let it end (its
            # factory call, if any, is this round's) before reporting the round done.
            await asyncio.gather(*cache._refresher._tasks.values(), return_exceptions=True)
            values = [_plain(v) for v, _ in answers]
            events.send(("done", pid, current, values, finished, [t for _, t in answers]))


def _report_first_pause(fleet: Any, events: Connection, pid: int) -> None:
    """Report the first time this process pauses for another process's lease."""
    pause = fleet._pause
    reported = False

    async def reporting_pause(seconds: float) -> None:
        nonlocal reported
        if not reported:
            reported = True
            events.send(("waiting", pid))
        await pause(seconds)

    fleet._pause = reporting_pause


def _plain(value: Any) -> Any:
    return repr(value) if isinstance(value, BaseException) else value


# -- lock workers -----------------------------------------------------------------------------


def count_under_lock(kwargs: dict[str, Any], start: Any, out: Any) -> None:
    """Add one to the ``counter`` entry :data:`INCREMENTS` times, each a read-modify-write
    under ``lock("counter")``, recording the fencing token of each write."""
    asyncio.run(_count(kwargs, start, out))


async def _count(kwargs: dict[str, Any], start: Any, out: Any) -> None:
    async with AsyncS3Cache(**kwargs) as cache:
        await cache.check()
        out.put(("ready", os.getpid()))
        await asyncio.to_thread(start.wait)
        for _ in range(INCREMENTS):
            async with cache.lock("counter", ttl=2, wait=120) as held:
                doc = await cache.get("counter", {"n": 0, "tokens": []})
                doc["n"] += 1
                doc["tokens"].append(held.token)
                await cache.set("counter", doc)
        out.put(("done", os.getpid()))


def hold_then_pause(kwargs: dict[str, Any], resumed: Any, out: Any) -> None:
    """Hold ``lock("report", ttl=1)``, report ``("acquired", pid, token)``, and wait for
    ``resumed`` (the parent stops and continues this process meanwhile). Then wait for the
    renewal to report the loss, and write ``guarded`` only if no larger token wrote it since:
    reports ``("after", lost, stale)``."""
    asyncio.run(_hold_then_pause(kwargs, resumed, out))


async def _hold_then_pause(kwargs: dict[str, Any], resumed: Any, out: Any) -> None:
    async with AsyncS3Cache(**kwargs) as cache, cache.lock("report", ttl=1) as held:
        out.put(("acquired", os.getpid(), held.token))
        await asyncio.to_thread(resumed.wait)
        for _ in range(200):  # the overdue renewal runs first thing after SIGCONT
            if held.lost:
                break
            await asyncio.sleep(0.05)
        guard = await cache.get("guarded")
        stale = guard is not None and guard["token"] > held.token
        if not stale:
            await cache.set("guarded", {"token": held.token, "by": "paused"})
        out.put(("after", held.lost, stale))


# -- load workers -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoadJob:
    """A mixed workload: ``tasks`` callers per process, each getting (``read_fraction`` of the
    time) or setting a key drawn uniformly from ``keys`` keys, values of ``value_size`` bytes,
    for ``seconds`` after the start signal. Operations raise (pass ``on_error="raise"``)."""

    cache_kwargs: dict[str, Any]
    seconds: float
    tasks: int = 8
    keys: int = 1000
    read_fraction: float = 0.9
    value_size: int = 1024


def start_load_workers(job: LoadJob, count: int) -> Workers:
    """Start ``count`` load workers; each reports ``("ready", pid)``, then, once
    ``starts[0]`` is set and its time is up, ``("done", pid, ops)``: one
    ``(finished, seconds, error kind or "")`` per operation (``time.monotonic()``)."""
    start = CONTEXT.Event()
    processes, channels = _spawn(count, _load_main, (job, start))
    return Workers(processes, channels, [start], CONTEXT.Event(), CONTEXT.Value("i", 0))


def _load_main(events: Connection, job: LoadJob, start: Any) -> None:
    with events:
        asyncio.run(_load(job, events, start))


async def _load(job: LoadJob, events: Connection, start: Any) -> None:
    pid = os.getpid()
    rng = random.Random(pid)
    value = b"v" * job.value_size
    ops: list[tuple[float, float, str]] = []

    async def caller(deadline: float) -> None:
        while (began := time.monotonic()) < deadline:
            key = f"k{rng.randrange(job.keys)}"
            kind = ""
            try:
                if rng.random() < job.read_fraction:
                    await cache.get(key)
                else:
                    await cache.set(key, value)
            except S3CacheError as exc:
                kind = exc.kind
            finished = time.monotonic()
            ops.append((finished, finished - began, kind))

    async with AsyncS3Cache(**job.cache_kwargs) as cache:
        await cache.get("warm-up")  # opens the client before the clock starts
        events.send(("ready", pid))
        await asyncio.to_thread(start.wait)
        deadline = time.monotonic() + job.seconds
        await asyncio.gather(*(caller(deadline) for _ in range(job.tasks)))
    events.send(("done", pid, ops))
