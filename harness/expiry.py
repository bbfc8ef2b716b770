"""Waiting for an entry's ttl to run out on the server's clock (S3 dates are whole seconds, so
a 1 s ttl takes one to two seconds): polled with ``get``, which never serves a stale entry.
The server's clock sends no event, so this polls, every 0.1 s for at most 10 s."""

from __future__ import annotations

import asyncio

from s3cache import AsyncS3Cache

__all__ = ["until_expired"]


async def until_expired(cache: AsyncS3Cache, key: str) -> None:
    """Return once ``cache.get(key)`` misses; raise ``TimeoutError`` after 10 s."""
    gone = object()
    for _ in range(100):
        if await cache.get(key, gone) is gone:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{key!r} did not expire within 10 s")
