"""OpenTelemetry metrics and spans (``s3cache.telemetry``), read with the SDK's in-memory metric
reader and span exporter, against moto over HTTP (the fault proxy for SlowDown and errors), on
both request paths: names, attributes and counts that match ``stats()``; no key in any attribute
unless asked for (then hashed); off by default; no OpenTelemetry imported without it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.config import Config
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from harness.faultproxy import Fault, FaultProxy
from s3cache import AsyncS3Cache, LocalTier, S3Cache
from s3cache.telemetry import METRICS, Telemetry, instrument
from tests.conftest import CREDENTIALS

ONE_RETRY = Config(retries={"mode": "standard", "total_max_attempts": 2})
NO_RETRY = Config(retries={"mode": "standard", "total_max_attempts": 1})


@pytest.fixture(params=[True, False], ids=["wire", "aiobotocore"])
def fast_path(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.fixture
def meters() -> Iterator[tuple[MeterProvider, InMemoryMetricReader]]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    yield provider, reader
    provider.shutdown()


@pytest.fixture
def exporter() -> Iterator[tuple[InMemorySpanExporter, TracerProvider]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter, provider
    provider.shutdown()


def points(reader: InMemoryMetricReader) -> dict[str, list[tuple[dict[str, Any], Any]]]:
    """Every data point by metric name: (attributes, value or histogram count)."""
    found: dict[str, list[tuple[dict[str, Any], Any]]] = {}
    data = reader.get_metrics_data()
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    value = getattr(point, "value", None)
                    if value is None:
                        value = point.count  # type: ignore[union-attr]  # a histogram
                    found.setdefault(metric.name, []).append((dict(point.attributes or {}), value))
    return found


def total(found: dict[str, list[tuple[dict[str, Any], Any]]], name: str, **attrs: str) -> Any:
    """The sum of ``name``'s points whose attributes include ``attrs`` (dots as ``__``)."""
    wanted = {k.replace("__", "."): v for k, v in attrs.items()}
    return sum(
        value for a, value in found.get(name, []) if all(a.get(k) == v for k, v in wanted.items())
    )


async def test_metrics_count_what_stats_counts(
    cache_kwargs: dict[str, Any],
    meters: tuple[MeterProvider, InMemoryMetricReader],
    fast_path: bool,
) -> None:
    provider, reader = meters
    local = LocalTier(max_items=1)
    async with AsyncS3Cache(**cache_kwargs, local=local, fast_path=fast_path) as cache:
        telemetry = instrument(cache, meter_provider=provider, request_latency=True)
        assert isinstance(telemetry, Telemetry)
        await cache.set("user:1", {"name": "ada"})
        assert (cache.transport.loop_client().route is not None) is fast_path  # the path
        await cache.set("user:2", {"name": "bob"})  # the local tier holds one: an eviction
        assert await cache.get("user:1") == {"name": "ada"}  # from S3 (evicted locally)
        assert await cache.get("user:1") == {"name": "ada"}  # local
        assert await cache.get("absent") is None
        assert await cache.add("user:2", "taken") is False
        assert await cache.delete("user:1") is True
        assert await cache.clear() == 1
        assert await cache.invalidate("team:7") is True  # one PUT of its tag record
        stats = cache.stats()
    found = points(reader)
    assert set(found) <= set(METRICS)
    assert total(found, "cache.gets", result="hit", tier="s3") == 1
    assert total(found, "cache.gets", result="hit", tier="local") == 1 == stats.local_hits
    assert total(found, "cache.gets", result="hit") == stats.hits == 2
    assert total(found, "cache.gets", result="miss") == stats.misses == 1
    assert total(found, "cache.puts", cache__operation="set", result="stored") == 2
    assert total(found, "cache.puts", cache__operation="add", result="rejected") == 1
    assert total(found, "cache.puts", result="stored") == stats.sets
    assert total(found, "cache.deletes") == stats.deletes == 2
    assert total(found, "cache.invalidations", cache__operation="clear") == 1
    assert total(found, "cache.invalidations", cache__operation="invalidate") == 1
    assert total(found, "cache.bytes.read") == stats.bytes_in > 0
    assert total(found, "cache.bytes.written") == stats.bytes_out > 0
    assert total(found, "cache.operation.duration", cache__operation="get") == 3
    assert total(found, "cache.s3.attempts") == sum(stats.requests.values()) > 0
    for operation, count in stats.requests.items():
        assert total(found, "cache.s3.attempts", s3__operation=operation) == count
    assert total(found, "cache.s3.requests", s3__operation="GetObject", outcome="ok") == 1
    assert total(found, "cache.s3.requests", s3__operation="GetObject", outcome="missing") == 1
    assert total(found, "cache.s3.request.duration", s3__operation="PutObject") >= 2
    assert total(found, "cache.evictions") >= 1
    assert found["cache.size"][0][1] == 0  # cleared
    assert total(found, "cache.s3.retries") == stats.retries == 0
    assert {a["cache.name"] for pts in found.values() for a, _ in pts} == {cache_kwargs["bucket"]}


