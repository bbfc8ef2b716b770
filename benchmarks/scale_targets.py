"""Issue 28's targets, read from one run of :mod:`benchmarks.scale`, each met or not with its
reason (the style of :mod:`benchmarks.targets`).

- 32 processes, hashed layout, pacing on: goodput >= 0.9x the emulated capacity, 0 failed.
- Flat layout, no pacing: its failure rate, reported as the baseline (met when it ran).
- Pacing on cuts SlowDown replies >= 10x against pacing off, at equal or better goodput (each
  process count and layout that ran both ways).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from benchmarks.targets import Verdict

if TYPE_CHECKING:
    from benchmarks.scale import CellReport as _Report

__all__ = ["CAPACITY_SHARE", "SLOWDOWN_CUT", "render_verdicts", "scale_targets"]

#: Goodput of the 32-process hashed, paced cell, as a share of the emulated capacity.
CAPACITY_SHARE: Final = 0.9
#: How many times fewer SlowDown replies pacing must bring.
SLOWDOWN_CUT: Final = 10.0
_FLEET: Final = 32


def scale_targets(reports: Sequence[_Report], shared: str) -> list[Verdict]:
    """Every target of issue 28 over ``reports``; ``shared`` says under what conditions the run
    was (a reason that a not-met verdict names)."""
    cells = {(r.cell.processes, r.cell.layout, r.cell.pacing): r for r in reports}
    verdicts = [_capacity(cells.get((_FLEET, "hashed", True)), shared)]
    verdicts += [_baseline(r) for key, r in sorted(cells.items()) if key[1:] == ("flat", False)]
    for (processes, layout, pacing), on in sorted(cells.items()):
        off = cells.get((processes, layout, False))
        if pacing and off is not None:
            verdicts.append(_cut(on, off, shared))
    return verdicts


def _failed(report: _Report) -> int:
    return sum(report.failed.values())


def _capacity(report: _Report | None, shared: str) -> Verdict:
    what = f"{_FLEET} processes, hashed, pacing: goodput >= {CAPACITY_SHARE}x capacity, 0 failed"
    if report is None:
        return Verdict(what, "not run", None, f"no {_FLEET}-process hashed cell with pacing ran")
    share = report.goodput / report.capacity if report.capacity else 0.0
    failed = _failed(report)
    measured = f"{share:.2f}x capacity, {failed} failed of {report.ops}"
    met = share >= CAPACITY_SHARE and failed == 0
    return Verdict(what, measured, met, "" if met else f"{shared}")


def _baseline(report: _Report) -> Verdict:
    failed = _failed(report)
    rate = failed / report.ops if report.ops else 0.0
    what = f"{report.cell.processes} processes, flat, no pacing: failure rate (the baseline)"
    return Verdict(what, f"{rate:.1%} failed ({failed} of {report.ops})", True)


def _cut(on: _Report, off: _Report, shared: str) -> Verdict:
    what = (
        f"{on.cell.processes} processes, {on.cell.layout}: pacing cuts SlowDown >= "
        f"{SLOWDOWN_CUT:g}x at equal or better goodput"
    )
    cut = off.slowdowns / max(on.slowdowns, 1)
    measured = (
        f"SlowDown {off.slowdowns} -> {on.slowdowns} ({cut:.1f}x fewer); goodput "
        f"{off.goodput:.1f} -> {on.goodput:.1f}/s"
    )
    fewer, faster = cut >= SLOWDOWN_CUT, on.goodput >= off.goodput
    if fewer and faster:
        return Verdict(what, measured, True)
    reasons = []
    if not fewer:
        reasons.append(
            f"only {cut:.1f}x fewer SlowDowns: each process backs off on its own (the pacing is "
            "per process), so every process keeps probing the limit"
        )
    if not faster:
        fell = f"goodput fell {1 - on.goodput / max(off.goodput, 1e-9):.0%}"
        if len(on.splits) < len(off.splits):
            fell += (
                f", with fewer splits ({len(on.splits)} against {len(off.splits)}): the "
                "emulator splits a partition on the load it is asked for, throttled requests "
                "included, and paced clients ask for about what it serves"
            )
        reasons.append(fell)
    return Verdict(what, measured, False, f"{'; '.join(reasons)}; {shared}")


def render_verdicts(verdicts: Sequence[Verdict]) -> str:
    """The verdicts as lines: MET, NOT MET (why) or NOT RUN."""
    lines = []
    for v in verdicts:
        state = {True: "MET", False: "NOT MET", None: "NOT RUN"}[v.met]
        line = f"[{state}] {v.what}: {v.measured}"
        lines.append(line + (f"\n          {v.why}" if v.why else ""))
    return "\n".join(lines)
