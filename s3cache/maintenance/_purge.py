"""Deleting under a cache's prefix: :func:`clear_prefix` (everything) and :func:`purge_expired`."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import aclosing
from dataclasses import asdict, dataclass
from typing import Any

from s3cache import _format
from s3cache._concurrency import gather
from s3cache._core import AsyncS3Cache
from s3cache.errors import BatchError
from s3cache.maintenance._scan import DEFAULT_BATCH, check_positive, inspect, pages, split_own

__all__ = ["ClearResult", "PurgeResult", "check_scope", "clear_prefix", "purge_expired"]


@dataclass(slots=True)
class ClearResult:
    """What :func:`clear_prefix` deleted (or, with ``dry_run``, would delete)."""

    matched: int = 0
    bytes: int = 0
    deleted: int = 0
    dry_run: bool = False

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass(slots=True)
class PurgeResult:
    """What :func:`purge_expired` found and deleted."""

    scanned: int = 0
    expired: int = 0
    bytes: int = 0  #: size of the expired entries
    deleted: int = 0
    #: s3cache's own objects (released or run-out leases and locks) deleted, or found with
    #: ``dry_run``; not in the figures above, which are about entries
    leases: int = 0
    dry_run: bool = False
    elapsed_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def check_scope(cache: AsyncS3Cache, all_bucket: bool, what: str) -> None:
    """Refuse (``ValueError``) to ``what`` over a whole bucket unless ``all_bucket`` says so.

    The one safety rule of every prefix-wide operation here and in the command line.
    """
    if not cache.prefix and not all_bucket:
        raise ValueError(
            f"refusing to {what} with an empty prefix: that is the whole bucket "
            f"{cache.bucket!r}; set a prefix (--prefix), or pass all_bucket=True "
            "(--all-bucket) if you mean it"
        )


async def _delete(cache: AsyncS3Cache, okeys: list[str]) -> int:
    """Delete objects (``Transport.delete_many``) after checking each is under the prefix;
    raises :class:`BatchError` when some could not be deleted."""
    outside = [k for k in okeys if not k.startswith(cache.prefix)]
    if outside:  # unreachable through this module; a guard against future callers
        raise ValueError(f"refusing to delete {outside[0]!r}: outside prefix {cache.prefix!r}")
    failed = await cache.transport.delete_many(okeys)
    if failed:
        raise BatchError("delete", failed, len(okeys))
    return len(okeys)


async def clear_prefix(
    cache: AsyncS3Cache,
    *,
    dry_run: bool = False,
    all_bucket: bool = False,
    on_progress: Callable[[ClearResult], None] | None = None,
) -> ClearResult:
    """Delete every object under the prefix, page by page; errors raise.

    Unlike :meth:`AsyncS3Cache.clear` it reports progress, can dry-run, and refuses an empty
    prefix (the whole bucket) unless ``all_bucket`` is true.
    """
    check_scope(cache, all_bucket, "clear")
    result = ClearResult(dry_run=dry_run)
    async with aclosing(pages(cache, cache.prefix)) as listing:
        async for page in listing:
            result.matched += len(page)
            result.bytes += sum(o.size for o in page)
            if page and not dry_run:
                result.deleted += await _delete(cache, [o.key for o in page])
            if on_progress is not None:
                on_progress(result)
    return result


async def purge_expired(
    cache: AsyncS3Cache,
    *,
    dry_run: bool = False,
    all_bucket: bool = False,
    batch: int = DEFAULT_BATCH,
    on_progress: Callable[[PurgeResult], None] | None = None,
) -> PurgeResult:
    """Delete the entries under the prefix that a read would treat as expired.

    Each entry is HEAD-ed (``batch`` at a time, concurrently) and judged on the server's clock
    as a read would judge it; expired ones are deleted in batches. An entry rewritten between
    its HEAD and the delete is lost: for a cache, one extra miss. An empty prefix needs
    ``all_bucket``: other objects in a shared bucket may carry ``Expires``. Leases and locks
    that were released or have run out go too (counted apart, in ``leases``).
    """
    check_scope(cache, all_bucket, "purge")
    check_positive("batch", batch)
    started = time.perf_counter()
    result = PurgeResult(dry_run=dry_run)
    async with aclosing(pages(cache, cache.prefix)) as listing:
        async for listed in listing:
            page, own = split_own(cache, listed)
            for start in range(0, len(own), batch):
                gone = await _run_out(cache, own[start : start + batch])
                result.leases += len(gone)
                if gone and not dry_run:
                    await _delete(cache, gone)
            for start in range(0, len(page), batch):
                entries = await inspect(cache, page[start : start + batch])
                expired = [e for e in entries if e.expired]
                result.scanned += len(entries)
                result.expired += len(expired)
                result.bytes += sum(e.size for e in expired)
                if expired and not dry_run:
                    result.deleted += await _delete(cache, [e.object_key for e in expired])
                result.elapsed_s = time.perf_counter() - started
                if on_progress is not None:
                    on_progress(result)
    result.elapsed_s = time.perf_counter() - started
    return result


async def _run_out(cache: AsyncS3Cache, okeys: list[str]) -> list[str]:
    """Those of s3cache's own objects that have surely run out (a released or expired lease),
    judged on the server's clock so that no live lease is ever taken for expired."""
    heads = await gather(cache.transport.head(k) for k in okeys)
    now = time.time()
    return [k for k, h in zip(okeys, heads, strict=True) if h is not None and _ran_out(h, now)]


def _ran_out(headers: Mapping[str, str], now: float) -> bool:
    try:
        remaining = _format.generous_remaining_ttl(headers, now)
    except (ValueError, KeyError):
        return False  # not ours to judge: keep it
    return remaining is not None and remaining <= 0
