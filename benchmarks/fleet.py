"""Feature cells for fleet-wide single flight: N processes stampeding one missing key.

N worker processes (:mod:`harness.fleet`, N = 4 and 16) each call ``get_or_set`` once on the
same missing key with a 200 ms factory, first without a lease (per-process single flight: one
factory call per process), then with one (one call in the whole fleet). Reported per round:
factory calls, S3 requests per caller, and the time from the start signal until every caller
has its value.

Requests are counted on the wire, not by botocore hooks: the workers reach the server through
a counting proxy (:class:`harness.faultproxy.FaultProxy`). The run's emulated latency is
already on the wire (the server's or a delaying proxy's); with ``--latency-via hook`` the
counting proxy holds every response back by it instead. So the figures hold for any HTTP path
the cache takes.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from benchmarks.contenders import TIMEOUT_S, Setup
from benchmarks.features import FeatureResult
from harness.faultproxy import Fault, FaultProxy
from harness.fleet import VALUE, FleetJob, Round, Workers, start_workers

__all__ = ["PROCESSES", "fleet_stampede", "run_fleet_cells"]

PROCESSES: Final = (4, 16)
FACTORY_S: Final = 0.2
LEASE_S: Final = 30.0
_STARTUP_S: Final = 300.0  # generous: 16 processes opening clients on a busy 2-core machine


@dataclass(frozen=True, slots=True)
class _Round:
    factory_calls: int
    requests: int
    wall_ms: float
    all_got: bool


async def run_fleet_cells(
    setup: Setup, processes: tuple[int, ...] = PROCESSES
) -> list[FeatureResult]:
    """One cell per process count (default :data:`PROCESSES`)."""
    return [await fleet_stampede(setup, n) for n in processes]


async def fleet_stampede(setup: Setup, processes: int) -> FeatureResult:
    """``processes`` workers stampede one missing key, without and then with a lease."""
    name = f"fleet lease, {processes} processes"
    parts = urlsplit(setup.target.endpoint_url)
    if parts.scheme != "http" or parts.hostname is None:
        return FeatureResult(name, "skipped: the counting proxy needs an http:// endpoint")
    upstream = (parts.hostname, parts.port or 80)
    with FaultProxy(upstream) as proxy:
        if setup.hook_ms > 0:  # otherwise the latency is on the wire already
            proxy.set_fault(Fault.DELAY, delay=setup.hook_ms / 1000)
        tag = uuid.uuid4().hex[:8]
        job = FleetJob(
            _worker_kwargs(setup, proxy.endpoint),
            [Round(f"plain-{tag}", None), Round(f"leased-{tag}", LEASE_S)],
            factory_s=FACTORY_S,
        )
        workers = start_workers(job, processes)
        try:
            await asyncio.to_thread(workers.expect, "ready", processes, _STARTUP_S)
            plain = await _round(workers, proxy, 0, processes)
            leased = await _round(workers, proxy, 1, processes)
        finally:
            await asyncio.to_thread(workers.stop)
    return _result(name, processes, plain, leased)


async def _round(workers: Workers, proxy: FaultProxy, index: int, processes: int) -> _Round:
    before = proxy.requests
    started = time.monotonic()
    workers.starts[index].set()
    done = await asyncio.to_thread(workers.expect, "done", processes, TIMEOUT_S)
    wall_ms = (max(d[4] for d in done) - started) * 1000
    calls = sum(1 for m in workers.reports("factory") if m[2] == index)
    all_got = all(d[3] == [VALUE] for d in done)
    return _Round(calls, proxy.requests - before, wall_ms, all_got)


def _worker_kwargs(setup: Setup, endpoint: str) -> dict[str, Any]:
    target = setup.target
    return {
        "bucket": target.bucket,
        "prefix": f"{setup.prefix}features/fleet/",
        "endpoint_url": endpoint,
        "region_name": target.region,
        "aws_access_key_id": target.access_key,
        "aws_secret_access_key": target.secret_key,
        "timeout": TIMEOUT_S,
        "on_error": "raise",
    }


def _result(name: str, processes: int, plain: _Round, leased: _Round) -> FeatureResult:
    got = "all" if plain.all_got and leased.all_got else "NOT all"
    return FeatureResult(
        name=name,
        summary=(
            f"{processes} processes, get_or_set(lease={LEASE_S:g}) of one missing key: "
            f"{leased.factory_calls} factory call in the fleet ({plain.factory_calls} without "
            f"a lease); {got} had the value in {leased.wall_ms:.0f} ms ({plain.wall_ms:.0f} "
            f"without), {leased.requests / processes:.1f} requests per caller "
            f"({plain.requests / processes:.1f} without)"
        ),
        figures={
            "processes": processes,
            "factory_calls": plain.factory_calls,
            "requests_per_caller": plain.requests / processes,
            "wall_ms": plain.wall_ms,
            "lease_factory_calls": leased.factory_calls,
            "lease_requests_per_caller": leased.requests / processes,
            "lease_wall_ms": leased.wall_ms,
        },
        expected="with lease: 1 factory call in the fleet (without: one per process)",
        met=leased.factory_calls == 1 and plain.all_got and leased.all_got,
    )
