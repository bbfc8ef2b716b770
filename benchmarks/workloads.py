"""Workloads (which operation on which key) and the drivers that run one cell of the grid.

A cell: one contender, one workload, one value size, one concurrency. N workers (tasks or
threads) loop until the cell's deadline or op budget; each op is timed; the process's CPU time
and the loop heartbeat are taken over the whole window.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Final

from benchmarks.contenders import JSON_KEYS, AsyncContender, Contender, ThreadedContender
from benchmarks.metrics import CellResult, Heartbeat

__all__ = [
    "SIZES",
    "WORKLOADS",
    "Budget",
    "keyspace",
    "pick",
    "run_cell",
    "size_label",
    "value_kind",
]

#: The ``-json`` workloads store and read a JSON document; the others raw bytes.
WORKLOADS: Final = ("get-hit", "get-miss", "set", "mixed", "get-hit-json", "set-json")
_JSON_WORKLOADS: Final = frozenset({"get-hit-json", "set-json"})
SIZES: Final = {"1KiB": 1024, "64KiB": 64 * 1024, "1MiB": 1024 * 1024}
_MIXED_GETS: Final = 0.9


def size_label(size: int) -> str:
    """``1KiB`` for 1024 and so on (the inverse of :data:`SIZES`)."""
    for label, value in SIZES.items():
        if value == size:
            return label
    return f"{size}B"


def value_kind(workload: str) -> str:
    """``json`` for the JSON workloads, ``bytes`` for the others."""
    return "json" if workload in _JSON_WORKLOADS else "bytes"


def _key(kind: str, size: int, index: int) -> str:
    """The relative key of entry ``index`` of a size's keyspace (JSON ones apart)."""
    return f"{JSON_KEYS if kind == 'json' else ''}{size}/k{index}"


