"""The scale benchmark's scaffold (benchmarks/scale.py): what a cell may ask for, the emulated
capacity it is read against, and one short run of worker processes against the emulated
limits, as ``python -m benchmarks.scale`` runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import scale
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
        (scale.Cell(8, pacing=True), "adaptive pacing is not in s3cache yet"),
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
    assert [c.processes for c in quick.cells] == [4]
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
