"""The clients of one cache: botocore config and User-Agent, the tuned session, and one set of
clients per event loop (aiobotocore's, and the wire path's route and connection pool) with
their semaphore, requests in flight and lifetime.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.metadata
import inspect
import logging
import os
import platform
from collections.abc import AsyncGenerator
from typing import Any, Final

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore.config import Config

from s3cache._clock import SigningClock, correct_signing
from s3cache._metering import UNLOGGED, RequestLog, meter_client
from s3cache._paced import pace_client
from s3cache._route import Ineligible, Route, plan_route
from s3cache._settings import Settings
from s3cache._wire import WireSession
from s3cache.errors import CacheClosedError

__all__ = ["Clients", "HandOff", "LoopClient", "client_config", "tune_session"]

logger = logging.getLogger("s3cache")

_CONNECT_TIMEOUT: Final = 3.0
_READ_TIMEOUT: Final = 8.0
#: Load the service model in a worker thread, once per session, instead of blocking the event
#: loop for a few hundred milliseconds when a loop opens its first client (aiobotocore >= 2.26;
#: the aioboto3 interop extra pins 2.25.1, which lacks the option).
_WARM_UP: Final[dict[str, bool]] = (
    {"warm_up_loader_caches": True}
    if "warm_up_loader_caches" in inspect.signature(AioConfig.__init__).parameters
    else {}
)


def client_config(max_concurrency: int, user: Config | None) -> AioConfig:
    """Our client defaults with the user's ``config`` merged over them.

    Standard retries (not botocore's ``legacy``), checksums only when an operation requires one
    (saves CPU; older S3-compatible servers reject the CRC32 trailers), parameter validation off
    (we build every request ourselves), a connection pool the size of the concurrency bound, and
    a fixed User-Agent (see :func:`_fixed_user_agent`).
    """
    if user is not None and not isinstance(user, Config):
        raise TypeError(f"config must be a botocore Config or AioConfig, not {type(user).__name__}")
    ours = AioConfig(
        max_pool_connections=max_concurrency,
        connect_timeout=_CONNECT_TIMEOUT,
        read_timeout=_READ_TIMEOUT,
        retries={"mode": "standard", "total_max_attempts": 3},  # the first try and two retries
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        parameter_validation=False,
        **_WARM_UP,
        **_user_agent_option(user),
    )
    if user is None:
        return ours
    merged: AioConfig = ours.merge(user)
    if merged.max_pool_connections < max_concurrency:
        raise ValueError(
            f"config.max_pool_connections={merged.max_pool_connections} is below "
            f"max_concurrency={max_concurrency}: requests would be signed and then wait for a "
            "connection (RequestTimeTooSkewed); lower max_concurrency instead"
        )
    return merged


def _user_agent_option(user: Config | None) -> dict[str, str]:
    """``user_agent=`` for our config, unless the user asked for botocore's own User-Agent.

    botocore rebuilds its structured User-Agent (``ua/2.1 os/... md/... m/<feature ids>``) from
    a dozen sanitised components on every request, twice: about a seventh of the client CPU of
    a small GET. ``Config(user_agent=...)`` is botocore's supported override and makes it a
    constant. Safe: the header has no protocol meaning; only AWS's SDK telemetry reads the
    feature ids. ``user_agent_extra`` still applies; a user who sets ``user_agent`` gets theirs
    (merge), and one who sets an app id (in ``config`` or ``AWS_SDK_UA_APP_ID``), which only
    the structured form carries, keeps botocore's builder.
    """
    if user is not None and (user.user_agent is not None or user.user_agent_appid is not None):
        return {}
    if os.environ.get("AWS_SDK_UA_APP_ID"):
        return {}
    return {"user_agent": _fixed_user_agent()}


@functools.cache
def _fixed_user_agent() -> str:
    """``s3cache/<v> aiobotocore/<v> botocore/<v> Python/<v>``, computed once."""
    import aiobotocore
    import botocore

    try:
        ours = importlib.metadata.version("s3cache-async")
    except importlib.metadata.PackageNotFoundError:
        ours = "dev"
    return (
        f"s3cache/{ours} aiobotocore/{aiobotocore.__version__} "
        f"botocore/{botocore.__version__} Python/{platform.python_version()}"
    )


def tune_session(session: AioSession) -> AioSession:
    """Tune ``session`` for s3cache through botocore's supported component API; returns it.

    Response timestamps are left as text: s3cache reads dates from raw headers, and parsing
    every ``Last-Modified`` into a datetime (dateutil) is one of the costliest steps of a GET.
    This changes what every client of ``session`` returns, so apply it only to a session that
    s3cache alone uses (the core never tunes a session passed in as ``session=``).
    """
    session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=_identity)
    return session


def _identity(value: str) -> str:
    return value


async def _open_http_session(client: Any) -> None:
    """Open aiobotocore's own aiohttp session now, as its first request would have (it reads
    the CA bundle in a worker thread): with the object requests on the wire path, that first
    request may come much later, and no operation past the opening should touch a thread."""
    opener = getattr(client._endpoint.http_session, "_get_session", None)
    if opener is not None:
        with contextlib.suppress(Exception):  # best effort: the first request opens it anyway
            await opener(None)


class HandOff(Exception):
    """This request cannot go on the wire path: send it through aiobotocore instead."""


class LoopClient:
    """The clients, semaphore, requests in flight and lifetime of one event loop.

    The aiobotocore client, and the wire path's route and connection pool when the client is
    eligible (see :mod:`s3cache._route`), are entered inside an async generator that the
    loop's ``shutdown_asyncgens`` (run by ``asyncio.run`` and every ``asyncio.Runner``)
    finalises, so a loop that ends closes them on that loop, and a closed loop is never touched.
    """

    __slots__ = (
        "_idle",
        "_lifetime",
        "_opening",
        "client",
        "in_flight",
        "loop",
        "route",
        "semaphore",
        "wire",
        "wire_refused",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, max_concurrency: int) -> None:
        self.loop = loop
        self.semaphore = asyncio.Semaphore(max_concurrency)
        self.client: Any = None
        self.route: Route | None = None
        self.wire: WireSession | None = None
        self.wire_refused: str | None = None  # why requests stay on aiobotocore
        self.in_flight = 0  # requests admitted: waiting for a slot, or on the wire
        self._idle: asyncio.Future[None] | None = None  # set when in_flight drops to 0
        self._opening = asyncio.Lock()
        self._lifetime: AsyncGenerator[None, None] | None = None

    async def open(self, clients: Clients) -> None:
        """Enter this loop's clients (once; concurrent first requests wait for it)."""
        async with self._opening:
            if self.client is None:
                lifetime = self._live(clients)
                await anext(lifetime)
                self._lifetime = lifetime

    async def _live(self, clients: Clients) -> AsyncGenerator[None, None]:
        try:
            async with clients.new_client() as client:
                correct_signing(client, clients.clock)
                if clients.paced:  # pacing hook: aiobotocore's attempts wait their turn too
                    pace_client(client)
                meter_client(client, lambda: clients.log)  # its attempts reach the log
                wire = await self._plan(clients, client) if clients.fast_path else None
                self.client, self.wire = client, wire
                try:
                    yield
                finally:
                    self.wire = self.route = None
                    if wire is not None:
                        await wire.close()
        finally:
            self.client = None
            clients.forget(self)

    async def _plan(self, clients: Clients, client: Any) -> WireSession | None:
        """The wire path's route and session for ``client``, or None (and the reason why)."""
        try:
            route = await plan_route(
                client, clients.bucket, clients.max_concurrency, clients.clock.now
            )
        except Ineligible as exc:
            self.wire_refused = str(exc)
            logger.debug("s3cache: requests go through aiobotocore: %s", exc)
            return None
        wire = WireSession(
            limit=clients.max_concurrency,
            verify=route.verify,
            connect_timeout=route.connect_timeout,
            read_timeout=route.read_timeout,
            connector_args=route.connector_args,
        )
        await wire.start()
        try:
            await _open_http_session(client)
        except BaseException:  # the deadline or a cancellation cut the opening short
            await wire.close()
            raise
        self.route = route
        return wire

    async def replan(self, clients: Clients) -> Route:
        """Resolve the route again (after a region redirect botocore has cached)."""
        try:
            self.route = await plan_route(
                self.client, clients.bucket, clients.max_concurrency, clients.clock.now
            )
        except Ineligible as exc:
            self.route = None
            self.wire_refused = str(exc)
            raise HandOff from exc
        return self.route

    def leave(self) -> None:
        """One request fewer in flight."""
        self.in_flight -= 1
        if not self.in_flight and self._idle is not None and not self._idle.done():
            self._idle.set_result(None)

    async def aclose(self, drain: float) -> None:
        """Wait up to ``drain`` seconds for the requests in flight, then close the clients."""
        try:
            if self.in_flight:
                self._idle = self.loop.create_future()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(drain):
                        await self._idle
        finally:
            lifetime, self._lifetime = self._lifetime, None
            if lifetime is not None:
                await lifetime.aclose()


