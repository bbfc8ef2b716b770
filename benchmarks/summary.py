"""The story of a run, in the order a reader wants it: one short table (each contender's get
and set throughput and CPU per operation), one line per feature cell, then the targets, each
"not met" with its reason; as text for the terminal and as Markdown for ``benchmarks/results/``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from benchmarks.features import FeatureResult
from benchmarks.metrics import CellResult
from benchmarks.report import BASELINE_LITELLM, render_table
from benchmarks.targets import Conditions, Verdict
from benchmarks.workloads import size_label

__all__ = ["LABELS", "feature_lines", "lead_cells", "lead_table", "markdown", "verdict_lines"]

#: How the lead table names each contender.
LABELS: Final = {
    "s3cache": "s3cache AsyncS3Cache",
    "s3cache-sync": "s3cache S3Cache (sync; a thread per caller)",
    "s3cache-no-fast-path": "s3cache AsyncS3Cache(fast_path=False)",
    "s3cache-litellm": "s3cache's litellm backend",
    "aiobotocore": "aiobotocore, raw",
    "obstore": "obstore (Rust client)",
    "boto3": "boto3 (a thread per caller)",
    "litellm": "litellm's S3Cache",
}
#: The order of the feature lines: what only s3cache does, most telling first.
FEATURE_ORDER: Final = (
    "stampede",
    "single flight",
    "fleet lease",
    "fleet refresh",
    "expiry under load",
    "early refresh",
    "local tier",
    "S3 outage",
)
_HEADERS: Final = ("contender", "get ops/s", "get CPU us/op", "set ops/s", "set CPU us/op")


@dataclass(frozen=True, slots=True)
class LeadRow:
    """One contender in the lead table (NaN where a cell was not run)."""

    contender: str
    get_ops: float
    get_cpu: float
    set_ops: float
    set_cpu: float
    get_vs_litellm: float


def lead_cells(results: Sequence[CellResult]) -> tuple[int, int] | None:
    """(size, concurrency) of the lead table: 1 KiB at c=64 where run, else the smallest size
    and largest concurrency measured for get-hit or set; None if neither ran."""
    cells = [(r.size, r.concurrency) for r in results if r.workload in ("get-hit", "set")]
    if not cells:
        return None
    if (1024, 64) in cells:
        return 1024, 64
    size = min(s for s, _ in cells)
    return size, max(c for s, c in cells if s == size)


def lead_rows(results: Sequence[CellResult]) -> list[LeadRow]:
    """The lead table's rows, in the order the contenders ran."""
    where = lead_cells(results)
    if where is None:
        return []
    cell = {
        (r.contender, r.workload): r
        for r in results
        if (r.size, r.concurrency) == where and r.workload in ("get-hit", "set")
    }
    litellm = cell.get((BASELINE_LITELLM, "get-hit"))
    rows = []
    for name in dict.fromkeys(name for name, _ in cell):
        get, put = cell.get((name, "get-hit")), cell.get((name, "set"))
        rows.append(
            LeadRow(
                contender=name,
                get_ops=get.ops_per_s if get else math.nan,
                get_cpu=get.cpu_us_per_op if get else math.nan,
                set_ops=put.ops_per_s if put else math.nan,
                set_cpu=put.cpu_us_per_op if put else math.nan,
                get_vs_litellm=(
                    get.ops_per_s / litellm.ops_per_s
                    if get and litellm and litellm.ops_per_s
                    else math.nan
                ),
            )
        )
    return rows


def _n(value: float, suffix: str = "", digits: int = 0) -> str:
    return "-" if math.isnan(value) else f"{value:,.{digits}f}{suffix}"


def lead_table(results: Sequence[CellResult], markdown: bool = False) -> str:
    """The lead table: contenders x get/set ops/s and client CPU per operation."""
    rows = lead_rows(results)
    if not rows:
        return "(no get-hit or set cell was run)"
    has_litellm = any(not math.isnan(r.get_vs_litellm) for r in rows)
    headers = [*_HEADERS, "get x litellm"] if has_litellm else list(_HEADERS)
    if markdown:
        headers = [h.replace("us/op", "µs/op") for h in headers]
    cells = []
    for r in rows:
        line = [LABELS.get(r.contender, r.contender), _n(r.get_ops), _n(r.get_cpu)]
        line += [_n(r.set_ops), _n(r.set_cpu)]
        if has_litellm:
            line.append(_n(r.get_vs_litellm, "x", 1))
        cells.append(line)
    if markdown:
        out = ["| " + " | ".join(headers) + " |", "|---" + "|---:" * (len(headers) - 1) + "|"]
        return "\n".join(out + ["| " + " | ".join(line) + " |" for line in cells])
    widths = [max(len(h), *(len(line[i]) for line in cells)) for i, h in enumerate(headers)]

    def fmt(line: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        )

    return "\n".join([fmt(headers), fmt(["-" * w for w in widths]), *map(fmt, cells)])


def lead_title(results: Sequence[CellResult], latency_ms: float, where: str) -> str:
    """What the lead table measured, in a line."""
    cells = lead_cells(results)
    if cells is None:
        return "get and set"
    size, c = cells
    return (
        f"get and set of {size_label(size)} values, {c} concurrent callers, "
        f"{latency_ms:g} ms emulated on the wire, {where}"
    )


def _ordered(features: Sequence[FeatureResult]) -> list[FeatureResult]:
    def rank(f: FeatureResult) -> int:
        return next((i for i, p in enumerate(FEATURE_ORDER) if f.name.startswith(p)), 99)

    return sorted(features, key=rank)


def feature_lines(features: Sequence[FeatureResult], conditions: Conditions) -> list[str]:
    """One line per feature cell, each with its figure; one not as expected says why."""
    lines = []
    for f in _ordered(features):
        if f.met is None:
            lines.append(f"[-] {f.name}: {f.summary}")
        elif f.met:
            lines.append(f"[ok] {f.name}: {f.summary}")
        else:
            lines.append(
                f"[NOT as expected] {f.name}: {f.summary}; expected {f.expected}: a count that "
                "differs is a bug in s3cache (please report it), a time that differs can be a "
                f"busy machine{conditions.busy()} (rerun on a quiet one)"
            )
    return lines


def verdict_lines(verdicts: Sequence[Verdict]) -> list[str]:
    """One line per target; "not met" and "not run" lines say why."""
    lines = []
    for v in verdicts:
        mark = {True: "met", False: "NOT met", None: "-"}[v.met]
        tail = f"; {v.why}" if v.why else ""
        lines.append(f"[{mark}] {v.what}: {v.measured}{tail}")
    return lines


def markdown(
    header: Sequence[str],
    results: Sequence[CellResult],
    features: Sequence[FeatureResult],
    verdicts: Sequence[Verdict],
    context: tuple[Conditions, str, Sequence[str]],
) -> str:
    """The whole report as Markdown: conditions, the lead table, the feature lines, the
    targets, every cell, and the plots (``context``: conditions, lead title, plot names)."""
    conditions, title, plots = context
    parts = [f"# {header[0]}", "", *(f"- {line}" for line in header[1:]), ""]
    parts += [f"## {title}", "", lead_table(results, markdown=True), ""]
    if features:
        parts += ["## What only s3cache does", ""]
        parts += [f"- {line}" for line in feature_lines(features, conditions)] + [""]
    parts += ["## Targets", "", *(f"- {line}" for line in verdict_lines(verdicts)), ""]
    parts += ["## Every cell", "", render_table(results, markdown=True), ""]
    if plots:
        parts += ["## Plots", "", *(f"![{name}]({name})" for name in plots), ""]
    return "\n".join(parts)
