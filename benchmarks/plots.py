"""PNG figures with matplotlib (Agg, no display): the lead cells, throughput against
concurrency, CPU per operation, the feature cells, and goodput over time with partition
splits (the scale benchmark).

Only measured points are drawn: sweeps are markers without lines (nothing was measured between
two concurrencies), bars are measured values. Colours are the Okabe-Ito palette, which stays
distinguishable with every common colour-vision deficiency, and each contender also has its
own marker shape.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from benchmarks.features import FeatureResult
from benchmarks.metrics import CellResult
from benchmarks.summary import LABELS, lead_rows
from benchmarks.workloads import size_label

__all__ = ["OKABE_ITO", "Timeline", "plot_all", "plot_goodput"]

#: Okabe & Ito (2008), "Color Universal Design": orange, sky blue, bluish green, yellow, blue,
#: vermillion, reddish purple, black.
OKABE_ITO: Final = (
    "#E69F00",
    "#56B4E9",
    "#009E73",
    "#F0E442",
    "#0072B2",
    "#D55E00",
    "#CC79A7",
    "#000000",
)
_STYLE: Final = {  # contender: (colour, marker)
    "s3cache": ("#0072B2", "o"),
    "s3cache-sync": ("#56B4E9", "s"),
    "s3cache-no-fast-path": ("#009E73", "D"),
    "s3cache-litellm": ("#009E73", "d"),
    "aiobotocore": ("#E69F00", "^"),
    "obstore": ("#CC79A7", "v"),
    "litellm": ("#D55E00", "X"),
    "boto3": ("#000000", "P"),
    "llm+s3cache": ("#0072B2", "o"),
    "llm+litellm": ("#D55E00", "X"),
}
_MARKERS: Final = "o^sDvXP*"
_OURS: Final = "#0072B2"
_OTHER: Final = "#E69F00"


def _style(name: str, index: int) -> tuple[str, str]:
    return _STYLE.get(name, (OKABE_ITO[index % 8], _MARKERS[index % len(_MARKERS)]))


def _pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend, or None when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def plot_all(
    results: Sequence[CellResult],
    directory: Path,
    title: str,
    features: Sequence[FeatureResult] = (),
) -> list[Path]:
    """Write the figures into ``directory``; returns their paths (none without matplotlib)."""
    plt = _pyplot()
    if plt is None:
        return []
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for draw in (_lead, _sweeps, _cpu, _features):
        for name, fig in draw(plt, results, features, title):
            path = directory / name
            fig.tight_layout()
            fig.savefig(path, dpi=110)
            plt.close(fig)
            written.append(path)
    return written


Figures = list[tuple[str, Any]]


def _lead(plt: Any, results: Sequence[CellResult], _: Any, title: str) -> Figures:
    """The lead table as bars: ops/s and CPU per op, get and set, per contender."""
    rows = [r for r in lead_rows(results) if r.get_ops == r.get_ops or r.set_ops == r.set_ops]
    if not rows:
        return []
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 0.45 * len(rows) + 1.8), sharey=True)
    ys = range(len(rows))
    for ax, (get, put), label in (
        (left, ("get_ops", "set_ops"), "ops/s (higher is better)"),
        (right, ("get_cpu", "set_cpu"), "client CPU µs per op (lower is better)"),
    ):
        for i, row in enumerate(rows):
            colour, _marker = _style(row.contender, i)
            for offset, field, hatch in ((-0.2, get, ""), (0.2, put, "//")):
                value = getattr(row, field)
                if value == value:  # measured (not NaN)
                    ax.barh(i + offset, value, 0.38, color=colour, hatch=hatch, edgecolor="white")
        ax.set_xlabel(label)
        ax.grid(True, axis="x", alpha=0.3)
    left.set_yticks(list(ys), [LABELS.get(r.contender, r.contender) for r in rows], fontsize=8)
    left.invert_yaxis()
    left.legend(
        handles=[
            plt.Rectangle((0, 0), 1, 1, facecolor="#777777"),
            plt.Rectangle((0, 0), 1, 1, facecolor="#777777", hatch="//", edgecolor="white"),
        ],
        labels=["get (hit)", "set"],
        fontsize=8,
        loc="lower right",
    )
    fig.suptitle(f"get and set, one bar per measured cell\n{title}", fontsize=9)
    return [("lead.png", fig)]


def _sweeps(plt: Any, results: Sequence[CellResult], _: Any, title: str) -> Figures:
    """Throughput against concurrency, markers only, for each (workload, size) swept."""
    sweeps: dict[tuple[str, int], dict[str, list[tuple[int, float]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for r in results:
        sweeps[(r.workload, r.size)][r.contender].append((r.concurrency, r.ops_per_s))
    figures = []
    for (workload, size), lines in sorted(sweeps.items()):
        measured = sorted({c for points in lines.values() for c, _ in points})
        if len(measured) < 2:
            continue
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for i, (contender, points) in enumerate(lines.items()):
            colour, marker = _style(contender, i)
            ax.plot(
                [c for c, _ in points],
                [v for _, v in points],
                linestyle="none",
                marker=marker,
                markersize=8,
                color=colour,
                label=LABELS.get(contender, contender),
            )
        ax.set_xscale("log", base=2)
        ax.set_xticks(measured, [str(c) for c in measured])
        ax.set_xlabel("concurrency (tasks or caller threads); only these were measured")
        ax.set_ylabel("ops/s")
        ax.set_title(f"{workload} {size_label(size)}: throughput\n{title}", fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        figures.append((f"throughput-{workload}-{size_label(size)}.png", fig))
    return figures


def _cpu(plt: Any, results: Sequence[CellResult], _: Any, title: str) -> Figures:
    """CPU per op per contender, grouped bars for each (workload, size, concurrency)."""
    groups = sorted({(r.workload, r.size, r.concurrency) for r in results})
    if len(groups) < 3:  # the lead figure shows these already
        return []
    contenders = list(dict.fromkeys(r.contender for r in results))
    cpu = {(r.workload, r.size, r.concurrency, r.contender): r.cpu_us_per_op for r in results}
    fig, ax = plt.subplots(figsize=(max(7.0, 1.1 * len(groups) + 2), 4.5))
    width = 0.8 / max(1, len(contenders))
    for j, contender in enumerate(contenders):
        colour, _marker = _style(contender, j)
        points = [(i, cpu[(*g, contender)]) for i, g in enumerate(groups) if (*g, contender) in cpu]
        ax.bar(
            [i + j * width for i, _ in points],
            [v for _, v in points],
            width,
            color=colour,
            label=LABELS.get(contender, contender),
        )
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(groups))])
    ax.set_xticklabels([f"{w}\n{size_label(s)} c={c}" for w, s, c in groups], fontsize=7)
    ax.set_ylabel("client CPU per op (µs)")
    ax.set_title(f"Client CPU per operation (lower is better)\n{title}", fontsize=9)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return [("cpu-per-op.png", fig)]


def _features(
    plt: Any, _: Sequence[CellResult], features: Sequence[FeatureResult], title: str
) -> Figures:
    """The feature cells: calls and requests saved, and how fast a get returns, healthy and
    during an outage."""
    counts, times, deadline = _feature_bars(features)
    if not counts and not times:
        return []
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 0.4 * (len(counts) + len(times)) + 3))
    for ax, bars, unit in ((top, counts, "count (log scale)"), (bottom, times, "ms (log scale)")):
        for i, (_label, value, ours) in enumerate(bars):
            ax.barh(i, value, 0.6, color=_OURS if ours else _OTHER)
            shown = f"{value:,.0f}" if unit.startswith("count") else _ms(value)
            ax.annotate(shown, (value, i), xytext=(3, 0), textcoords="offset points", va="center")
        ax.set_yticks(range(len(bars)), [label for label, _, _ in bars], fontsize=8)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlabel(unit)
        ax.grid(True, axis="x", alpha=0.3)
    if deadline:
        bottom.axvline(deadline, color="#555555", linestyle=":", label="the cache's deadline")
        bottom.legend(fontsize=8, loc="lower right")
    top.set_title(
        "blue: s3cache with the feature; orange: without it (raw aiobotocore, no lease, "
        "a get from S3); all measured",
        fontsize=8,
    )
    fig.suptitle(f"What only s3cache does\n{title}", fontsize=9)
    return [("features.png", fig)]


Bar = tuple[str, float, bool]


def _feature_bars(features: Sequence[FeatureResult]) -> tuple[list[Bar], list[Bar], float]:
    counts: list[Bar] = []
    times: list[Bar] = []
    deadline = 0.0
    for f in features:
        g = f.figures
        if f.name == "stampede" and "factory_calls" in g:
            counts.append(
                (
                    f"stampede: factory calls for {g['callers']:.0f} callers",
                    g["factory_calls"],
                    True,
                )
            )
        elif f.name == "single flight" and g.get("requests") == g.get("requests"):
            counts.append((f"{g['callers']:.0f} get() of one key: requests", g["requests"], True))
            raw = g["raw_aiobotocore_requests"]
            counts.append(("the same with raw aiobotocore", raw, False))
        elif f.name.startswith("fleet lease") and "lease_factory_calls" in g:
            n = g["processes"]
            counts.append(
                (f"{n:.0f} processes, lease: factory calls", g["lease_factory_calls"], True)
            )
            counts.append((f"{n:.0f} processes, no lease", g["factory_calls"], False))
        elif f.name.startswith("fleet refresh") and "swr_p99_ms" in g:
            n = g["processes"]
            times.append((f"{n:.0f} processes past the ttl, stale_ttl: p99", g["swr_p99_ms"], True))
            times.append(
                (f"{n:.0f} processes past the ttl, no stale_ttl", g["plain_p99_ms"], False)
            )
        elif f.name == "expiry under load" and "swr_p99_ms" in g:
            times.append(("hot key expiring, stale_ttl: get_or_set p99", g["swr_p99_ms"], True))
            times.append(("hot key expiring, no stale_ttl", g["plain_p99_ms"], False))
        elif f.name == "early refresh" and "early_waited" in g:
            counts.append(("hot key, early=True: calls that waited", g["early_waited"], True))
            counts.append(("hot key, no early refresh", g["plain_waited"], False))
        elif f.name == "local tier" and "us_per_hit" in g:
            times.append(("local-tier hit", g["us_per_hit"] / 1000, True))
        elif f.name == "S3 outage" and "healthy_ms" in g:
            deadline = g["deadline_ms"]
            times.append(("get from S3, healthy", g["healthy_ms"], False))
            times.append(("S3 refusing: get answered (a miss)", g["refused_miss_ms"], True))
            times.append(("S3 black-holed: get answered (a miss)", g["blackhole_miss_ms"], True))
            times.append(("S3 down: local-tier hit", g["tier_hit_us"] / 1000, True))
            if "breaker_fast_p99_ms" in g:
                label = "S3 black-holed, breaker open: get p99 (a miss)"
                times.append((label, g["breaker_fast_p99_ms"], True))
    return counts, times, deadline


def _ms(value: float) -> str:
    return f"{value * 1000:.1f} µs" if value < 1 else f"{value:,.0f} ms"


#: One cell of :func:`plot_goodput`: label, successes per second, SlowDown replies per second,
#: the emulated capacity per second, and the seconds at which a partition split.
Timeline = tuple[str, Sequence[int], Sequence[int], Sequence[float], Sequence[float]]


def plot_goodput(timelines: Sequence[Timeline], path: Path, title: str) -> Path | None:
    """Goodput (solid), emulated capacity (dotted) and SlowDown replies per second over time,
    one colour per cell, each split a dashed vertical line; the PNG's path (None without
    matplotlib). Every second is measured, so the lines join measured points only."""
    plt = _pyplot()
    if plt is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True, height_ratios=[3, 1])
    for index, (label, goodput, slowdowns, capacity, splits) in enumerate(timelines):
        colour = OKABE_ITO[index % len(OKABE_ITO)]
        seconds = [i + 0.5 for i in range(len(goodput))]
        top.plot(seconds, goodput, color=colour, label=label)
        top.step(seconds, capacity, where="mid", color=colour, linestyle=":", alpha=0.8)
        bottom.plot(seconds, slowdowns, color=colour)
        for at in splits:
            top.axvline(at, color=colour, linestyle="--", alpha=0.6)
    top.set_ylabel("successful operations/s")
    top.set_title(
        f"Goodput over time (dotted: emulated capacity, dashed: a split)\n{title}", fontsize=9
    )
    top.grid(True, alpha=0.3)
    top.legend(fontsize=8)
    bottom.set_ylabel("SlowDown/s")
    bottom.set_xlabel("seconds since the start")
    bottom.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
