"""Measurement: percentiles, per-cell results, and a loop heartbeat sampling lag and RSS.

Pure helpers (``percentile``, ``CellResult.from_samples``) are unit-tested; the heartbeat runs on
the benchmark's own loop during every cell.
"""

from __future__ import annotations

import asyncio
import math
import os
import resource
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final

__all__ = [
    "CellResult",
    "Heartbeat",
    "current_rss_bytes",
    "heartbeat_cost",
    "peak_rss_bytes",
    "percentile",
]

HEARTBEAT_S: Final = 0.001
_RSS_EVERY: Final = 50  # sample RSS every this many heartbeats (~50 ms)
_PAGE: Final = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def percentile(samples: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile (0-100) of ``samples`` by linear interpolation; NaN when empty."""
    if not 0 <= pct <= 100:
        raise ValueError(f"percentile must be between 0 and 100, not {pct}")
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * pct / 100
    low = math.floor(rank)
    high = math.ceil(rank)
    if low == high:
        return ordered[low]
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def current_rss_bytes() -> int:
    """This process's resident set size now (Linux ``/proc``), else its peak so far."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return peak_rss_bytes()


def peak_rss_bytes() -> int:
    """The process's peak RSS since it started (``ru_maxrss`` is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


class Heartbeat:
    """A 1 ms sleep loop on the running event loop: how late each wake-up is, and peak RSS.

    Lag is what any other coroutine on that loop would suffer: time the loop spent busy (or the
    GIL held by other threads) past the timer's due time.
    """

    def __init__(self) -> None:
        self.lags: list[float] = []
        self.rss_peak = current_rss_bytes()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._beat())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            # wait() never raises the beat's own CancelledError, so a cancellation of the
            # caller (Ctrl-C under asyncio.run) is not swallowed here.
            await asyncio.wait([self._task])
        self.rss_peak = max(self.rss_peak, current_rss_bytes())

    async def _beat(self) -> None:
        count = 0
        while True:
            due = time.perf_counter() + HEARTBEAT_S
            await asyncio.sleep(HEARTBEAT_S)
            self.lags.append(max(0.0, time.perf_counter() - due))
            count += 1
            if count % _RSS_EVERY == 0:
                self.rss_peak = max(self.rss_peak, current_rss_bytes())


async def heartbeat_cost(seconds: float = 0.3, rounds: int = 3) -> float:
    """CPU seconds one heartbeat costs, measured on the idle loop (the lowest of ``rounds``).

    At 1,000 wake-ups a second the heartbeat itself burns several percent of a core, which at
    a few dozen ops/s would dwarf the client's CPU per op; cells subtract it.
    """
    costs = []
    for _ in range(rounds):
        beat = Heartbeat()
        cpu0 = time.process_time()
        beat.start()
        await asyncio.sleep(seconds)
        await beat.stop()
        costs.append((time.process_time() - cpu0) / max(1, len(beat.lags)))
    return min(costs)


@dataclass(frozen=True, slots=True)
class CellResult:
    """What one contender did on one workload, value size and concurrency."""

    contender: str
    workload: str
    size: int
    concurrency: int
    latency_ms: float
    ops: int
    errors: int
    elapsed_s: float
    ops_per_s: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_op: float
    loop_lag_p99_ms: float
    loop_lag_max_ms: float
    rss_peak_mib: float
    requests_per_op: float
    first_error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_samples(
        cls,
        *,
        contender: str,
        workload: str,
        size: int,
        concurrency: int,
        latency_ms: float,
        durations: Sequence[float],
        errors: int,
        elapsed_s: float,
        cpu_s: float,
        lags: Sequence[float],
        rss_peak_bytes: int,
        first_error: str | None = None,
        beat_cpu_s: float = 0.0,
        requests: int | None = None,
    ) -> CellResult:
        """Summarise raw samples: op durations and lags in seconds, CPU seconds of the process,
        HTTP requests sent (when counted).

        ``beat_cpu_s`` (what one heartbeat costs) times the number of beats is taken off the CPU.
        """
        ops = len(durations)
        client_cpu = max(0.0, cpu_s - beat_cpu_s * len(lags))
        return cls(
            contender=contender,
            workload=workload,
            size=size,
            concurrency=concurrency,
            latency_ms=latency_ms,
            ops=ops,
            errors=errors,
            elapsed_s=elapsed_s,
            ops_per_s=ops / elapsed_s if elapsed_s > 0 else 0.0,
            p50_ms=percentile(durations, 50) * 1000,
            p99_ms=percentile(durations, 99) * 1000,
            cpu_us_per_op=client_cpu / ops * 1e6 if ops else math.nan,
            loop_lag_p99_ms=percentile(lags, 99) * 1000,
            loop_lag_max_ms=max(lags, default=math.nan) * 1000,
            rss_peak_mib=rss_peak_bytes / 2**20,
            requests_per_op=requests / ops if requests is not None and ops else math.nan,
            first_error=first_error,
            extra={"cpu_s": cpu_s, "heartbeat_cpu_s": beat_cpu_s * len(lags)},
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN becomes None)."""
        return {
            k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in asdict(self).items()
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CellResult:
        """The inverse of :meth:`to_json` (None back to NaN): a cell measured in another
        process (:mod:`benchmarks.remote`)."""
        known = {f: data[f] for f in cls.__dataclass_fields__ if f in data}
        for name in _FLOAT_FIELDS:
            if known.get(name) is None:
                known[name] = math.nan
        return cls(**known)


_FLOAT_FIELDS: Final = (
    "elapsed_s",
    "ops_per_s",
    "p50_ms",
    "p99_ms",
    "cpu_us_per_op",
    "loop_lag_p99_ms",
    "loop_lag_max_ms",
    "rss_peak_mib",
    "requests_per_op",
)
