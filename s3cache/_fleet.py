"""Fleet-wide single flight and locks, built on S3 conditional writes.

A lease object (format in :mod:`s3cache._lease`, key in the reserved namespace) is created with
``If-None-Match: *`` and replaced with ``If-Match: <etag>``, so of any number of processes racing
for it the server lets exactly one write win. Expiry is judged on the server's clock, and every
write is read back (HEAD) for its ETag and fencing token; after a refusal that HEAD also tells
our own write whose response was lost (its nonce) from another holder's, so an acquisition,
renewal or release whose response is lost still holds or releases the lock.

- :func:`fill` is ``get_or_set(..., lease=...)`` on a miss: one computation per key in the fleet;
  the other callers poll the lease and read the entry once it is released or has expired.
- :class:`FleetLock` is ``lock()``: an async context manager renewed in the background.

They use a cache through its :class:`FleetHost` only (the core builds one), never the core.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import os
import random
import re
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from s3cache import _expiry, _keys, _lease
from s3cache._capabilities import Capabilities, Learner
from s3cache._lease import HELD, RELEASED, LeaseState
from s3cache._recorder import Recorder
from s3cache._transport import Transport, Written
from s3cache.errors import LockNotAcquiredError, NotSupportedError, S3CacheError

__all__ = ["ABSENT", "FleetHost", "FleetLock", "HeldLock", "fill", "lease_seconds"]

logger = logging.getLogger("s3cache")

#: The first pause of a waiter; pauses then double (with jitter) up to :func:`_cap`.
FIRST_POLL: Final = 0.025
MAX_POLL: Final = 0.5
#: A get_or_set waiter waits at most two leases plus this, then computes the value itself:
#: time for one holder to run out its lease and one taker-over its own, each judged on the
#: server's whole-second clock (up to 2 s late).
WAIT_SLACK: Final = 4.0
#: Attempts in a row without pausing while the lease keeps changing under us.
_STREAK: Final = 3
#: What :attr:`FleetHost.lookup` returns for a key with no value.
ABSENT: Final[Any] = object()


@dataclass(frozen=True, slots=True)
class FleetHost:
    """What leases and locks use of a cache: its key ``prefix``, ``transport``, the server's
    ``capabilities``, its ``recorder`` (failures per ``on_error``), ``lookup`` (the value under
    a cache key, or :data:`ABSENT`), ``fill`` (run a factory and store its value under an
    object key, with a ttl) and ``check_open`` (raise when the cache is closed)."""

    prefix: str
    transport: Transport
    capabilities: Learner
    recorder: Recorder
    lookup: Callable[[str], Awaitable[Any]]
    fill: Callable[[str, Callable[[], Any], float | None], Awaitable[Any]]
    check_open: Callable[[], None]


@dataclass(frozen=True, slots=True)
class Holding:
    """A lease this process holds: where, its ETag (for If-Match, in the form the server's
    ``capabilities`` say), token, and until when."""

    key: str
    etag: str
    token: int
    holder: str
    lease: float
    until: float  #: local monotonic time before which no one else can have taken it over
    capabilities: Capabilities

    @property
    def if_match(self) -> str:
        """The ``If-Match`` value that replaces this record only."""
        return self.capabilities.if_match(self.etag)


@dataclass(frozen=True, slots=True)
class _Found:
    value: Any


def lease_seconds(lease: float | timedelta, name: str = "lease") -> float:
    """A validated lease duration in seconds (at least 1 s: server dates are whole seconds)."""
    seconds = _expiry.normalize_ttl(lease, name)
    if seconds is None:
        raise TypeError(f"{name} must be seconds (int or float) or a timedelta, not None")
    return seconds


@functools.cache
def _host() -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:64] or "host"


def _holder() -> str:
    """Who is acquiring: host, process, and a random part unique to this acquisition."""
    return f"{_host()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


async def _pause(seconds: float) -> None:
    """The one place a waiter sleeps (between two looks at a busy lease)."""
    await asyncio.sleep(seconds)


async def _look(transport: Transport, lkey: str) -> LeaseState | None:
    return _state(await transport.head(lkey))


def _state(headers: Mapping[str, str] | None) -> LeaseState | None:
    return None if headers is None else _lease.read(headers, time.time())


async def _after(transport: Transport, lkey: str, written: Written) -> LeaseState | None:
    """The record after a write: read back (HEAD) for its ETag and token, unless the write's
    own check after a refusal already did (:meth:`Transport.put_if`)."""
    if written.found is not None or not written.stored:
        return _state(written.found)
    return await _look(transport, lkey)


async def _try(
    transport: Transport, lkey: str, lease: float, seen: LeaseState | None, caps: Capabilities
) -> Holding | LeaseState | None:
    """One conditional write for the lease: create it (``seen`` None) or replace the free record
    ``seen``; then read it back. Returns our holding, or what is there now (None: nothing)."""
    holder = _holder()
    sent = time.monotonic()
    if seen is None:
        payload = _lease.encode(HELD, holder, lease)
        written = await transport.put_if(lkey, payload, if_absent=True)
    else:
        if not seen.etag:
            raise NotSupportedError(f"HeadObject {lkey!r}: the server sent no ETag to replace")
        payload = _lease.encode(HELD, holder, lease, after=seen.token)
        written = await transport.put_if(lkey, payload, if_match=caps.if_match(seen.etag))
    now = await _after(transport, lkey, written)
    if written.stored and now is not None and now.holder == holder:
        return Holding(lkey, now.etag, now.token, holder, lease, sent + lease, caps)
    return now


class _Backoff:
    """Jittered exponential pauses (half to all of the current step), never past a bound."""

    def __init__(self, lease: float) -> None:
        self._step = FIRST_POLL
        self._cap = max(FIRST_POLL, min(MAX_POLL, lease / 8))

    def next(self, bound: float) -> float:
        delay = self._step * random.uniform(0.5, 1.0)
        self._step = min(self._step * 2, self._cap)
        return max(0.0, min(delay, bound))


async def _contend(
    transport: Transport,
    lkey: str,
    lease: float,
    deadline: float,
    caps: Capabilities,
    check: Callable[[], Awaitable[Any]] | None = None,
    paused: list[float] | None = None,
) -> Holding | LeaseState | _Found | None:
    """Acquire the lease at ``lkey``, waiting for a busy one until ``deadline`` (monotonic).

    A free (released or expired) or missing lease is taken at once, but first ``check()`` may
    find the value the lease guards (it returns :data:`ABSENT` when there is none): that value is
    returned instead. At the deadline, returns the lease as last seen. Each pause on a busy
    lease is appended to ``paused``, if given.
    """
    backoff = _Backoff(lease)
    seen: LeaseState | None = None  # None: missing, or not looked at yet (then: create it)
    looked = False
    streak = 0
    while True:
        if seen is None or not seen.held:
            if looked and check is not None:
                value = await check()
                if value is not ABSENT:
                    return _Found(value)
            found = await _try(transport, lkey, lease, seen, caps)
            if isinstance(found, Holding):
                return found
            seen, looked, streak = found, True, streak + 1
            if (seen is None or not seen.held) and streak < _STREAK:
                continue
        streak = 0
        bound = deadline - time.monotonic()
        if bound <= 0:
            return seen
        if seen is not None and seen.held:
            bound = min(bound, max(seen.wait, FIRST_POLL))
        delay = backoff.next(bound)
        if paused is not None:
            paused.append(delay)
        await _pause(delay)
        seen = await _look(transport, lkey)


# -- get_or_set(lease=...) -----------------------------------------------------------------


async def fill(
    host: FleetHost,
    key: str,
    okey: str,
    factory: Callable[[], Any],
    seconds: float | None,
    lease: float,
) -> Any:
    """A miss of ``get_or_set(key, factory, ttl, lease=lease)``: one computation in the fleet.

    The caller that wins the lease runs the factory, stores the value, then releases the lease
    (also when the factory fails). Others wait for the value; if the lease is released or
    expires with none, one of them takes over. After two leases and :data:`WAIT_SLACK` seconds
    of waiting, a caller computes the value itself. Store failures follow ``on_error``; with
    ``"log"`` they make this an ordinary local computation.
    """
    lkey = _keys.reserved_key(host.prefix, "lease", okey[len(host.prefix) :])
    started = time.monotonic()
    paused: list[float] = []
    try:
        caps = await host.capabilities.require("get_or_set(lease=...)")
        outcome = await _contend(
            host.transport,
            lkey,
            lease,
            started + 2 * lease + WAIT_SLACK,
            caps,
            check=functools.partial(host.lookup, key),
            paused=paused,
        )
    except NotSupportedError:
        raise
    except S3CacheError as exc:
        host.recorder.failed(exc, None)  # raises with on_error="raise"
        return await host.fill(okey, factory, seconds)
    host.recorder.leased(_lease_result(outcome, paused), time.monotonic() - started)
    if isinstance(outcome, _Found):
        return outcome.value
    if not isinstance(outcome, Holding):
        holder = outcome.holder if outcome is not None else "nobody"
        logger.warning(
            "s3cache: no value for %r after %.1f s waiting on its lease (held by %s); "
            "computing it here",
            key,
            time.monotonic() - started,
            holder,
        )
        return await host.fill(okey, factory, seconds)
    try:
        return await host.fill(okey, factory, seconds)
    finally:
        await _release(host, outcome)


def _lease_result(outcome: Holding | LeaseState | _Found | None, paused: list[float]) -> str:
    """How a miss's lease went (see :meth:`~s3cache._recorder.RequestSink.leased`)."""
    if isinstance(outcome, Holding):
        return "takeover" if paused else "acquired"
    return "waited" if isinstance(outcome, _Found) else "gave_up"


