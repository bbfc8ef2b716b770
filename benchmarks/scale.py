"""A fleet at S3's scale (a scaffold): worker processes against S3's limits, emulated.

    python -m benchmarks.scale --quick          # 4 processes, pacing off and on, about 60 s
    python -m benchmarks.scale                  # 8, 16 and 32 processes, 30 s each

The embedded mini server (:mod:`harness.miniserver`, 20 ms on the wire by default) runs with
S3's request-rate limits emulated (:mod:`harness.s3limits`: read and write token buckets per
partition, 503 SlowDown beyond them, a partition that splits after sustained load). For each
cell, N worker processes (:func:`harness.fleet.start_load_workers`) each run ``--tasks``
concurrent callers doing a 90/10 mix of ``get`` and ``set`` over ``--keys`` keys with s3cache
for ``--seconds``, against a fresh emulator. Reported per cell: goodput (operations that
succeeded, per second), SlowDown replies (counted by the emulator), p50/p99 latency of the
operations that succeeded, failed operations by kind, the emulated capacity (what the
partitions could serve of this mix) and the splits; a JSON file and a PNG of goodput over time
with the splits marked go to ``benchmarks/results/``.

A cell is (processes, layout, pacing): ``--pacing off,on`` (the default) runs each with s3cache's
adaptive pacing off and on (``pacing=``). s3cache has no ``layout="hashed"`` yet, so only
``flat`` runs; ``--layouts`` already takes it (refused before anything starts). Issue 28's
targets are read at the end (:mod:`benchmarks.scale_targets`). The machine is small: every
figure is from one run on it, the server and the workers sharing its cores.
"""

from __future__ import annotations

import argparse
import math
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from benchmarks.metrics import percentile
from benchmarks.options import RESULTS_DIR
from benchmarks.plots import plot_goodput
from benchmarks.report import machine_info, write_json
from benchmarks.scale_targets import render_verdicts, scale_targets
from benchmarks.server import EMBEDDED_CREDENTIALS, EmbeddedServer, Target, ensure_bucket
from harness.fleet import LoadJob, start_load_workers
from harness.s3limits import S3_READ_RATE, Limits, read_limits, set_limits

__all__ = ["LAYOUTS", "Cell", "CellReport", "Plan", "cache_kwargs", "main", "run_cell"]

#: The layouts a cell may ask for, and those s3cache has today.
LAYOUTS: Final = ("flat", "hashed")
_READY: Final = ("flat",)
_BUCKET: Final = "s3cache-scale"
_STARTUP_S: Final = 120.0  # 32 processes opening clients on a busy 2-core machine


@dataclass(frozen=True, slots=True)
class Cell:
    """One run: ``processes`` workers, a key layout, adaptive pacing on or off."""

    processes: int
    layout: str = "flat"
    pacing: bool = False

    @property
    def name(self) -> str:
        """``16 processes, flat, no pacing``."""
        return (
            f"{self.processes} processes, {self.layout}, {'pacing' if self.pacing else 'no pacing'}"
        )


@dataclass(frozen=True, slots=True)
class Plan:
    """Every cell of a run and what they share: seconds per cell, callers per process, keys,
    the share of gets, the bytes of a value set, the cache's per-operation deadline, the
    latency on the wire, the emulated limits, and where results go."""

    cells: tuple[Cell, ...]
    seconds: float
    tasks: int
    keys: int
    read_fraction: float
    value_size: int
    timeout: float
    latency_ms: float
    limits: Limits
    out: Path


@dataclass
class CellReport:
    """What one cell measured. Times are seconds from the whole second of the emulator's clock
    in which the cell started (so that the series line up with the emulator's)."""

    cell: Cell
    seconds: float
    ops: int
    ok: int
    failed: dict[str, int]
    goodput: float
    slowdowns: int
    p50_ms: float
    p99_ms: float
    capacity: float  # ops/s the partitions could serve of this mix, averaged over the cell
    partitions: int  # at the end, in the bucket
    splits: list[float]
    goodput_series: list[int] = field(default_factory=list)  # successes per second
    slowdown_series: list[int] = field(default_factory=list)  # SlowDown replies per second
    capacity_series: list[float] = field(default_factory=list)  # emulated capacity, ops/s


def cache_kwargs(cell: Cell, endpoint: str, prefix: str, timeout: float) -> dict[str, Any]:
    """The ``AsyncS3Cache`` arguments of a cell's workers; ValueError for what s3cache lacks."""
    if cell.layout not in _READY:
        raise ValueError(f"layout {cell.layout!r} is not in s3cache yet (only {_READY})")
    access_key, secret_key = EMBEDDED_CREDENTIALS
    return {
        "bucket": _BUCKET,
        "prefix": prefix,
        "endpoint_url": endpoint,
        "region_name": "us-east-1",
        "aws_access_key_id": access_key,
        "aws_secret_access_key": secret_key,
        "timeout": timeout,
        "on_error": "raise",
        "pacing": cell.pacing,
    }


