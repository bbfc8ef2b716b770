"""Turning cell results into ratios, the full per-cell table, machine facts, and the JSON file."""

from __future__ import annotations

import json
import math
import os
import platform
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Final

from benchmarks.metrics import CellResult
from benchmarks.workloads import size_label

__all__ = [
    "Ratios",
    "facade_overhead",
    "machine_info",
    "ratios",
    "render_table",
    "write_json",
]

BASELINE_LITELLM: Final = "litellm"
BASELINE_RAW: Final = "aiobotocore"
BASELINE_NATIVE: Final = "obstore"
_PACKAGES: Final = (
    "s3cache-async",
    "aiobotocore",
    "botocore",
    "boto3",
    "litellm",
    "moto",
    "aiohttp",
    "obstore",
)


@dataclass(frozen=True, slots=True)
class Ratios:
    """Throughput and CPU of a cell relative to the baselines of its group (NaN when absent)."""

    vs_litellm: float
    vs_raw: float
    cpu_vs_raw: float


def _div(a: float, b: float) -> float:
    if math.isnan(a) or math.isnan(b) or b == 0:
        return math.nan
    return a / b


def _key(r: CellResult) -> tuple[str, int, int]:
    return (r.workload, r.size, r.concurrency)


def ratios(results: Sequence[CellResult]) -> dict[int, Ratios]:
    """For each result (by index), its ratios against litellm and raw aiobotocore in its group."""
    base: dict[tuple[tuple[str, int, int], str], CellResult] = {
        (_key(r), r.contender): r for r in results
    }
    out: dict[int, Ratios] = {}
    for i, r in enumerate(results):
        lit = base.get((_key(r), BASELINE_LITELLM))
        raw = base.get((_key(r), BASELINE_RAW))
        out[i] = Ratios(
            vs_litellm=_div(r.ops_per_s, lit.ops_per_s) if lit else math.nan,
            vs_raw=_div(r.ops_per_s, raw.ops_per_s) if raw else math.nan,
            cpu_vs_raw=_div(r.cpu_us_per_op, raw.cpu_us_per_op) if raw else math.nan,
        )
    return out


def _fmt(value: float, digits: int = 0, suffix: str = "") -> str:
    if math.isnan(value):
        return "-"
    return f"{value:,.{digits}f}{suffix}"


COLUMNS: Final = (
    "contender",
    "workload",
    "size",
    "c",
    "ops/s",
    "p50 ms",
    "p99 ms",
    "CPU us/op",
    "lag p99/max ms",
    "RSS MiB",
    "req/op",
    "x litellm",
    "x aiobotocore",
    "CPU x aiobotocore",
    "errors",
)


def table_rows(results: Sequence[CellResult]) -> list[list[str]]:
    """The table's cells as text, one row per result, in the results' order."""
    rat = ratios(results)
    rows = []
    for i, r in enumerate(results):
        q = rat[i]
        rows.append(
            [
                r.contender,
                r.workload,
                size_label(r.size),
                str(r.concurrency),
                _fmt(r.ops_per_s),
                _fmt(r.p50_ms, 1),
                _fmt(r.p99_ms, 1),
                _fmt(r.cpu_us_per_op),
                f"{_fmt(r.loop_lag_p99_ms, 1)}/{_fmt(r.loop_lag_max_ms, 1)}",
                _fmt(r.rss_peak_mib),
                _fmt(r.requests_per_op, 2),
                _fmt(q.vs_litellm, 2, "x"),
                _fmt(q.vs_raw, 2, "x"),
                _fmt(q.cpu_vs_raw, 2, "x"),
                str(r.errors),
            ]
        )
    return rows


def render_table(results: Sequence[CellResult], markdown: bool = False) -> str:
    """A fixed-width (or Markdown) table of results, numbers right-aligned."""
    rows = table_rows(results)
    if markdown:
        lines = ["| " + " | ".join(COLUMNS) + " |"]
        lines.append("|" + "|".join("---" if i < 3 else "---:" for i in range(len(COLUMNS))) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(COLUMNS)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < 3 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    out = [line(COLUMNS), line(["-" * w for w in widths])]
    previous: tuple[str, int, int] | None = None
    for r, row in zip(results, rows, strict=True):
        if previous is not None and _key(r) != previous:
            out.append("")
        previous = _key(r)
        out.append(line(row))
    return "\n".join(out)


def facade_overhead(results: Iterable[CellResult]) -> list[dict[str, Any]]:
    """Sync facade minus async core, per group where both ran: p50 latency and CPU per op."""
    by = {(_key(r), r.contender): r for r in results}
    out = []
    for (key, name), sync in by.items():
        if name != "s3cache-sync":
            continue
        core = by.get((key, "s3cache"))
        if core is None:
            continue
        out.append(
            {
                "workload": key[0],
                "size": key[1],
                "concurrency": key[2],
                "p50_ms_delta": sync.p50_ms - core.p50_ms,
                "cpu_us_per_op_delta": sync.cpu_us_per_op - core.cpu_us_per_op,
                "ops_per_s_ratio": _div(sync.ops_per_s, core.ops_per_s),
            }
        )
    return out


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """Where the numbers came from: CPU, cores, OS, Python and package versions."""
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": {name: _version(name) for name in _PACKAGES},
    }


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write the results file (NaN as null), creating its directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_nan_to_none(payload), indent=2) + "\n", encoding="utf-8")


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_nan_to_none(v) for v in value]
    return value
