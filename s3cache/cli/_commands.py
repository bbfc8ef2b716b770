"""The commands of the ``s3cache`` command line, each described once in :data:`COMMANDS`.

A command's :class:`Spec` holds its arguments, the checks made before any request, whether it
acts on everything under the prefix (``scope``: an empty prefix then needs ``--all-bucket``),
whether it asks for confirmation, and its handler. Adding a command is adding one ``Spec``.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import aclosing, contextmanager
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from s3cache import _format, maintenance
from s3cache._core import AsyncS3Cache
from s3cache.cli._ui import UI, dumps, duration, size, where
from s3cache.errors import S3CacheError

__all__ = [
    "COMMANDS",
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "Arg",
    "Spec",
    "UsageError",
    "base64_key",
    "positive_int",
    "seconds",
    "true_or_false",
]

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130  #: 128 + SIGINT, as shells report a Ctrl-C
_BYTES_PREVIEW: Final = 64

R = TypeVar("R")
Handler = Callable[[AsyncS3Cache, argparse.Namespace, UI], Awaitable[int]]
Check = Callable[[AsyncS3Cache, argparse.Namespace], None]


class UsageError(Exception):
    """Bad arguments found after parsing: exit status 2 with this message."""


@dataclass(frozen=True, slots=True)
class Arg:
    """One argument of a command: ``parser.add_argument(*flags, **options)``."""

    flags: tuple[str, ...]
    options: dict[str, Any]


def arg(*flags: str, **options: Any) -> Arg:
    return Arg(flags, options)


@dataclass(frozen=True, slots=True)
class Spec:
    """One command (or one action of a command), described once.

    ``check`` validates the arguments against the cache before any request (raising
    ``ValueError`` or ``TypeError``: exit status 2). ``scope`` names what the command does to
    everything under the prefix ("clear"): it then takes ``--all-bucket``, without which an empty
    prefix is refused. ``confirm`` is the question asked before deleting: the command then takes
    ``--yes`` and ``--dry-run``. ``unsupported`` is the hint printed when the server lacks the
    API. A command with ``actions`` runs one of them (``lifecycle show|set|remove``).
    """

    name: str
    help: str
    run: Handler | None = None
    description: str | None = None
    args: tuple[Arg, ...] = ()
    check: Check | None = None
    scope: str | None = None
    confirm: str | None = None
    unsupported: str = "this server does not support that operation"
    actions: tuple[Spec, ...] = ()


# -- argument types --------------------------------------------------------------------------


def _whole_number(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {value}")
        return value

    return parse


positive_int = _whole_number(1)
_count = _whole_number(0)


def seconds(text: str) -> float:
    """An argparse type: a number of seconds."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None


def true_or_false(text: str) -> bool:
    """An argparse type: ``true`` or ``false`` (also 1/0, yes/no, on/off)."""
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"not true or false: {text!r}")


def base64_key(text: str) -> bytes:
    """An argparse type: a base64-encoded key. The error never repeats the value (a secret)."""
    try:
        return base64.b64decode(text.strip(), validate=True)
    except ValueError:
        raise argparse.ArgumentTypeError("not valid base64 (the value is not shown)") from None


# -- checks before any request ---------------------------------------------------------------


def _check_key(cache: AsyncS3Cache, args: argparse.Namespace) -> None:
    _format.object_key(cache.prefix, args.key)


def _check_set(cache: AsyncS3Cache, args: argparse.Namespace) -> None:
    _check_key(cache, args)
    args.ttl = _format.normalize_ttl(args.ttl)
    args.value = _read_value(args.value)
    try:
        _format.JsonSerializer().dumps(args.value)
    except TypeError as exc:
        raise UsageError(f"VALUE cannot be stored: {exc}") from None


def _check_ls(cache: AsyncS3Cache, args: argparse.Namespace) -> None:
    maintenance.object_prefix(cache, args.sub_prefix)


