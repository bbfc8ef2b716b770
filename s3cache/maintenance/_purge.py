"""Deleting under a cache's prefix: :func:`clear_prefix` (everything) and :func:`purge_expired`.

Both go page by page and carry on past a failure that concerns one object (access to it denied,
an encryption it cannot be read with): that key is reported. A failure that says the store
itself is in trouble (:func:`stops_the_run`), or a listing that fails, stops the run after the
requests in flight. Either way what was done stands: the :class:`~s3cache.errors.BatchError`
raised at the end counts it, and running the same call again finishes the job.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import aclosing
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from s3cache import _expiry
from s3cache._concurrency import paced
from s3cache._core import AsyncS3Cache
from s3cache._tags import is_invalidated
from s3cache._transport import ListedObject
from s3cache.errors import BatchError, S3CacheError
from s3cache.maintenance._scan import (
    DEFAULT_BATCH,
    Entry,
    check_positive,
    inspect,
    pages,
    split_own,
)
from s3cache.maintenance._tag_records import invalidation_times, tag_records

__all__ = [
    "ClearResult",
    "PurgeResult",
    "check_scope",
    "clear_prefix",
    "purge_expired",
    "stops_the_run",
]

#: Failure kinds that say the store is in trouble, so that later requests would fail too.
_STORE_TROUBLE: Final = frozenset(
    {"timeout", "connection", "server", "credentials", "no_such_bucket", "bucket_owner", "closed"}
)


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
    bytes: int = 0  #: size of the expired entries (and of the invalidated ones)
    deleted: int = 0
    #: s3cache's own objects (released or run-out leases and locks) deleted, or found with
    #: ``dry_run``; not in the figures above, which are about entries
    leases: int = 0
    dry_run: bool = False
    elapsed_s: float = 0.0
    #: with ``invalidated=True``: live entries invalidated by a tag, deleted with the expired
    #: ones (or found, with ``dry_run``), and the tag records they were judged against
    invalidated: int = 0
    tag_records: int = 0

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


def stops_the_run(error: S3CacheError) -> bool:
    """Whether ``error`` stops a prefix-wide run: a timeout, a broken connection, a 5xx or
    SlowDown after retries, rejected credentials, a missing bucket or a closed cache (what one
    object's failure, such as access denied to it, never does)."""
    return error.kind in _STORE_TROUBLE


class _Stopped(Exception):
    """A failure ended the run; it is recorded in the run's :class:`_Run`."""


@dataclass(slots=True)
class _Run:
    """What a prefix-wide run met: failed keys, the error that stopped it, and how far it got."""

    operation: str
    targets: int = 0  #: objects it meant to delete (or, dry, to count), failures included
    failed: dict[str, S3CacheError] = field(default_factory=dict)
    stopped: S3CacheError | None = None
    last: str | None = None  #: the last object key reached

    def record(
        self, failed: Mapping[str, S3CacheError], stopped: S3CacheError | None, last: str
    ) -> None:
        """Record one batch that reached ``last``; raise :class:`_Stopped` if the run ends."""
        self.failed.update(failed)
        self.last = last
        self.stopped = stopped or next((e for e in failed.values() if stops_the_run(e)), None)
        if self.stopped is not None:
            raise _Stopped

    def finish(self, done: int | None) -> None:
        """Raise what the run met: a :class:`BatchError` carrying ``done``, or the stopping
        error itself when nothing was done and no key failed (a first listing that failed)."""
        if self.stopped is not None and not self.failed and not done:
            raise self.stopped
        if self.failed or self.stopped is not None:
            raise BatchError(
                self.operation, self.failed, self.targets, done, self.stopped, self.last
            )


async def _delete(cache: AsyncS3Cache, okeys: list[str]) -> dict[str, S3CacheError]:
    """Delete objects (``Transport.delete_many``) after checking each is under the prefix;
    returns those that could not be deleted, each with its error."""
    outside = [k for k in okeys if not k.startswith(cache.prefix)]
    if outside:  # unreachable through this module; a guard against future callers
        raise ValueError(f"refusing to delete {outside[0]!r}: outside prefix {cache.prefix!r}")
    return await cache.transport.delete_many(okeys)


async def clear_prefix(
    cache: AsyncS3Cache,
    *,
    dry_run: bool = False,
    all_bucket: bool = False,
    on_progress: Callable[[ClearResult], None] | None = None,
) -> ClearResult:
    """Delete every object under the prefix, a listing page (1,000) at a time, with
    ``on_progress`` after each.

    Unlike :meth:`AsyncS3Cache.clear` it reports progress, can dry-run, and refuses an empty
    prefix (the whole bucket) unless ``all_bucket`` is true. Failures raise at the end (see
    the module's docstring): a :class:`~s3cache.errors.BatchError` whose ``done`` is the count
    deleted and ``total`` the objects listed, or a first listing's own error.
    """
    check_scope(cache, all_bucket, "clear")
    result = ClearResult(dry_run=dry_run)
    run = _Run("clear_prefix")
    async with aclosing(pages(cache, cache.prefix)) as listing:
        try:
            async for page in listing:
                result.matched += len(page)
                result.bytes += sum(o.size for o in page)
                run.targets += len(page)
                failed: dict[str, S3CacheError] = {}
                if page and not dry_run:
                    failed = await _delete(cache, [o.key for o in page])
                    result.deleted += len(page) - len(failed)
                if on_progress is not None:
                    on_progress(result)
                if page:
                    run.record(failed, None, page[-1].key)
        except _Stopped:
            pass
        except S3CacheError as exc:  # a listing failed: nothing more can be found
            run.stopped = exc
    run.finish(None if dry_run else result.deleted)
    return result


async def purge_expired(
    cache: AsyncS3Cache,
    *,
    dry_run: bool = False,
    all_bucket: bool = False,
    batch: int = DEFAULT_BATCH,
    on_progress: Callable[[PurgeResult], None] | None = None,
    invalidated: bool = False,
) -> PurgeResult:
    """Delete the entries under the prefix that a read would treat as expired (with
    ``invalidated``, also those a read would treat as invalidated by a tag: the tag records
    are listed first, one LIST per 1,000, and each entry is judged against them by the HEAD it
    gets anyway; invalidations made during the run wait for the next one).

    Each entry is HEAD-ed (``batch`` at a time, paced through ``max_concurrency``) and judged
    on the server's clock as a read would judge it; each batch's expired entries are then
    deleted. ``on_progress`` gets the figures as each HEAD returns and after each delete. An
    entry rewritten between its HEAD and the delete is lost: for a cache, one extra miss. An
    empty prefix needs ``all_bucket``: other objects in a shared bucket may carry ``Expires``.
    Leases and locks that were released or have run out go too (counted apart, in
    ``leases``). Failures raise at the end (see the module's docstring): a
    :class:`~s3cache.errors.BatchError` whose ``done`` counts what was deleted, leases
    included, and ``total`` what was to be deleted or could not be judged.
    """
    check_scope(cache, all_bucket, "purge")
    check_positive("batch", batch)
    started = time.perf_counter()
    result = PurgeResult(dry_run=dry_run)
    run = _Run("purge_expired")
    records: dict[str, float] | None = None
    if invalidated:
        records = invalidation_times(await tag_records(cache))
        result.tag_records = len(records)

    def report() -> None:
        result.elapsed_s = time.perf_counter() - started
        if on_progress is not None:
            on_progress(result)

    async with aclosing(pages(cache, cache.prefix)) as listing:
        try:
            async for listed in listing:
                page, own = split_own(cache, listed)
                for start in range(0, len(own), batch):
                    await _purge_own(cache, own[start : start + batch], result, run)
                for start in range(0, len(page), batch):
                    chunk = page[start : start + batch]
                    await _purge_entries(cache, chunk, result, run, report, records)
        except _Stopped:
            pass
        except S3CacheError as exc:  # a listing failed: nothing more can be found
            run.stopped = exc
    report()
    run.finish(None if dry_run else result.deleted + result.leases)
    return result


async def _purge_entries(
    cache: AsyncS3Cache,
    objects: list[ListedObject],
    result: PurgeResult,
    run: _Run,
    report: Callable[[], None],
    records: Mapping[str, float] | None = None,
) -> None:
    """Judge one batch of entries, then delete (or, dry, count) the expired ones (and, with
    tag ``records``, the invalidated ones)."""

    def judged(entry: Entry) -> None:
        result.scanned += 1
        if entry.expired:
            result.expired += 1
            result.bytes += entry.size
        elif _invalidated(entry, records):
            result.invalidated += 1
            result.bytes += entry.size
        report()

    found = await inspect(cache, objects, on_entry=judged, stop=stops_the_run)
    expired = [e.object_key for e in found.entries if e.expired or _invalidated(e, records)]
    run.targets += len(expired) + len(found.failed)
    failed = dict(found.failed)
    if expired and not result.dry_run and found.stopped is None:
        not_deleted = await _delete(cache, expired)
        failed.update(not_deleted)
        result.deleted += len(expired) - len(not_deleted)
        report()
    run.record(failed, found.stopped, objects[-1].key)


async def _purge_own(cache: AsyncS3Cache, okeys: list[str], result: PurgeResult, run: _Run) -> None:
    """Delete (or, dry, count) the run-out ones among s3cache's own objects ``okeys``: released
    or expired leases and locks, judged on the server's clock so that no live one is taken
    for expired."""
    heads = await paced(cache.transport.head, okeys, cache.transport.max_concurrency)
    now = time.time()
    failed = {k: h for k, h in zip(okeys, heads, strict=True) if isinstance(h, S3CacheError)}
    gone = [
        k
        for k, h in zip(okeys, heads, strict=True)
        if h is not None and not isinstance(h, S3CacheError) and _ran_out(h, now)
    ]
    run.targets += len(gone) + len(failed)
    not_deleted = await _delete(cache, gone) if gone and not result.dry_run else {}
    result.leases += len(gone) - len(not_deleted)
    failed.update(not_deleted)
    run.record(failed, None, okeys[-1])


def _invalidated(entry: Entry, records: Mapping[str, float] | None) -> bool:
    """Whether a read would find ``entry`` invalidated by the tag ``records`` (None: not
    asked); tags or a date that cannot be read count as invalidated, as reads count them."""
    if records is None or entry.tags == ():
        return False
    if entry.tags is None or entry.written is None:
        return True
    return is_invalidated(entry.written, entry.tags, records)


def _ran_out(headers: Mapping[str, str], now: float) -> bool:
    try:
        remaining = _expiry.generous_remaining_ttl(headers, now)
    except (ValueError, KeyError):
        return False  # not ours to judge: keep it
    return remaining is not None and remaining <= 0
