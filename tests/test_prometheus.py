"""The Prometheus endpoint (``s3cache.telemetry.prometheus``): after a known sequence of
operations against moto, the endpoint is scraped over HTTP and parsed with prometheus-client's
own parser; it works without OpenTelemetry."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from s3cache import AsyncS3Cache, LocalTier
from s3cache.telemetry import METRICS
from s3cache.telemetry.prometheus import instrument, prometheus_name, start_http_server


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def endpoint(registry: CollectorRegistry) -> Iterator[str]:
    server, thread = start_http_server(0, registry=registry)
    yield f"http://127.0.0.1:{server.server_port}/metrics"
    server.shutdown()
    server.server_close()
    thread.join(5)


def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every sample by name (``cache_gets_total``, ``..._bucket``...), parsed."""
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return found


def value(found: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    return sum(v for a, v in found.get(name, []) if all(a.get(k) == w for k, w in labels.items()))


def test_names_follow_prometheus_conventions() -> None:
    assert prometheus_name("cache.gets", "counter") == "cache_gets_total"
    assert prometheus_name("cache.operation.duration", "histogram") == (
        "cache_operation_duration_seconds"
    )
    assert prometheus_name("cache.bytes.read", "counter") == "cache_bytes_read_bytes_total"
    assert prometheus_name("cache.size", "gauge") == "cache_size"
    assert set(METRICS) >= {"cache.gets", "cache.puts", "cache.s3.requests"}


async def test_the_endpoint_serves_the_counts_of_a_known_sequence(
    cache_kwargs: dict[str, Any], registry: CollectorRegistry, endpoint: str
) -> None:
    async with AsyncS3Cache(**cache_kwargs, local=LocalTier(max_items=10)) as cache:
        instrument(cache, registry=registry, name="users")
        await cache.set("a", 1)
        await cache.set("b", 2)
        assert await cache.get("a") == 1  # local
        assert await cache.get("nope") is None
        assert await cache.delete("b") is True
        assert await cache.get_or_set("c", lambda: 3) == 3
        stats = cache.stats()
        found = await asyncio.to_thread(scrape, endpoint)
    assert value(found, "cache_gets_total", cache_name="users", result="hit", tier="local") == 1
    assert value(found, "cache_gets_total", result="miss") == stats.misses == 2
    assert value(found, "cache_puts_total", cache_operation="set", result="stored") == 3
    assert value(found, "cache_deletes_total", cache_operation="delete") == 1
    assert value(found, "cache_factory_calls_total", result="ok") == 1
    assert value(found, "cache_s3_attempts_total") == sum(stats.requests.values())
    assert value(found, "cache_s3_requests_total", s3_operation="PutObject", outcome="ok") == 3
    assert value(found, "cache_bytes_written_bytes_total") == stats.bytes_out
    assert value(found, "cache_size", cache_name="users") == 2  # a and c (b deleted)
    count = value(found, "cache_operation_duration_seconds_count", cache_operation="get")
    assert count == 3  # two gets, and get_or_set's lookup
    infinite = value(
        found, "cache_operation_duration_seconds_bucket", cache_operation="get", le="+Inf"
    )
    assert infinite == count


async def test_two_caches_share_a_registry(
    cache_kwargs: dict[str, Any], registry: CollectorRegistry, endpoint: str
) -> None:
    async with (
        AsyncS3Cache(**cache_kwargs, prefix="one") as one,
        AsyncS3Cache(**cache_kwargs, prefix="two") as two,
    ):
        instrument(one, registry=registry, name="one")
        instrument(two, registry=registry, name="two")
        await one.get("x")
        await two.get("x")
        await two.get("y")
        found = await asyncio.to_thread(scrape, endpoint)
    assert value(found, "cache_gets_total", cache_name="one") == 1
    assert value(found, "cache_gets_total", cache_name="two") == 2


def test_it_works_without_opentelemetry(s3_endpoint: str, bucket: str) -> None:
    from tests.conftest import CREDENTIALS

    code = f"""
        import sys
        sys.modules["opentelemetry"] = None  # as if not installed
        from prometheus_client import CollectorRegistry, generate_latest
        from s3cache import S3Cache
        from s3cache.telemetry.prometheus import instrument

        registry = CollectorRegistry()
        with S3Cache({bucket!r}, endpoint_url={s3_endpoint!r}, **{CREDENTIALS!r}) as cache:
            instrument(cache, registry=registry)
            cache.get("k")
        print(generate_latest(registry).decode())
        """
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (
        'cache_gets_total{cache_name="' + bucket + '",result="miss",tier="s3"} 1.0' in done.stdout
    )
