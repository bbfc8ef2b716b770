"""Emulated latency inside botocore clients (``--latency-via hook`` only): a ``before-send``
hook that waits before each HTTP attempt, and counts it.

The benchmark's default emulates latency on the wire instead (the mini server or a delaying
proxy holds every answer back), which every client sees alike. A hook only slows clients built
on botocore: s3cache's wire path and obstore never emit ``before-send`` (and s3cache sends
every request through aiobotocore once a hook is registered on its session). The hooks model
the round trip through botocore's public event API: an ``asyncio.sleep`` on aiobotocore
sessions and a ``time.sleep`` on boto3 clients. Returning None lets the request go on.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = [
    "EVENT",
    "RequestCounter",
    "add_async_latency",
    "add_sync_latency",
    "async_hook",
    "sync_hook",
]

EVENT = "before-send.s3"


def async_hook(seconds: float) -> Callable[..., Awaitable[None]]:
    """An aiobotocore ``before-send`` handler that awaits ``seconds``."""

    async def wait_like_the_network(**_: Any) -> None:
        await asyncio.sleep(seconds)

    return wait_like_the_network


def sync_hook(seconds: float) -> Callable[..., None]:
    """A botocore ``before-send`` handler that blocks the calling thread for ``seconds``."""

    def wait_like_the_network(**_: Any) -> None:
        time.sleep(seconds)

    return wait_like_the_network


class RequestCounter:
    """Counts HTTP attempts (``before-send``), so results can show requests per operation.

    A cache may send fewer requests than it serves calls (s3cache coalesces concurrent reads
    of one key); retries send more. ``deque.append`` is atomic, so threads can share it.
    """

    def __init__(self) -> None:
        self._sent: deque[None] = deque()

    def __call__(self, **_: Any) -> None:
        self._sent.append(None)

    @property
    def count(self) -> int:
        return len(self._sent)


def add_async_latency(session: Any, latency_ms: float, counter: RequestCounter | None) -> None:
    """Register the async hook (and the counter) on an AioSession, before it makes clients."""
    if counter is not None:
        session.register(EVENT, counter)
    if latency_ms > 0:
        session.register(EVENT, async_hook(latency_ms / 1000))


def add_sync_latency(client: Any, latency_ms: float, counter: RequestCounter | None) -> None:
    """Register the blocking hook (and the counter) on a boto3 client's own event system."""
    if counter is not None:
        client.meta.events.register(EVENT, counter)
    if latency_ms > 0:
        client.meta.events.register(EVENT, sync_hook(latency_ms / 1000))
