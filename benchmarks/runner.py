"""``python -m benchmarks``: set up the target, run the plan's cells, print and save the results."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import llm
from benchmarks.contenders import Contender, ContenderUnavailable, Setup, import_litellm, make
from benchmarks.endpoint import latency_line, latency_via, server_label, target_for, where
from benchmarks.expiry import expiry_under_load
from benchmarks.features import FeatureResult, run_features
from benchmarks.fleet import run_fleet_cells
from benchmarks.metrics import CellResult, heartbeat_cost
from benchmarks.options import RESULTS_DIR, Group, Options, Plan, loop_factory, parse, plan_for
from benchmarks.outage import s3_outage
from benchmarks.plots import plot_all
from benchmarks.progress import Progress, make_progress
from benchmarks.remote import REMOTE, RemoteContender
from benchmarks.report import facade_overhead, machine_info, ratios, render_table, write_json
from benchmarks.server import (
    Target,
    ensure_bucket,
    remove_prefix,
    server_counts,
    sigterm_as_interrupt,
)
from benchmarks.stale_outage import stale_outage
from benchmarks.summary import feature_lines, lead_table, lead_title, markdown, verdict_lines
from benchmarks.tagging import tag_invalidation
from benchmarks.targets import Conditions, Verdict, targets
from benchmarks.workloads import keyspace, preload, run_cell, size_label, value_kind
from benchmarks.xfetch import early_refresh
from harness.servers import ServerUnavailable

__all__ = ["main", "run"]


@dataclasses.dataclass
class Run:
    """The state of one benchmark run: what ran, how it was configured, what it noted."""

    options: Options
    plan: Plan
    target: Target
    prefix: str
    progress: Progress
    results: list[CellResult] = dataclasses.field(default_factory=list)
    features: list[FeatureResult] = dataclasses.field(default_factory=list)
    described: dict[str, str] = dataclasses.field(default_factory=dict)
    notes: list[str] = dataclasses.field(default_factory=list)
    unavailable: dict[str, str] = dataclasses.field(default_factory=dict)
    remotes: dict[str, RemoteContender] = dataclasses.field(default_factory=dict)
    #: Keys written so far per (contender, size, value kind): a keyspace's first ones.
    preloaded: dict[tuple[str, int, str], int] = dataclasses.field(default_factory=dict)
    beat_cpu_s: float = 0.0
    load: float | None = None
    header: list[str] = dataclasses.field(default_factory=list)

    def note(self, text: str) -> None:
        self.notes.append(text)
        self.progress.note(text)

    def setup(self, concurrency: int) -> Setup:
        hook = self.options.latency_via == "hook"
        bound = self.options.max_concurrency
        return Setup(self.target, self.options.latency_ms, concurrency, self.prefix, hook, bound)

    def conditions(self) -> Conditions:
        """What the targets' reasons depend on."""
        return Conditions(
            server=self.target.server,
            latency_via=latency_via(self.options, self.target),
            latency_ms=self.options.latency_ms,
            mode=self.plan.mode,
            load=self.load,
        )

    def verdicts(self) -> list[Verdict]:
        return targets(self.results, self.conditions())


async def _open(run: Run, contender: Contender | RemoteContender) -> bool:
    if contender.name in run.unavailable:
        return False
    try:
        await contender.open()
    except ContenderUnavailable as exc:
        run.unavailable[contender.name] = str(exc)
        run.note(f"skipped {contender.name}: {exc}")
        return False
    run.described.setdefault(contender.name, contender.describe())
    return True


async def _measure(
    run: Run, contender: Contender | RemoteContender, workload: str, size: int, c: int
) -> CellResult:
    plan = run.plan
    run.progress.cell_started(f"{contender.name} {workload} {size_label(size)} c={c}")
    how: dict[str, Any] = {
        "latency_ms": run.options.latency_ms,
        "seconds": plan.seconds,
        "warmup_s": plan.warmup_s,
        "max_ops": run.options.ops,
    }
    if isinstance(contender, RemoteContender):  # its own process: its own heartbeat cost
        result = await contender.measure(workload, size, c, **how)
    else:
        counts = server_counts(run.target)
        beat = run.beat_cpu_s
        result = await run_cell(
            contender, workload, size, c, beat_cpu_s=beat, server_counts=counts, **how
        )
    run.progress.cell_done(result)
    if result.errors:
        run.note(
            f"{result.contender} {workload} c={c}: {result.errors} errors: {result.first_error}"
        )
    return result


def _contender(run: Run, name: str, c: int) -> Contender | RemoteContender:
    remote = run.remotes.get(name)
    return remote.bind(run.setup(c)) if remote else make(name, run.setup(c))


