"""Emulated network latency: a ``before-send`` hook that waits before each HTTP attempt.

Loopback answers in well under a millisecond; real S3 takes tens. The hooks model that round
trip inside the client, through botocore's public event API: an ``asyncio.sleep`` on aiobotocore
sessions (the loop stays free, as it would while waiting on a socket) and a ``time.sleep`` on
boto3 clients (the calling thread blocks, as it would in ``recv``). Returning None lets the
request go on as usual.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["EVENT", "add_async_latency", "add_sync_latency", "async_hook", "sync_hook"]

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


def add_async_latency(session: Any, latency_ms: float) -> None:
    """Register the async hook on an AioSession (before its clients are created)."""
    if latency_ms > 0:
        session.register(EVENT, async_hook(latency_ms / 1000))


def add_sync_latency(client: Any, latency_ms: float) -> None:
    """Register the blocking hook on a boto3 client's own event system."""
    if latency_ms > 0:
        client.meta.events.register(EVENT, sync_hook(latency_ms / 1000))
