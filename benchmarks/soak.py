"""Soak: mixed traffic for N minutes through the fault proxy, with faults toggled on a schedule.

    python -m benchmarks.soak --minutes 2 [--concurrency 32] [--period 10] [--plot soak.png]

moto's server runs in a subprocess behind :class:`harness.faultproxy.FaultProxy`; one
:class:`s3cache.AsyncS3Cache` serves the whole run. The schedule alternates clean phases with
fault phases (random faults, SlowDown storms, a black hole, refused connections, reset bodies,
and a server restart that loses every entry). Every ``--interval`` seconds a sample records
operations, errors by kind, the event loop's lag, open client sockets, descriptors and RSS.
At the end: totals, recovery times (fault cleared -> first success), and the checks that must
hold whatever happened: no value ever read back wrong, sockets within the pool, no fd growth.

Importing this module starts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from harness.faultproxy import Fault, FaultProxy, LoopLag, MotoProcess, open_fds, tcp_census
from s3cache import AsyncS3Cache, S3CacheError

CREDENTIALS: dict[str, Any] = {
    "aws_access_key_id": "soak-key-id",
    "aws_secret_access_key": "soak-secret",
    "region_name": "us-east-1",
}
BUCKET = "soak"

#: (phase name, what to do) in order, repeated; "clean" phases separate the faults.
SCHEDULE: tuple[str, ...] = (
    "clean",
    "chaos",
    "clean",
    "slowdown",
    "clean",
    "blackhole",
    "clean",
    "refuse",
    "clean",
    "reset",
    "clean",
    "restart",
)


@dataclass
class Sample:
    """One interval of the run."""

    t: float
    phase: str
    ops: int
    ok: int
    errors: dict[str, int]
    max_loop_lag_ms: float
    sockets_established: int
    sockets_all: int
    fds: int
    rss_mib: float


@dataclass
class Recovery:
    """A fault phase ended: how long until an operation succeeded again."""

    phase: str
    seconds: float | None


@dataclass
class Report:
    """Everything the soak measured."""

    minutes: float
    concurrency: int
    pool: int
    timeout: float
    samples: list[Sample] = field(default_factory=list)
    recoveries: list[Recovery] = field(default_factory=list)
    ops: Counter[str] = field(default_factory=Counter)
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    wrong_values: int = 0
    acknowledged_lost: int = 0
    fds_start: int = 0
    fds_end: int = 0
    sockets_after_close: int = 0
    faults_injected: dict[str, int] = field(default_factory=dict)


def rss_mib() -> float:
    """Resident set size of this process, MiB (Linux ``/proc``)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def create_bucket(endpoint: str) -> None:
    """Create the soak bucket on a (fresh) server."""
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, **CREDENTIALS)
    try:
        client.create_bucket(Bucket=BUCKET)
    finally:
        client.close()