async def _release(host: FleetHost, holding: Holding) -> bool | None:
    """Mark our lease released (If-Match: only our own record). True: released; False: it was
    no longer ours; None: the request failed (counted and logged; the lease runs out anyway)."""
    payload = _lease.encode(RELEASED, holding.holder, holding.lease, token=holding.token)
    try:
        written = await host.transport.put_if(holding.key, payload, if_match=holding.if_match)
        return written.stored
    except S3CacheError as exc:
        host.recorder.note(exc)
        return None


# -- lock() --------------------------------------------------------------------------------


class HeldLock:
    """A fleet-wide lock while it is held: its name, fencing token, and whether it was lost.

    ``token`` increases with every acquisition of the lock, so a resource that remembers the
    largest token it has seen can refuse writes from a holder that lost the lock unawares.
    ``lost`` becomes true when a renewal fails (the lease ran out or another holder took it
    over); renewal then stops.
    """

    __slots__ = ("_lost", "name", "token")

    def __init__(self, name: str, token: int) -> None:
        self.name = name
        self.token = token
        self._lost = False

    @property
    def lost(self) -> bool:
        """True once this holder can no longer prove it holds the lock."""
        return self._lost

    def __repr__(self) -> str:
        state = ", lost" if self._lost else ""
        return f"HeldLock(name={self.name!r}, token={self.token}{state})"


