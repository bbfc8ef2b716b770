"""The commands on everything under the prefix: ``check``, ``ls``, ``stats``, ``clear`` and
``purge-expired``, each a front for one :mod:`s3cache.maintenance` function.

The long ones show their progress while they run; ``clear`` and ``purge-expired`` stopped
part-way still print (with ``--json``) what they had done.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import aclosing, contextmanager
from typing import Any, Generic, TypeVar

from s3cache import AsyncS3Cache, maintenance
from s3cache.cli._spec import EXIT_MISSING, EXIT_OK
from s3cache.cli._ui import UI, duration, plural, scoped, size, where
from s3cache.errors import S3CacheError

__all__ = ["check_ls", "cmd_check", "cmd_clear", "cmd_ls", "cmd_purge", "cmd_stats"]

R = TypeVar("R")


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


def check_ls(cache: AsyncS3Cache, args: argparse.Namespace) -> None:
    """Refuse a sub-prefix no key could start with, before any request."""
    maintenance.object_prefix(cache, args.sub_prefix)


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
    """Entries, bytes and the expired share under the prefix."""
    with ui.progress("counting") as update:
        stats = await maintenance.storage_stats(
            cache, sample=args.sample, on_progress=lambda s: update(_stats_progress(s))
        )
    if args.json:
        ui.json(scoped(cache, stats.to_json()))
        return EXIT_OK
    ui.table(
        [("", False), ("", False)],
        [
            ["where", where(cache)],
            ["entries", f"{stats.entries:,}"],
            ["bytes", f"{size(stats.bytes)} ({stats.bytes:,})"],
            ["expired", _expired_share(stats)],
        ],
        header=False,
    )
    return EXIT_OK


def _switches(args: argparse.Namespace) -> dict[str, bool]:
    """The dry-run and whole-bucket switches of a command that deletes under the prefix."""
    return {"dry_run": args.dry_run, "all_bucket": args.all_bucket}


class _Tracked(Generic[R]):
    """A run's ``on_progress``: keeps its latest figures (what it did, should it fail) and shows
    them through ``update``."""

    def __init__(self, latest: R, update: Callable[[str], None], detail: Callable[[R], str]):
        self.latest = latest
        self._update = update
        self._detail = detail

    def __call__(self, figures: R) -> None:
        self.latest = figures
        self._update(self._detail(figures))


@contextmanager
def _partial_json(
    cache: AsyncS3Cache, args: argparse.Namespace, ui: UI, run: _Tracked[Any]
) -> Iterator[None]:
    """With ``--json``, a run that fails part-way still prints what it did, with the error,
    before the failure exits 2."""
    try:
        yield
    except S3CacheError as exc:
        if args.json:
            ui.json(scoped(cache, {**run.latest.to_json(), "error": str(exc)}))
        raise


def _clear_detail(r: maintenance.ClearResult) -> str:
    return f"{plural(r.matched, 'object')}, {r.deleted:,} deleted"


async def cmd_clear(cache: AsyncS3Cache, args: argparse.Namespace, ui: UI) -> int:
    """Delete every object under the prefix (or count them, with ``--dry-run``)."""
    with ui.progress("deleting" if not args.dry_run else "listing") as update:
        run = _Tracked(maintenance.ClearResult(dry_run=args.dry_run), update, _clear_detail)
        with _partial_json(cache, args, ui, run):
            result = await maintenance.clear_prefix(cache, on_progress=run, **_switches(args))
    if args.json:
        ui.json(scoped(cache, result.to_json()))
        return EXIT_OK
    if args.dry_run:
        done = f"dry run: would delete {plural(result.matched, 'object')}"
    else:
        done = f"deleted {plural(result.deleted, 'object')}"
    ui.line(f"{done} ({size(result.bytes)}) under {where(cache)}")
    return EXIT_OK


def _purge_detail(r: maintenance.PurgeResult) -> str:
    return f"{r.scanned:,} scanned, {r.expired:,} expired, {r.deleted:,} deleted"


async def cmd_purge(cache: AsyncS3Cache, args: argparse.Namespace, ui: UI) -> int:
    """Delete the expired entries and run-out leases under the prefix."""
    with ui.progress("purging" if not args.dry_run else "scanning") as update:
        run = _Tracked(maintenance.PurgeResult(dry_run=args.dry_run), update, _purge_detail)
        with _partial_json(cache, args, ui, run):
            result = await maintenance.purge_expired(
                cache, batch=args.page_size, on_progress=run, **_switches(args)
            )
    if args.json:
        ui.json(scoped(cache, result.to_json()))
        return EXIT_OK
    verb = "would delete" if args.dry_run else "deleted"
    count = result.expired if args.dry_run else result.deleted
    leases = plural(result.leases, "run-out lease or lock", "run-out leases and locks")
    leases = f", and {leases}" if result.leases else ""
    ui.line(
        f"scanned {plural(result.scanned, 'entry', 'entries')} under {where(cache)}: "
        f"{result.expired:,} expired ({size(result.bytes)}); {verb} {count:,}{leases} "
        f"in {result.elapsed_s:.1f} s" + (" (dry run)" if args.dry_run else "")
    )
    return EXIT_OK
