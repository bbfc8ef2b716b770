"""Feature cell: S3 goes down for 5 s in the middle of a cell, with ``stale_if_error`` on and
off (issue 23 item 7).

Two caches (``on_error="log"``, the S3 outage cell's 250 ms deadline, ``breaker=False``) talk to
the run's server through one fault proxy (:class:`harness.faultproxy.FaultProxy`): one with
``stale_if_error=60``, one without. Each writes ``KEYS`` keys (ttl 60 s: fresh for the whole
cell, so every call before and after the outage can be a hit) and reads each once, so that the
cache has seen them. Then, on each cache at once, ``GETTERS`` callers ``get`` and ``FILLERS``
callers ``get_or_set`` those keys in a loop, each starting a call at most every ``INTERVAL_S``
(a steady rate: a call that fails at once makes no more calls than a hit; the factory sleeps
``FACTORY_S``, an LLM call scaled down): ``BEFORE_S``, then ``OUTAGE_S`` of outage (5 s, as the
issue asks: the proxy refuses every connection and drops the open ones, so every request fails
with a connection error, most at once, some after retrying up to the deadline), then
``AFTER_S``. Measured per cache, over the calls that started during the outage and over all:
the share answered with a value (not a miss, ``ABSENT`` or an exception), the latency of those
during the outage, the factory calls made during it, and ``stats().stale_served``. The target,
with ``stale_if_error``: at least 99% of the calls during the outage answered with a value, and
no factory call (every key was seen before the outage).

``breaker=False``: the cell measures ``stale_if_error`` alone, over exactly the proxy's outage.
With the default breaker the failures would outlast the outage by up to a cool-down (the S3
outage cell measures that), and refused connections mostly fail fast without it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from statistics import median
from typing import Any, Final
from urllib.parse import urlsplit

from benchmarks.contenders import Setup, _s3cache_kwargs
from benchmarks.features import FeatureResult, MethodCounter
from benchmarks.outage import _VALUE, DEADLINE_S, _logged, _opened
from harness.faultproxy import Fault, FaultProxy

__all__ = ["FACTORY_S", "OUTAGE_S", "stale_outage"]

NAME: Final = "S3 outage, stale_if_error"
KEYS: Final = 32
GETTERS: Final = 4  # callers of get, per cache
FILLERS: Final = 4  # callers of get_or_set, per cache
FACTORY_S: Final = 0.2
INTERVAL_S: Final = 0.05  # each caller starts a call at most this often
TTL_S: Final = 60
WINDOW_S: Final = 60  # stale_if_error
BEFORE_S: Final = 1.0
OUTAGE_S: Final = 5.0
AFTER_S: Final = 1.0
TARGET_SHARE: Final = 0.99


@dataclass(slots=True)
class _Outage:
    """When the proxy refused (monotonic seconds; ``end`` is inf until it forwards again)."""

    start: float = float("inf")
    end: float = float("inf")

    def during(self, at: float) -> bool:
        return self.start <= at < self.end


@dataclass(slots=True)
class _Calls:
    """One cache's calls: when each started, how long it took, whether it got a value."""

    started: list[float] = field(default_factory=list)
    took: list[float] = field(default_factory=list)
    answered: list[bool] = field(default_factory=list)
    raised: int = 0
    factory: list[float] = field(default_factory=list)  # when each factory call started


async def stale_outage(setup: Setup, *, outage_s: float = OUTAGE_S) -> FeatureResult:
    """The cell (see the module), both caches through the same outage (``outage_s``: its
    length; tests shorten it)."""
    from s3cache import AsyncS3Cache

    parts = urlsplit(setup.target.endpoint_url)
    if parts.scheme != "http" or parts.hostname is None:
        return FeatureResult(NAME, "skipped: the fault proxy needs an http:// endpoint")
    keys = [f"k{i}" for i in range(KEYS)]
    with FaultProxy((parts.hostname, parts.port or 80)) as proxy, _logged() as logged:

        def kwargs(mode: str) -> dict[str, Any]:
            prefix = f"{setup.prefix}features/stale-outage-{mode}/"
            return {
                **_s3cache_kwargs(setup, prefix, MethodCounter()),
                "endpoint_url": proxy.endpoint + parts.path,
                "on_error": "log",
                "timeout": DEADLINE_S,
                "breaker": False,
            }

        async with (
            AsyncS3Cache(**kwargs("on"), stale_if_error=WINDOW_S) as on,
            AsyncS3Cache(**kwargs("off")) as off,
        ):
            for cache in (on, off):
                await _opened(cache)
                if await cache.set_many(dict.fromkeys(keys, _VALUE), ttl=TTL_S):
                    raise RuntimeError("could not store the keys before the outage")
                seen = await asyncio.gather(*(cache.get(key) for key in keys))
                if any(value != _VALUE for value in seen):
                    raise RuntimeError("could not read the keys back before the outage")
            before = {"on": on.stats(), "off": off.stats()}
            outage, stop = _Outage(), asyncio.Event()
            calls = {"on": _Calls(), "off": _Calls()}
            await asyncio.gather(
                _drive(proxy, outage, stop, outage_s),
                _callers(on, keys, calls["on"], stop),
                _callers(off, keys, calls["off"], stop),
            )
            after = {"on": on.stats(), "off": off.stats()}
    figures: dict[str, float] = {"outage_s": outage_s, "deadline_ms": DEADLINE_S * 1000}
    for mode, done in calls.items():
        stale = sum(after[mode].stale_served.values()) - sum(before[mode].stale_served.values())
        errors = after[mode].error_count - before[mode].error_count
        figures |= {f"{mode}_{k}": v for k, v in _figures(done, outage).items()}
        figures |= {f"{mode}_stale_served": stale, f"{mode}_errors": errors}
    figures["log_lines"] = len(logged)
    return _result(figures)


