"""stats() and observers: every operation reported, a failing observer never breaks the cache."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from s3cache import (
    AsyncS3Cache,
    CacheEvent,
    CacheStats,
    LatencySummary,
    Savings,
    Spend,
)
from s3cache._breaker import BreakerStats

# -- stats and observers --------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.events: list[CacheEvent] = []

    def on_event(self, event: CacheEvent) -> None:
        self.events.append(event)


async def test_observer_sees_every_operation(cache_kwargs: dict[str, Any]) -> None:
    recorder = Recorder()
    async with AsyncS3Cache(**cache_kwargs, observer=recorder) as cache:
        await cache.set("k", "value")
        await cache.get("k")
        await cache.get("absent")
        await cache.delete("k")
        stats = cache.stats()
    assert [(e.op, e.outcome) for e in recorder.events] == [
        ("set", "stored"),
        ("get", "hit"),
        ("get", "miss"),
        ("delete", "deleted"),
    ]
    assert recorder.events[0].nbytes == len(b'"value"')
    assert all(e.duration_s > 0 for e in recorder.events)
    assert (stats.bytes_out, stats.bytes_in) == (7, 7)
    assert stats.latency["get"].count == 2
    assert stats.latency["get"].p50 <= stats.latency["get"].max


async def test_a_failing_observer_never_breaks_the_cache(
    cache_kwargs: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        def on_event(self, event: CacheEvent) -> None:
            raise RuntimeError("exporter down")

    async with AsyncS3Cache(**cache_kwargs, observer=Broken(), on_error="raise") as cache:
        await cache.set("k", 1)
        assert await cache.get("k") == 1
    assert "exporter down" in caplog.text


async def test_stats_print_for_people_and_dump_for_machines(cache_kwargs: dict[str, Any]) -> None:
    async with AsyncS3Cache(**cache_kwargs) as cache:
        await cache.set("k", "value")
        await cache.get("k")
        await cache.get("absent")
        stats = cache.stats()
    text = str(stats)
    assert text.startswith("hit ratio 50.0% (1 hits, 0 local; 1 misses, 0 expired) of 2 gets")
    assert "errors none" in text
    assert re.search(r"^get: p50 \d+\.\d ms, p99 \d+\.\d ms \(2 recent\)$", text, re.M)
    assert "mappingproxy" not in repr(stats)
    names = {
        "CacheStats": CacheStats,
        "LatencySummary": LatencySummary,
        "BreakerStats": BreakerStats,
        "Spend": Spend,
        "Savings": Savings,
    }
    assert eval(repr(stats), names) == stats, "a valid dataclass repr, plain dicts inside"
    dumped = json.loads(json.dumps(stats.as_dict()))
    assert (dumped["hits"], dumped["misses"], dumped["latency"]["get"]["count"]) == (1, 1, 2)
