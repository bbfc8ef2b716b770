"""Background refreshes of stale entries (stale-while-revalidate): started by a read that served
a stale value, owned by the cache, shared with any fill of the key (single flight), backed off
per key after a failure, and settled by ``close()`` within their deadline."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any

from s3cache import _fleet
from s3cache._coherence import Coherence
from s3cache._fleet import FleetHost
from s3cache._freshness import Policy, RefreshBackoff, Verdict, policy
from s3cache._pricing import Cost, check_cost
from s3cache._reads import MISSING, Reads
from s3cache._recorder import Recorder
from s3cache._writes import Writes

__all__ = ["Bill", "Refresher"]

Fill = Callable[[], Coroutine[Any, Any, Any]]


class Bill:
    """One ``get_or_set`` call with a ``cost``: whether its own fill ``led`` (ran on this
    event loop for it) and whether its factory ``ran``; a call whose factory did not run
    avoided it (see :mod:`s3cache._pricing`)."""

    __slots__ = ("led", "price", "ran")

    def __init__(self, price: Cost) -> None:
        self.price = price
        self.led = self.ran = False

    def run(self, factory: Callable[[], Any]) -> Any:
        """Run the factory (the bill's own call ran it)."""
        self.ran = True
        return factory()

    async def lead(self, start: Fill) -> Any:
        """Run the fill for the bill's call (the single flight chose it)."""
        self.led = True
        return await start()


class Refresher:
    """The background refreshes of one cache: at most one per key in flight per event loop."""

    __slots__ = ("_coherence", "_default", "_fleet", "_recorder", "_tasks", "_writes", "backoff")

    def __init__(
        self,
        coherence: Coherence,
        recorder: Recorder,
        default: Policy,
        fleet: FleetHost,
        writes: Writes,
    ) -> None:
        """``default``: the constructor's policy; ``fleet`` and ``writes``: how fills store."""
        self._coherence = coherence
        self._recorder = recorder
        self._default = default
        self._fleet = fleet
        self._writes = writes
        self._tasks: dict[tuple[asyncio.AbstractEventLoop, str], asyncio.Task[None]] = {}
        #: When a key whose refresh failed may be refreshed again.
        self.backoff = RefreshBackoff()

    def policy(self, stale_ttl: float | timedelta | str | None) -> Policy:
        """A call's policy: the cache's, or one with the call's ``stale_ttl`` (validated)."""
        return self._default if stale_ttl is None else policy(stale_ttl=stale_ttl)

    def fill_of(
        self,
        key: str,
        okey: str,
        factory: Callable[[], Any],
        seconds: float | None,
        lease: float | timedelta | None,
        stale_ttl: float | timedelta | str | None,
        cost: object = None,
    ) -> tuple[Policy, Fill, Bill | None]:
        """A ``get_or_set`` call's policy and fill (validated, before any request): run the
        factory and store its value with the policy's stale window, through the fleet's lease
        when there is a ``lease``; with a ``cost``, the bill that tells whether the call
        avoided its factory (see :mod:`s3cache._pricing`)."""
        rules = self.policy(stale_ttl)
        price = check_cost(cost)
        bill = None
        if price is not None:
            bill = Bill(price)
            factory = functools.partial(bill.run, factory)
        store = functools.partial(self._writes.fill, stale=rules.stale_ttl)
        if lease is None:
            start: Fill = functools.partial(store, okey, factory, seconds)
        else:
            host = dataclasses.replace(self._fleet, fill=store)
            lease_s = _fleet.lease_seconds(lease)
            start = functools.partial(_fleet.fill, host, key, okey, factory, seconds, lease_s)
        if bill is not None:
            start = functools.partial(bill.lead, start)
        return rules, start, bill

    async def get_or_set(
        self, reads: Reads, okey: str, fill: tuple[Policy, Fill, Bill | None]
    ) -> Any:
        """``get_or_set`` of ``okey`` after :meth:`fill_of`: a value served (a stale one starts
        its refresh in the background), else the fill, shared by the key's callers (in a
        ``get_or_set`` span, when telemetry traces)."""
        if self._recorder.tracer is not None:
            with self._recorder.phase("get_or_set"):
                return await self._get_or_set(reads, okey, fill)
        return await self._get_or_set(reads, okey, fill)

    async def _get_or_set(
        self, reads: Reads, okey: str, fill: tuple[Policy, Fill, Bill | None]
    ) -> Any:
        rules, start, bill = fill
        value, verdict = await reads.lookup(okey, rules)
        if verdict is Verdict.STALE:
            self.start(okey, start)  # the caller's bill is settled below: a hit
        if value is not MISSING:
            if bill is not None:
                self._recorder.saved("hit", bill.price, value)
            return value
        value = await self._coherence.fill(okey, start)
        if bill is not None and not bill.ran:  # another caller's run, or the fleet's
            self._recorder.saved("waited" if bill.led else "joined", bill.price, value)
        return value

    def start(self, okey: str, fill: Fill) -> None:
        """Refresh ``okey`` with ``fill()`` in the background, unless one is running or the
        key is backing off; never waits."""
        slot = (asyncio.get_running_loop(), okey)
        if slot in self._tasks or not self.backoff.allows(okey):
            return
        task = asyncio.get_running_loop().create_task(self._run(okey, fill))
        self._tasks[slot] = task
        task.add_done_callback(lambda _: self._tasks.pop(slot, None))

    async def _run(self, okey: str, fill: Fill) -> None:
        try:
            await self._coherence.fill(okey, fill)
        except Exception as exc:  # noqa: BLE001 (any failure: the stale value stays, backs off)
            self._recorder.refreshed(okey, exc, self.backoff.failed(okey))
        else:
            self.backoff.succeeded(okey)
            self._recorder.refreshed(okey, None, 0.0)

    async def aclose(self, deadline: float) -> None:
        """Wait up to ``deadline`` seconds for this loop's refreshes, then cancel what is left
        (and, thread-safely, those of other loops)."""
        loop = asyncio.get_running_loop()
        here = [t for (owner, _), t in self._tasks.items() if owner is loop]
        for (owner, _), task in list(self._tasks.items()):
            if owner is not loop and not owner.is_closed():
                owner.call_soon_threadsafe(task.cancel)
        if not here:
            return
        _, pending = await asyncio.wait(here, timeout=deadline)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