async def _drive(proxy: FaultProxy, outage: _Outage, stop: asyncio.Event, seconds: float) -> None:
    """``BEFORE_S`` of calls, then the outage for ``seconds``, then ``AFTER_S``; then stop."""
    await asyncio.sleep(BEFORE_S)
    proxy.set_fault(Fault.REFUSE)  # blocks this loop until the listener is closed
    outage.start = time.monotonic()
    await asyncio.sleep(seconds)
    outage.end = time.monotonic()
    proxy.clear()
    await asyncio.sleep(AFTER_S)
    stop.set()


async def _callers(cache: Any, keys: list[str], calls: _Calls, stop: asyncio.Event) -> None:
    """``GETTERS`` loops of ``get`` and ``FILLERS`` of ``get_or_set`` over ``keys`` (each from
    its own offset), a call at most every ``INTERVAL_S``, until ``stop``."""
    from s3cache import ABSENT

    async def factory() -> Any:
        calls.factory.append(time.monotonic())
        await asyncio.sleep(FACTORY_S)
        return _VALUE

    def get(key: str) -> Awaitable[Any]:
        return cache.get(key)  # type: ignore[no-any-return]

    def fill(key: str) -> Awaitable[Any]:
        return cache.get_or_set(key, factory, ttl=TTL_S)  # type: ignore[no-any-return]

    async def caller(call: Callable[[str], Awaitable[Any]], offset: int) -> None:
        n = offset
        while not stop.is_set():
            key = keys[n % len(keys)]
            n += 1
            started = time.monotonic()
            try:
                value = await call(key)
            except Exception:  # counted: with on_error="log" none should escape
                calls.raised += 1
                value = None
            calls.started.append(started)
            calls.took.append(time.monotonic() - started)
            calls.answered.append(value is not None and value is not ABSENT)
            await asyncio.sleep(max(0.0, started + INTERVAL_S - time.monotonic()))

    stride = len(keys) // (GETTERS + FILLERS)
    await asyncio.gather(
        *(caller(get, i * stride) for i in range(GETTERS)),
        *(caller(fill, (GETTERS + i) * stride) for i in range(FILLERS)),
    )


def _figures(calls: _Calls, outage: _Outage) -> dict[str, float]:
    during = [i for i, at in enumerate(calls.started) if outage.during(at)]
    answered = sum(calls.answered)
    answered_during = sum(calls.answered[i] for i in during)
    took_during = sorted(calls.took[i] for i in during) or [0.0]
    return {
        "calls": len(calls.started),
        "answered_share": answered / max(1, len(calls.started)),
        "outage_calls": len(during),
        "outage_answered_share": answered_during / max(1, len(during)),
        "outage_p50_ms": median(took_during) * 1000,
        "outage_p99_ms": took_during[int(0.99 * (len(took_during) - 1))] * 1000,
        # calls during the outage that waited for most of the deadline (retried, then failed)
        "outage_slow_share": sum(t >= 0.8 * DEADLINE_S for t in took_during) / max(1, len(during)),
        "factory_calls": len(calls.factory),
        "outage_factory_calls": sum(outage.during(at) for at in calls.factory),
        "raised": calls.raised,
    }


def _result(figures: dict[str, float]) -> FeatureResult:
    f = figures
    met = (
        f["on_outage_calls"] > 0
        and f["on_outage_answered_share"] >= TARGET_SHARE
        and f["on_outage_factory_calls"] == 0
    )
    summary = (
        f"{KEYS} keys seen before an outage of {f['outage_s']:g} s (connections refused; "
        f"deadline {f['deadline_ms']:.0f} ms), {GETTERS} get and {FILLERS} get_or_set callers "
        f"per cache (a call each at most every {INTERVAL_S * 1000:.0f} ms), factory "
        f"{FACTORY_S * 1000:.0f} ms: stale_if_error on: "
        f"{f['on_outage_answered_share'] * 100:.1f}% of {f['on_outage_calls']:.0f} calls during "
        f"the outage answered with a value (p50 {f['on_outage_p50_ms']:.1f} ms, p99 "
        f"{f['on_outage_p99_ms']:.0f} ms, {f['on_outage_slow_share'] * 100:.0f}% after most of "
        f"the deadline; {f['on_answered_share'] * 100:.1f}% of "
        f"{f['on_calls']:.0f} in all), {f['on_outage_factory_calls']:.0f} factory calls during "
        f"it, {f['on_stale_served']:.0f} stale values served; off: "
        f"{f['off_outage_answered_share'] * 100:.1f}% of {f['off_outage_calls']:.0f} answered "
        f"({f['off_answered_share'] * 100:.1f}% of {f['off_calls']:.0f} in all), "
        f"{f['off_outage_factory_calls']:.0f} factory calls during the outage"
    )
    return FeatureResult(
        NAME,
        summary,
        figures,
        "stale_if_error on: >= 99% of calls during the outage answered with a value, 0 factory "
        "calls for keys seen before it",
        met,
    )