async def test_retries_and_slowdowns_are_counted(
    cache_kwargs: dict[str, Any],
    proxy: FaultProxy,
    meters: tuple[MeterProvider, InMemoryMetricReader],
    fast_path: bool,
) -> None:
    provider, reader = meters
    kwargs = {**cache_kwargs, "endpoint_url": proxy.endpoint, "config": ONE_RETRY}
    async with AsyncS3Cache(**kwargs, fast_path=fast_path, on_error="raise") as cache:
        instrument(cache, meter_provider=provider)
        await cache.set("k", 1)
        proxy.set_fault(Fault.SLOWDOWN_503, methods={"GET"}, times=1)
        assert await cache.get("k") == 1  # refused once, then answered
        stats = cache.stats()
    found = points(reader)
    assert proxy.count(Fault.SLOWDOWN_503) == 1
    assert (stats.retries, stats.slowdowns, stats.throttles) == (1, 1, 0)  # pacing is off
    assert stats.requests["GetObject"] == 2  # both attempts billed
    assert total(found, "cache.s3.retries", s3__operation="GetObject") == 1
    assert total(found, "cache.s3.throttles", s3__operation="GetObject") == 1
    assert total(found, "cache.s3.attempts", s3__operation="GetObject") == 2
    assert total(found, "cache.s3.requests", s3__operation="GetObject", outcome="ok") == 1
    assert total(found, "cache.gets", result="hit") == 1


async def test_a_failed_get_is_an_error(
    cache_kwargs: dict[str, Any],
    proxy: FaultProxy,
    meters: tuple[MeterProvider, InMemoryMetricReader],
    fast_path: bool,
) -> None:
    provider, reader = meters
    kwargs = {**cache_kwargs, "endpoint_url": proxy.endpoint, "config": NO_RETRY}
    async with AsyncS3Cache(**kwargs, fast_path=fast_path) as cache:  # on_error="log"
        instrument(cache, meter_provider=provider)
        proxy.set_fault(Fault.HTTP_500, methods={"GET"})
        assert await cache.get("k", "fallback") == "fallback"
        stats = cache.stats()
    found = points(reader)
    assert stats.errors == {"server": 1}
    assert total(found, "cache.gets", result="error", tier="s3") == 1 == stats.misses
    assert total(found, "cache.s3.requests", s3__operation="GetObject", outcome="server") == 1


async def test_factory_calls_and_stale_hits(
    cache_kwargs: dict[str, Any],
    meters: tuple[MeterProvider, InMemoryMetricReader],
    fast_path: bool,
) -> None:
    provider, reader = meters
    refreshed = asyncio.Event()
    calls = 0

    async def factory() -> int:
        nonlocal calls
        calls += 1
        if calls == 2:
            refreshed.set()
        return calls

    async with AsyncS3Cache(**cache_kwargs, fast_path=fast_path) as cache:
        instrument(cache, meter_provider=provider)
        assert await cache.get_or_set("k", factory, ttl=1, stale_ttl=30) == 1
        for _ in range(200):  # until the entry is past its ttl (no event tells that)
            await cache.get_or_set("k", factory, ttl=1, stale_ttl=30)  # 1, fresh then stale
            if calls == 2:  # a stale hit started the refresh
                break
            await asyncio.sleep(0.05)
        await asyncio.wait_for(refreshed.wait(), 5)
        await cache.close()  # the background refresh is settled
        stats = cache.stats()
    found = points(reader)
    assert total(found, "cache.gets", result="stale") == stats.stale_served["revalidating"] >= 1
    assert total(found, "cache.factory.calls", result="ok") == 2 == stats.factory_calls
    assert total(found, "cache.factory.duration") == 2 == stats.latency["factory"].count


