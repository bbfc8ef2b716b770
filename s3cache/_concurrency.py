"""Running many awaitables together: the one home for gathering in s3cache."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import TypeVar

__all__ = ["gather"]

T = TypeVar("T")


async def gather(aws: Iterable[Awaitable[T]]) -> list[T]:
    """Run concurrently and wait for all (the transport bounds requests); then the first failure,
    if any, raises. Unlike a bare ``asyncio.gather``, no sibling is left running unobserved."""
    results = await asyncio.gather(*aws, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results  # type: ignore[return-value]
