"""The scale benchmark's scaffold (benchmarks/scale.py): what a cell may ask for, the emulated
capacity it is read against, and one short run of worker processes against the emulated
limits, as ``python -m benchmarks.scale`` runs it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks import scale
from benchmarks.scale_targets import render_verdicts, scale_targets
from harness.s3limits import Limits


def plan(tmp_path: Path, **changes: object) -> scale.Plan:
    fields: dict[str, object] = {
        "cells": (scale.Cell(2),),
        "seconds": 3.0,
        "tasks": 4,
        "keys": 200,
        "read_fraction": 0.9,
        "value_size": 64,
        "timeout": 5.0,
        "latency_ms": 5.0,
        "limits": Limits(read_rate=20, write_rate=10, split_after_s=1.0, max_partitions=4),
        "out": tmp_path,
    }
    fields.update(changes)
    return scale.Plan(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        (scale.Cell(8, layout="hashed"), "layout 'hashed' is not in s3cache yet"),
        (scale.Cell(8, layout="hashed", pacing=True), "layout 'hashed' is not in s3cache yet"),
    ],
)
def test_what_s3cache_lacks_is_refused_by_name(cell: scale.Cell, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        scale.cache_kwargs(cell, "http://127.0.0.1:1", "p/", 5.0)


def test_the_command_line_refuses_before_starting_anything(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        scale.main(["--quick", "--layouts", "flat,hashed"])
    assert exited.value.code == 2
    assert "layout 'hashed' is not in s3cache yet" in capsys.readouterr().err


def test_the_plan_crosses_layouts_pacing_and_process_counts() -> None:
    args = scale.build_parser().parse_args(["--processes", "8,16", "--pacing", "off,on"])
    cells = scale.plan_from(args).cells
    assert [(c.processes, c.pacing) for c in cells] == [
        (8, False),
        (16, False),
        (8, True),
        (16, True),
    ]
    quick = scale.plan_from(scale.build_parser().parse_args(["--quick"]))
    assert [(c.processes, c.pacing) for c in quick.cells] == [(4, False), (4, True)]
    assert quick.limits.split_after_s == 4.0
    assert quick.limits.read_rate == pytest.approx(55)


def test_capacity_follows_the_splits(tmp_path: Path) -> None:
    # One partition serves min(20 / 0.9, 10 / 0.1) = 22.2 operations a second of a 90/10 mix.
    series = scale._capacity_series(plan(tmp_path), [1.2, 3.0, 3.4], 5)
    assert series == pytest.approx([22.22, 44.44, 44.44, 88.89, 88.89], rel=1e-3)


def test_a_short_run_measures_goodput_slowdowns_and_a_split(tmp_path: Path) -> None:
    [report] = scale.run(plan(tmp_path))
    assert report.ok > 0
    assert report.goodput == pytest.approx(report.ok / 3.0)
    assert report.slowdowns > 0  # 8 callers against 20 reads a second
    assert report.splits  # loaded for more than a second
    assert report.partitions == len(report.splits) + 1
    assert sum(report.goodput_series) <= report.ok
    assert report.p50_ms >= 5.0  # the latency on the wire
    assert scale.render([report]).count("2 processes, flat, no pacing") == 1
    [results] = tmp_path.glob("scale-*.json")
    saved = json.loads(results.read_text())
    assert saved["cells"][0]["slowdowns"] == report.slowdowns
    assert saved["plan"]["limits"]["read_rate"] == 20
    [figure] = tmp_path.glob("scale-goodput-*.png")
    assert figure.read_bytes().startswith(b"\x89PNG")


def _cell_report(processes: int, pacing: bool, **figures: Any) -> scale.CellReport:
    values: dict[str, Any] = {
        "seconds": 10.0,
        "ops": 1000,
        "ok": 1000,
        "failed": {},
        "goodput": 100.0,
        "slowdowns": 0,
        "p50_ms": 20.0,
        "p99_ms": 50.0,
        "capacity": 100.0,
        "partitions": 1,
        "splits": [],
    }
    values.update(figures)
    return scale.CellReport(cell=scale.Cell(processes, "flat", pacing), **values)


def test_the_targets_are_read_met_or_not_with_reasons() -> None:
    reports = [
        _cell_report(8, False, slowdowns=500, failed={"server": 10}),
        _cell_report(8, True, slowdowns=40, goodput=101.0),
        _cell_report(16, False, slowdowns=500, splits=[4.0, 8.0]),
        _cell_report(16, True, slowdowns=100, goodput=90.0, splits=[4.0]),
    ]
    verdicts = scale_targets(reports, "on a shared machine")
    capacity, base8, base16, cut8, cut16 = verdicts
    assert capacity.met is None  # no 32-process hashed cell with pacing ran
    assert (base8.met, base8.measured) == (True, "1.0% failed (10 of 1000)")
    assert base16.met is True
    assert cut8.met is True  # 12.5x fewer, goodput up
    assert cut16.met is False
    assert "only 5.0x fewer" in cut16.why
    assert "goodput fell 10%, with fewer splits (1 against 2)" in cut16.why
    assert "on a shared machine" in cut16.why
    text = render_verdicts(verdicts)
    assert text.count("[MET]") == 3
    assert text.count("[NOT MET]") == 1
    assert text.count("[NOT RUN]") == 1