class FleetLock:
    """``async with cache.lock(name, ttl, wait=...) as held:`` (see :meth:`AsyncS3Cache.lock`).

    Arguments are validated here, before any request. One object serves one ``async with``.
    """

    def __init__(
        self, host: FleetHost, name: str, ttl: float | timedelta, wait: float | timedelta | None
    ) -> None:
        self._host = host
        self._name = name
        self._key = _keys.reserved_key(host.prefix, "lock", _keys.path_of(name, "lock name"))
        self._ttl = lease_seconds(ttl, "ttl")
        self._wait = _wait_seconds(wait)
        host.check_open()
        self._used = False
        self._holding: Holding | None = None
        self._held: HeldLock | None = None
        self._stop = asyncio.Event()
        self._renewer: asyncio.Task[None] | None = None

    async def __aenter__(self) -> HeldLock:
        if self._used:
            raise RuntimeError("a lock object serves one `async with`; call cache.lock() again")
        self._used = True
        caps = await self._host.capabilities.require("lock()")
        deadline = time.monotonic() + self._wait
        outcome = await _contend(self._host.transport, self._key, self._ttl, deadline, caps)
        if not isinstance(outcome, Holding):
            raise LockNotAcquiredError(self._busy(outcome))
        self._holding = outcome
        self._held = HeldLock(self._name, outcome.token)
        self._renewer = asyncio.get_running_loop().create_task(
            self._renew(), name=f"s3cache-lock-renewal:{self._name}"
        )
        return self._held

    async def __aexit__(self, *exc_info: object) -> None:
        if self._renewer is None or self._holding is None or self._held is None:
            return
        self._stop.set()
        await self._renewer  # lets a renewal in flight finish, so its ETag is the one we use
        if await _release(self._host, self._holding) is False and not self._held.lost:
            self._lose("it was taken over before it was released")

    def _busy(self, seen: LeaseState | _Found | None) -> str:
        waited = f"after waiting {self._wait:g} s" if self._wait else "(wait=None: tried once)"
        if isinstance(seen, LeaseState) and seen.held:
            return (
                f"lock {self._name!r} is held by {seen.holder} (token {seen.token}) for up to "
                f"{seen.wait:.0f} s more {waited}"
            )
        return f"lock {self._name!r} kept changing hands {waited}"

    async def _renew(self) -> None:
        """Every third of the ttl, replace our record (If-Match on its ETag) to extend it."""
        interval = self._ttl / 3
        while True:
            try:
                await asyncio.wait_for(self._stop.wait(), interval)
                return
            except TimeoutError:
                pass
            holding = self._holding
            assert holding is not None
            remaining = holding.until - time.monotonic()
            try:
                if remaining <= 0:
                    raise TimeoutError
                async with asyncio.timeout(remaining):
                    renewed = await _renew_once(self._host.transport, holding)
            except S3CacheError as exc:  # StoreTimeoutError too: retried while time is left
                self._host.recorder.note(exc)
                continue
            except TimeoutError:
                self._lose("its lease ran out before a renewal was confirmed (paused, or slow)")
                return
            if renewed is None:
                self._lose("another holder took it over")
                return
            self._holding = renewed

    def _lose(self, why: str) -> None:
        assert self._held is not None
        self._held._lost = True
        logger.warning("s3cache lock %r (token %d) lost: %s", self._name, self._held.token, why)


async def _renew_once(transport: Transport, holding: Holding) -> Holding | None:
    """Extend our lease; None when the record is no longer ours."""
    sent = time.monotonic()
    payload = _lease.encode(HELD, holding.holder, holding.lease, token=holding.token)
    written = await transport.put_if(holding.key, payload, if_match=holding.if_match)
    if not written.stored:
        return None
    now = await _after(transport, holding.key, written)
    if now is None or now.holder != holding.holder:
        return None
    return dataclasses.replace(holding, etag=now.etag, until=sent + holding.lease)


def _wait_seconds(wait: float | timedelta | None) -> float:
    """``wait`` as seconds >= 0 (None: try once)."""
    if wait is None:
        return 0.0
    if isinstance(wait, timedelta):
        seconds = wait.total_seconds()
    elif isinstance(wait, bool) or not isinstance(wait, (int, float)):
        raise TypeError(f"wait must be seconds, a timedelta or None, not {type(wait).__name__}")
    else:
        seconds = float(wait)
    if not 0 <= seconds < float("inf"):
        raise ValueError(f"wait must be a finite number of seconds >= 0, not {wait}")
    return seconds