async def test_spans_nest_the_factory_and_requests_under_get_or_set(
    cache_kwargs: dict[str, Any],
    exporter: tuple[InMemorySpanExporter, TracerProvider],
    fast_path: bool,
) -> None:
    spans, tracer_provider = exporter
    async with AsyncS3Cache(**cache_kwargs, fast_path=fast_path) as cache:
        instrument(cache, tracer_provider=tracer_provider, spans=True)
        assert await cache.get_or_set("secret-key", lambda: "v") == "v"
        assert await cache.get("secret-key") == "v"
    finished = spans.get_finished_spans()
    by_name: dict[str, list[ReadableSpan]] = {}
    for span in finished:
        by_name.setdefault(span.name, []).append(span)
    outer = by_name["cache.get_or_set"][0]
    outer_id = outer.context.span_id

    def parent_of(span: ReadableSpan) -> int | None:
        return span.parent.span_id if span.parent is not None else None

    first_get, second_get = sorted(by_name["cache.get"], key=lambda s: s.start_time or 0)
    assert parent_of(first_get) == outer_id
    assert dict(first_get.attributes or {})["cache.hit"] is False
    assert dict(second_get.attributes or {})["cache.hit"] is True
    assert parent_of(second_get) is None
    (factory,) = by_name["cache.factory"]
    assert parent_of(factory) == outer_id
    (put,) = by_name["cache.put"]
    assert isinstance(size := dict(put.attributes or {})["cache.item_size"], int)
    assert size > 0
    requests = by_name["s3.request"]
    under = {parent_of(r): r.attributes["s3.operation"] for r in requests if r.attributes}
    assert under[first_get.context.span_id] == "GetObject"
    assert under[put.context.span_id] == "PutObject"
    assert all(r.start_time and r.end_time and r.start_time <= r.end_time for r in requests)
    for span in finished:  # no key anywhere unless asked for
        assert "secret-key" not in json.dumps(dict(span.attributes or {}))
        assert "cache.key" not in (span.attributes or {})


async def test_keys_appear_hashed_in_spans_only_when_asked(
    cache_kwargs: dict[str, Any],
    exporter: tuple[InMemorySpanExporter, TracerProvider],
    meters: tuple[MeterProvider, InMemoryMetricReader],
) -> None:
    spans, tracer_provider = exporter
    provider, reader = meters
    async with AsyncS3Cache(**cache_kwargs) as cache:
        instrument(
            cache, meter_provider=provider, tracer_provider=tracer_provider, spans=True, keys=True
        )
        await cache.set("secret-key", 1)
        await cache.get("secret-key")
        okey = cache._object_key("secret-key")
    hashed = hashlib.sha256(okey.encode()).hexdigest()[:16]
    keyed = [s for s in spans.get_finished_spans() if s.name in ("cache.get", "cache.put")]
    assert [s.attributes["cache.key"] for s in keyed if s.attributes] == [hashed, hashed]
    text = json.dumps([dict(s.attributes or {}) for s in spans.get_finished_spans()])
    assert "secret-key" not in text
    found = points(reader)
    assert "secret-key" not in json.dumps(found)
    assert hashed not in json.dumps(found)