async def _preload(run: Run, contender: Contender | RemoteContender, group: Group, c: int) -> None:
    """Write the keys ``group``'s cells read that no earlier group has written (objects stay
    between concurrencies: a contender's keys are its own for the run)."""
    kind = value_kind(group.workload)
    space = (contender.name, group.size, kind)
    written = run.preloaded.get(space, 0)
    if written >= keyspace(group.size, c):
        return
    if isinstance(contender, RemoteContender):
        await contender.preload(group.size, c, kind, written)
    else:
        await preload(contender, group.size, c, kind, written)
    run.preloaded[space] = keyspace(group.size, c)


async def _grid(run: Run) -> None:
    for c in sorted({g.concurrency for g in run.plan.groups}):
        groups = [g for g in run.plan.groups if g.concurrency == c]
        contenders: list[Contender | RemoteContender] = []
        try:
            for name in run.plan.contenders:
                if not any(g.runs(name) for g in groups):
                    continue
                contender = _contender(run, name, c)
                if await _open(run, contender):
                    contenders.append(contender)
            for group in groups:
                runners = [x for x in contenders if group.runs(x.name)]
                if group.workload != "get-miss":  # set-up, not measured: all at once
                    await asyncio.gather(*(_preload(run, x, group, c) for x in runners))
                for contender in runners:
                    run.results.append(
                        await _measure(run, contender, group.workload, group.size, c)
                    )
        finally:
            for contender in contenders:
                await contender.close()


async def _llm_cells(run: Run) -> None:
    for c in run.plan.llm_concurrency:
        for cls in llm.LLM_CONTENDERS:
            contender = cls(run.setup(c))
            if contender.backend_cls.name in run.unavailable or not await _open(run, contender):
                continue
            try:
                keys = [f"1024/k{i}" for i in range(keyspace(1024, c))]
                for key in keys:
                    await contender.set(key, None)
                await llm.wait_until_cached(contender, keys)
                result = await _measure(run, contender, "get-hit", 1024, c)
                run.results.append(dataclasses.replace(result, workload=llm.LLM_WORKLOAD))
            except Exception as exc:
                run.note(f"{contender.name} c={c} failed: {type(exc).__name__}: {exc}")
            finally:
                await contender.close()


async def _feature_cells(run: Run) -> None:
    """The feature cells (stampede, single flight, local tier, S3 outage, fleet lease; outside
    --quick also tag invalidation, expiry under load, early refresh, the S3 outage with
    stale_if_error,
    which would take the demo past its 30 s); a failure of one group is noted, not fatal."""
    setup = run.setup(100)
    whole = run.plan.mode != "quick"
    groups: list[tuple[str, Callable[[], Awaitable[list[FeatureResult]]]]] = [
        (
            "stampede, single flight, local tier, signatures",
            lambda: run_features(setup, run.plan.features_s, whole),
        ),
        ("S3 outage", lambda: _one(s3_outage(setup))),
    ]
    if whole:
        groups += [
            ("tag invalidation", lambda: _one(tag_invalidation(setup))),
            ("expiry under load", lambda: _one(expiry_under_load(setup))),
            ("early refresh", lambda: _one(early_refresh(setup))),
            ("S3 outage, stale_if_error", lambda: _one(stale_outage(setup))),
        ]
    if run.plan.fleet_processes:
        processes = run.plan.fleet_processes
        what = f"fleet lease, {', '.join(map(str, processes))} processes"
        groups.append((what, lambda: run_fleet_cells(setup, processes)))
    for what, cells in groups:
        run.progress.cell_started(f"features: {what}")
        try:
            done = await cells()
        except Exception as exc:
            run.note(f"feature cells ({what}) failed: {type(exc).__name__}: {exc}")
            continue
        run.features += done
        verdicts = {True: "ok", False: "NOT as expected", None: "skipped"}
        run.progress.note(f"features: {', '.join(f'{f.name} {verdicts[f.met]}' for f in done)}")


async def _one(cell: Awaitable[FeatureResult]) -> list[FeatureResult]:
    return [await cell]


async def start_remotes(plan: Plan, loop: str = "asyncio") -> dict[str, RemoteContender]:
    """Start the contenders measured in processes of their own (on event loop ``loop``):
    their imports begin now."""
    remotes = {}
    for name in plan.contenders:
        if name in REMOTE:
            remotes[name] = remote = RemoteContender(name, loop)
            await remote.start()
    return remotes


async def _remotes_ready(run: Run) -> None:
    """Wait for the remote contenders' imports before the grid, so none competes with it."""
    for name, remote in run.remotes.items():
        waited = time.perf_counter()
        try:
            info = await remote.ready()
        except ContenderUnavailable as exc:
            run.unavailable[name] = str(exc)
            run.note(f"skipped {name}: {exc}")
            continue
        waited = time.perf_counter() - waited
        run.note(
            f"{name} is measured in a process of its own: imported there in "
            f"{info['import_s']:.1f} s while the feature cells ran"
            + (f" (then waited {waited:.1f} s for it)" if waited >= 0.1 else "")
        )


