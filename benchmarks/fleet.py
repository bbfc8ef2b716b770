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

At :data:`REFRESH_PROCESSES` (16) the same workers then run the "fleet refresh" cell: one key
stored with a 1 s ttl and a stale window, read once its ttl is past (on the server's clock) and
within the window, with ``lease`` and ``stale_ttl`` on (every caller should get the stale value
at once, and one background refresh run in the whole fleet) and off (a second key stored the
same way is simply a miss: one factory call, through the lease, and every caller waits for
it). Reported: factory calls, each caller's ``get_or_set`` latency (p99, max) and how many
callers waited for the factory (got the new value, not the stale one). Starting the processes
is the expensive part, so the cell adds two rounds to the lease cell's job rather than a job of
its own; it does not run at 4 processes (``--quick``).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from statistics import quantiles
from typing import Any, Final
from urllib.parse import urlsplit

from benchmarks.contenders import TIMEOUT_S, Setup
from benchmarks.features import FeatureResult
from harness.expiry import until_expired
from harness.faultproxy import Fault, FaultProxy
from harness.fleet import VALUE, FleetJob, Round, Workers, start_workers
from s3cache import AsyncS3Cache

__all__ = ["PROCESSES", "REFRESH_PROCESSES", "fleet_cells", "fleet_stampede", "run_fleet_cells"]

PROCESSES: Final = (4, 16)
#: The process count at which the "fleet refresh" rounds run too (issue 23 item 7).
REFRESH_PROCESSES: Final = 16
FACTORY_S: Final = 0.2
LEASE_S: Final = 30.0
TTL_S: Final = 1  # the stale key's ttl: the shortest there is
#: The stale window, written with the key and read with: generous, as the lease rounds run
#: (and the ttl runs out) between the write and the refresh rounds.
STALE_S: Final = 300.0
NEW_TTL_S: Final = 60.0  # the refreshed value's ttl
STALE_VALUE: Final = {"answer": "stale"}
_STARTUP_S: Final = 300.0  # generous: 16 processes opening clients on a busy 2-core machine


@dataclass(frozen=True, slots=True)
class _Round:
    factory_calls: int
    requests: int
    wall_ms: float
    all_got: bool
    values: tuple[Any, ...]  # every caller's value
    latencies: tuple[float, ...]  # every caller's seconds from call to answer


async def run_fleet_cells(
    setup: Setup, processes: tuple[int, ...] = PROCESSES
) -> list[FeatureResult]:
    """One lease cell per process count (default :data:`PROCESSES`), and the refresh cell at
    :data:`REFRESH_PROCESSES`."""
    cells: list[FeatureResult] = []
    for n in processes:
        cells += await fleet_cells(setup, n, refresh=n == REFRESH_PROCESSES)
    return cells


async def fleet_stampede(setup: Setup, processes: int) -> FeatureResult:
    """``processes`` workers stampede one missing key, without and then with a lease."""
    [lease] = await fleet_cells(setup, processes, refresh=False)
    return lease


async def fleet_cells(setup: Setup, processes: int, refresh: bool) -> list[FeatureResult]:
    """The lease cell of ``processes`` workers, then (``refresh``) the refresh cell on them."""
    name = f"fleet lease, {processes} processes"
    names = [name, f"fleet refresh, {processes} processes"][: 2 if refresh else 1]
    parts = urlsplit(setup.target.endpoint_url)
    if parts.scheme != "http" or parts.hostname is None:
        why = "skipped: the counting proxy needs an http:// endpoint"
        return [FeatureResult(n, why) for n in names]
    upstream = (parts.hostname, parts.port or 80)
    with FaultProxy(upstream) as proxy:
        if setup.hook_ms > 0:  # otherwise the latency is on the wire already
            proxy.set_fault(Fault.DELAY, delay=setup.hook_ms / 1000)
        tag = uuid.uuid4().hex[:8]
        rounds = [Round(f"plain-{tag}", None), Round(f"leased-{tag}", LEASE_S)]
        if refresh:  # the stale key, read with stale_ttl on, then a second one with it off
            on, off = f"stale-on-{tag}", f"stale-off-{tag}"
            rounds += [
                Round(on, LEASE_S, NEW_TTL_S, STALE_S),
                Round(off, LEASE_S, NEW_TTL_S, 0),  # 0: off (None would be the cache's)
            ]
        job = FleetJob(_worker_kwargs(setup, proxy.endpoint), rounds, factory_s=FACTORY_S)
        workers = start_workers(job, processes)
        try:
            await asyncio.to_thread(workers.expect, "ready", processes, _STARTUP_S)
            # Direct to the server (no counting, no delay): the writer of the stale keys, which
            # records its stale_ttl with each (set() takes the constructor's).
            kwargs = _worker_kwargs(setup, setup.target.endpoint_url)
            writer = AsyncS3Cache(**kwargs, stale_ttl=STALE_S)
            async with writer:
                if refresh:  # their ttl runs out during the lease rounds
                    for key in (on, off):
                        await writer.set(key, STALE_VALUE, ttl=TTL_S)
                plain = await _round(workers, proxy, 0, processes)
                leased = await _round(workers, proxy, 1, processes)
                results = [_result(name, processes, plain, leased)]
                if refresh:
                    for key in (on, off):
                        await until_expired(writer, key)
                    swr = await _round(workers, proxy, 2, processes)
                    miss = await _round(workers, proxy, 3, processes)
                    results.append(_refresh_result(names[1], processes, swr, miss))
        finally:
            await asyncio.to_thread(workers.stop)
    return results


async def _round(workers: Workers, proxy: FaultProxy, index: int, processes: int) -> _Round:
    before = proxy.requests
    started = time.monotonic()
    workers.starts[index].set()
    done = await asyncio.to_thread(workers.expect, "done", processes, TIMEOUT_S)
    wall_ms = (max(d[4] for d in done) - started) * 1000
    calls = sum(1 for m in workers.reports("factory") if m[2] == index)
    all_got = all(d[3] == [VALUE] for d in done)
    values = tuple(v for d in done for v in d[3])
    latencies = tuple(t for d in done for t in d[5])
    return _Round(calls, proxy.requests - before, wall_ms, all_got, values, latencies)


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


def _refresh_result(name: str, processes: int, swr: _Round, miss: _Round) -> FeatureResult:
    """The refresh cell: ``swr`` with stale_ttl on, ``miss`` with it off."""
    figures: dict[str, float] = {"processes": processes}
    for mode, r in (("swr", swr), ("plain", miss)):
        ms = sorted(t * 1000 for t in r.latencies)
        # A caller waited for the factory unless it got the stale value (nor an error).
        waited = sum(1 for v in r.values if v != STALE_VALUE)
        figures |= {
            f"{mode}_factory_calls": r.factory_calls,
            f"{mode}_p99_ms": quantiles(ms, n=100, method="inclusive")[98]
            if len(ms) > 1
            else ms[0],
            f"{mode}_max_ms": ms[-1],
            f"{mode}_waited": waited,
            f"{mode}_waited_share": waited / len(r.values),
            f"{mode}_requests_per_caller": r.requests / processes,
        }
    stale_all = all(v == STALE_VALUE for v in swr.values)
    return FeatureResult(
        name=name,
        summary=(
            f"{processes} processes, get_or_set(lease={LEASE_S:g}) of one key past its ttl "
            f"(within stale_ttl={STALE_S:g}), factory {FACTORY_S * 1000:.0f} ms: stale_ttl on: "
            f"{swr.factory_calls} factory call in the fleet, "
            f"{'every' if stale_all else 'NOT every'} caller got the stale value "
            f"({figures['swr_waited']:.0f} waited for the factory), p99 "
            f"{figures['swr_p99_ms']:.1f} ms, max {figures['swr_max_ms']:.1f} ms; off: "
            f"{miss.factory_calls} factory call, {figures['plain_waited']:.0f} of "
            f"{len(miss.values)} callers waited, p99 {figures['plain_p99_ms']:.1f} ms, "
            f"max {figures['plain_max_ms']:.1f} ms"
        ),
        figures=figures,
        expected="stale_ttl on: 1 factory call in the fleet, no caller waits for the factory",
        met=swr.factory_calls == 1 and stale_all and miss.all_got,
    )
