"""Feature cell: early refresh (XFetch) of a hot key, on and off.

``READERS`` callers call ``get_or_set(key, factory, ttl=TTL_S, early=...)`` of one key in a
loop for ``SECONDS`` (a few ttl periods); the factory sleeps ``FACTORY_S``, which the fill
records as the entry's compute time. With ``early=True`` each read of the fresh entry refreshes
it in the background with XFetch's probability, so the targets are: the entry never expires (no
call waits for the factory) and at most two early refreshes per ttl period. Without it the key
expires once a period and callers wait for its recompute.

XFetch refreshes earlier the more reads it sees: at ``rate`` reads a second the first refresh
comes about ``delta * beta * ln(rate * delta * beta)`` seconds before expiry (0.57 s at 3,000
reads/s, delta 0.1 s, beta 1), so a ttl must be several times that for the entry to be
refreshed about once per period, as it is for the hour-long ttls of LLM answers. The time
left is also judged on the server's clock to the second, erring towards expired, which takes up
to one more second off the shortest ttls.
"""

from __future__ import annotations

import asyncio
import time
from statistics import quantiles
from typing import Any, Final

from benchmarks.contenders import Setup, _s3cache_kwargs
from benchmarks.features import FeatureResult, MethodCounter

__all__ = ["FACTORY_S", "READERS", "SECONDS", "TTL_S", "early_refresh"]

NAME: Final = "early refresh"
READERS: Final = 64
TTL_S: Final = 5  # several times the lead XFetch takes at this rate, and S3's 1 s resolution
SECONDS: Final = 10.0  # two ttl periods after the fill
FACTORY_S: Final = 0.1
#: Refreshes allowed per ttl period (the issue's target).
MAX_PER_PERIOD: Final = 2


async def early_refresh(setup: Setup, seconds: float = SECONDS) -> FeatureResult:
    """The cell (see the module), both ways in one run, each reading for ``seconds``."""
    from s3cache import AsyncS3Cache

    figures: dict[str, float] = {}
    for mode, early in (("early", True), ("plain", False)):
        kwargs = _s3cache_kwargs(setup, f"{setup.prefix}features/xfetch-{mode}/", MethodCounter())
        async with AsyncS3Cache(**kwargs) as cache:
            figures |= {f"{mode}_{k}": v for k, v in (await _read(cache, early, seconds)).items()}
    met = (
        figures["early_waited"] == 0
        and figures["early_per_period"] <= MAX_PER_PERIOD
        and figures["early_refreshes"] >= 1
    )
    return FeatureResult(
        NAME,
        f"{READERS} readers of one key (ttl {TTL_S} s, factory {FACTORY_S * 1000:.0f} ms) for "
        f"{seconds:g} s: early=True: {figures['early_refreshes']:.0f} background refreshes "
        f"({figures['early_per_period']:.2f} per ttl period), calls that waited for the factory "
        f"{figures['early_waited']:.0f} of {figures['early_calls']:,.0f}, p99 "
        f"{figures['early_p99_ms']:.1f} ms; off: {figures['plain_refreshes']:.0f} recomputes, "
        f"{figures['plain_waited']:.0f} calls waited, p99 {figures['plain_p99_ms']:.1f} ms",
        figures,
        f"early=True: the entry never expires (0 calls waited), <= {MAX_PER_PERIOD} refreshes "
        "per ttl period",
        met,
    )


async def _read(cache: Any, early: bool, seconds: float) -> dict[str, float]:
    """The readers' loop: latencies, factory calls after the fill, calls that waited."""
    calls = 0

    async def factory() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(FACTORY_S)
        return f"v{calls}"

    await cache.get_or_set("hot", factory, ttl=TTL_S, early=early)  # the fill records delta
    filled = calls
    took: list[float] = []
    end = time.monotonic() + seconds

    async def reader() -> None:
        while time.monotonic() < end:
            started = time.perf_counter()
            await cache.get_or_set("hot", factory, ttl=TTL_S, early=early)
            took.append(time.perf_counter() - started)

    await asyncio.gather(*(reader() for _ in range(READERS)))
    refreshes = calls - filled
    cuts = quantiles(took, n=100)
    return {
        "calls": len(took),
        "p99_ms": cuts[98] * 1000,
        "refreshes": refreshes,
        "per_period": refreshes / (seconds / TTL_S),
        "waited": sum(1 for t in took if t >= FACTORY_S),
    }
