"""What a cache spends and saves, wired (issue 27): ``stats().requests`` and ``stats().spend``
at the ``pricing=`` table's prices on both request paths, ``get_or_set(cost=...)`` and
``cached(cost=...)`` savings by how the factory was avoided (hit, joined, waited on the fleet's
lease), and the same figures in the telemetry's metrics; against moto over HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from s3cache import AsyncS3Cache, S3Cache
from s3cache._pricing import R2, S3_STANDARD
from s3cache.telemetry import instrument
from tests.test_telemetry import points, total


@pytest.fixture(params=[True, False], ids=["wire", "aiobotocore"])
def fast_path(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


async def test_spend_prices_every_request_by_class(
    cache_kwargs: dict[str, Any], fast_path: bool
) -> None:
    async with AsyncS3Cache(**cache_kwargs, fast_path=fast_path) as cache:
        await cache.set("k", 1)
        await cache.get("k")
        await cache.get("absent")
        await cache.delete("k")
        stats = cache.stats()
    # delete() HEADs first: a live entry counts
    assert stats.requests == {"PutObject": 1, "GetObject": 2, "HeadObject": 1, "DeleteObject": 1}
    assert dict(stats.spend.requests) == {"class_a": 1, "class_b": 3, "free": 1}
    assert stats.spend.table == "s3-standard"
    assert stats.spend.total_usd == pytest.approx(0.005 / 1000 + 3 * 0.0004 / 1000)
    assert "spend $0.000006 at s3-standard prices" in str(stats)
    assert stats.as_dict()["spend"]["requests"] == {"class_a": 1, "class_b": 3, "free": 1}


@pytest.mark.parametrize(
    ("pricing", "dollars"),
    [
        ("r2", 0.0045 / 1000 + 0.00036 / 1000),
        (R2, 0.0045 / 1000 + 0.00036 / 1000),
        ("self-hosted", 0.0),
        (None, 0.005 / 1000 + 0.0004 / 1000),
    ],
)
async def test_pricing_takes_a_preset_or_a_table(
    cache_kwargs: dict[str, Any], pricing: Any, dollars: float
) -> None:
    async with AsyncS3Cache(**cache_kwargs, pricing=pricing) as cache:
        await cache.set("k", 1)
        await cache.get("k")
        assert cache.stats().spend.total_usd == pytest.approx(dollars)


def test_bad_pricing_and_cost_are_refused_before_any_request(
    cache_kwargs: dict[str, Any],
) -> None:
    with pytest.raises(ValueError, match="pricing must be one of"):
        AsyncS3Cache(**cache_kwargs, pricing="gcs")
    with pytest.raises(TypeError, match="pricing must be a preset name or a PriceTable"):
        AsyncS3Cache(**cache_kwargs, pricing=0.005)  # type: ignore[arg-type]
    cache = AsyncS3Cache(**{**cache_kwargs, "endpoint_url": "http://127.0.0.1:9"})  # no server
    with pytest.raises(ValueError, match="cost must be a finite number"):
        cache.cached(cost=-1.0)
    with pytest.raises(TypeError, match="cost must be dollars"):
        asyncio.run(cache.get_or_set("k", lambda: 1, cost="1"))  # type: ignore[arg-type]
    assert cache.stats().requests == {}


async def test_savings_count_hits_and_joined_calls(cache_kwargs: dict[str, Any]) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    release, running = asyncio.Event(), asyncio.Event()
    runs = 0

    async def answer() -> dict[str, Any]:
        nonlocal runs
        runs += 1
        running.set()
        await release.wait()
        return {"text": "hi", "cost": 0.25}

    async with AsyncS3Cache(**cache_kwargs) as cache:
        instrument(cache, meter_provider=provider)

        async def call() -> Any:
            return await cache.get_or_set("q", answer, cost=lambda r: r["cost"])

        first = asyncio.create_task(call())
        second = asyncio.create_task(call())  # joins the first's run (single flight)
        await running.wait()
        release.set()
        assert await first == await second == {"text": "hi", "cost": 0.25}
        assert await cache.get_or_set("q", answer, cost=0.1) == {"text": "hi", "cost": 0.25}
        assert await cache.get_or_set("q", answer) is not None  # no cost: not counted
        stats = cache.stats()
    found = points(reader)
    provider.shutdown()
    assert runs == 1
    assert dict(stats.savings.avoided) == {"hit": 1, "joined": 1, "waited": 0}
    assert stats.savings.usd == pytest.approx(0.25 + 0.1)
    assert stats.savings.net(stats.spend) == pytest.approx(0.35 - stats.spend.total_usd)
    assert total(found, "cache.factory.avoided", avoided="joined") == 1
    assert total(found, "cache.cost.saved") == pytest.approx(0.35)
    assert total(found, "cache.cost.spent") == pytest.approx(stats.spend.total_usd)
    assert total(found, "cache.cost.spent", request_class="class_a") == pytest.approx(
        stats.requests["PutObject"] * S3_STANDARD.per_request("class_a")
    )


class Looked:
    """A request sink that tells when a HeadObject (a look at the busy lease) was answered."""

    def __init__(self) -> None:
        self.head = asyncio.Event()

    def attempted(self, op: str, attempt: int, status: int, code: str | None) -> None:
        if op == "HeadObject":
            self.head.set()

    def sent(self, op: str, outcome: str, seconds: float) -> None: ...

    def phased(self, phase: Any, failed: bool) -> None: ...

    def saved(self, how: str, dollars: float) -> None: ...

    def leased(self, result: str, seconds: float) -> None: ...


async def test_a_caller_that_waited_on_the_fleets_lease_saved_a_call(
    cache_kwargs: dict[str, Any],
) -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    async def slow() -> str:
        started.set()
        await release.wait()
        return "computed"

    async def never() -> str:
        raise AssertionError("the holder computes it")

    async with AsyncS3Cache(**cache_kwargs) as holder, AsyncS3Cache(**cache_kwargs) as waiter:
        computing = asyncio.create_task(holder.get_or_set("k", slow, lease=5, cost=1.5))
        await started.wait()  # the holder has the lease
        looked = Looked()
        waiter._recorder.request_sinks.append(looked)
        waiting = asyncio.create_task(waiter.get_or_set("k", never, lease=5, cost=1.5))
        await looked.head.wait()  # it looked at the busy lease
        release.set()
        assert await computing == await waiting == "computed"
        saved, spent = waiter.stats().savings, holder.stats().savings
    assert dict(saved.avoided) == {"hit": 0, "joined": 0, "waited": 1}
    assert saved.usd == 1.5
    assert spent.calls == 0  # the holder ran its factory
    assert waiter.stats().leases == {"waited": 1}
    assert holder.stats().leases == {"acquired": 1}


def test_cached_takes_a_cost_on_the_sync_facade(cache_kwargs: dict[str, Any]) -> None:
    with S3Cache(**cache_kwargs) as cache:

        @cache.cached(cost=0.01)
        def double(x: int) -> int:
            return 2 * x

        assert [double(2), double(2), double(2)] == [4, 4, 4]
        savings = cache.stats().savings
    assert savings.calls == 2
    assert savings.usd == pytest.approx(0.02)


async def test_a_failing_cost_function_is_unpriced_not_an_error(
    cache_kwargs: dict[str, Any],
) -> None:
    async with AsyncS3Cache(**cache_kwargs, on_error="raise") as cache:
        await cache.set("k", "v")
        assert await cache.get_or_set("k", lambda: "x", cost=lambda v: 1 / 0) == "v"
        savings = cache.stats().savings
    assert (savings.calls, savings.unpriced, savings.usd) == (1, 1, 0.0)
