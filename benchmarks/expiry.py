"""Feature cell: a hot key's ttl runs out under load, with stale-while-revalidate on and off.

``CALLERS`` callers call ``get_or_set`` of one key in a loop for ``SECONDS``; the key is
written with the shortest ttl (1 s), so it expires during the cell, and the factory sleeps
``FACTORY_S`` (an LLM call, scaled down). Measured for a cache with ``stale_ttl`` and one
without: a hit's p99 (the same callers on a key that does not expire, for ``HITS_S``), the
p50/p99 latency of the calls, the factory calls, and the share of calls that
waited for a factory (took longer than the factory's sleep). With ``stale_ttl`` the targets
are a p99 at most 2x a plain hit's, at most one factory call per expiry, and nobody waiting.
"""

from __future__ import annotations

import asyncio
import time
from statistics import quantiles
from typing import Any, Final

from benchmarks.contenders import Setup, _s3cache_kwargs
from benchmarks.features import FeatureResult, MethodCounter

__all__ = ["CALLERS", "FACTORY_S", "SECONDS", "expiry_under_load"]

NAME: Final = "expiry under load"
CALLERS: Final = 64
SECONDS: Final = 1.3  # the key (ttl 1 s) expires once within it, or twice
HITS_S: Final = 0.3  # the same callers on a key that does not expire: a hit's latency
FACTORY_S: Final = 0.2
TTL_S: Final = 1


async def expiry_under_load(setup: Setup) -> FeatureResult:
    """The cell (see the module), both ways in one run."""
    from s3cache import AsyncS3Cache

    figures: dict[str, float] = {}
    for mode, stale_ttl in (("swr", 30), ("plain", None)):
        kwargs = _s3cache_kwargs(setup, f"{setup.prefix}features/expiry-{mode}/", MethodCounter())
        async with AsyncS3Cache(**kwargs, stale_ttl=stale_ttl) as cache:
            figures |= {f"{mode}_{k}": v for k, v in (await _hammer(cache)).items()}
    hit_p99 = figures["swr_hit_p99_ms"]
    met = (
        figures["swr_p99_ms"] <= 2 * max(hit_p99, figures["plain_hit_p99_ms"])
        and figures["swr_waited"] == 0
        and figures["swr_factory_calls"] <= figures["swr_expiries"]
    )
    return FeatureResult(
        NAME,
        f"{CALLERS} callers of one key (ttl {TTL_S} s) for {SECONDS:g} s, factory "
        f"{FACTORY_S * 1000:.0f} ms: stale_ttl on: p50 {figures['swr_p50_ms']:.1f} ms, p99 "
        f"{figures['swr_p99_ms']:.1f} ms (a hit's p99 {hit_p99:.1f} ms), "
        f"factory calls {figures['swr_factory_calls']:.0f}, calls that waited for one "
        f"{figures['swr_waited']:.0f}; off: p99 {figures['plain_p99_ms']:.1f} ms, "
        f"factory calls {figures['plain_factory_calls']:.0f}, calls that waited "
        f"{figures['plain_waited']:.0f} ({figures['plain_waited_share'] * 100:.0f}%)",
        figures,
        "stale_ttl on: p99 <= 2x a hit's, 0 callers waited, <= 1 factory call per expiry",
        met,
    )


async def _hammer(cache: Any) -> dict[str, float]:
    """``CALLERS`` loops of ``get_or_set`` for ``SECONDS``: latencies, factory calls, waits."""
    calls = 0

    async def factory() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(FACTORY_S)
        return f"v{calls}"

    async def callers(key: str, seconds: float) -> list[float]:
        """``CALLERS`` loops of ``get_or_set(key)`` for ``seconds``: each call's latency."""
        took: list[float] = []
        end = time.monotonic() + seconds

        async def caller() -> None:
            while time.monotonic() < end:
                started = time.perf_counter()
                await cache.get_or_set(key, factory, ttl=TTL_S)
                took.append(time.perf_counter() - started)

        await asyncio.gather(*(caller() for _ in range(CALLERS)))
        return took

    await cache.set("steady", "v0", ttl=60)
    hits = await callers("steady", HITS_S)  # a hit's latency under the same load
    await cache.set("hot", "v0", ttl=TTL_S)
    took = await callers("hot", SECONDS)
    waited = sum(1 for t in took if t >= FACTORY_S)
    cuts = quantiles(took, n=100)
    hit_cuts = quantiles(hits, n=100)
    return {
        "calls": len(took),
        "p50_ms": cuts[49] * 1000,
        "p99_ms": cuts[98] * 1000,
        "hit_p99_ms": hit_cuts[98] * 1000,
        "factory_calls": calls,
        "expiries": SECONDS // TTL_S + 1,
        "waited": waited,
        "waited_share": waited / len(took),
    }