def _header(run: Run, started: str) -> list[str]:
    t = run.target
    return [
        f"s3cache benchmark, {started}",
        f"target: {where(t)}, bucket {t.bucket}, region {t.region}",
        latency_line(run.options, t),
        f"plan: {run.plan.describe()}",
        f"event loop: {run.options.loop}"
        + (
            f"; s3cache max_concurrency={run.options.max_concurrency} in every cell"
            if run.options.max_concurrency
            else "; s3cache max_concurrency = the cell's concurrency"
        ),
        "CPU us/op = CPU time of the measuring process (all its threads) / ops; the server runs "
        "in another process. Loop lag = delay of a 1 ms heartbeat on the benchmark's event loop "
        "(where async contenders run; for threaded ones it shows GIL pressure on an app's loop).",
    ]


def _details(run: Run) -> list[str]:
    """How each contender ran, and the sync facade's overhead over the async core."""
    lines = ["contenders:"]
    lines += [f"  {name}: {text}" for name, text in run.described.items()]
    lines += [f"  {name}: skipped ({why})" for name, why in run.unavailable.items()]
    overhead = facade_overhead(run.results)
    if overhead:
        lines.append("sync facade overhead over the async core (S3Cache minus AsyncS3Cache):")
        for o in overhead:
            lines.append(
                f"  {o['workload']} {size_label(o['size'])} c={o['concurrency']}: "
                f"p50 {o['p50_ms_delta']:+.2f} ms, CPU {o['cpu_us_per_op_delta']:+.0f} us/op, "
                f"throughput {o['ops_per_s_ratio']:.2f}x"
            )
    return lines


def _story(run: Run) -> tuple[str, list[str]]:
    """The lead table's title, and what follows it: feature lines, then the targets."""
    title = lead_title(run.results, run.options.latency_ms, server_label(run.target))
    lines = []
    if run.features:
        lines += ["", "what only s3cache does (1 KiB values):"]
        lines += [f"  {line}" for line in feature_lines(run.features, run.conditions())]
    lines += ["", f"targets, as ratios within this run ({server_label(run.target)}):"]
    lines += [f"  {line}" for line in verdict_lines(run.verdicts())]
    return title, lines


def _settle(state: Run) -> None:
    """Import the libraries the main process still needs (matplotlib for the plots), then
    freeze the heap.

    litellm is thousands of modules: imported mid-run, its import and the garbage collections
    over its objects would be billed to whichever cells come next. The litellm contender runs
    in a process of its own (:mod:`benchmarks.remote`); only the acompletion cells need litellm
    here. ``gc.freeze()`` moves what exists now out of the collector's reach, the same for
    every contender.
    """
    if state.options.plots_dir is not None:
        with contextlib.suppress(ImportError):  # now, not after the run, where it is waited for
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot
    if state.plan.llm_concurrency:
        started = time.perf_counter()
        try:
            import_litellm()
            state.note(f"imported litellm in {time.perf_counter() - started:.1f} s")
        except ContenderUnavailable as exc:
            state.unavailable["litellm"] = str(exc)
            state.note(f"skipped litellm: {exc}")
    gc.collect()
    gc.freeze()