def run_cell(plan: Plan, cell: Cell, endpoint: str) -> CellReport:
    """Start the workers, arm a fresh emulator, run for ``plan.seconds``, collect."""
    prefix = f"scale/{uuid.uuid4().hex[:8]}/"
    job = LoadJob(
        cache_kwargs(cell, endpoint, prefix, plan.timeout),
        plan.seconds,
        plan.tasks,
        plan.keys,
        plan.read_fraction,
        plan.value_size,
    )
    workers = start_load_workers(job, cell.processes)
    try:
        workers.expect("ready", cell.processes, _STARTUP_S)
        set_limits(endpoint, plan.limits)
        started = time.monotonic()
        workers.starts[0].set()
        done = workers.expect("done", cell.processes, plan.seconds + plan.timeout + 60)
        state = read_limits(endpoint)
    finally:
        set_limits(endpoint, None)
        workers.stop()
    ops = [op for report in done for op in report[2]]
    return _report(plan, cell, ops, state, started)


def _report(
    plan: Plan, cell: Cell, ops: list[tuple[float, float, str]], state: dict[str, Any], t0: float
) -> CellReport:
    latencies = [seconds * 1000 for _, seconds, kind in ops if not kind]
    failed: dict[str, int] = {}
    for _, _, kind in ops:
        if kind:
            failed[kind] = failed.get(kind, 0) + 1
    origin = math.floor(t0)
    bins = math.ceil(t0 + plan.seconds - origin)
    goodput = [0] * bins
    for finished, _, kind in ops:
        if not kind and 0 <= finished - origin < bins:
            goodput[int(finished - origin)] += 1
    slowdowns = [0] * bins
    for second, _, _, thrown_reads, thrown_writes in state["series"]:
        if 0 <= second - origin < bins:
            slowdowns[second - origin] += thrown_reads + thrown_writes
    splits = [split["at"] - origin for split in state["splits"]]
    capacity = _capacity_series(plan, splits, bins)
    totals = state["totals"]["throttled"]
    return CellReport(
        cell=cell,
        seconds=plan.seconds,
        ops=len(ops),
        ok=len(latencies),
        failed=failed,
        goodput=len(latencies) / plan.seconds,
        slowdowns=int(totals["read"] + totals["write"]),
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        capacity=sum(capacity) / len(capacity),
        partitions=len(state["partitions"]),
        splits=splits,
        goodput_series=goodput,
        slowdown_series=slowdowns,
        capacity_series=capacity,
    )


def _capacity_series(plan: Plan, splits: Sequence[float], bins: int) -> list[float]:
    """Operations per second the partitions could serve of this mix, in each second: one
    partition serves ``min(read_rate / reads, write_rate / writes)`` of them, each split adds
    one. It assumes every partition gets its share of requests, and ignores the burst a fresh
    bucket starts with."""
    limits, reads = plan.limits, plan.read_fraction
    per_partition = min(
        limits.read_rate / reads if reads > 0 else math.inf,
        limits.write_rate / (1 - reads) if reads < 1 else math.inf,
    )
    return [per_partition * (1 + sum(at <= i + 0.5 for at in splits)) for i in range(bins)]


def render(reports: Sequence[CellReport]) -> str:
    """The results as a plain-text table."""
    header = (
        f"{'cell':<34} {'goodput/s':>9} {'x capacity':>10} {'SlowDown':>8} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'failed':>7} {'splits':>6}"
    )
    lines = [header, "-" * len(header)]
    for r in reports:
        failed = sum(r.failed.values())
        ratio = r.goodput / r.capacity if r.capacity else math.nan
        lines.append(
            f"{r.cell.name:<34} {r.goodput:>9.1f} {ratio:>9.2f}x {r.slowdowns:>8} "
            f"{r.p50_ms:>7.1f} {r.p99_ms:>7.1f} {failed:>7} {len(r.splits):>6}"
        )
        if r.failed:
            kinds = ", ".join(f"{k} {v}" for k, v in sorted(r.failed.items()))
            lines.append(f"{'':<34} failed by kind: {kinds} of {r.ops} operations")
    return "\n".join(lines)


