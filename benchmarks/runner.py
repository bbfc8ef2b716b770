"""``python -m benchmarks``: set up the target, run the plan's cells, print and save the results."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import llm
from benchmarks.contenders import Contender, ContenderUnavailable, Setup, import_litellm, make
from benchmarks.features import FeatureResult, run_features
from benchmarks.fleet import PROCESSES, run_fleet_cells
from benchmarks.metrics import CellResult, heartbeat_cost
from benchmarks.options import RESULTS_DIR, Options, Plan, parse, plan_for
from benchmarks.plots import plot_all
from benchmarks.progress import Progress, make_progress
from benchmarks.report import (
    facade_overhead,
    machine_info,
    ratios,
    render_table,
    targets,
    write_json,
)
from benchmarks.server import (
    EMBEDDED_CREDENTIALS,
    EMBEDDED_SERVERS,
    REAL_SERVERS,
    DelayProxy,
    EmbeddedServer,
    Target,
    default_credentials,
    ensure_bucket,
    remove_prefix,
    request_counts,
    sigterm_as_interrupt,
)
from benchmarks.workloads import keyspace, preload, run_cell, size_label
from harness.servers import ServerUnavailable
from harness.servers import server as real_server

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
    beat_cpu_s: float = 0.0

    def note(self, text: str) -> None:
        self.notes.append(text)
        self.progress.note(text)

    def setup(self, concurrency: int) -> Setup:
        hook = self.options.latency_via == "hook"
        return Setup(self.target, self.options.latency_ms, concurrency, self.prefix, hook)


async def _open(run: Run, contender: Contender) -> bool:
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


async def _measure(run: Run, contender: Contender, workload: str, size: int, c: int) -> CellResult:
    plan = run.plan
    run.progress.cell_started(f"{contender.name} {workload} {size_label(size)} c={c}")
    result = await run_cell(
        contender,
        workload,
        size,
        c,
        latency_ms=run.options.latency_ms,
        seconds=plan.seconds,
        warmup_s=plan.warmup_s,
        max_ops=run.options.ops,
        beat_cpu_s=run.beat_cpu_s,
        server_counts=_server_counts(run.target),
    )
    run.progress.cell_done(result)
    if result.errors:
        run.note(
            f"{result.contender} {workload} c={c}: {result.errors} errors: {result.first_error}"
        )
    return result


async def _grid(run: Run) -> None:
    for c in sorted({g.concurrency for g in run.plan.groups}):
        groups = [g for g in run.plan.groups if g.concurrency == c]
        contenders: list[Contender] = []
        try:
            for name in run.plan.contenders:
                contender = make(name, run.setup(c))
                if await _open(run, contender):
                    contenders.append(contender)
            loaded: set[tuple[str, int]] = set()
            for group in groups:
                for contender in contenders:
                    if group.workload != "get-miss" and (contender.name, group.size) not in loaded:
                        await preload(contender, group.size, c)
                        loaded.add((contender.name, group.size))
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
    """The feature cells (local tier, single-flight, stampede, fleet stampede); a failure is
    noted, not fatal."""
    run.progress.cell_started("features: local tier, single-flight, stampede, signatures")
    try:
        run.features = await run_features(run.setup(100), run.plan.features_s)
    except Exception as exc:
        run.note(f"feature cells failed: {type(exc).__name__}: {exc}")
        return
    run.progress.cell_started(f"features: fleet stampede, {PROCESSES} processes")
    try:
        run.features += await run_fleet_cells(run.setup(100))
    except Exception as exc:
        run.note(f"fleet cells failed: {type(exc).__name__}: {exc}")
    for f in run.features:
        verdict = {True: "ok", False: "NOT as expected", None: "-"}[f.met]
        run.progress.note(f"feature {f.name} [{verdict}]: {f.summary}")


def _server_counts(target: Target) -> Callable[[], int] | None:
    """Requests answered so far, counted by the server (None: the contender's hook counts)."""
    if target.stats_url is None:
        return None
    return lambda: sum((request_counts(target) or Counter()).values())


def _latency_line(options: Options, target: Target) -> str:
    via = _latency_via(options, target)
    ms = options.latency_ms
    if via == "server":
        how = "on the wire: the mini server holds every answer (and 100 Continue) back"
    elif via == "proxy":
        how = "on the wire: a delaying TCP proxy process holds every answer back"
    else:
        how = (
            "inside botocore clients only, by a before-send hook (asyncio.sleep / time.sleep): "
            "s3cache falls back to aiobotocore where hooks are registered, obstore sees none"
        )
    return f"latency: {ms:g} ms per request, EMULATED {how}"


def _latency_via(options: Options, target: Target) -> str:
    if options.latency_via != "auto":
        return options.latency_via
    return "server" if target.server == "mini" else "proxy"


def _where(t: Target) -> str:
    if t.server in REAL_SERVERS:
        return f"{t.server} started for this run at {t.endpoint_url} ({REAL_SERVERS[t.server]})"
    if t.embedded:
        return f"embedded {t.server} server at {t.endpoint_url} ({EMBEDDED_SERVERS[t.server]})"
    return t.endpoint_url


def _header(run: Run, started: str) -> list[str]:
    t = run.target
    where = _where(t)
    return [
        f"s3cache benchmark, {started}",
        f"target: {where}, bucket {t.bucket}, region {t.region}",
        _latency_line(run.options, t),
        f"plan: {run.plan.describe()}",
        "CPU us/op = CPU time of this whole process (all its threads) / ops; the server runs "
        "in another process. Loop lag = delay of a 1 ms heartbeat on the benchmark's event loop "
        "(where async contenders run; for threaded ones it shows GIL pressure on an app's loop).",
    ]


def _footer(run: Run) -> list[str]:
    lines = ["", "contenders:"]
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
    if run.features:
        lines.append("features, 1 KiB values:")
        for f in run.features:
            verdict = {True: "ok", False: "NOT as expected", None: "-"}[f.met]
            lines.append(f"  [{verdict}] {f.name}: {f.summary}")
    lines.append(f"targets, against {_where(run.target)}:")
    for what, measured, met in targets(run.results, run.options.latency_ms):
        verdict = {True: "met", False: "NOT met", None: "-"}[met]
        lines.append(f"  [{verdict}] {what}: {measured}")
    return lines


@contextlib.contextmanager
def _target(options: Options) -> Iterator[Target]:
    """The run's endpoint, with its latency on the wire (the server's or a proxy's)."""
    ms = options.latency_ms
    with contextlib.ExitStack() as stack:
        if options.endpoint_url:
            access, secret = options.access_key, options.secret_key
            if access is None:
                access, secret = default_credentials()
            target = Target(
                options.endpoint_url, options.region, options.bucket, access, secret, False
            )
        elif options.server:
            endpoint = stack.enter_context(real_server(options.server))
            target = Target(
                endpoint.url,
                options.region,
                options.bucket,
                endpoint.access_key,
                endpoint.secret_key,
                True,
                options.server,
            )
        else:
            mini = options.embedded == "mini"
            in_server = mini and options.latency_via in ("auto", "server")
            server = stack.enter_context(EmbeddedServer(options.embedded, ms if in_server else 0))
            access, secret = EMBEDDED_CREDENTIALS
            stats = f"{server.url}/_mini/stats" if mini else None
            target = Target(
                server.url,
                options.region,
                options.bucket,
                access,
                secret,
                True,
                options.embedded,
                stats,
            )
        if _latency_via(options, target) == "proxy" and ms > 0:
            proxy = stack.enter_context(DelayProxy(target.endpoint_url, ms))
            target = dataclasses.replace(target, endpoint_url=proxy.url)
        yield target


def _settle(state: Run) -> None:
    """Import every contender's library up front, then freeze the heap.

    litellm is thousands of modules: imported mid-run, its import and the garbage collections
    over its objects would be billed to whichever cells come next. ``gc.freeze()`` moves what
    exists now out of the collector's reach, the same for every contender.
    """
    if "litellm" in state.plan.contenders or state.plan.llm_concurrency:
        started = time.perf_counter()
        try:
            import_litellm()
            state.note(f"imported litellm in {time.perf_counter() - started:.1f} s")
        except ContenderUnavailable as exc:
            state.unavailable["litellm"] = str(exc)
            state.note(f"skipped litellm: {exc}")
    gc.collect()
    gc.freeze()


async def run(options: Options, plan: Plan, target: Target) -> tuple[Run, dict[str, Any]]:
    """Run the plan against ``target``; prints as it goes; returns the state and JSON payload."""
    started = datetime.now(UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    wall0 = time.perf_counter()
    progress = make_progress(options.plain)
    prefix = f"s3cache-bench/{stamp}-{uuid.uuid4().hex[:6]}/"
    state = Run(options, plan, target, prefix, progress)
    for line in _header(state, started.isoformat(timespec="seconds")):
        progress.note(line)
    if ensure_bucket(target):
        state.note(f"created bucket {target.bucket}")
    _settle(state)
    state.beat_cpu_s = await heartbeat_cost()
    state.note(
        f"heartbeat self-cost {state.beat_cpu_s * 1e6:.0f} us CPU per beat (idle loop), "
        "subtracted from every cell's CPU"
    )
    total = len(plan.groups) * len(plan.contenders) + 2 * len(plan.llm_concurrency)
    progress.start(total)
    try:
        await _grid(state)
        await _llm_cells(state)
        if plan.features_s > 0:
            await _feature_cells(state)
    finally:
        progress.stop()
        if not target.embedded and not options.keep_objects:
            removed = await asyncio.to_thread(remove_prefix, target, prefix)
            state.note(f"removed the run's {removed} objects under {prefix}")
    wall = time.perf_counter() - wall0
    return state, _payload(state, started, wall)


def _payload(state: Run, started: datetime, wall: float) -> dict[str, Any]:
    rat = ratios(state.results)
    return {
        "started": started.isoformat(timespec="seconds"),
        "wall_s": round(wall, 1),
        "mode": state.plan.mode,
        "plan": state.plan.describe(),
        "latency_ms": state.options.latency_ms,
        "latency_emulated": True,
        "latency_via": _latency_via(state.options, state.target),
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
        "targets": [
            {"what": w, "measured": m, "met": ok}
            for w, m, ok in targets(state.results, state.options.latency_ms)
        ],
    }


def finish(options: Options, payload: dict[str, Any], results: Sequence[CellResult]) -> list[Path]:
    """Print the table and footer, write the JSON and the plots; returns the files written."""
    print()
    print(render_table(results))
    stamp = payload["started"][:19].replace(":", "").replace("-", "")
    json_path = options.json_path or RESULTS_DIR / f"bench-{stamp}.json"
    write_json(json_path, payload)
    written = [json_path]
    if options.plots_dir is not None and results:
        machine = payload["machine"]
        title = (
            f"{payload['latency_ms']:g} ms emulated latency ({payload['latency_via']}), "
            f"{_server_label(payload['target'])}, "
            f"{machine['cores']} cores"
        )
        written += plot_all(results, options.plots_dir, title)
    print(f"\nwall time {payload['wall_s']:.0f} s; wrote " + ", ".join(map(str, written)))
    return written


def _server_label(target: dict[str, Any]) -> str:
    embedded = target.get("embedded")
    if embedded in REAL_SERVERS:
        return f"local {embedded} server"
    return f"embedded {embedded} server" if embedded else "external S3"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    options = parse(argv)
    plan = plan_for(options)
    try:
        with sigterm_as_interrupt(), _target(options) as target:
            state, payload = asyncio.run(run(options, plan, target))
    except KeyboardInterrupt:
        print("\ninterrupted; the embedded server (if any) was stopped")
        return 130
    except ServerUnavailable as exc:
        print(f"cannot start --server {options.server} here: {exc}", file=sys.stderr)
        return 2
    for line in _footer(state):
        print(line)
    finish(options, payload, state.results)
    return 0