async def run(
    options: Options,
    plan: Plan,
    target: Target,
    remotes: dict[str, RemoteContender] | None = None,
) -> tuple[Run, dict[str, Any]]:
    """Run the plan against ``target``; prints as it goes; returns the state and JSON payload.

    The order keeps the CPU-per-operation cells alone on the machine: the remote contenders'
    imports (litellm) start first (``remotes``, already started, or started here) and overlap
    the feature cells (counts and milliseconds); the grid starts once they are done. The
    remotes are stopped on return.
    """
    started = datetime.now(UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    wall0 = time.perf_counter()
    progress = make_progress(options.plain)
    prefix = f"s3cache-bench/{stamp}-{uuid.uuid4().hex[:6]}/"
    state = Run(options, plan, target, prefix, progress, load=_load())
    try:
        state.remotes = await start_remotes(plan, options.loop) if remotes is None else remotes
        state.header = _header(state, started.isoformat(timespec="seconds"))
        for line in state.header:
            progress.note(line)
        if ensure_bucket(target):
            state.note(f"created bucket {target.bucket}")
        total = plan.cells() + 2 * len(plan.llm_concurrency)
        progress.start(total)
        if plan.features_s > 0:
            await _feature_cells(state)
        _settle(state)
        # The heartbeat's own cost, measured on this idle loop while the remote imports end
        # (in their own processes: they do not bill this process's CPU clock).
        state.beat_cpu_s, _ = await asyncio.gather(heartbeat_cost(), _remotes_ready(state))
        state.note(
            f"heartbeat self-cost {state.beat_cpu_s * 1e6:.0f} us CPU per beat (idle loop), "
            "subtracted from every cell's CPU"
        )
        await _grid(state)
        await _llm_cells(state)
    finally:
        progress.stop()
        for remote in state.remotes.values():
            await remote.stop()
        if not target.embedded and not options.keep_objects:
            removed = await asyncio.to_thread(remove_prefix, target, prefix)
            state.note(f"removed the run's {removed} objects under {prefix}")
    wall = time.perf_counter() - wall0
    return state, _payload(state, started, wall)


def _loop_name() -> str:
    """The class of the running event loop, e.g. ``uvloop.Loop``."""
    kind = type(asyncio.get_running_loop())
    return f"{kind.__module__}.{kind.__qualname__}"


def _load() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def _payload(state: Run, started: datetime, wall: float) -> dict[str, Any]:
    rat = ratios(state.results)
    return {
        "started": started.isoformat(timespec="seconds"),
        "wall_s": round(wall, 1),
        "mode": state.plan.mode,
        "plan": state.plan.describe(),
        "latency_ms": state.options.latency_ms,
        "latency_emulated": True,
        "latency_via": latency_via(state.options, state.target),
        "loop": _loop_name(),
        "max_concurrency": state.options.max_concurrency,
        "target": {
            "embedded": state.target.server if state.target.embedded else None,
            "embedded_moto": state.target.embedded and state.target.server == "moto",
            "endpoint_url": state.target.endpoint_url,
            "bucket": state.target.bucket,
            "region": state.target.region,
        },
        "machine": machine_info(),
        "contenders": state.described,
        "skipped": state.unavailable,
        "notes": state.notes,
        "results": [
            {**r.to_json(), **dataclasses.asdict(rat[i])} for i, r in enumerate(state.results)
        ],
        "facade_overhead": facade_overhead(state.results),
        "features": [f.to_json() for f in state.features],
        "targets": [dataclasses.asdict(v) for v in state.verdicts()],
        "load_average_at_start": state.load,
    }


def finish(state: Run, payload: dict[str, Any]) -> list[Path]:
    """Print the story (lead table, features, targets; every cell too, except in --quick), and
    write the JSON, the Markdown report and the plots; returns the files written."""
    options, results = state.options, state.results
    title, story = _story(state)
    print(f"\n{title}:")
    print(lead_table(results))
    for line in story:
        print(line)
    if state.plan.mode != "quick":
        print()
        for line in _details(state):
            print(line)
        print()
        print(render_table(results))
    stamp = payload["started"][:19].replace(":", "").replace("-", "")
    json_path = options.json_path or RESULTS_DIR / f"bench-{stamp}.json"
    write_json(json_path, payload)
    written = [json_path]
    plots: list[Path] = []
    if options.plots_dir is not None and (results or state.features):
        machine = payload["machine"]
        label = server_label(state.target)
        plot_title = (
            f"{payload['latency_ms']:g} ms emulated latency, {label}, {machine['cores']} cores"
        )
        plots = plot_all(results, options.plots_dir, plot_title, state.features)
    md_path = json_path.with_suffix(".md")
    names = [
        str(p.relative_to(md_path.parent)) if p.parent == md_path.parent else str(p) for p in plots
    ]
    report = markdown(
        state.header, results, state.features, state.verdicts(), (state.conditions(), title, names)
    )
    md_path.write_text(report, encoding="utf-8")
    written += [md_path, *plots]
    print("\nwrote:")
    for path in written:
        print(f"  {path}")
    return written


async def _session(options: Options, plan: Plan) -> tuple[Run, dict[str, Any]]:
    """Start the remote contenders, then the endpoint (in a thread, so that their imports
    overlap the server's start), then :func:`run`; stop everything on the way out."""
    remotes = await start_remotes(plan, options.loop)
    try:
        with contextlib.ExitStack() as stack:
            target = await asyncio.to_thread(stack.enter_context, target_for(options))
            return await run(options, plan, target, remotes)
    finally:
        for remote in remotes.values():
            await remote.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    wall0 = time.perf_counter()
    options = parse(argv)
    plan = plan_for(options)
    try:
        with sigterm_as_interrupt(), asyncio.Runner(loop_factory=loop_factory(options.loop)) as r:
            state, payload = r.run(_session(options, plan))
    except KeyboardInterrupt:
        print("\ninterrupted; the embedded server (if any) was stopped")
        return 130
    except ServerUnavailable as exc:
        print(f"cannot start --server {options.server} here: {exc}", file=sys.stderr)
        return 2
    finish(state, payload)
    print(
        f"wall time {time.perf_counter() - wall0:.0f} s ({payload['wall_s']:.0f} s measuring; "
        "the rest: starting and stopping the server, plots)"
    )
    return 0
