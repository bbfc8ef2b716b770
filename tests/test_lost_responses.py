"""Every conditional write, and every delete, with its response lost after the server applied it.

The fault proxy forwards the request, reads the server's answer, and resets the connection
halfway through that answer (``Fault.RESET_BODY``): the write is done, and the client cannot
know it. The retry (botocore's, or the wire path's under the same policy) meets its own write.
Each case runs :data:`RUNS` seeded operations at once, each on a key of its own, first through
a faithful proxy and then with one response per key lost, on both request paths: the outcomes
must be the same. Part of the behaviour suite: ``--server ceph|seaweedfs`` runs it there too
(the proxy alters no request, so signatures hold).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from harness.faultproxy import Fault, FaultProxy
from s3cache import AsyncS3Cache, LockNotAcquiredError, _fleet, _keys
from tests.test_core import put_expired

#: Operations per case and phase, each on its own key, seeded by its index.
RUNS = 20
PREFIX = "lost"
#: A lock renewed every second (ttl / 3): a retried renewal, after up to 1 s of botocore's
#: backoff, still lands well inside the 3 s it has.
RENEWED_TTL = 3.0


class Phase:
    """One phase of a case: RUNS operations, the fault armed once all have reached
    :meth:`armed`, so that what each did before is done faithfully."""

    def __init__(
        self, proxy: FaultProxy, cache: AsyncS3Cache, s3: Any, case: Case, faulted: bool
    ) -> None:
        self.proxy = proxy
        self.cache = cache
        self.s3 = s3
        self.case = case
        self.faulted = faulted
        self.tag = "lost" if faulted else "faithful"  # keys of their own in each phase
        self._arrived = 0
        self._go = asyncio.Event()

    async def armed(self) -> None:
        """Wait for every run; then lose one response of each key (when faulted)."""
        self._arrived += 1
        if self._arrived == RUNS:
            self.proxy.reset_counts()
            if self.faulted:
                case = self.case
                self.proxy.set_fault(
                    Fault.RESET_BODY,
                    methods={case.method},
                    path_contains=case.where,
                    per_path=case.nth,
                )
            self._go.set()
        await self._go.wait()

    def path(self, okey: str) -> str:
        """The request path of object key ``okey`` (path-style, as the proxy sees it)."""
        return f"/{self.cache.bucket}/{okey}"


Run = Callable[[Phase, int], Awaitable[tuple[Any, ...]]]


@dataclass(frozen=True)
class Case:
    """A write whose response is lost: the HTTP method, the part of the path it writes, and
    which request of each path (counted from when the fault is armed) loses its response."""

    name: str
    method: str
    where: str
    nth: int
    run: Run


def _value(seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    return {"seed": seed, "data": rng.randbytes(rng.randrange(1, 2048)).hex()}


async def _add_create(phase: Phase, seed: int) -> tuple[Any, ...]:
    key = f"add-{phase.tag}-{seed}"
    await phase.armed()
    stored = await phase.cache.add(key, _value(seed), ttl=60)
    return stored, await phase.cache.get(key) == _value(seed)


async def _add_replace(phase: Phase, seed: int) -> tuple[Any, ...]:
    key = f"stale-{phase.tag}-{seed}"
    await asyncio.to_thread(put_expired, phase.s3, phase.cache.bucket, f"{PREFIX}/{key}")
    await phase.armed()
    stored = await phase.cache.add(key, _value(seed), ttl=60)
    return stored, await phase.cache.get(key) == _value(seed)


async def _lease(phase: Phase, seed: int) -> tuple[Any, ...]:
    key = f"lease-{phase.tag}-{seed}"
    calls = 0

    def factory() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        return _value(seed)

    await phase.armed()
    started = time.monotonic()
    value = await phase.cache.get_or_set(key, factory, ttl=60, lease=10)
    waited = time.monotonic() - started
    lkey = _keys.reserved_key(phase.cache.prefix, "lease", key)
    record = await _fleet._look(phase.cache.transport, lkey)
    released = record is not None and not record.held
    return value == _value(seed), calls, released, waited < 5, await phase.cache.get(key) == value


async def _lock(phase: Phase, seed: int, ttl: float, armed_inside: bool) -> tuple[Any, ...]:
    """Hold ``job-<seed>`` (arming the fault before it is taken, or once it is held), wait
    for two renewals if it renews, release it, then take it again."""
    name = f"job-{phase.tag}-{seed}"
    cache = phase.cache
    okey = _keys.reserved_key(cache.prefix, "lock", name)
    if not armed_inside:
        await phase.armed()
    try:
        async with cache.lock(name, ttl=ttl) as held:
            if armed_inside:
                await phase.armed()
            if ttl == RENEWED_TTL:
                await _renewals(phase, okey, 2)
            token = held.token
    except LockNotAcquiredError as exc:
        return ("busy", str(exc).replace(name, "<name>"))
    record = await _fleet._look(cache.transport, okey)
    released = record is not None and not record.held
    async with cache.lock(name, ttl=5) as again:  # free at once: it was released
        taken = again.token > token
    return "held", held.lost, released, taken


async def _renewals(phase: Phase, okey: str, count: int) -> None:
    """Return once the lock at ``okey`` was renewed ``count`` times since the fault was armed
    (counting the retry of a renewal whose answer was lost), as the proxy saw them."""
    path = phase.path(okey)
    wanted = count + phase.faulted

    def renewed(p: FaultProxy) -> bool:
        return p.paths["PUT", path] >= wanted

    assert await asyncio.to_thread(phase.proxy.wait_for, renewed, 30)


async def _lock_acquire(phase: Phase, seed: int) -> tuple[Any, ...]:
    return await _lock(phase, seed, 30.0, armed_inside=False)


async def _lock_renew(phase: Phase, seed: int) -> tuple[Any, ...]:
    return await _lock(phase, seed, RENEWED_TTL, armed_inside=True)


async def _lock_release(phase: Phase, seed: int) -> tuple[Any, ...]:
    return await _lock(phase, seed, 30.0, armed_inside=True)


async def _delete(phase: Phase, seed: int) -> tuple[Any, ...]:
    key = f"del-{phase.tag}-{seed}"
    await phase.cache.set(key, _value(seed), ttl=60)
    await phase.armed()
    deleted = await phase.cache.delete(key)
    return deleted, await phase.cache.get(key, "gone"), await phase.cache.exists(key)


LEASES = f"/{_keys.RESERVED_SEGMENT}/lease/"
LOCKS = f"/{_keys.RESERVED_SEGMENT}/lock/"
CASES = [
    Case("add-create", "PUT", f"/{PREFIX}/add-", 1, _add_create),
    # The create is refused (an expired entry is there); the If-Match replace loses its answer.
    Case("add-replace-expired", "PUT", f"/{PREFIX}/stale-", 2, _add_replace),
    Case("lease-acquire", "PUT", LEASES, 1, _lease),
    Case("lease-release", "PUT", LEASES, 2, _lease),
    Case("lock-acquire", "PUT", LOCKS, 1, _lock_acquire),
    Case("lock-renew", "PUT", LOCKS, 1, _lock_renew),
    Case("lock-release", "PUT", LOCKS, 1, _lock_release),
    Case("delete", "DELETE", f"/{PREFIX}/del-", 1, _delete),
]


@pytest.fixture(params=[True, False], ids=["wire", "aiobotocore"])
def proxied(
    request: pytest.FixtureRequest, proxy: FaultProxy, cache_kwargs: dict[str, Any]
) -> dict[str, Any]:
    """Constructor arguments through the fault proxy, on one request path."""
    return {
        **cache_kwargs,
        "endpoint_url": proxy.endpoint,
        "fast_path": request.param,
        "prefix": PREFIX,
        "on_error": "raise",
    }


@pytest.fixture
async def fresh(proxied: dict[str, Any]) -> AsyncIterator[Callable[[], AsyncS3Cache]]:
    """Make caches (closed afterwards) whose one-time probes have run."""
    made: list[AsyncS3Cache] = []

    def make() -> AsyncS3Cache:
        made.append(AsyncS3Cache(**proxied))
        return made[-1]

    yield make
    for cache in made:
        await cache.close()


async def _phase(
    proxy: FaultProxy, make: Callable[[], AsyncS3Cache], s3: Any, case: Case, faulted: bool
) -> tuple[list[tuple[Any, ...]], AsyncS3Cache]:
    cache = make()
    assert await cache.supports_conditional_writes()  # the probes are not what is faulted
    assert await cache.supports_conditional_replace()
    phase = Phase(proxy, cache, s3, case, faulted)
    try:
        async with asyncio.timeout(60):
            outcomes = await asyncio.gather(*(case.run(phase, seed) for seed in range(RUNS)))
    finally:
        proxy.clear()
    return list(outcomes), cache


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_a_lost_response_changes_no_outcome(
    case: Case, proxy: FaultProxy, fresh: Callable[[], AsyncS3Cache], s3: Any
) -> None:
    """RUNS operations with faithful answers, then RUNS with one answer per key lost: the
    same outcomes, every write's own refusal recovered, and nothing counted as an error."""
    expected, _ = await _phase(proxy, fresh, s3, case, faulted=False)
    assert proxy.count(Fault.RESET_BODY) == 0
    outcomes, cache = await _phase(proxy, fresh, s3, case, faulted=True)
    assert proxy.count(Fault.RESET_BODY) == RUNS
    assert outcomes == expected
    assert all(o[0] in (True, "held") for o in expected), expected  # and the outcome is success
    stats = cache.stats()
    assert stats.error_count == 0
    if case.method == "PUT":  # each retry met its own write, and a HEAD told it so
        assert stats.recovered == {"PutObject": RUNS}


async def test_a_delete_answered_no_such_key_counts_as_deleted(
    proxied: dict[str, Any], proxy: FaultProxy
) -> None:
    """S3 answers 204 to a DeleteObject of a missing key, but a server that answers 404
    NoSuchKey gives it to the retry of a delete whose answer was lost: the delete succeeded
    (emulated here by the proxy answering 404 to the DELETE)."""
    async with AsyncS3Cache(**proxied) as cache:
        await cache.set("k", "v")
        proxy.set_fault(Fault.NOT_FOUND_404, methods={"DELETE"})
        assert await cache.delete("k") is True
        assert await cache.delete_many(["k"]) == 1
        assert proxy.count(Fault.NOT_FOUND_404) == 2
        stats = cache.stats()
    assert stats.error_count == 0
    assert stats.recovered == {"DeleteObject": 2}
