"""The fleet stampede cell (benchmarks/fleet.py) as the benchmark runs it, on the mini server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import boto3
import pytest

from benchmarks.contenders import Setup
from benchmarks.fleet import fleet_cells, fleet_stampede
from benchmarks.server import EmbeddedServer, Target


@pytest.fixture(scope="module")
def mini() -> Iterator[str]:
    with EmbeddedServer("mini") as server:
        yield server.url


def _setup(mini: str) -> Setup:
    """A fresh bucket on the mini server, as the benchmark's Setup (2 ms, in the hook)."""
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
    return Setup(target, 2.0, 100, "run/")


async def test_the_cell_counts_factory_calls_and_requests_on_the_wire(mini: str) -> None:
    result = await fleet_stampede(_setup(mini), 3)
    assert result.met is True, result.summary
    figures = result.figures
    assert figures["lease_factory_calls"] == 1
    assert 1 <= figures["factory_calls"] <= 3  # one per process that missed
    # Every caller at least read the entry; the lease costs a few more (create, polls).
    assert figures["requests_per_caller"] >= 1
    assert figures["lease_requests_per_caller"] > figures["requests_per_caller"]
    assert figures["lease_wall_ms"] >= 200  # nobody had the value before the factory ended


async def test_the_refresh_cell_serves_the_stale_value_and_refreshes_once(mini: str) -> None:
    """The refresh rounds on the lease cell's workers: with stale_ttl, one factory call in the
    fleet and every caller got the stale value (nobody waited for the factory); without it,
    one call too (the lease) and every caller got the new value (all waited)."""
    lease, refresh = await fleet_cells(_setup(mini), 3, refresh=True)
    assert lease.met is True, lease.summary
    assert refresh.name == "fleet refresh, 3 processes"
    assert refresh.met is True, refresh.summary
    figures = refresh.figures
    assert figures["swr_factory_calls"] == 1
    assert figures["swr_waited"] == 0  # each caller returned the stale value
    assert figures["plain_factory_calls"] == 1
    assert figures["plain_waited"] == 3  # a miss: each caller returned the factory's value
    assert figures["swr_requests_per_caller"] >= 1


async def test_an_https_endpoint_is_skipped_not_failed() -> None:
    target = Target("https://s3.example.com", "us-east-1", "b", None, None, False)
    result = await fleet_stampede(Setup(target, 0.0, 1, "run/"), 2)
    assert result.met is None
    assert "skipped" in result.summary
    names = [r.name for r in await fleet_cells(Setup(target, 0.0, 1, "run/"), 2, refresh=True)]
    assert names == ["fleet lease, 2 processes", "fleet refresh, 2 processes"]