class Soak:
    """The run: traffic, schedule and sampling on one event loop."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.report = Report(args.minutes, args.concurrency, args.concurrency, args.timeout)
        self.rng = random.Random(args.seed)
        self.phase = "clean"
        self.fault_cleared_at: float | None = None
        self.cleared_phase = ""
        self.interval_ops = 0
        self.interval_ok = 0
        self.interval_errors: Counter[str] = Counter()
        self.acked: dict[str, int] = {}  # key -> version of its last acknowledged set
        self.inflight: Counter[str] = Counter()  # writes in flight per key
        self.version = 0
        self.server: MotoProcess | None = None

    async def run(self, server: MotoProcess, proxy: FaultProxy) -> Report:
        self.server = server
        self.proxy = proxy
        self.report.fds_start = open_fds()
        deadline = time.monotonic() + self.args.minutes * 60
        async with AsyncS3Cache(
            bucket=BUCKET,
            endpoint_url=proxy.endpoint,
            **CREDENTIALS,
            prefix="soak",
            max_concurrency=self.args.concurrency,
            timeout=self.args.timeout,
            on_error="raise",
        ) as cache:
            self.cache = cache
            workers = [asyncio.create_task(self.worker()) for _ in range(self.args.concurrency)]
            sampler = asyncio.create_task(self.sample_forever())
            try:
                await self.schedule(deadline)
            finally:
                for task in [*workers, sampler]:
                    task.cancel()
                await asyncio.gather(*workers, sampler, return_exceptions=True)
            proxy.clear()
            await self.verify_acknowledged()
        await asyncio.sleep(0)  # let the transports' close callbacks run
        self.report.sockets_after_close = tcp_census(proxy.port)[1]
        self.report.fds_end = open_fds()
        self.report.faults_injected = {f.value: n for f, n in proxy.faults.items()}
        return self.report

    # -- traffic ---------------------------------------------------------------------------

    async def worker(self) -> None:
        keys = self.args.keys
        while True:
            roll = self.rng.random()
            key = f"k{self.rng.randrange(keys)}"
            kind = "get" if roll < 0.6 else "set" if roll < 0.85 else "delete"
            kind = "get_many" if roll >= 0.95 else kind
            started = time.monotonic()
            writing = kind in ("set", "delete")
            if writing:
                if self.inflight[key]:
                    self.acked.pop(key, None)  # overlapping writes: the order is the server's
                self.inflight[key] += 1
            try:
                if kind == "get":
                    self.check(key, await self.cache.get(key))
                elif kind == "set":
                    self.version += 1
                    version = self.version
                    await self.cache.set(key, {"key": key, "v": version, "pad": "x" * 200})
                    if self.inflight[key] == 1:
                        self.acked[key] = version
                elif kind == "delete":
                    await self.cache.delete(key)
                    self.acked.pop(key, None)
                else:
                    wanted = [f"k{self.rng.randrange(keys)}" for _ in range(5)]
                    for k, value in (await self.cache.get_many(wanted)).items():
                        self.check(k, value)
            except S3CacheError as exc:
                self.interval_errors[exc.kind] += 1
                self.report.errors[exc.kind] += 1
                if writing:
                    self.acked.pop(key, None)  # it may or may not have landed
            except asyncio.CancelledError:
                if writing:
                    self.acked.pop(key, None)  # the run ended mid-write
                raise
            else:
                self.interval_ok += 1
                self.report.ok += 1
                if self.fault_cleared_at is not None and started >= self.fault_cleared_at:
                    seconds = time.monotonic() - self.fault_cleared_at
                    self.report.recoveries.append(Recovery(self.cleared_phase, round(seconds, 3)))
                    self.fault_cleared_at = None
            finally:
                if writing:
                    self.inflight[key] -= 1
            self.interval_ops += 1
            self.report.ops[kind] += 1

    def check(self, key: str, value: Any) -> None:
        """A value read back must be one written for that key, whole."""
        if value is None:
            return
        if not (
            isinstance(value, dict)
            and value.get("key") == key
            and value.get("pad") == "x" * 200
            and isinstance(value.get("v"), int)
        ):
            self.report.wrong_values += 1

    async def verify_acknowledged(self) -> None:
        """Every key whose last write was acknowledged (and not raced) reads back that write.

        Keys with a failed or overlapping write are left out (their state is the server's
        call); a restart empties the store, so it empties this record too.
        """
        for key, version in list(self.acked.items()):
            try:
                value = await self.cache.get(key)
            except S3CacheError:
                continue
            self.check(key, value)
            if value is None or value.get("v") != version:
                self.report.acknowledged_lost += 1

    # -- faults ------------------------------------------------------------------------------

    async def schedule(self, deadline: float) -> None:
        step = 0
        while time.monotonic() < deadline:
            phase = SCHEDULE[step % len(SCHEDULE)]
            step += 1
            await self.enter(phase)
            await asyncio.sleep(min(self.args.period, max(0.0, deadline - time.monotonic())))
            if phase not in ("clean", "restart"):
                self.proxy.clear()
                self.phase = "clean"
                self.cleared_phase = phase
                self.fault_cleared_at = time.monotonic()

    async def enter(self, phase: str) -> None:
        self.phase = phase
        proxy = self.proxy
        if phase == "chaos":
            faults: tuple[Fault, ...] = (Fault.RESET_BODY, Fault.TRUNCATE, Fault.HTTP_500)
            faults += (Fault.SLOWDOWN_503, Fault.DELAY, Fault.CUT_UPLOAD)
            proxy.set_chaos(faults, 0.2, delay=2 * self.args.timeout, seed=self.rng.randrange(99))
        elif phase == "slowdown":
            proxy.set_fault(Fault.SLOWDOWN_503)
        elif phase == "blackhole":
            proxy.set_fault(Fault.BLACKHOLE)
        elif phase == "refuse":
            proxy.set_fault(Fault.REFUSE)
        elif phase == "reset":
            proxy.set_fault(Fault.RESET_BODY, methods={"GET"})
        elif phase == "restart":
            # The server dies (connections reset), a new one starts elsewhere, empty; the
            # recovery is timed from the moment it is reachable again.
            proxy.set_fault(Fault.REFUSE)
            old = self.server
            assert old is not None
            await asyncio.to_thread(old.close)
            self.server = await asyncio.to_thread(MotoProcess)
            await asyncio.to_thread(create_bucket, self.server.endpoint)
            self.acked.clear()  # a restarted moto forgets everything
            proxy.set_upstream(self.server.address)
            proxy.clear()
            self.cleared_phase = phase
            self.fault_cleared_at = time.monotonic()

    # -- sampling ----------------------------------------------------------------------------

    async def sample_forever(self) -> None:
        started = time.monotonic()
        while True:
            async with LoopLag() as lag:
                await asyncio.sleep(self.args.interval)
            established, every = tcp_census(self.proxy.port)
            sample = Sample(
                t=round(time.monotonic() - started, 1),
                phase=self.phase,
                ops=self.interval_ops,
                ok=self.interval_ok,
                errors=dict(self.interval_errors),
                max_loop_lag_ms=round(lag.max_lag * 1000, 1),
                sockets_established=established,
                sockets_all=every,
                fds=open_fds(),
                rss_mib=round(rss_mib(), 1),
            )
            self.report.samples.append(sample)
            self.interval_ops = self.interval_ok = 0
            self.interval_errors = Counter()
            print(format_sample(sample), flush=True)


def format_sample(s: Sample) -> str:
    errors = " ".join(f"{k}={v}" for k, v in sorted(s.errors.items())) or "-"
    return (
        f"{s.t:7.1f}s {s.phase:<9} ops {s.ops:5d} ok {s.ok:5d}  errors {errors:<40} "
        f"lag {s.max_loop_lag_ms:6.1f} ms  sockets {s.sockets_established:3d}/{s.sockets_all:3d} "
        f"fds {s.fds:4d}  rss {s.rss_mib:6.1f} MiB"
    )


def summarise(report: Report) -> str:
    samples = report.samples
    lines = [
        "",
        f"soak: {report.minutes:g} min, concurrency {report.concurrency} (pool {report.pool}), "
        f"deadline {report.timeout:g} s",
        f"operations: {sum(report.ops.values())} ({dict(report.ops)}), succeeded {report.ok}",
        f"errors by kind: {dict(report.errors)}",
        f"faults injected by the proxy: {report.faults_injected}",
        "recoveries (fault cleared -> first success): "
        + ", ".join(f"{r.phase} {r.seconds:.2f}s" for r in report.recoveries if r.seconds),
        f"wrong values read: {report.wrong_values} (must be 0); acknowledged writes lost outside "
        f"restarts: {report.acknowledged_lost}",
    ]
    if samples:
        lines += [
            f"max loop lag: {max(s.max_loop_lag_ms for s in samples):.1f} ms",
            f"client sockets: max {max(s.sockets_established for s in samples)} established, "
            f"max {max(s.sockets_all for s in samples)} with closing ones (pool {report.pool}); "
            f"{report.sockets_after_close} after close",
            f"fds: {report.fds_start} at start, max {max(s.fds for s in samples)}, "
            f"{report.fds_end} at end",
            f"RSS: {samples[0].rss_mib:.1f} MiB first sample, max "
            f"{max(s.rss_mib for s in samples):.1f}, last {samples[-1].rss_mib:.1f}",
        ]
    return "\n".join(lines)


def plot(report: Report, path: str) -> None:
    """ops/s, errors, sockets and RSS over time, fault phases shaded (needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = report.samples
    t = [s.t for s in samples]
    fig, axes = plt.subplots(4, 1, figsize=(10, 9), sharex=True)
    series = [
        ("ops / interval", [s.ops for s in samples], [s.ok for s in samples]),
        ("errors / interval", [sum(s.errors.values()) for s in samples], None),
        ("client sockets", [s.sockets_established for s in samples], [s.fds for s in samples]),
        ("RSS (MiB)", [s.rss_mib for s in samples], None),
    ]
    for ax, (label, ys, extra) in zip(axes, series, strict=True):
        ax.plot(t, ys, label=label)
        if extra is not None:
            ax.plot(t, extra, label="ok" if label.startswith("ops") else "fds", linestyle="--")
        ax.set_ylabel(label)
        ax.legend(loc="upper right", fontsize="small")
        for s in samples:
            if s.phase != "clean":
                ax.axvspan(s.t - report.samples[0].t, s.t, color="red", alpha=0.08)
    axes[-1].set_xlabel("seconds")
    fig.suptitle("s3cache soak: mixed traffic with faults toggled (red: fault phases)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=1.0, help="run time (default 1)")
    parser.add_argument("--concurrency", type=int, default=32, help="workers = pool size")
    parser.add_argument("--period", type=float, default=8.0, help="seconds per phase")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds per sample")
    parser.add_argument("--timeout", type=float, default=2.0, help="the cache's deadline")
    parser.add_argument("--keys", type=int, default=500, help="size of the key space")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", help="write the report as JSON here")
    parser.add_argument("--plot", help="write a PNG figure here (needs matplotlib)")
    return parser.parse_args(argv)


async def _main(args: argparse.Namespace) -> Report:
    server = await asyncio.to_thread(MotoProcess)
    soak = Soak(args)
    try:
        await asyncio.to_thread(create_bucket, server.endpoint)
        with FaultProxy(server.address) as proxy:
            return await soak.run(server, proxy)
    finally:
        server.close()
        if soak.server is not None:
            soak.server.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = asyncio.run(_main(args))
    print(summarise(report))
    if args.json:
        data = {f.name: getattr(report, f.name) for f in fields(report)}
        data |= {"samples": [asdict(x) for x in report.samples]}
        data |= {"recoveries": [asdict(x) for x in report.recoveries]}
        data |= {"ops": dict(report.ops), "errors": dict(report.errors)}
        with open(args.json, "w") as fh:
            json.dump(data, fh, indent=1)
    if args.plot:
        plot(report, args.plot)
        print(f"figure: {args.plot}")
    # Sockets over the pool size in a sample are reported, not judged: a sample can catch
    # connections whose close the loop has scheduled but not yet run.
    healthy = (
        report.wrong_values == 0
        and report.sockets_after_close == 0
        and report.fds_end <= report.fds_start
    )
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
