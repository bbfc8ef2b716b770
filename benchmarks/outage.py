"""Feature cell: S3 unreachable for a moment, and what callers see (fail-soft).

Two caches with ``on_error="log"`` and a short deadline talk to the run's server through a fault
proxy (:class:`harness.faultproxy.FaultProxy`, in a thread of this process): one with a local
tier holding a hot key, one without. The proxy then refuses connections, then accepts them and
never answers (a black hole), then forwards again. Measured in each phase: how long concurrent
``get`` calls of stored keys take to return and what they return (a miss, or the local tier's
value); then the errors counted by kind in ``stats()``, and whether a ``get`` after the outage
is a hit again. The outage costs the caller its deadline, not an exception or a hang.

Those two run with ``breaker=False``. A third cache has the default circuit breaker: through a
black hole its gets one after another cost the deadline until the breaker opens, then fail fast;
measured are the calls it took to open, the p99 latency of the calls after that (the target:
1 ms at most), and, once the proxy forwards again, the time until a get hits again (the target:
within one cool-down).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from statistics import median
from typing import Any, Final
from urllib.parse import urlsplit

from benchmarks.contenders import Setup, _s3cache_kwargs
from benchmarks.features import FeatureResult, MethodCounter
from harness.faultproxy import Fault, FaultProxy

__all__ = ["DEADLINE_S", "s3_outage"]

NAME: Final = "S3 outage"
DEADLINE_S: Final = 0.25  # the caches' deadline per operation, retries included
GETS: Final = 20  # concurrent gets of as many keys, per phase
_BLACKHOLE_GETS: Final = 5
_RECOVERY_GETS: Final = 5
#: Gets one after another through the black hole, with the breaker on.
_GUARDED_GETS: Final = 200
_VALUE: Final = {"v": "x" * (1024 - 9)}


@contextlib.contextmanager
def _logged(name: str = "s3cache") -> Iterator[list[logging.LogRecord]]:
    """The logger's records, kept here instead of printed (the failures are the point)."""
    logger = logging.getLogger(name)
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler, propagate = Keep(), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


async def _opened(cache: Any, tries: int = 20) -> None:
    """Open the cache's client for this loop: its first request pays for loading botocore's
    models, which on a busy machine can take longer than the short deadline of this cell."""
    for _ in range(tries):
        errors = cache.stats().error_count
        await cache.exists("warm-up")
        if cache.stats().error_count == errors:
            return
    raise RuntimeError(f"no request got through within the {DEADLINE_S} s deadline")


async def _recovered(get: Callable[[], Awaitable[Any]]) -> tuple[list[float], Any]:
    """Gets after the outage until one hits (at most :data:`_RECOVERY_GETS`; on a busy machine
    the first may still miss its short deadline): the seconds the hit took, and its value."""
    for _ in range(_RECOVERY_GETS):
        took, (value,) = await _timed([get])
        if value is not None:
            break
    return took, value