def run(plan: Plan) -> list[CellReport]:
    """Every cell against one embedded mini server; writes the JSON and the PNG."""
    for cell in plan.cells:  # refuse what cannot run before starting anything
        cache_kwargs(cell, "http://127.0.0.1", "", plan.timeout)
    reports = []
    with EmbeddedServer("mini", delay_ms=plan.latency_ms) as server:
        access_key, secret_key = EMBEDDED_CREDENTIALS
        target = Target(server.url, "us-east-1", _BUCKET, access_key, secret_key, True, "mini")
        ensure_bucket(target)
        for cell in plan.cells:
            print(f"running {cell.name} for {plan.seconds:g} s ...", flush=True)
            reports.append(run_cell(plan, cell, server.url))
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    payload = {
        "plan": {**asdict(plan), "out": str(plan.out), "cells": [asdict(c) for c in plan.cells]},
        "machine": machine_info(),
        "cells": [asdict(r) for r in reports],
    }
    write_json(plan.out / f"scale-{stamp}.json", payload)
    title = f"{plan.latency_ms:g} ms on the wire, {plan.tasks} callers per process"
    timelines = [
        (r.cell.name, r.goodput_series, r.slowdown_series, r.capacity_series, r.splits)
        for r in reports
    ]
    plot_goodput(timelines, plan.out / f"scale-goodput-{stamp}.png", title)
    return reports


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of integers: {text}"
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"process counts must be positive: {text}")
    return values


def _choices(allowed: Sequence[str]) -> Any:
    def parse(text: str) -> tuple[str, ...]:
        values = tuple(text.split(","))
        unknown = [v for v in values if v not in allowed]
        if unknown:
            raise argparse.ArgumentTypeError(f"{unknown}: choose from {', '.join(allowed)}")
        return values

    return parse


def build_parser() -> argparse.ArgumentParser:
    """The command line (``--help``)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__)
    add = parser.add_argument
    add("--quick", action="store_true", help="4 processes for 12 s a cell, splits after 4 s")
    add("--processes", type=_ints, help="process counts (default 8,16,32; quick: 4)")
    add("--layouts", type=_choices(LAYOUTS), default=("flat",), help="flat[,hashed]")
    add("--pacing", type=_choices(("off", "on")), default=("off", "on"), help="off,on")
    add("--seconds", type=float, help="per cell (default 30; quick: 12)")
    add("--tasks", type=int, default=8, help="concurrent callers per process")
    add("--keys", type=int, default=1000, help="keys drawn from, uniformly")
    add("--read-fraction", type=float, default=0.9, help="gets among operations")
    add("--value-size", type=int, default=1024, help="bytes per value set")
    add("--timeout", type=float, default=5.0, help="the cache's per-operation deadline")
    add("--latency-ms", type=float, default=20.0, help="emulated on the wire by the server")
    add("--scale", type=float, default=0.01, help="the emulated rates: S3's times this")
    add("--split-after", type=float, help="seconds of load before a split (default 10; quick 4)")
    add("--max-partitions", type=int, default=8, help="per bucket")
    add("--out", type=Path, default=RESULTS_DIR, help="where the JSON and the PNG go")
    return parser


def plan_from(args: argparse.Namespace) -> Plan:
    """The plan the parsed command line asks for."""
    processes = args.processes or ((4,) if args.quick else (8, 16, 32))
    seconds = args.seconds or (12.0 if args.quick else 30.0)
    split_after = args.split_after or (4.0 if args.quick else 10.0)
    cells = tuple(
        Cell(n, layout, pacing == "on")
        for layout in args.layouts
        for pacing in args.pacing
        for n in processes
    )
    limits = Limits.scaled(
        args.scale, split_after_s=split_after, max_partitions=args.max_partitions
    )
    return Plan(
        cells,
        seconds,
        args.tasks,
        args.keys,
        args.read_fraction,
        args.value_size,
        args.timeout,
        args.latency_ms,
        limits,
        args.out,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.scale``; the exit status."""
    parser = build_parser()
    plan = plan_from(parser.parse_args(argv))
    try:
        reports = run(plan)
    except ValueError as exc:
        parser.error(str(exc))
    limits = plan.limits
    print(
        f"\nlimits per partition: {limits.read_rate:g} GET/HEAD and {limits.write_rate:g} "
        f"PUT/DELETE per second (S3's x {limits.read_rate / S3_READ_RATE:g}), split after "
        f"{limits.split_after_s:g} s of load, at most {limits.max_partitions} partitions\n"
    )
    print(render(reports))
    shared = "measured on a small shared machine, the server and every worker on its cores"
    print("\n" + render_verdicts(scale_targets(reports, shared)))
    print(f"\nresults in {plan.out}/scale-*.json and scale-goodput-*.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