def _read_value(text: str) -> Any:
    """VALUE as JSON: the text itself, or the contents of ``@FILE`` (``@-``: stdin)."""
    source = "VALUE"
    if text.startswith("@"):
        path = text[1:]
        source = "stdin" if path == "-" else repr(path)
        try:
            if path == "-":
                text = sys.stdin.read()
            else:
                with open(path, encoding="utf-8") as f:
                    text = f.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read {source}: {exc}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        hint = " (a string needs JSON quotes: '\"text\"')" if source == "VALUE" else ""
        raise UsageError(f"{source} is not JSON: {exc}{hint}") from None


# -- handlers --------------------------------------------------------------------------------


async def _cmd_check(cache: AsyncS3Cache, args: argparse.Namespace, ui: UI) -> int:
    items = await maintenance.doctor(cache)
    ok = not any(item.failed for item in items)
    if args.json:
        ui.json(
            {
                "ok": ok,
                "bucket": cache.bucket,
                "prefix": cache.prefix,
                "items": [item.to_json() for item in items],
            }
        )
    else:
        for item in items:
            ui.verdict(item.status, item.name, item.detail)
        if ok:
            ui.line(f"ok: {where(cache)} is usable as a cache", style="green")
        else:
            failed = ", ".join(item.name for item in items if item.failed)
            ui.line(f"failed: {failed}", style="bold red")
    return EXIT_OK if ok else EXIT_FAILURE