async def _timed(gets: list[Callable[[], Awaitable[Any]]]) -> tuple[list[float], list[Any]]:
    """The calls, all at once: seconds each took, and what each returned."""

    async def one(get: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
        started = time.perf_counter()
        value = await get()
        return time.perf_counter() - started, value

    done = await asyncio.gather(*(one(get) for get in gets))
    return [took for took, _ in done], [value for _, value in done]


async def _sequential(
    get: Callable[[], Awaitable[Any]], times: int
) -> tuple[list[float], list[Any]]:
    """``times`` calls one after the other: seconds each took, and what each returned."""
    took, got = [], []
    for _ in range(times):
        one, value = await _timed([get])
        took += one
        got += value
    return took, got


async def s3_outage(setup: Setup) -> FeatureResult:
    """Gets during refused connections and a black hole: misses within the deadline, local-tier
    hits in microseconds, and hits again once S3 is back."""
    from botocore.config import Config

    from s3cache import AsyncS3Cache, LocalTier

    parts = urlsplit(setup.target.endpoint_url)
    if parts.scheme != "http" or parts.hostname is None:
        return FeatureResult(NAME, "skipped: the fault proxy needs an http:// endpoint")
    with FaultProxy((parts.hostname, parts.port or 80)) as proxy, _logged() as logged:
        kwargs = {
            **_s3cache_kwargs(setup, f"{setup.prefix}features/outage/", MethodCounter()),
            "endpoint_url": proxy.endpoint + parts.path,
            "on_error": "log",
            "timeout": DEADLINE_S,
            "config": Config(connect_timeout=DEADLINE_S, read_timeout=DEADLINE_S),
        }
        guarded = await _with_breaker(proxy, kwargs)
        async with (
            AsyncS3Cache(**kwargs, breaker=False) as plain,
            AsyncS3Cache(**kwargs, breaker=False, local=LocalTier(ttl=60.0)) as tiered,
        ):
            keys = [f"cold-{i}" for i in range(GETS)]
            await _opened(plain)
            await _opened(tiered)
            if await plain.set_many(dict.fromkeys(keys, _VALUE)):
                raise RuntimeError("could not store the keys before the outage")
            await tiered.set("hot", _VALUE)
            assert await tiered.get("hot") == _VALUE
            before = Counter(plain.stats().errors)

            def gets(n: int) -> list[Callable[[], Awaitable[Any]]]:
                return [functools.partial(plain.get, key) for key in keys[:n]]

            healthy, _ = await _timed(gets(GETS))
            proxy.set_fault(Fault.REFUSE)
            refused, refused_got = await _timed(gets(GETS))
            tier, tier_got = await _sequential(lambda: tiered.get("hot"), GETS)
            proxy.set_fault(Fault.BLACKHOLE)
            holed, holed_got = await _timed(gets(_BLACKHOLE_GETS))
            errors = dict(Counter(plain.stats().errors) - before)
            proxy.clear()
            back, back_got = await _recovered(gets(1)[0])
    return _result(
        {
            "healthy": healthy,
            "refused": refused,
            "tier": tier,
            "blackhole": holed,
            "back": back,
        },
        misses=sum(v is None for v in refused_got + holed_got),
        tier_hits=sum(v == _VALUE for v in tier_got),
        recovered=back_got == _VALUE,
        errors=errors,
        log_lines=len(logged),
        guarded=guarded,
    )


async def _with_breaker(proxy: FaultProxy, kwargs: dict[str, Any]) -> dict[str, float]:
    """The black hole again, for a cache with the default breaker: gets one after another until
    :data:`_GUARDED_GETS`; then the proxy forwards and gets are repeated until one hits."""
    from s3cache import AsyncS3Cache, Breaker

    async with AsyncS3Cache(**kwargs, breaker=Breaker()) as cache:
        await _opened(cache)
        await cache.set("guarded", _VALUE)
        proxy.set_fault(Fault.BLACKHOLE)
        took, _ = await _sequential(lambda: cache.get("guarded"), _GUARDED_GETS)
        stats = cache.stats()
        fast = stats.errors.get("circuit_open", 0)
        proxy.clear()
        back_started = time.perf_counter()
        while await cache.get("guarded") != _VALUE:
            if time.perf_counter() - back_started > 5 * Breaker().max_cooldown:
                break
            await asyncio.sleep(0.01)
        back_s = time.perf_counter() - back_started
    after = sorted(took[len(took) - fast :]) or [math.inf]
    return {
        "breaker_opened_after": len(took) - fast,
        "breaker_fast_gets": fast,
        "breaker_fast_p50_ms": after[len(after) // 2] * 1000,
        "breaker_fast_p99_ms": after[min(len(after) - 1, int(0.99 * len(after)))] * 1000,
        "breaker_recovered_s": back_s,
        "breaker_cooldown_s": Breaker().cooldown,
    }


def _result(
    took: dict[str, list[float]],
    *,
    misses: int,
    tier_hits: int,
    recovered: bool,
    errors: dict[str, int],
    log_lines: int,
    guarded: dict[str, float],
) -> FeatureResult:
    ms = {phase: median(seconds) * 1000 for phase, seconds in took.items()}
    slowest_ms = max(took["refused"] + took["blackhole"]) * 1000
    counted = ", ".join(f"{kind} {n}" for kind, n in sorted(errors.items())) or "none"
    tier_us = ms["tier"] * 1000
    summary = (
        f"{GETS} concurrent gets while S3 refuses connections: misses after "
        f"{ms['refused']:.0f} ms (the {DEADLINE_S * 1000:.0f} ms deadline, retries included); "
        f"black-holed: misses after {ms['blackhole']:.0f} ms; a local-tier key stays a hit in "
        f"{tier_us:.0f} us; {'hits' if recovered else 'NOT hits'} again once S3 answers "
        f"(a healthy get: {ms['healthy']:.0f} ms; errors counted: {counted}); with the "
        f"breaker on, black-holed gets one after another: open after "
        f"{guarded['breaker_opened_after']:.0f}, then p99 {guarded['breaker_fast_p99_ms']:.3f} ms "
        f"({guarded['breaker_fast_gets']:.0f} gets), a hit again "
        f"{guarded['breaker_recovered_s']:.1f} s after S3 answers "
        f"(cool-down {guarded['breaker_cooldown_s']:.0f} s)"
    )
    breaker_met = (
        guarded["breaker_fast_p99_ms"] <= 1.0
        and guarded["breaker_recovered_s"] <= guarded["breaker_cooldown_s"] + 2 * DEADLINE_S
    )
    return FeatureResult(
        name=NAME,
        summary=summary,
        figures={
            "deadline_ms": DEADLINE_S * 1000,
            "healthy_ms": ms["healthy"],
            "refused_miss_ms": ms["refused"],
            "blackhole_miss_ms": ms["blackhole"],
            "slowest_miss_ms": slowest_ms,
            "tier_hit_us": tier_us,
            "recovered_ms": ms["back"],
            "misses": misses,
            "gets_during_outage": GETS + _BLACKHOLE_GETS,
            "tier_hits": tier_hits,
            "log_lines": log_lines,
            **{f"errors_{kind}": n for kind, n in errors.items()},
            **guarded,
        },
        expected=(
            "every get during the outage a miss within 2x the deadline, local-tier keys hits, "
            "a hit again after it; breaker on: p99 <= 1 ms once open, a hit again within one "
            "cool-down"
        ),
        met=(
            misses == GETS + _BLACKHOLE_GETS
            and tier_hits == GETS
            and recovered
            and slowest_ms <= 2 * DEADLINE_S * 1000
            and breaker_met
        ),
    )
