"""A tiny benchmark run, end to end, against the test suite's moto server."""

from __future__ import annotations

import importlib.util
import json
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

from benchmarks.runner import main
from tests.conftest import CREDENTIALS


def test_tiny_run_measures_every_contender_and_cleans_up(s3_endpoint: str, tmp_path: Path) -> None:
    bucket = f"bench-{uuid.uuid4().hex[:12]}"  # the run creates it
    out = tmp_path / "results.json"
    code = main(
        [
            "--endpoint-url",
            s3_endpoint,
            "--access-key",
            CREDENTIALS["aws_access_key_id"],
            "--secret-key",
            CREDENTIALS["aws_secret_access_key"],
            "--bucket",
            bucket,
            "--latency-ms",
            "2",
            "--latency-via",
            "hook",  # counted in botocore hooks, so every contender below goes through botocore
            "--contenders",
            "s3cache,s3cache-sync,aiobotocore,boto3",
            "--workloads",
            "get-hit,get-miss,set,get-hit-json,set-json",
            "--sizes",
            "1KiB",
            "--concurrency",
            "2",
            "--ops",
            "6",
            "--warmup",
            "0",
            "--no-llm",
            "--no-features",  # covered against the mini server in test_bench_miniserver.py
            "--plain",
            "--json",
            str(out),
            "--plots",
            str(tmp_path / "plots"),
        ]
    )
    assert code == 0
    payload: dict[str, Any] = json.loads(out.read_text())
    results = payload["results"]
    assert len(results) == 5 * 4
    for row in results:
        assert row["errors"] == 0, row
        assert row["ops"] == 6, row
        assert row["requests_per_op"] == 1.0, row  # one HTTP request per call, counted by hook
        assert row["p50_ms"] >= 2.0, row  # the emulated latency was really added
    assert payload["latency_emulated"] is True
    assert set(payload["contenders"]) == {"s3cache", "s3cache-sync", "aiobotocore", "boto3"}
    assert (tmp_path / "plots" / "cpu-per-op.png").stat().st_size > 0
    assert (tmp_path / "plots" / "lead.png").stat().st_size > 0
    report = (tmp_path / "results.md").read_text()  # beside the JSON
    assert report.startswith("# s3cache benchmark")
    assert "| s3cache AsyncS3Cache |" in report  # the lead table
    assert "## Targets" in report
    # No target cell ran (c=2, no litellm or obstore): each says so, and why.
    assert all(t["met"] is None and "was not run" in t["why"] for t in payload["targets"])
    client = boto3.client("s3", endpoint_url=s3_endpoint, **CREDENTIALS)
    try:
        listing = client.list_objects_v2(Bucket=bucket, Prefix="s3cache-bench/")
    finally:
        client.close()
    assert listing.get("KeyCount", 0) == 0  # the run removed what it wrote


@pytest.mark.skipif(importlib.util.find_spec("uvloop") is None, reason="uvloop not installed")
def test_a_run_on_uvloop_with_s3caches_bound_set_apart(s3_endpoint: str, tmp_path: Path) -> None:
    """``--loop uvloop`` runs the async contenders on uvloop; ``--max-concurrency`` sets
    s3cache's bound whatever the cell's concurrency; both are recorded."""
    out = tmp_path / "results.json"
    args = ["--endpoint-url", s3_endpoint, "--bucket", f"bench-{uuid.uuid4().hex[:12]}"]
    args += ["--access-key", CREDENTIALS["aws_access_key_id"]]
    args += ["--secret-key", CREDENTIALS["aws_secret_access_key"], "--latency-ms", "0"]
    args += ["--contenders", "s3cache,aiobotocore", "--workloads", "get-hit,set-json"]
    args += ["--sizes", "1KiB", "--concurrency", "4", "--ops", "8", "--warmup", "0"]
    args += ["--loop", "uvloop", "--max-concurrency", "2", "--no-llm", "--no-features"]
    assert main([*args, "--plain", "--no-plots", "--json", str(out)]) == 0
    payload: dict[str, Any] = json.loads(out.read_text())
    assert payload["loop"].startswith("uvloop.")  # the loop the run really ran on
    assert payload["max_concurrency"] == 2
    assert "max_concurrency=2" in payload["contenders"]["s3cache"]
    assert [(r["contender"], r["errors"], r["ops"]) for r in payload["results"]] == [
        ("s3cache", 0, 8),
        ("aiobotocore", 0, 8),
        ("s3cache", 0, 8),
        ("aiobotocore", 0, 8),
    ]
