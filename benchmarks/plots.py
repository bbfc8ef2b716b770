"""PNG figures with matplotlib (Agg, no display): throughput vs concurrency, CPU per op."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from benchmarks.metrics import CellResult
from benchmarks.workloads import size_label

__all__ = ["plot_all"]


def plot_all(results: Sequence[CellResult], directory: Path, title: str) -> list[Path]:
    """Write the figures into ``directory``; returns their paths (none without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
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
