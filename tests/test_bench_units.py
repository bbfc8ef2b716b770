"""The benchmark's pure helpers: statistics, key choice, argument parsing, ratios and the table."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from benchmarks.metrics import CellResult, percentile
from benchmarks.options import QUICK_CONTENDERS, Group, parse, plan_for
from benchmarks.report import facade_overhead, ratios, render_table
from benchmarks.summary import lead_table, verdict_lines
from benchmarks.targets import Conditions, targets
from benchmarks.workloads import Budget, keyspace, pick, value_kind

QUIET = Conditions(load=0.1, cores=2)


def cell(
    contender: str,
    ops_per_s: float,
    cpu: float,
    p50: float = 10.0,
    c: int = 64,
    workload: str = "get-hit",
    size: int = 1024,
    lag: float = 1.0,
) -> CellResult:
    """A result with just the fields the report reads."""
    return CellResult(
        contender=contender,
        workload=workload,
        size=size,
        concurrency=c,
        latency_ms=20.0,
        ops=100,
        errors=0,
        elapsed_s=1.0,
        ops_per_s=ops_per_s,
        p50_ms=p50,
        p99_ms=2 * p50,
        cpu_us_per_op=cpu,
        loop_lag_p99_ms=lag,
        loop_lag_max_ms=2 * lag,
        rss_peak_mib=100.0,
        requests_per_op=1.0,
    )


def test_percentile_interpolates_between_ranks() -> None:
    data = [4.0, 1.0, 3.0, 2.0]
    assert percentile(data, 0) == 1.0
    assert percentile(data, 100) == 4.0
    assert percentile(data, 50) == pytest.approx(2.5)
    assert percentile(list(range(101)), 99) == pytest.approx(99.0)
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError, match="between 0 and 100"):
        percentile(data, 101)


def test_cell_result_subtracts_heartbeat_cpu_and_counts_requests() -> None:
    result = CellResult.from_samples(
        contender="s3cache",
        workload="get-hit",
        size=1024,
        concurrency=4,
        latency_ms=20.0,
        durations=[0.010, 0.020, 0.030, 0.040],
        errors=1,
        elapsed_s=2.0,
        cpu_s=0.010,
        lags=[0.001] * 100,
        rss_peak_bytes=64 * 2**20,
        beat_cpu_s=0.00005,  # 100 beats x 50 us = 5 ms of the 10 ms
        requests=6,
    )
    assert result.ops == 4
    assert result.ops_per_s == pytest.approx(2.0)
    assert result.p50_ms == pytest.approx(25.0)
    assert result.cpu_us_per_op == pytest.approx(1250.0)  # (10 - 5) ms / 4 ops
    assert result.requests_per_op == pytest.approx(1.5)
    assert result.rss_peak_mib == pytest.approx(64.0)
    assert result.loop_lag_max_ms == pytest.approx(1.0)


def test_workers_never_share_a_key_when_there_is_one_per_worker() -> None:
    concurrency = 16
    assert keyspace(1024, concurrency) == 64
    assert keyspace(1024, 256) == 256
    assert keyspace(1024 * 1024, 256) == 64  # capped at 64 MiB worth
    seen: dict[str, int] = {}
    for worker in range(concurrency):
        rng = random.Random(worker)
        for _ in range(50):
            kind, key = pick("get-hit", 1024, rng, worker, concurrency)
            assert kind == "hit"
            assert seen.setdefault(key, worker) == worker
    assert pick("get-miss", 1024, random.Random(0))[0] == "miss"
    kinds = {pick("mixed", 1024, random.Random(i))[0] for i in range(200)}
    assert kinds == {"hit", "set"}
    with pytest.raises(ValueError, match="unknown workload"):
        pick("scan", 1024, random.Random(0))


def test_every_contender_stores_the_same_kind_of_value_in_a_cell() -> None:
    """Raw bytes in the size sweeps for every contender (a JSON document for litellm's API,
    which reads dicts only); the ``-json`` workloads store JSON, under keys of their own, which
    the raw S3 clients encode and decode with orjson as their users would."""
    from benchmarks.contenders import CONTENDERS, JSON_KEYS, Contender

    for name, cls in CONTENDERS.items():
        raw, doc = cls.value(1024), cls.value(1024, "json")
        assert doc == {"v": "x" * 1015}, name
        assert raw == (doc if cls.json_only else b"x" * 1024), name
    assert {n for n, c in CONTENDERS.items() if c.json_only} == {"litellm", "s3cache-litellm"}
    assert value_kind("get-hit") == value_kind("set") == "bytes"
    assert value_kind("get-hit-json") == value_kind("set-json") == "json"
    hit, key = pick("get-hit-json", 1024, random.Random(0))
    assert (hit, key.startswith(JSON_KEYS)) == ("hit", True)
    assert not pick("get-hit", 1024, random.Random(0))[1].startswith(JSON_KEYS)
    assert pick("set-json", 1024, random.Random(0))[0] == "set"
    body = Contender.encoded({"v": "x"})
    assert Contender.decoded(f"{JSON_KEYS}1024/k0", body) == {"v": "x"}
    assert Contender.decoded("1024/k0", b"raw") == b"raw"  # bytes stay bytes
    assert Contender.encoded(b"raw") == b"raw"


def test_budget_stops_after_max_ops() -> None:
    budget = Budget(seconds=60.0, max_ops=3)
    budget.start()
    assert [budget.another() for _ in range(5)] == [True, True, True, False, False]


def test_parse_flags_and_plans() -> None:
    options = parse(
        [
            "--endpoint-url",
            "http://127.0.0.1:9000",
            "--access-key",
            "minioadmin",
            "--secret-key",
            "minioadmin",
            "--latency-ms",
            "5",
            "--quick",
            "--contenders",
            "s3cache,litellm",
            "--concurrency",
            "1,8",
        ]
    )
    assert options.endpoint_url == "http://127.0.0.1:9000"
    assert options.latency_ms == 5.0
    plan = plan_for(options)
    assert plan.contenders == ("s3cache", "litellm")
    assert plan.groups == (
        Group(1, "get-hit", 1024),
        Group(1, "set", 1024),
        Group(8, "get-hit", 1024),
        Group(8, "set", 1024),
    )
    quick = plan_for(parse(["--quick"]))
    assert set(quick.groups) == {
        Group(64, "get-hit", 1024),
        Group(64, "set", 1024),
        # the loop under load, beside the lead cells, for the contenders its targets compare
        Group(256, "get-hit", 1024, ("s3cache", "s3cache-sync", "obstore")),
    }
    assert quick.cells() == 2 * len(QUICK_CONTENDERS) + 3
    assert quick.contenders == QUICK_CONTENDERS
    assert "litellm" in quick.contenders  # measured in its own process (benchmarks.remote)
    assert quick.fleet_processes == (4,)
    default = plan_for(parse([]))
    assert default.mode == "default"
    assert Group(64, "get-hit", 1024) in default.groups
    assert {g.workload for g in default.groups} == {
        "get-hit",
        "get-miss",
        "set",
        "mixed",
        "get-hit-json",
        "set-json",
    }
    # The issue-25 cells: c=256 and c=1024, 1 MiB get and set, JSON apart from raw bytes.
    for group in (
        Group(256, "get-hit", 1024),
        Group(1024, "get-hit", 1024),
        Group(16, "get-hit", 1024 * 1024),
        Group(16, "set", 1024 * 1024),
        Group(64, "get-hit-json", 1024),
        Group(16, "set-json", 1024 * 1024),
    ):
        assert group in default.groups
    assert parse([]).loop == "asyncio"
    assert parse(["--loop", "uvloop", "--max-concurrency", "64"]).max_concurrency == 64
    full = plan_for(parse(["--full"]))
    assert len(full.groups) == 6 * 3 * 5
    # The Quickstart shows the clients: the fast embedded server, latency on the wire.
    assert (parse([]).embedded, parse([]).latency_via) == ("mini", "auto")
    assert parse(["--embedded", "moto"]).embedded == "moto"
    assert parse(["--latency-via", "hook"]).latency_via == "hook"
    assert parse([]).server is None
    assert parse(["--server", "ceph"]).server == "ceph"
    assert parse(["--server", "seaweedfs"]).server == "seaweedfs"
    assert plan_for(parse(["--quick"])).features_s > 0  # feature cells run unless asked not to
    assert plan_for(parse(["--quick", "--no-features"])).features_s == 0
    assert plan_for(parse(["--quick", "--no-features"])).fleet_processes == ()
    assert default.fleet_processes == (4, 16)


@pytest.mark.parametrize(
    "argv",
    [
        ["--workloads", "scan"],
        ["--sizes", "3KiB"],
        ["--concurrency", "0"],
        ["--access-key", "only-one"],
        ["--quick", "--full"],
        ["--latency-ms", "-1"],
        ["--embedded", "minio"],
        ["--latency-via", "kernel"],
        ["--embedded", "moto", "--latency-via", "server"],
        ["--server", "minio"],
        ["--server", "ceph", "--endpoint-url", "http://127.0.0.1:9000"],
        ["--server", "ceph", "--latency-via", "server"],
    ],
)
def test_parse_rejects_bad_flags(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse(argv)
    assert "error" in capsys.readouterr().err


def test_ratios_table_targets_and_facade_overhead() -> None:
    results = [
        cell("s3cache", 1000.0, 600.0, p50=10.0),
        cell("s3cache-sync", 900.0, 700.0, p50=11.0),
        cell("aiobotocore", 800.0, 1000.0),
        cell("litellm", 100.0, 1300.0),
    ]
    rat = ratios(results)
    assert rat[0].vs_litellm == pytest.approx(10.0)
    assert rat[0].vs_raw == pytest.approx(1.25)
    assert rat[0].cpu_vs_raw == pytest.approx(0.6)
    table = render_table(results)
    lines = table.splitlines()
    assert lines[0].split()[0] == "contender"
    assert "10.00x" in lines[2]
    assert "0.60x" in lines[2]
    assert render_table(results, markdown=True).startswith("| contender |")
    verdicts = {v.what.split(",")[0]: v.met for v in targets(results, QUIET)}
    assert verdicts == {
        "s3cache >= 8x litellm ops/s": True,
        "s3cache CPU per get <= 0.3x raw aiobotocore": False,  # 0.6x
        "s3cache CPU per get <= 0.5x obstore": None,  # not run
        "s3cache CPU per set <= 0.35x raw aiobotocore": None,
        "s3cache CPU per set <= 0.5x obstore": None,
        "s3cache >= 1.0x obstore ops/s": None,
        "event-loop lag p99 <= 10 ms": True,  # 1 ms in s3cache's get-hit c=64
        "event-loop lag p99 <= 20 ms": None,
        "s3cache CPU per 1MiB get <= 0.7x obstore": None,
        "s3cache CPU per 1MiB set <= 0.7x obstore": None,
        "sync facade >= 0.8x the async core's ops/s": None,
        "sync facade adds <= 60 us CPU per call": None,
    }
    mib = 1024 * 1024
    lean = [
        cell("s3cache", 1000.0, 120.0),
        cell("aiobotocore", 400.0, 1000.0),
        cell("obstore", 1500.0, 260.0),
        cell("litellm", 100.0, 1300.0),
        cell("s3cache", 900.0, 120.0, workload="set"),
        cell("aiobotocore", 300.0, 1000.0, workload="set"),
        cell("obstore", 900.0, 260.0, workload="set"),
        cell("s3cache", 5000.0, 100.0, c=256, lag=15.0),
        cell("obstore", 4500.0, 300.0, c=256),
        cell("s3cache-sync", 4200.0, 150.0, c=256),
        cell("s3cache", 500.0, 500.0, c=16, size=mib),
        cell("obstore", 500.0, 800.0, c=16, size=mib),
        cell("s3cache", 400.0, 900.0, c=16, size=mib, workload="set"),
        cell("obstore", 400.0, 1400.0, c=16, size=mib, workload="set"),
        cell("s3cache", 45.0, 400.0, c=1),
        cell("s3cache-sync", 45.0, 450.0, c=1),
    ]
    assert [v.met for v in targets(lean, QUIET)] == [True] * 12
    slow = [cell("s3cache", 300.0, 900.0), *lean[1:-1], cell("s3cache-sync", 45.0, 480.0, c=1)]
    met = [v.met for v in targets(slow, QUIET)]
    assert met == [False, False, False, True, True, True, True, True, True, True, True, False]
    (overhead,) = facade_overhead(results)
    assert overhead["p50_ms_delta"] == pytest.approx(1.0)
    assert overhead["cpu_us_per_op_delta"] == pytest.approx(100.0)


def test_every_target_not_met_or_not_run_says_why() -> None:
    slow = [
        cell("s3cache", 300.0, 900.0),
        cell("aiobotocore", 400.0, 1000.0),
        cell("obstore", 1500.0, 800.0),
        cell("litellm", 100.0, 1300.0),
        cell("s3cache", 3000.0, 100.0, c=256, lag=45.0),
        cell("obstore", 4000.0, 300.0, c=256),
        cell("s3cache-sync", 1500.0, 200.0, c=256),
        cell("s3cache", 45.0, 400.0, c=1),
        cell("s3cache-sync", 45.0, 480.0, c=1),
    ]
    verdicts = targets(slow, QUIET)
    for v in verdicts:
        assert (v.why == "") == (v.met is True), v
    by = {v.what.split(",")[0]: v for v in verdicts}
    assert "short of CPU" in by["s3cache >= 8x litellm ops/s"].why  # 3x on a quiet machine
    assert "more than run-to-run noise" in by["s3cache CPU per get <= 0.3x raw aiobotocore"].why
    assert "hot path" in by["s3cache CPU per get <= 0.5x obstore"].why  # 1.12x: far past
    assert "one core" in by["s3cache >= 1.0x obstore ops/s"].why  # 0.75x at c=256
    assert "garbage collection" in by["event-loop lag p99 <= 20 ms"].why  # 45 ms
    assert "GIL" in by["sync facade >= 0.8x the async core's ops/s"].why  # 0.5x
    assert "--quick" not in by["s3cache CPU per set <= 0.35x raw aiobotocore"].why
    assert "wake" in by["sync facade adds <= 60 us CPU per call"].why
    # The conditions of the run change the reason: a busy machine, a real server, hooks.
    busy = {v.what.split(",")[0]: v.why for v in targets(slow, Conditions(load=3.0, cores=2))}
    assert (
        "busy (load average 3.0 on 2 cores" in busy["s3cache CPU per get <= 0.3x raw aiobotocore"]
    )
    ceph = targets(slow, Conditions(server="ceph", load=0.1, cores=2))
    assert "ceph server shares the 2 cores" in ceph[0].why
    hooked = targets(slow, Conditions(latency_via="hook", load=0.1, cores=2))
    assert "--latency-via hook" in hooked[1].why
    quick = targets(slow[:4], Conditions(mode="quick", load=0.1))
    assert quick[-1].met is None
    assert "--quick does not run this cell" in quick[-1].why
    lines = verdict_lines(verdicts)
    assert all(line.count("; ") >= 1 for line in lines if line.startswith("[NOT met]"))


def test_lead_table_puts_get_and_set_of_each_contender_on_one_row() -> None:
    results = [
        cell("s3cache", 3000.0, 190.0),
        cell("litellm", 250.0, 1400.0),
        cell("s3cache", 2800.0, 180.0, workload="set"),
        cell("litellm", 130.0, 1700.0, workload="set"),
        cell("s3cache", 45.0, 500.0, c=1),  # not a lead cell
    ]
    lines = lead_table(results).splitlines()
    assert lines[0].split()[:3] == ["contender", "get", "ops/s"]
    assert len(lines) == 4  # header, rule, two contenders
    ours = lines[2].split()
    assert ours[:2] == ["s3cache", "AsyncS3Cache"]
    assert ours[2:] == ["3,000", "190", "2,800", "180", "12.0x"]
    assert lead_table(results, markdown=True).splitlines()[1].startswith("|---|---:")


def test_plots_draw_measured_points_only_in_the_okabe_ito_palette(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from benchmarks import plots
    from benchmarks.features import FeatureResult

    results = [cell(name, 100.0 * c, 300.0, c=c) for name in ("s3cache", "boto3") for c in (1, 64)]
    ((_, fig),) = plots._sweeps(plt, results, (), "t")
    (ax,) = fig.axes
    assert len(ax.lines) == 2
    for line in ax.lines:
        assert line.get_linestyle() == "None"  # markers, never a line between two sweeps
        assert line.get_marker() not in (None, "None", "")
        assert line.get_color().upper() in plots.OKABE_ITO
    assert list(ax.get_xticks()) == [1, 64]  # ticks only where measured
    plt.close(fig)
    features = [
        FeatureResult("stampede", "s", {"callers": 100, "factory_calls": 1}),
        FeatureResult("local tier", "s", {"us_per_hit": 3.0}),
    ]
    written = plots.plot_all(results, tmp_path, "t", features)
    names = {p.name for p in written}
    assert names == {"lead.png", "throughput-get-hit-1KiB.png", "features.png"}
    assert all(p.stat().st_size > 0 for p in written)


def test_freshness_cells_are_ordered_and_drawn() -> None:
    from benchmarks import plots
    from benchmarks.features import FeatureResult
    from benchmarks.summary import _ordered

    refresh = FeatureResult(
        "fleet refresh, 16 processes",
        "s",
        {"processes": 16, "swr_p99_ms": 30.0, "plain_p99_ms": 500.0},
    )
    expiry = FeatureResult("expiry under load", "s", {"swr_p99_ms": 20.0, "plain_p99_ms": 240.0})
    lease = FeatureResult("fleet lease, 16 processes", "s", {})
    other = FeatureResult("tag invalidation", "s", {})
    assert [f.name for f in _ordered([other, expiry, refresh, lease])] == [
        lease.name,
        refresh.name,
        expiry.name,
        other.name,
    ]
    _, times, _ = plots._feature_bars([refresh, expiry])
    assert [(value, ours) for _, value, ours in times] == [
        (30.0, True),
        (500.0, False),
        (20.0, True),
        (240.0, False),
    ]
