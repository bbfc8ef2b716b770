"""Background refreshes of stale entries (stale-while-revalidate): started by a read that served
a stale value, owned by the cache, shared with any fill of the key (single flight), backed off
per key after a failure, and settled by ``close()`` within their deadline."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import Callable, Coroutine, Iterable
from datetime import timedelta
from typing import Any, NamedTuple

from s3cache import _fleet
from s3cache._coherence import Coherence
from s3cache._expiry import normalize_ttl
from s3cache._fleet import FleetHost
from s3cache._freshness import Policy, RefreshBackoff, Verdict, policy, serves_stale_on
from s3cache._pricing import Cost, check_cost
from s3cache._reads import MISSING, Reads
from s3cache._recorder import Recorder
from s3cache._settings import Settings
from s3cache._tags import normalize_tags
from s3cache._writes import Writes
from s3cache.errors import S3CacheError

__all__ = ["Bill", "Options", "Refresher"]

Fill = Callable[[], Coroutine[Any, Any, Any]]


class Options(NamedTuple):
    """A ``get_or_set`` or ``cached`` call's freshness options, as given (None: the cache's)."""

    stale_ttl: float | timedelta | str | None = None
    stale_if_error: float | timedelta | str | None = None
    negative_ttl: float | timedelta | str | None = None
    early: bool | float | None = None


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

    __slots__ = (
        "_coherence",
        "_default",
        "_fleet",
        "_negative",
        "_recorder",
        "_tasks",
        "_writes",
        "backoff",
    )

    def __init__(
        self,
        coherence: Coherence,
        recorder: Recorder,
        settings: Settings,
        fleet: FleetHost,
        writes: Writes,
    ) -> None:
        """``settings``: the constructor's freshness policy and tombstone ttl; ``fleet`` and
        ``writes``: how fills store."""
        self._negative = settings.negative_ttl
        self._coherence = coherence
        self._recorder = recorder
        self._default = settings.freshness
        self._fleet = fleet
        self._writes = writes
        self._tasks: dict[tuple[asyncio.AbstractEventLoop, str], asyncio.Task[None]] = {}
        #: When a key whose refresh failed may be refreshed again.
        self.backoff = RefreshBackoff()

    def policy(
        self,
        stale_ttl: float | timedelta | str | None = None,
        stale_if_error: float | timedelta | str | None = None,
        early: bool | float | None = None,
    ) -> Policy:
        """A call's policy (validated): each option given by the call (0 or False: off),
        else the cache's. One with ``stale_if_error`` arms the values-seen map."""
        default = self._default
        if stale_ttl is None and stale_if_error is None and early is None:
            return default
        given = policy(stale_ttl, stale_if_error, early)
        rules = Policy(
            default.stale_ttl if stale_ttl is None else given.stale_ttl,
            default.stale_if_error if stale_if_error is None else given.stale_if_error,
            default.beta if early is None else given.beta,
        )
        if rules.stale_if_error is not None:
            self._coherence.seen.armed = True
        return rules

    def fill_of(
        self,
        key: str,
        okey: str,
        factory: Callable[[], Any],
        seconds: float | None,
        lease: float | timedelta | None,
        options: Options,
        tags: Iterable[str] = (),
        condition: Callable[[Any], object] | None = None,
        cost: object = None,
    ) -> tuple[Policy, Fill, Bill | None]:
        """A ``get_or_set`` call's policy and fill (validated, before any request): run the
        factory and store its value with the policy's stale window and ``tags`` (if
        ``condition`` holds for it; ``ABSENT``: a tombstone for the negative ttl), through the
        fleet's lease when there is a ``lease`` and the cache is on; with a ``cost``, the bill
        that tells whether the call avoided its factory (see :mod:`s3cache._pricing`)."""
        if condition is not None and not callable(condition):
            raise TypeError(f"condition must be callable, not {type(condition).__name__}")
        rules, negative = self.check(options)
        price = check_cost(cost)
        bill = None
        if price is not None:
            bill = Bill(price)
            factory = functools.partial(bill.run, factory)
        store = functools.partial(
            self._writes.fill,
            stale=rules.stale_ttl,
            negative=negative or seconds,
            tags=normalize_tags(tags),
            condition=condition,
        )
        if lease is None or self._coherence.switch.off:
            start: Fill = functools.partial(store, okey, factory, seconds)
        else:
            host = dataclasses.replace(self._fleet, fill=store)
            lease_s = _fleet.lease_seconds(lease)
            start = functools.partial(_fleet.fill, host, key, okey, factory, seconds, lease_s)
        if bill is not None:
            start = functools.partial(bill.lead, start)
        return rules, start, bill

    def check(self, options: Options) -> tuple[Policy, float | None]:
        """A call's policy and tombstone ttl (None: the entry's), validated."""
        rules = self.policy(options.stale_ttl, options.stale_if_error, options.early)
        given = options.negative_ttl
        return rules, self._negative if given is None else normalize_ttl(given, "negative_ttl")

    async def get_or_set(
        self, reads: Reads, okey: str, fill: tuple[Policy, Fill, Bill | None]
    ) -> Any:
        """``get_or_set`` of ``okey`` after :meth:`fill_of`: a value served (a stale one starts
        its refresh in the background), else the fill, shared by the key's callers (where the
        cache is disabled: the fill alone; in a ``get_or_set`` span, when telemetry traces)."""
        if self._recorder.tracer is not None:
            with self._recorder.phase("get_or_set"):
                return await self._get_or_set(reads, okey, fill)
        return await self._get_or_set(reads, okey, fill)

    async def _get_or_set(
        self, reads: Reads, okey: str, fill: tuple[Policy, Fill, Bill | None]
    ) -> Any:
        rules, start, bill = fill
        if self._coherence.switch.off:  # cache.disabled(): the factory runs, alone, unstored
            return await start()
        value, verdict = await reads.lookup(okey, rules)
        if verdict is Verdict.STALE or verdict is Verdict.EARLY:
            self.start(okey, start)  # the caller's bill is settled below: a hit
        if value is not MISSING and verdict is not Verdict.ERROR_ONLY:
            if bill is not None:
                self._recorder.saved("hit", bill.price, value)
            return value
        try:
            made = await self._coherence.fill(okey, start)
        except Exception as exc:
            if verdict is not Verdict.ERROR_ONLY or not _stale_on(exc):
                raise
            self._recorder.served_stale(okey, exc)  # stale_if_error: the entry within it
            return value
        if bill is not None and not bill.ran:  # another caller's run, or the fleet's
            self._recorder.saved("waited" if bill.led else "joined", bill.price, made)
        return made

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


def _stale_on(error: BaseException) -> bool:
    """Whether a fill that raised ``error`` lets ``stale_if_error`` serve the stale entry: the
    factory raised (anything but a store failure), or the store failed with a kind it covers."""
    return not isinstance(error, S3CacheError) or serves_stale_on(error.kind)
