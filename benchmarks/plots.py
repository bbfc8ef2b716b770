"""PNG figures with matplotlib (Agg, no display): throughput vs concurrency, CPU per op, and
goodput over time with partition splits (the scale benchmark)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.metrics import CellResult
from benchmarks.workloads import size_label

__all__ = ["Timeline", "plot_all", "plot_goodput"]

#: One cell of :func:`plot_goodput`: label, successes per second, SlowDown replies per second,
#: the emulated capacity per second, and the seconds at which a partition split.
Timeline = tuple[str, Sequence[int], Sequence[int], Sequence[float], Sequence[float]]


def _pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend, or None when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def plot_all(results: Sequence[CellResult], directory: Path, title: str) -> list[Path]:
    """Write the figures into ``directory``; returns their paths (none without matplotlib)."""
    plt = _pyplot()
    if plt is None:
        return []
    directory.mkdir(parents=True, exist_ok=True)
    written = []

    # Throughput vs concurrency, one line per contender, for each (workload, size) swept.
    sweeps: dict[tuple[str, int], dict[str, list[tuple[int, float]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for r in results:
        sweeps[(r.workload, r.size)][r.contender].append((r.concurrency, r.ops_per_s))
    for (workload, size), lines in sorted(sweeps.items()):
        if max(len(points) for points in lines.values()) < 2:
            continue
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for contender, points in lines.items():
            points.sort()
            ax.plot([c for c, _ in points], [v for _, v in points], marker="o", label=contender)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrency (tasks or caller threads)")
        ax.set_ylabel("ops/s")
        ax.set_title(f"{workload} {size_label(size)}: throughput\n{title}", fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        path = directory / f"throughput-{workload}-{size_label(size)}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    # CPU per op per contender, grouped bars for each (workload, size, concurrency).
    groups = sorted({(r.workload, r.size, r.concurrency) for r in results})
    contenders = list(dict.fromkeys(r.contender for r in results))
    cpu = {(r.workload, r.size, r.concurrency, r.contender): r.cpu_us_per_op for r in results}
    fig, ax = plt.subplots(figsize=(max(7.0, 1.1 * len(groups) + 2), 4.5))
    width = 0.8 / max(1, len(contenders))
    for j, contender in enumerate(contenders):
        xs = [i + j * width for i in range(len(groups))]
        ys = [cpu.get((*g, contender), 0.0) for g in groups]
        ax.bar(xs, ys, width, label=contender)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(groups))])
    ax.set_xticklabels(
        [f"{w}\n{size_label(s)} c={c}" for w, s, c in groups], fontsize=7, rotation=0
    )
    ax.set_ylabel("client CPU per op (us)")
    ax.set_title(f"Client CPU per operation (lower is better)\n{title}", fontsize=9)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = directory / "cpu-per-op.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)
    return written


def plot_goodput(timelines: Sequence[Timeline], path: Path, title: str) -> Path | None:
    """Goodput (solid), emulated capacity (dotted) and SlowDown replies per second over time,
    one colour per cell, each split a dashed vertical line; the PNG's path (None without
    matplotlib)."""
    plt = _pyplot()
    if plt is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True, height_ratios=[3, 1])
    for index, (label, goodput, slowdowns, capacity, splits) in enumerate(timelines):
        colour = f"C{index % 10}"
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
