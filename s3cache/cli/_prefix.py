"""The commands on everything under the prefix: ``check``, ``ls``, ``stats``, ``clear`` and
``purge-expired``, each a front for one :mod:`s3cache.maintenance` function.

The long ones show their progress while they run; ``clear`` and ``purge-expired`` stopped
part-way still print (with ``--json``) what they had done.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from s3cache import AsyncS3Cache, maintenance
from s3cache.cli._spec import EXIT_MISSING, EXIT_OK
from s3cache.cli._ui import UI, duration, plural, scoped, size, where
from s3cache.errors import BucketNotFoundError, S3CacheError

__all__ = [
    "check_ls",
    "check_stats",
    "cmd_check",
    "cmd_clear",
    "cmd_create_bucket",
    "cmd_ls",
    "cmd_purge",
    "cmd_stats",
]

#: What a command that deletes under the prefix reports, as it goes and at the end.
Result = TypeVar("Result", maintenance.ClearResult, maintenance.PurgeResult)


async def cmd_check(cache: AsyncS3Cache, args: argparse.Namespace, ui: UI) -> int:
    """One verdict per step of the doctor; exit 1 when a required step failed."""
    items = await maintenance.doctor(cache)
    ok = not any(item.failed for item in items)
    if args.json:
        ui.json(scoped(cache, {"ok": ok, "items": [item.to_json() for item in items]}))
    else:
        for item in items:
            ui.verdict(item.status, item.name, item.detail)
        if ok:
            ui.line(f"ok: {where(cache)} is usable as a cache", style="green")
        else:
            failed = ", ".join(item.name for item in items if item.failed)
            ui.line(f"failed: {failed}", style="bold red")
    return EXIT_OK if ok else EXIT_MISSING


async def cmd_create_bucket(cache: AsyncS3Cache, args: argparse.Namespace, ui: UI) -> int:
    """Create the cache's bucket unless it exists (HeadBucket first: that also says whether
    it is ours)."""
    try:
        await cache.transport.admin.head_bucket()
        created = False
    except BucketNotFoundError:
        created = await cache.transport.admin.create_bucket()
    if args.json:
        ui.json({"bucket": cache.bucket, "endpoint_url": cache.endpoint_url, "created": created})
    else:
        said = "created" if created else "already exists:"
        ui.line(f"{said} bucket {cache.bucket!r} at {cache.endpoint_url or 'AWS'}", style="green")
    return EXIT_OK


def check_ls(cache: AsyncS3Cache, args: argparse.Namespace) -> None:
    """Refuse a sub-prefix no key could start with, before any request."""
    maintenance.object_prefix(cache, args.sub_prefix)


def check_stats(cache: AsyncS3Cache, args: argparse.Namespace) -> None:
    """Refuse ``--count`` without ``--watch``, before any request."""
    if args.count and args.watch is None:
        raise ValueError("stats --count needs --watch (it counts the rounds of --watch)")


async def cmd_ls(cache: AsyncS3Cache, args: argparse.Namespace, ui: UI) -> int:
    """The entries under the prefix (up to ``--limit``), as a table or JSON."""
    entries: list[maintenance.Entry] = []
    more = False
    with ui.progress("scanning") as update:
        listing = maintenance.scan(
            cache,
            args.sub_prefix,
            batch=args.page_size,
            on_progress=lambda n: update(f"{plural(n, 'entry', 'entries')} inspected"),
        )
        async with aclosing(listing) as it:
            async for found in it:
                if args.limit and len(entries) == args.limit:
                    more = True
                    break
                entries.append(found)
    if args.json:
        ui.json([e.to_json() for e in entries])
    else:
        _entry_table(entries, ui)
        expired = sum(1 for e in entries if e.expired)
        listed = plural(len(entries), "entry", "entries")
        ui.note(f"{listed}, {expired:,} expired, under {where(cache)}{args.sub_prefix}")
    if more:
        ui.note(f"stopped at --limit {args.limit}; more entries follow (--limit 0 lists all)")
    return EXIT_OK


def _entry_table(entries: list[maintenance.Entry], ui: UI) -> None:
    """The ``ls`` table: size, age, ttl, time left, an expired flag and the key."""
    rows = [
        [
            size(e.size),
            duration(e.age_s),
            duration(e.ttl_s),
            duration(e.remaining_s) if not e.expired else "-",
            "yes" if e.expired else "",
            e.key,
        ]
        for e in entries
    ]
    columns = [("SIZE", True), ("AGE", True), ("TTL", True), ("LEFT", True)]
    ui.table([*columns, ("EXPIRED", False), ("KEY", False)], rows)


def _stats_progress(stats: maintenance.StorageStats) -> str:
    """The progress of ``stats``: what the listing counted, then the entries inspected."""
    listed = f"{plural(stats.entries, 'entry', 'entries')}, {size(stats.bytes)}"
    return f"{listed}; {stats.inspected:,} inspected" if stats.inspected else listed


def _expired_share(stats: maintenance.StorageStats) -> str:
    """The ``expired`` line of ``stats``: the share, and what it was judged on."""
    share = stats.expired_share
    if share is None:
        return "-"
    inspected = plural(stats.inspected, "entry", "entries")
    if stats.sampled:
        return (
            f"{share:.1%} (estimated from a random sample of {inspected}, "
            f"{stats.expired_inspected:,} expired)"
        )
    return f"{share:.1%} ({stats.expired_inspected:,} of {inspected})"


async def cmd_stats(cache: AsyncS3Cache, args: argparse.Namespace, ui: UI) -> int:
    """Entries, bytes, the expired share and the ages under the prefix; with ``--watch``,
    again every ``--watch`` seconds (with the change since the last round), ``--count`` times
    or until Ctrl-C."""
    rounds = args.count if args.watch is not None else 1
    previous: maintenance.StorageStats | None = None
    done = 0
    while True:
        with ui.progress("counting") as update:
            stats = await maintenance.storage_stats(
                cache, sample=args.sample, on_progress=lambda s: update(_stats_progress(s))
            )
        _show_stats(cache, args, ui, stats, previous)
        done += 1
        if rounds and done >= rounds:
            return EXIT_OK
        previous = stats
        await asyncio.sleep(args.watch)


def _show_stats(
    cache: AsyncS3Cache,
    args: argparse.Namespace,
    ui: UI,
    stats: maintenance.StorageStats,
    previous: maintenance.StorageStats | None,
) -> None:
    """One round of ``stats``: a JSON line, or the table and the age histogram (with
    ``--watch``: a time stamp, and the change in entries and bytes since ``previous``)."""
    if args.json:
        document = stats.to_json()
        watching = args.watch is not None
        if watching:
            document["at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        ui.json(scoped(cache, document), line=watching)
        return
    entries, stored = f"{stats.entries:,}", f"{size(stats.bytes)} ({stats.bytes:,})"
    if previous is not None:
        entries += f"  ({stats.entries - previous.entries:+,})"
        stored += f"  ({stats.bytes - previous.bytes:+,} B)"
    rows = [["where", where(cache)], ["entries", entries], ["bytes", stored]]
    rows.append(["expired", _expired_share(stats)])
    if args.watch is not None:
        rows.insert(0, ["at", time.strftime("%H:%M:%S")])
    ui.table([("", False), ("", False)], rows, header=False)
    widest = max(stats.ages.values(), default=0)
    ui.table(
        [("age", False), ("entries", True), ("", False)],
        [[label, f"{n:,}", _bar(n, widest)] for label, n in stats.ages.items()],
    )


def _bar(n: int, widest: int, width: int = 30) -> str:
    """A bar of ``n`` against the ``widest`` count (at least one block for any entry)."""
    if not n or not widest:
        return ""
    return "#" * max(1, round(width * n / widest))


def _switches(args: argparse.Namespace) -> dict[str, bool]:
    """The dry-run and whole-bucket switches of a command that deletes under the prefix."""
    return {"dry_run": args.dry_run, "all_bucket": args.all_bucket}


@dataclass(frozen=True)
class _Deletion(Generic[Result]):
    """A command that deletes under the prefix, as data: its progress labels (dry run, real
    run), the maintenance call it makes, that call's result type, the progress detail and the
    closing summary line."""

    labels: tuple[str, str]
    run: Callable[..., Awaitable[Result]]
    result: type[Result]
    detail: Callable[[Result], str]
    summary: Callable[[AsyncS3Cache, Result], str]


async def _deleting(
    cache: AsyncS3Cache,
    args: argparse.Namespace,
    ui: UI,
    how: _Deletion[Result],
    **options: object,
) -> int:
    """Run ``how.run`` with ``options``, the dry-run and whole-bucket switches and
    ``on_progress``, showing its progress and keeping its latest figures: one stopped part-way
    still prints, with ``--json``, what it did and the error before the failure exits 2.
    Prints the result: as JSON with ``--json``, else ``how.summary``."""
    latest = how.result(dry_run=args.dry_run)
    with ui.progress(how.labels[0] if args.dry_run else how.labels[1]) as update:

        def track(figures: Result) -> None:
            nonlocal latest
            latest = figures
            update(how.detail(figures))

        try:
            result = await how.run(cache, on_progress=track, **_switches(args), **options)
        except S3CacheError as exc:
            if args.json:
                ui.json(scoped(cache, {**latest.to_json(), "error": str(exc)}))
            raise
    if args.json:
        ui.json(scoped(cache, result.to_json()))
    else:
        ui.line(how.summary(cache, result))
    return EXIT_OK


def _clear_summary(cache: AsyncS3Cache, r: maintenance.ClearResult) -> str:
    """What ``clear`` did, or would do."""
    if r.dry_run:
        done = f"dry run: would delete {plural(r.matched, 'object')}"
    else:
        done = f"deleted {plural(r.deleted, 'object')}"
    return f"{done} ({size(r.bytes)}) under {where(cache)}"


_CLEAR: Final = _Deletion(
    ("listing", "deleting"),
    maintenance.clear_prefix,
    maintenance.ClearResult,
    lambda r: f"{plural(r.matched, 'object')}, {r.deleted:,} deleted",
    _clear_summary,
)


async def cmd_clear(cache: AsyncS3Cache, args: argparse.Namespace, ui: UI) -> int:
    """Delete every object under the prefix (or count them, with ``--dry-run``)."""
    return await _deleting(cache, args, ui, _CLEAR)


def _invalidated(r: maintenance.PurgeResult) -> str:
    """``, N invalidated (by M tag records)`` when ``--invalidated`` was given."""
    if not r.tag_records and not r.invalidated:
        return ""
    return f", {r.invalidated:,} invalidated (by {plural(r.tag_records, 'tag record')})"


def _purge_detail(r: maintenance.PurgeResult) -> str:
    """The progress of ``purge-expired``."""
    invalidated = f", {r.invalidated:,} invalidated" if r.invalidated else ""
    return f"{r.scanned:,} scanned, {r.expired:,} expired{invalidated}, {r.deleted:,} deleted"


def _purge_summary(cache: AsyncS3Cache, r: maintenance.PurgeResult) -> str:
    """What ``purge-expired`` did, or would do."""
    verb = "would delete" if r.dry_run else "deleted"
    count = r.expired + r.invalidated if r.dry_run else r.deleted
    leases = plural(r.leases, "run-out lease or lock", "run-out leases and locks")
    leases = f", and {leases}" if r.leases else ""
    return (
        f"scanned {plural(r.scanned, 'entry', 'entries')} under {where(cache)}: "
        f"{r.expired:,} expired{_invalidated(r)} ({size(r.bytes)}); "
        f"{verb} {count:,}{leases} "
        f"in {r.elapsed_s:.1f} s" + (" (dry run)" if r.dry_run else "")
    )


_PURGE: Final = _Deletion(
    ("scanning", "purging"),
    maintenance.purge_expired,
    maintenance.PurgeResult,
    _purge_detail,
    _purge_summary,
)


async def cmd_purge(cache: AsyncS3Cache, args: argparse.Namespace, ui: UI) -> int:
    """Delete the expired entries and run-out leases under the prefix."""
    options = {"batch": args.page_size, "invalidated": args.invalidated}
    return await _deleting(cache, args, ui, _PURGE, **options)