async def test_off_by_default_and_instrumented_once(cache_kwargs: dict[str, Any]) -> None:
    async with AsyncS3Cache(**cache_kwargs) as cache:
        recorder = cache._recorder
        assert (recorder.sinks, recorder.request_sinks, recorder.tracer) == ([], [], None)
        instrument(cache, meter_provider=MeterProvider())
        with pytest.raises(TypeError, match="instrumented already"):
            instrument(cache)
    with pytest.raises(TypeError, match="telemetry must be True or False"):
        AsyncS3Cache(**cache_kwargs, telemetry="yes")  # type: ignore[arg-type]


def run(code: str, timeout: float = 120) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_importing_s3cache_imports_no_opentelemetry() -> None:
    out = run(
        """
        import sys
        import s3cache, s3cache.telemetry
        s3cache.AsyncS3Cache("bkt", region_name="us-east-1")
        print(sorted(m for m in sys.modules if m.startswith("opentelemetry")))
        """
    )
    assert out.strip() == "[]"


def test_without_the_extra_telemetry_true_names_it() -> None:
    out = run(
        """
        import sys
        sys.modules["opentelemetry"] = None  # as if not installed
        import s3cache
        try:
            s3cache.AsyncS3Cache("bkt", region_name="us-east-1", telemetry=True)
        except ImportError as exc:
            print(exc)
        """
    )
    assert "s3cache-async[otel]" in out


def test_telemetry_true_reports_to_the_global_providers(s3_endpoint: str, bucket: str) -> None:
    """One line, in a process of its own (a global provider is set once per process), on the
    sync facade: the counts reach the global meter provider's reader."""
    out = run(
        f"""
        import json
        from opentelemetry import metrics
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from s3cache import S3Cache

        reader = InMemoryMetricReader()
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
        with S3Cache({bucket!r}, endpoint_url={s3_endpoint!r}, telemetry=True,
                     **{CREDENTIALS!r}) as cache:
            cache.set("k", 1)
            cache.get("k")
            cache.get("nope")
        gets = {{}}
        for rm in reader.get_metrics_data().resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name == "cache.gets":
                        for p in m.data.data_points:
                            gets[p.attributes["result"]] = p.value
        print(json.dumps(gets, sort_keys=True))
        """
    )
    assert json.loads(out) == {"hit": 1, "miss": 1}


def test_the_sync_facade_is_instrumented_through_its_core(
    cache_kwargs: dict[str, Any], meters: tuple[MeterProvider, InMemoryMetricReader]
) -> None:
    provider, reader = meters
    with S3Cache(**cache_kwargs) as cache:
        instrument(cache._core, meter_provider=provider)
        cache.set("k", 1)
        assert cache.get("k") == 1
    found = points(reader)
    assert total(found, "cache.gets", result="hit") == 1


async def test_latency_histograms_can_be_left_out(
    cache_kwargs: dict[str, Any], meters: tuple[MeterProvider, InMemoryMetricReader]
) -> None:
    provider, reader = meters
    async with AsyncS3Cache(**cache_kwargs) as cache:
        instrument(cache, meter_provider=provider, latency=False)
        await cache.get("k")
    found = points(reader)
    assert total(found, "cache.gets", result="miss") == 1
    assert "cache.operation.duration" not in found
    assert "cache.s3.request.duration" not in found  # request_latency=False by default


async def test_caches_sharing_a_meter_provider_are_each_reported(
    cache_kwargs: dict[str, Any], meters: tuple[MeterProvider, InMemoryMetricReader]
) -> None:
    """A meter makes each instrument name once: the second cache's figures must not be lost."""
    provider, reader = meters
    async with (
        AsyncS3Cache(**cache_kwargs, prefix="one", local=LocalTier()) as one,
        AsyncS3Cache(**cache_kwargs, prefix="two", local=LocalTier()) as two,
    ):
        instrument(one, meter_provider=provider, name="one")
        instrument(two, meter_provider=provider, name="two")
        await one.get("x")
        await two.set("x", 1)
        await two.get("y")
        await two.get("z")
    found = points(reader)
    assert total(found, "cache.gets", cache__name="one") == 1
    assert total(found, "cache.gets", cache__name="two") == 2
    assert total(found, "cache.operation.duration", cache__name="two") == 3
    assert {a["cache.name"]: v for a, v in found["cache.size"]} == {"one": 0, "two": 1}
