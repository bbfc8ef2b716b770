"""Feature cells: what the features beyond get/set cost or save, measured on the run's server.

- ``get_or_set`` under a stampede of 100 callers on a missing key (factory calls: 1; GETs: 1;
  PUTs: 1);
- single flight: 100 concurrent ``get`` of one key (requests sent: 1), beside raw aiobotocore
  doing the same (100);
- local-tier hits: ``AsyncS3Cache(..., local=LocalTier())`` answering a hot key in process
  (µs per hit, hits/s, and the requests sent meanwhile: none expected);
- signed entries: the CPU a get-hit spends verifying a signed 1 KiB entry (``signing_key=``),
  in process, no request (target: under 5 µs);
- telemetry: the client CPU per GET hit (1 KiB, from S3) with OpenTelemetry metrics on
  (``s3cache.telemetry.instrument``, the SDK's meter provider) as a ratio to off, rounds of
  each alternating (target: at most 1.10x; skipped without opentelemetry-sdk).

The fleet lease (:mod:`benchmarks.fleet`) and the S3 outage (:mod:`benchmarks.outage`) have
modules of their own.

Requests are counted by the server (the mini server counts them by method); with
``--latency-via hook``, by a ``before-send`` hook; in front of any other http:// server, by a
counting proxy (:class:`harness.faultproxy.FaultProxy`, in a thread of this process) that the
feature cells, and only they, talk through.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from benchmarks.contenders import Setup, _s3cache_kwargs
from benchmarks.latency import RequestCounter, add_async_latency
from benchmarks.server import request_counts
from harness.faultproxy import FaultProxy

__all__ = ["FeatureResult", "MethodCounter", "Requests", "run_features"]

CALLERS: Final = 100
_VALUE: Final = {"v": "x" * (1024 - 9)}  # ~1 KiB of JSON, as in the grid
_FACTORY_S: Final = 0.05  # what the stampede's "expensive" factory takes


@dataclass(frozen=True, slots=True)
class FeatureResult:
    """One feature cell: its figures, what was expected of them, and whether that held."""

    name: str
    summary: str
    figures: dict[str, float] = field(default_factory=dict)
    expected: str = ""
    met: bool | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


class Requests:
    """Requests sent, by method: the server's count when it keeps one, else a hook's."""

    def __init__(self, setup: Setup) -> None:
        self.setup = setup
        self.hook = MethodCounter()

    def methods(self) -> Counter[str] | None:
        counts = request_counts(self.setup.target)
        if counts is not None:
            return counts
        return self.hook.methods.copy() if self.setup.hook_latency else None

    @staticmethod
    def since(before: Counter[str] | None, after: Counter[str] | None) -> Counter[str] | None:
        return None if before is None or after is None else after - before


def _total(counts: Counter[str] | None) -> int | None:
    return None if counts is None else sum(counts.values())


class MethodCounter(RequestCounter):
    """A request counter that also counts by HTTP method (GET, PUT, ...)."""

    def __init__(self) -> None:
        super().__init__()
        self.methods: Counter[str] = Counter()

    def __call__(self, **kwargs: Any) -> None:
        super().__call__()
        request = kwargs.get("request")
        self.methods[str(getattr(request, "method", "?"))] += 1


def _cache(setup: Setup, requests: Requests, prefix: str, **extra: Any) -> Any:
    from s3cache import AsyncS3Cache

    kwargs = _s3cache_kwargs(setup, setup.prefix + prefix, requests.hook)
    return AsyncS3Cache(**kwargs, **extra)


async def local_tier_hits(setup: Setup, seconds: float) -> FeatureResult:
    """Sequential ``get`` of one key held by the local tier: wall and CPU µs per hit."""
    from s3cache import LocalTier

    requests = Requests(setup)
    async with _cache(setup, requests, "features/local/", local=LocalTier(ttl=60.0)) as cache:
        await cache.set("hot", _VALUE)
        assert await cache.get("hot") == _VALUE
        before, hits = requests.methods(), 0
        cpu0, started = time.process_time(), time.perf_counter()
        deadline = started + seconds
        while time.perf_counter() < deadline:
            for _ in range(100):
                if await cache.get("hot") is not None:
                    hits += 1
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu0
        sent = _total(requests.since(before, requests.methods()))
    us = wall / hits * 1e6
    return FeatureResult(
        name="local tier",
        summary=(
            f"a hot key answered in process by AsyncS3Cache(local=LocalTier()): {us:.1f} us "
            f"per hit ({hits / wall:,.0f} hits/s), {_shown(sent)} requests in {hits:,} hits"
        ),
        figures={
            "us_per_hit": us,
            "cpu_us_per_hit": cpu / hits * 1e6,
            "hits_per_s": hits / wall,
            "hits": hits,
            "requests": math.nan if sent is None else sent,
        },
        expected="a few us per hit, no requests",
        met=None if sent is None else sent == 0,
    )


def _shown(count: int | None) -> str:
    return "(uncounted)" if count is None else str(count)


async def single_flight(setup: Setup) -> FeatureResult:
    """100 concurrent ``get`` of one key: s3cache sends one GET; raw aiobotocore sends 100."""
    requests = Requests(setup)
    async with _cache(setup, requests, "features/flight/") as cache:
        await cache.set("one", _VALUE)
        before = requests.methods()
        started = time.perf_counter()
        values = await asyncio.gather(*(cache.get("one") for _ in range(CALLERS)))
        wall_ms = (time.perf_counter() - started) * 1000
        sent = _total(requests.since(before, requests.methods()))
    all_hit = all(v == _VALUE for v in values)
    raw_sent, raw_ms = await _raw_concurrent_gets(setup, f"{setup.prefix}features/flight/one")
    return FeatureResult(
        name="single flight",
        summary=(
            f"{CALLERS} concurrent get() of one key: {_shown(sent)} request "
            f"(raw aiobotocore: {_shown(raw_sent)}), {'all' if all_hit else 'NOT all'} callers "
            f"had the value in {wall_ms:.0f} ms (aiobotocore: {raw_ms:.0f} ms)"
        ),
        figures={
            "callers": CALLERS,
            "requests": math.nan if sent is None else sent,
            "wall_ms": wall_ms,
            "raw_aiobotocore_requests": math.nan if raw_sent is None else raw_sent,
            "raw_aiobotocore_wall_ms": raw_ms,
        },
        expected="requests: 1",
        met=all_hit and (None if sent is None else sent == 1),
    )


async def _raw_concurrent_gets(setup: Setup, key: str) -> tuple[int | None, float]:
    """The same 100 concurrent reads through a default aiobotocore client (pool of 100)."""
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    requests = Requests(setup)
    session = get_session()
    add_async_latency(session, setup.hook_ms, requests.hook if setup.hook_latency else None)
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(
            session.create_client(
                "s3",
                **setup.target.client_kwargs(),
                config=AioConfig(max_pool_connections=CALLERS),
            )
        )
        bucket = setup.target.bucket

        async def get() -> bytes:
            resp = await client.get_object(Bucket=bucket, Key=key)
            async with resp["Body"] as stream:
                body: bytes = await stream.read()
            return body

        await get()  # the client's first request loads its models; not what is compared
        before = requests.methods()
        started = time.perf_counter()
        await asyncio.gather(*(get() for _ in range(CALLERS)))
        wall_ms = (time.perf_counter() - started) * 1000
        return _total(requests.since(before, requests.methods())), wall_ms


async def stampede(setup: Setup) -> FeatureResult:
    """100 concurrent ``get_or_set`` of a missing key with a 50 ms async factory."""
    requests = Requests(setup)
    calls = 0

    async def factory() -> dict[str, str]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(_FACTORY_S)
        return _VALUE

    async with _cache(setup, requests, "features/stampede/") as cache:
        await cache.set("warm-up", _VALUE)  # open the client first: not what is measured
        key = f"k-{uuid.uuid4().hex[:8]}"
        before = requests.methods()
        started = time.perf_counter()
        values = await asyncio.gather(*(cache.get_or_set(key, factory) for _ in range(CALLERS)))
        wall_ms = (time.perf_counter() - started) * 1000
        sent = requests.since(before, requests.methods())
        stored = await cache.get(key) == _VALUE
    all_got = all(v == _VALUE for v in values)
    gets = None if sent is None else sent.get("GET", 0)
    puts = None if sent is None else sent.get("PUT", 0)
    return FeatureResult(
        name="stampede",
        summary=(
            f"{CALLERS} concurrent get_or_set() of a missing key: {calls} factory call "
            f"({_FACTORY_S * 1000:.0f} ms), {_shown(gets)} GET, {_shown(puts)} PUT; "
            f"{'all' if all_got else 'NOT all'} callers had the value in {wall_ms:.0f} ms"
        ),
        figures={
            "callers": CALLERS,
            "factory_calls": calls,
            "gets": math.nan if gets is None else gets,
            "puts": math.nan if puts is None else puts,
            "wall_ms": wall_ms,
        },
        expected="factory calls: 1, PUTs: 1",
        met=calls == 1 and all_got and stored and (None if puts is None else puts == 1),
    )


def signature_check(rounds: int = 5, checks: int = 20_000) -> FeatureResult:
    """CPU µs per verification of a signed 1 KiB JSON entry, as a get-hit runs it (median of
    ``rounds``), beside the same HMAC keyed afresh on each call with ``hmac.digest``."""
    import hmac

    from s3cache import _format
    from s3cache._signing import Signer

    okey, key = "bench/features/signed", b"\x07" * 32
    signer = Signer([key])
    entry = _format.encode(_VALUE, 3600.0, _format.JsonSerializer(), time.time())
    payload = signer.sign(okey, entry)
    headers = {**_format.payload_headers(payload), "date": "x", "last-modified": "x", "etag": "e"}
    assert signer.verify(okey, payload.body, headers) is None

    def per_call(call: Any) -> float:
        samples = []
        for _ in range(rounds):
            cpu0 = time.process_time()
            for _ in range(checks):
                call()
            samples.append((time.process_time() - cpu0) / checks * 1e6)
        return statistics.median(samples)

    message = b"m" * 96  # about what the key and the signed headers come to
    keyed = hmac.new(key, digestmod="sha256")

    def copied() -> str:
        mac = keyed.copy()
        mac.update(message)
        mac.update(payload.body)
        return mac.hexdigest()

    us = per_call(lambda: signer.verify(okey, payload.body, headers))
    copy_us = per_call(copied)
    digest_us = per_call(lambda: hmac.digest(key, message + payload.body, "sha256").hex())
    return FeatureResult(
        name="signed-entry verification",
        summary=(
            f"verifying a signed {len(payload.body):,}-byte entry on a hit: {us:.2f} us CPU, "
            f"no request added; its HMAC from a copy of the key's state {copy_us:.2f} us, "
            f"keyed afresh by hmac.digest {digest_us:.2f} us"
        ),
        figures={
            "cpu_us_per_verification": us,
            "hmac_copied_state_us": copy_us,
            "hmac_digest_us": digest_us,
        },
        expected="under 5 us per verification",
        met=us < 5.0,
    )


#: Gets in flight at once in the telemetry cell (each of its own key).
_TELEMETRY_WIDTH: Final = 20


async def telemetry_cost(setup: Setup, rounds: int = 5, gets: int = 400) -> FeatureResult:
    """Client CPU per GET hit with telemetry's metrics on, as a ratio to off (alternating)."""
    name, expected = "telemetry", "CPU per GET with metrics on at most 1.10x off"
    try:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    except ImportError:
        return FeatureResult(name, "skipped: opentelemetry-sdk is not installed", {}, expected)
    from s3cache.telemetry import instrument

    requests = Requests(setup)
    provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    cpu: dict[str, list[float]] = {"off": [], "on": []}
    async with (
        _cache(setup, requests, "features/telemetry-off/") as off,
        _cache(setup, requests, "features/telemetry-on/") as on,
    ):
        instrument(on, meter_provider=provider)
        # _TELEMETRY_WIDTH distinct keys read at once (single flight would merge one key's
        # concurrent gets): the emulated latency is paid per batch, not per get.
        keys = [f"hot{i}" for i in range(_TELEMETRY_WIDTH)]
        for cache in (off, on):
            await cache.set_many(dict.fromkeys(keys, _VALUE))
            for _ in range(3):  # warm: connections, the wire path's plan
                await cache.get_many(keys)
        for _ in range(rounds):
            for mode, cache in (("off", off), ("on", on)):
                cpu0 = time.process_time()
                for _ in range(gets // _TELEMETRY_WIDTH):
                    await asyncio.gather(*(cache.get(key) for key in keys))
                cpu[mode].append((time.process_time() - cpu0) / gets * 1e6)
    provider.shutdown()
    off_us, on_us = statistics.median(cpu["off"]), statistics.median(cpu["on"])
    ratio = on_us / off_us
    return FeatureResult(
        name=name,
        summary=(
            f"CPU per GET hit: {off_us:.1f} us off, {on_us:.1f} us with OpenTelemetry metrics "
            f"on ({ratio:.2f}x; medians of {rounds} alternating rounds of {gets})"
        ),
        figures={"cpu_us_per_get_off": off_us, "cpu_us_per_get_on": on_us, "ratio": ratio},
        expected=expected,
        met=ratio <= 1.10,
    )


async def run_features(setup: Setup, seconds: float, telemetry: bool = True) -> list[FeatureResult]:
    """The in-process feature cells, one after the other: stampede, single flight, local tier
    (``seconds`` is the local-tier cell's length), signatures, and with ``telemetry`` the
    telemetry cost (seconds of alternating rounds: the full and default runs only)."""
    with _counted(setup) as counted:
        cells = [
            await stampede(counted),
            await single_flight(counted),
            await local_tier_hits(counted, seconds),
            signature_check(),
        ]
        if telemetry:
            cells.append(await telemetry_cost(counted))
        return cells


@contextlib.contextmanager
def _counted(setup: Setup) -> Iterator[Setup]:
    """``setup``, or where nothing counts its requests, the same through a counting proxy."""
    parts = urlsplit(setup.target.endpoint_url)
    uncounted = request_counts(setup.target) is None and not setup.hook_latency
    if not uncounted or parts.scheme != "http" or parts.hostname is None:
        yield setup
        return
    with FaultProxy((parts.hostname, parts.port or 80)) as proxy:
        endpoint = proxy.endpoint + parts.path
        target = dataclasses.replace(setup.target, endpoint_url=endpoint, counter=proxy)
        yield dataclasses.replace(setup, target=target)