class Clients:
    """The clients of one cache on one bucket: a :class:`LoopClient` per event loop, made on
    first use and closed with its loop or by :meth:`aclose`; a forked child starts afresh."""

    def __init__(self, settings: Settings) -> None:
        """The clients of a cache with these (validated) ``settings``; none opened yet."""
        self.bucket = settings.bucket
        self.fast_path = settings.fast_path
        #: Whether requests are paced on SlowDown (``pacing=``).
        self.paced = settings.pacing
        #: Each operation's deadline in seconds, waiting for a slot included.
        self.timeout = settings.timeout
        #: Requests in flight at most, per event loop (the semaphore's size).
        self.max_concurrency = settings.max_concurrency
        self._client_kwargs = dict(settings.client_kwargs)
        self._config = client_config(settings.max_concurrency, settings.config)
        session = settings.session
        self._session = session if session is not None else tune_session(AioSession())
        self._loops: dict[asyncio.AbstractEventLoop, LoopClient] = {}
        self._pid = os.getpid()
        self.closed = False
        #: The clock requests are signed with, shared by every loop's client (one endpoint).
        self.clock = SigningClock()
        #: Who hears of every attempt and request (the cache's recorder; see _metering).
        self.log: RequestLog = UNLOGGED

    def new_client(self) -> Any:
        """A fresh client context manager (AioSession or aioboto3 Session alike)."""
        kwargs = dict(self._client_kwargs, config=self._config)
        create = getattr(self._session, "create_client", None)
        if create is None:  # an aioboto3.Session
            return self._session.client("s3", **kwargs)
        return create("s3", **kwargs)

    def forget(self, loop_client: LoopClient) -> None:
        """``loop_client``'s loop has none any more (its clients closed)."""
        if self._loops.get(loop_client.loop) is loop_client:
            del self._loops[loop_client.loop]

    def loop_client(self) -> LoopClient:
        """The running loop's clients (made now, not yet opened, on the first request)."""
        loop = asyncio.get_running_loop()
        found = self._loops.get(loop)
        if found is not None:
            return found
        if self.closed:
            raise CacheClosedError("the cache is closed")
        if os.getpid() != self._pid:
            # A forked child: the parent's clients share its sockets; leave them untouched.
            self._pid = os.getpid()
            self._loops = {}
        for stale in [lp for lp in self._loops if lp.is_closed()]:
            del self._loops[stale]
        created = self._loops[loop] = LoopClient(loop, self.max_concurrency)
        return created

    async def aclose(self) -> None:
        """Refuse new requests, let those in flight finish (each within its deadline), then
        close every client; those of other live loops are closed on their own loop, without
        waiting for them here."""
        self.closed = True
        loops, self._loops = self._loops, {}
        current = asyncio.get_running_loop()
        for loop, loop_client in loops.items():
            if loop is current:
                await loop_client.aclose(self.timeout)
            elif loop.is_running() and not loop.is_closed():
                asyncio.run_coroutine_threadsafe(loop_client.aclose(self.timeout), loop)