async def _cmd_ls(cache: AsyncS3Cache, args: argparse.Namespace, ui: UI) -> int:
    entries: list[maintenance.Entry] = []
    more = False
    with ui.progress("scanning") as update:
        listing = maintenance.scan(
            cache,
            args.sub_prefix,
            batch=args.page_size,
            on_progress=lambda n: update(f"{n:,} entries inspected"),
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
        expired = sum(1 for e in entries if e.expired)
        ui.note(f"{len(entries)} entries, {expired} expired, under {where(cache)}{args.sub_prefix}")
    if more:
        ui.note(f"stopped at --limit {args.limit}; more entries follow (--limit 0 lists all)")
    return EXIT_OK


async def _cmd_get(cache: AsyncS3Cache, args: argparse.Namespace, ui: UI) -> int:
    missing = object()
    value = await cache.get(args.key, missing)
    if value is missing:
        print(f"s3cache: no live entry for key {args.key!r}", file=sys.stderr)
        return EXIT_FAILURE
    if isinstance(value, bytes):
        if args.json:
            encoded = base64.b64encode(value).decode("ascii")
            ui.json({"key": args.key, "bytes": len(value), "base64": encoded})
        else:
            preview = value[:_BYTES_PREVIEW].hex(" ")
            cut = f", first {_BYTES_PREVIEW} shown" if len(value) > _BYTES_PREVIEW else ""
            ui.line(f"<{len(value)} bytes{cut}> {preview}")
            ui.note("bytes are not printed raw; use --json for all of them as base64")
    elif args.json:
        ui.json({"key": args.key, "value": value})
    else:
        sys.stdout.write(dumps(value) + "\n")
    return EXIT_OK


async def _cmd_set(cache: AsyncS3Cache, args: argparse.Namespace, ui: UI) -> int:
    await cache.set(args.key, args.value, ttl=args.ttl)  # the value was checked by _check_set
    okey = _format.object_key(cache.prefix, args.key)
    if args.json:
        ui.json({"key": args.key, "object_key": okey, "ttl": args.ttl})
    else:
        ttl = f", ttl {args.ttl:g} s" if args.ttl is not None else ", no ttl"
        ui.line(f"stored {args.key!r} at s3://{cache.bucket}/{okey}{ttl}")
    return EXIT_OK


async def _cmd_delete(cache: AsyncS3Cache, args: argparse.Namespace, ui: UI) -> int:
    deleted = await cache.delete(args.key)
    if args.json:
        ui.json({"key": args.key, "deleted": deleted})
    else:
        ui.line(f"deleted {args.key!r}" if deleted else f"no live entry for {args.key!r}")
    return EXIT_OK


def _stats_progress(stats: maintenance.StorageStats) -> str:
    listed = f"{stats.entries:,} entries, {size(stats.bytes)}"
    return f"{listed}; {stats.inspected:,} inspected" if stats.inspected else listed


async def _cmd_stats(cache: AsyncS3Cache, args: argparse.Namespace, ui: UI) -> int:
    with ui.progress("counting") as update:
        stats = await maintenance.storage_stats(
            cache, sample=args.sample, on_progress=lambda s: update(_stats_progress(s))
        )
    if args.json:
        ui.json(_scoped(cache, stats.to_json()))
        return EXIT_OK
    share = stats.expired_share
    if share is None:
        expired = "-"
    elif stats.sampled:
        expired = (
            f"{share:.1%} (estimated from a random sample of {stats.inspected:,} entries, "
            f"{stats.expired_inspected:,} expired)"
        )
    else:
        expired = f"{share:.1%} ({stats.expired_inspected:,} of {stats.inspected:,} entries)"
    ui.table(
        [("", False), ("", False)],
        [
            ["where", where(cache)],
            ["entries", f"{stats.entries:,}"],
            ["bytes", f"{size(stats.bytes)} ({stats.bytes:,})"],
            ["expired", expired],
        ],
        header=False,
    )
    return EXIT_OK


def _switches(args: argparse.Namespace) -> dict[str, bool]:
    """The dry-run and whole-bucket switches of a command that deletes under the prefix."""
    return {"dry_run": args.dry_run, "all_bucket": args.all_bucket}


def _scoped(cache: AsyncS3Cache, document: dict[str, Any]) -> dict[str, Any]:
    """A JSON document of a prefix-wide command, with where it ran."""
    return {"bucket": cache.bucket, "prefix": cache.prefix, **document}


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
    before the failure exits 1."""
    try:
        yield
    except S3CacheError as exc:
        if args.json:
            ui.json(_scoped(cache, {**run.latest.to_json(), "error": str(exc)}))
        raise


def _clear_detail(r: maintenance.ClearResult) -> str:
    return f"{r.matched:,} objects, {r.deleted:,} deleted"


async def _cmd_clear(cache: AsyncS3Cache, args: argparse.Namespace, ui: UI) -> int:
    with ui.progress("deleting" if not args.dry_run else "listing") as update:
        run = _Tracked(maintenance.ClearResult(dry_run=args.dry_run), update, _clear_detail)
        with _partial_json(cache, args, ui, run):
            result = await maintenance.clear_prefix(cache, on_progress=run, **_switches(args))
    if args.json:
        ui.json(_scoped(cache, result.to_json()))
    elif args.dry_run:
        ui.line(
            f"dry run: would delete {result.matched:,} objects ({size(result.bytes)}) "
            f"under {where(cache)}"
        )
    else:
        ui.line(f"deleted {result.deleted:,} objects ({size(result.bytes)}) under {where(cache)}")
    return EXIT_OK


def _purge_detail(r: maintenance.PurgeResult) -> str:
    return f"{r.scanned:,} scanned, {r.expired:,} expired, {r.deleted:,} deleted"


async def _cmd_purge(cache: AsyncS3Cache, args: argparse.Namespace, ui: UI) -> int:
    with ui.progress("purging" if not args.dry_run else "scanning") as update:
        run = _Tracked(maintenance.PurgeResult(dry_run=args.dry_run), update, _purge_detail)
        with _partial_json(cache, args, ui, run):
            result = await maintenance.purge_expired(
                cache, batch=args.page_size, on_progress=run, **_switches(args)
            )
    if args.json:
        ui.json(_scoped(cache, result.to_json()))
        return EXIT_OK
    verb = "would delete" if args.dry_run else "deleted"
    count = result.expired if args.dry_run else result.deleted
    leases = f", and {result.leases:,} run-out leases and locks" if result.leases else ""
    ui.line(
        f"scanned {result.scanned:,} entries under {where(cache)}: {result.expired:,} expired "
        f"({size(result.bytes)}); {verb} {count:,}{leases} in {result.elapsed_s:.1f} s"
        + (" (dry run)" if args.dry_run else "")
    )
    return EXIT_OK


async def _cmd_lifecycle_set(cache: AsyncS3Cache, args: argparse.Namespace, ui: UI) -> int:
    rule_id = await maintenance.lifecycle_set(cache, args.days, all_bucket=args.all_bucket)
    if args.json:
        ui.json({"id": rule_id, "prefix": cache.prefix, "days": args.days})
    else:
        ui.line(
            f"rule {rule_id!r} set: objects under {where(cache)} are deleted "
            f"{args.days} day(s) after they were written"
        )
    return EXIT_OK


async def _cmd_lifecycle_remove(cache: AsyncS3Cache, args: argparse.Namespace, ui: UI) -> int:
    removed = await maintenance.lifecycle_remove(cache)
    rule_id = maintenance.lifecycle_rule_id(cache.prefix)
    if args.json:
        ui.json({"id": rule_id, "removed": removed})
    else:
        ui.line(f"removed rule {rule_id!r}" if removed else f"no rule {rule_id!r} to remove")
    return EXIT_OK


async def _cmd_lifecycle_show(cache: AsyncS3Cache, args: argparse.Namespace, ui: UI) -> int:
    rules = await maintenance.lifecycle_rules(cache)
    if args.json:
        ui.json(
            {
                "bucket": cache.bucket,
                "prefix": cache.prefix,
                "rules": [rule.to_json() for rule in rules],
            }
        )
    elif not rules:
        ui.line(f"no lifecycle rule reaches {where(cache)}")
        ui.note(
            "expired entries stay stored until `s3cache purge-expired`; "
            "`s3cache lifecycle set --days N` adds a rule"
        )
    else:
        rows = [
            [
                r.id + (" (s3cache)" if r.ours else ""),
                r.status,
                f"{r.days} days" if r.days is not None else "(not an expiration by age)",
                r.covers + (", filtered" if r.filtered else ""),
                r.prefix or "(whole bucket)",
            ]
            for r in rules
        ]
        columns = [("ID", False), ("STATUS", False), ("EXPIRE AFTER", False)]
        ui.table([*columns, ("COVERS", False), ("PREFIX", False)], rows)
    return EXIT_OK


# -- the commands ----------------------------------------------------------------------------

_LIFECYCLE_HELP = """\
An S3 lifecycle rule deletes objects under the prefix N whole days after they were written.
Lifecycles act in days, not seconds: S3 rounds to the next midnight UTC and deletes in the
background, often a day or more later. Per-entry TTLs act on every read instead: an expired entry
is a miss at once, judged on the server's clock, but nothing deletes its object. So a rule is
what reclaims the storage. Choose N at least as long as your longest TTL (rounded up to days):
an object the rule deletes while its TTL still runs simply becomes a miss early. Entries stored
without a TTL are deleted after N days as well. For cleanup finer than days, run
`s3cache purge-expired` on a schedule. `set` and `remove` touch only the rule s3cache manages
for this prefix (ID "s3cache:<prefix>"); other rules of the bucket are kept."""

_PURGE_HELP = """\
Delete the entries under the prefix that a read would treat as expired. Every entry is looked
at with one HEAD request (concurrently) and judged by its ttl against the server's clock, the
same rule reads apply; expired ones are deleted in batches of up to 1,000. Leases and locks
(under <prefix>.s3cache/) that were released or have run out go too."""

_NO_LIFECYCLE = (
    "this server does not support bucket lifecycle rules; "
    "run `s3cache purge-expired` on a schedule instead"
)
_KEY = arg("key", metavar="KEY")
_PAGE_SIZE = arg(
    "--page-size",
    type=positive_int,
    default=maintenance.DEFAULT_BATCH,
    help="entries inspected (one HEAD each, --concurrency at a time) per batch "
    f"(default {maintenance.DEFAULT_BATCH})",
)

COMMANDS: Final[tuple[Spec, ...]] = (
    Spec(
        "check",
        "doctor: endpoint, credentials, bucket, list/put/get/delete, conditional create and "
        "replace, clock skew, lifecycle rule",
        _cmd_check,
        description="Run s3cache.maintenance.doctor(): every step of AsyncS3Cache.check() and "
        "more, one verdict per line, stopping at the first required failure.",
    ),
    Spec(
        "ls",
        "list entries with size, age, ttl and an expired flag (one HEAD each)",
        _cmd_ls,
        args=(
            arg("sub_prefix", nargs="?", default="", metavar="PREFIX", help="under the prefix"),
            arg(
                "--limit",
                type=_count,
                default=1000,
                help="at most N entries (default 1000; 0: all)",
            ),
            _PAGE_SIZE,
        ),
        check=_check_ls,
    ),
    Spec(
        "get",
        "print an entry's value as JSON (bytes as a hex preview)",
        _cmd_get,
        args=(_KEY,),
        check=_check_key,
    ),
    Spec(
        "set",
        "store a value",
        _cmd_set,
        args=(
            _KEY,
            arg(
                "value",
                metavar="VALUE",
                help="JSON text, or @FILE to read JSON from a file (@- stdin)",
            ),
            arg("--ttl", type=seconds, default=None, help="seconds until it expires"),
        ),
        check=_check_set,
    ),
    Spec("delete", "delete an entry", _cmd_delete, args=(_KEY,), check=_check_key),
    Spec(
        "stats",
        "entries, bytes and the expired share under the prefix",
        _cmd_stats,
        description="Entries and bytes under the prefix (from the full listing), and the share "
        "of expired entries. Judging expiry takes one HEAD per entry, so on large caches the "
        "share is estimated from a uniform random sample (--sample) and the output says so.",
        args=(
            arg(
                "--sample",
                type=positive_int,
                default=maintenance.DEFAULT_SAMPLE,
                help="entries inspected for the expired share "
                f"(default {maintenance.DEFAULT_SAMPLE})",
            ),
        ),
    ),
    Spec(
        "clear",
        "delete everything under the prefix",
        _cmd_clear,
        description="Delete every object under the prefix, with a progress bar. An empty prefix "
        "(the whole bucket) is refused unless --all-bucket is given.",
        scope="clear",
        confirm="delete EVERY object",
    ),
    Spec(
        "purge-expired",
        "delete expired entries under the prefix",
        _cmd_purge,
        description=_PURGE_HELP,
        args=(_PAGE_SIZE,),
        scope="purge-expired",
        confirm="delete the expired entries",
    ),
    Spec(
        "lifecycle",
        "show, set or remove the lifecycle rule",
        description=_LIFECYCLE_HELP,
        unsupported=_NO_LIFECYCLE,
        actions=(
            Spec(
                "show",
                "rules that reach the prefix",
                _cmd_lifecycle_show,
                unsupported=_NO_LIFECYCLE,
            ),
            Spec(
                "set",
                "expire objects under the prefix after N days",
                _cmd_lifecycle_set,
                description=_LIFECYCLE_HELP,
                args=(arg("--days", type=positive_int, required=True, help="whole days, >= 1"),),
                scope="set a lifecycle rule",
                unsupported=_NO_LIFECYCLE,
            ),
            Spec(
                "remove",
                "remove s3cache's rule for the prefix",
                _cmd_lifecycle_remove,
                unsupported=_NO_LIFECYCLE,
            ),
        ),
    ),
)