def keyspace(size: int, concurrency: int) -> int:
    """How many keys are preloaded per contender and size.

    At least one per worker, so that workers never read the same key at once (s3cache would
    coalesce those reads into one request, which is a feature, but not what this measures),
    at least 64 (16 for 1 MiB), and at most 64 MiB worth.
    """
    base = max(8, min(64, (16 * 2**20) // size))
    return max(base, min(concurrency, (64 * 2**20) // size))


def pick(
    workload: str, size: int, rng: random.Random, worker: int = 0, concurrency: int = 1
) -> tuple[str, str]:
    """The next op of ``workload`` for ``worker``: (``hit`` | ``miss`` | ``set``, relative key).

    When the keyspace has a key per worker, each worker keeps to its own keys (``worker``,
    ``worker + concurrency``, ...): no two ops on one key are ever in flight together.
    """
    if workload == "get-miss":
        return "miss", f"{size}/absent-{rng.randrange(1 << 40)}"
    space = keyspace(size, concurrency)
    if space >= concurrency:
        index = worker + concurrency * rng.randrange(space // concurrency)
    else:
        index = rng.randrange(space)
    key = _key(value_kind(workload), size, index)
    if workload in ("get-hit", "get-hit-json"):
        return "hit", key
    if workload in ("set", "set-json"):
        return "set", key
    if workload == "mixed":
        return ("hit" if rng.random() < _MIXED_GETS else "set"), key
    raise ValueError(f"unknown workload {workload!r}; choose from {', '.join(WORKLOADS)}")


@dataclass(slots=True)
class Budget:
    """When workers stop: a wall-clock deadline and, optionally, a total number of ops."""

    seconds: float
    max_ops: int | None = None
    _tickets: Iterator[int] = field(default_factory=itertools.count)
    _deadline: float = 0.0

    def start(self) -> None:
        self._deadline = time.perf_counter() + self.seconds
        self._tickets = itertools.count()

    def another(self) -> bool:
        """Whether a worker may start one more op (thread-safe: ``next`` on a count is atomic)."""
        if self.max_ops is not None and next(self._tickets) >= self.max_ops:
            return False
        return time.perf_counter() < self._deadline


@dataclass(slots=True)
class _Tally:
    durations: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None

    def failed(self, what: str) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = what


def _check(kind: str, found: bool, tally: _Tally) -> bool:
    if kind == "hit" and not found:
        tally.failed("unexpected miss on a preloaded key")
        return False
    if kind == "miss" and found:
        tally.failed("unexpected hit on an absent key")
        return False
    return True


async def _async_worker(
    contender: AsyncContender,
    workload: str,
    size: int,
    worker: tuple[int, int, int],
    budget: Budget,
    tally: _Tally,
) -> None:
    seed, index, concurrency = worker
    rng = random.Random(seed)
    value = contender.value(size, value_kind(workload))
    while budget.another():
        kind, key = pick(workload, size, rng, index, concurrency)
        started = time.perf_counter()
        try:
            if kind == "set":
                await contender.set(key, value)
                ok = True
            else:
                ok = _check(kind, await contender.get(key), tally)
        except Exception as exc:
            tally.failed(f"{type(exc).__name__}: {exc}"[:300])
            continue
        if ok:
            tally.durations.append(time.perf_counter() - started)


def _thread_worker(
    contender: ThreadedContender,
    workload: str,
    size: int,
    worker: tuple[int, int, int],
    budget: Budget,
    tally: _Tally,
) -> None:
    seed, index, concurrency = worker
    rng = random.Random(seed)
    value = contender.value(size, value_kind(workload))
    while budget.another():
        kind, key = pick(workload, size, rng, index, concurrency)
        started = time.perf_counter()
        try:
            if kind == "set":
                contender.set(key, value)
                ok = True
            else:
                ok = _check(kind, contender.get(key), tally)
        except Exception as exc:
            tally.failed(f"{type(exc).__name__}: {exc}"[:300])
            continue
        if ok:
            tally.durations.append(time.perf_counter() - started)


async def _drive(
    contender: Contender, workload: str, size: int, concurrency: int, budget: Budget, seed: int
) -> list[_Tally]:
    tallies = [_Tally() for _ in range(concurrency)]
    budget.start()
    if isinstance(contender, ThreadedContender):
        loop = asyncio.get_running_loop()
        futures = [
            loop.run_in_executor(
                contender.pool,
                _thread_worker,
                contender,
                workload,
                size,
                (seed + i, i, concurrency),
                budget,
                tallies[i],
            )
            for i in range(concurrency)
        ]
        await asyncio.gather(*futures)
    elif isinstance(contender, AsyncContender):
        await asyncio.gather(
            *(
                _async_worker(
                    contender, workload, size, (seed + i, i, concurrency), budget, tallies[i]
                )
                for i in range(concurrency)
            )
        )
    else:
        raise TypeError(f"{type(contender).__name__} is neither async nor threaded")
    return tallies


#: Writers of a preload: set-up, not measured, so as many as the pools take (the contenders'
#: own pools bound them further at low concurrency).
PRELOAD_WRITERS: Final = 64


async def preload(
    contender: Contender, size: int, concurrency: int, kind: str = "bytes", first: int = 0
) -> None:
    """Write the keys of the size's keyspace (of values of ``kind``) from index ``first`` on
    (those before it were written for a lower concurrency), so that get-hit always hits.

    Threaded contenders write from their own caller threads (asyncio's default executor has
    only a handful): this is set-up, not measured.
    """
    keys = [_key(kind, size, i) for i in range(first, keyspace(size, concurrency))]
    value = contender.value(size, kind)
    width = min(PRELOAD_WRITERS, len(keys))
    if isinstance(contender, ThreadedContender):

        def write(chunk: list[str]) -> None:
            for key in chunk:
                contender.set(key, value)

        loop = asyncio.get_running_loop()
        chunks = (keys[i::width] for i in range(width))
        await asyncio.gather(*(loop.run_in_executor(contender.pool, write, c) for c in chunks))
    elif isinstance(contender, AsyncContender):

        async def awrite(chunk: list[str]) -> None:
            for key in chunk:
                await contender.set(key, value)

        await asyncio.gather(*(awrite(keys[i::width]) for i in range(width)))


async def run_cell(
    contender: Contender,
    workload: str,
    size: int,
    concurrency: int,
    *,
    latency_ms: float,
    seconds: float,
    warmup_s: float,
    max_ops: int | None = None,
    seed: int = 0,
    beat_cpu_s: float = 0.0,
    clock: Callable[[], float] = time.process_time,
    server_counts: Callable[[], int] | None = None,
) -> CellResult:
    """Warm up, then measure one cell; the process CPU clock is injectable for tests.

    Requests are counted by ``server_counts`` (the server's own count, read before and after,
    outside the measured window) when given, else by the contender's ``before-send`` hook.
    """
    if warmup_s > 0:
        await _drive(contender, workload, size, concurrency, Budget(warmup_s), seed + 10_000)
    count = server_counts
    if count is None and contender.setup.hook_latency:
        count = lambda: contender.requests.count  # noqa: E731
    requests0 = count() if count else 0
    heartbeat = Heartbeat()
    heartbeat.start()
    cpu0 = clock()
    started = time.perf_counter()
    tallies = await _drive(contender, workload, size, concurrency, Budget(seconds, max_ops), seed)
    elapsed = time.perf_counter() - started
    cpu = clock() - cpu0
    await heartbeat.stop()
    requests = count() - requests0 if count else None
    durations = [d for t in tallies for d in t.durations]
    first_error = next((t.first_error for t in tallies if t.first_error), None)
    return CellResult.from_samples(
        contender=contender.name,
        workload=workload,
        size=size,
        concurrency=concurrency,
        latency_ms=latency_ms,
        durations=durations,
        errors=sum(t.errors for t in tallies),
        elapsed_s=elapsed,
        cpu_s=cpu,
        lags=heartbeat.lags,
        rss_peak_bytes=heartbeat.rss_peak,
        first_error=first_error,
        beat_cpu_s=beat_cpu_s,
        requests=requests,
    )
