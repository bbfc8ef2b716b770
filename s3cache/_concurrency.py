"""Running many awaitables together: the one home for gathering and pacing in s3cache.

A batch of thousands of keys must not start thousands of deadlines at once: each request's
deadline starts when the transport is called, and a queue of thousands behind a bound of 64
would spend it waiting. :func:`paced` keeps at most ``width`` calls started at a time, so a
deadline covers one request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TypeVar

from s3cache.errors import S3CacheError

__all__ = ["gather", "paced"]

T = TypeVar("T")
R = TypeVar("R")


async def gather(aws: Iterable[Awaitable[T]]) -> list[T]:
    """Run concurrently and wait for all (the transport bounds requests); then the first failure,
    if any, raises. Unlike a bare ``asyncio.gather``, no sibling is left running unobserved."""
    results = await asyncio.gather(*aws, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results  # type: ignore[return-value]


async def paced(
    func: Callable[[T], Awaitable[R]], items: Sequence[T], width: int
) -> list[R | S3CacheError]:
    """``func(item)`` for every item, at most ``width`` at a time; results in the items' order.

    An :class:`S3CacheError` is returned in its item's place (the others carry on); any other
    exception stops the batch and is raised. One item runs inline, without a task.
    """
    results: list[R | S3CacheError] = []
    if len(items) <= 1 or width <= 1:
        for item in items:
            try:
                results.append(await func(item))
            except S3CacheError as exc:
                results.append(exc)
        return results
    results = [None] * len(items)  # type: ignore[list-item]  # every slot is set below
    todo = iter(range(len(items)))
    fatal: list[Exception] = []

    async def worker() -> None:
        for i in todo:  # shared: each index is taken by one worker
            if fatal:
                return
            try:
                results[i] = await func(items[i])
            except S3CacheError as exc:
                results[i] = exc
            except Exception as exc:  # noqa: BLE001 - a bug, not a store failure: stop and raise
                fatal.append(exc)
                return

    async with asyncio.TaskGroup() as group:
        for _ in range(min(width, len(items))):
            group.create_task(worker())
    if fatal:
        raise fatal[0]
    return results
