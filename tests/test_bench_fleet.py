"""The fleet stampede cell (benchmarks/fleet.py) as the benchmark runs it, on the mini server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import boto3
import pytest

from benchmarks.contenders import Setup
from benchmarks.fleet import fleet_stampede
from benchmarks.server import EmbeddedServer, Target


@pytest.fixture(scope="module")
def mini() -> Iterator[str]:
    with EmbeddedServer("mini") as server:
        yield server.url


async def test_the_cell_counts_factory_calls_and_requests_on_the_wire(mini: str) -> None:
    bucket = f"fleet-{uuid.uuid4().hex[:12]}"
    client = boto3.client(
        "s3",
        endpoint_url=mini,
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=bucket)
    client.close()
    target = Target(mini, "us-east-1", bucket, "bench", "bench", True, "mini")
    result = await fleet_stampede(Setup(target, 2.0, 100, "run/"), 3)
    assert result.met is True, result.summary
    figures = result.figures
    assert figures["lease_factory_calls"] == 1
    assert 1 <= figures["factory_calls"] <= 3  # one per process that missed
    # Every caller at least read the entry; the lease costs a few more (create, polls).
    assert figures["requests_per_caller"] >= 1
    assert figures["lease_requests_per_caller"] > figures["requests_per_caller"]
    assert figures["lease_wall_ms"] >= 200  # nobody had the value before the factory ended


async def test_an_https_endpoint_is_skipped_not_failed() -> None:
    target = Target("https://s3.example.com", "us-east-1", "b", None, None, False)
    result = await fleet_stampede(Setup(target, 0.0, 1, "run/"), 2)
    assert result.met is None
    assert "skipped" in result.summary
