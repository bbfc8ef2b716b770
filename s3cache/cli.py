"""The ``s3cache`` command line: check, inspect and clean a cache bucket.

The top layer: it parses arguments, builds an :class:`AsyncS3Cache`, runs one command with
``asyncio.run`` and prints. The operations themselves live in :mod:`s3cache._maintenance`.
Tables and progress bars use ``rich`` when it is installed (``pip install s3cache-async[cli]``)
and plain text otherwise, or with ``--plain`` / ``S3CACHE_PLAIN=1``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import aclosing, contextmanager
from typing import Any, Final

from s3cache import _format, _maintenance
from s3cache._core import AsyncS3Cache
from s3cache.errors import NotSupportedError, S3CacheError

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2
_INTERRUPTED: Final = 130
_BYTES_PREVIEW: Final = 64
_PLAIN_REFRESH_S: Final = 0.2

_DESCRIPTION = """\
Check, inspect and clean an s3cache store: a bucket and a key prefix on Amazon S3 or any
S3-compatible server. Credentials come from the standard AWS_* variables, the shared config
files, or --profile."""

_EPILOG = """\
environment:
  S3CACHE_BUCKET, S3CACHE_PREFIX, S3CACHE_ENDPOINT_URL   defaults for --bucket, --prefix,
                                                         --endpoint-url
  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE, AWS_DEFAULT_REGION, ...
  S3CACHE_PLAIN=1                                        plain output even when rich is installed

exit status:
  0  success
  1  an S3 failure or a failed check (a one-line cause on stderr; --debug for the traceback);
     also `get` of a key with no live entry, and a declined confirmation
  2  bad usage (unknown option, bad key, ttl or JSON value, missing --yes off a terminal)"""

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
same rule reads apply; expired ones are deleted in batches of up to 1,000."""


class UsageError(Exception):
    """Bad arguments found after parsing: exit status 2 with this message."""


class _Declined(Exception):
    """The user answered no at a confirmation prompt."""


# -- output ----------------------------------------------------------------------------------


def _load_rich() -> Any:
    """The ``rich`` package, or None when it is not installed."""
    try:
        import rich.console
        import rich.progress
        import rich.table
        import rich.text
    except ImportError:
        return None
    return rich


class UI:
    """Writes tables, progress and messages through rich, or as plain text without it."""

    def __init__(self, *, plain: bool) -> None:
        self.rich: Any = None if plain else _load_rich()
        self._out: Any = None
        self._err: Any = None
        if self.rich is not None:
            self._out = self.rich.console.Console(highlight=False)
            self._err = self.rich.console.Console(stderr=True, highlight=False)

    def line(self, text: str = "", style: str | None = None) -> None:
        """One line of text on stdout."""
        if self._out is not None:
            self._out.print(self.rich.text.Text(text, style=style or ""), soft_wrap=True)
        else:
            print(text, file=sys.stdout)

    def note(self, text: str) -> None:
        """One line on stderr: remarks that are not the command's output."""
        if self._err is not None:
            self._err.print(self.rich.text.Text(text, style="dim"), soft_wrap=True)
        else:
            print(text, file=sys.stderr)

    def json(self, value: Any) -> None:
        """A JSON document on stdout, never styled."""
        sys.stdout.write(_dumps(value) + "\n")
        sys.stdout.flush()

    def table(
        self,
        columns: Sequence[tuple[str, bool]],
        rows: Sequence[Sequence[str]],
        *,
        header: bool = True,
    ) -> None:
        """A table: ``columns`` are (title, right-aligned); the last column may be long."""
        if self._out is not None:
            table = self.rich.table.Table(
                box=self.rich.box.SIMPLE_HEAD, pad_edge=False, show_header=header
            )
            for title, right in columns:
                table.add_column(title, justify="right" if right else "left", overflow="fold")
            for row in rows:
                table.add_row(*(self.rich.text.Text(cell) for cell in row))
            self._out.print(table)
            return
        widths = [max([len(t)] + [len(r[i]) for r in rows]) for i, (t, _) in enumerate(columns)]

        def fmt(cells: Sequence[str]) -> str:
            parts = [
                c.rjust(w) if right else c.ljust(w)
                for c, w, (_, right) in zip(cells, widths, columns, strict=True)
            ]
            parts[-1] = cells[-1]  # no padding after the last column
            return "  ".join(parts)

        if header:
            print(fmt([t for t, _ in columns]), file=sys.stdout)
        for row in rows:
            print(fmt(row), file=sys.stdout)

    def verdict(self, status: str, name: str, detail: str) -> None:
        """One line of ``check``: a coloured status word, the item, the detail."""
        colour = {"pass": "green", "fail": "bold red", "warn": "yellow", "skip": "dim"}[status]
        if self._out is not None:
            text = self.rich.text.Text()
            text.append(f"{status.upper():<5}", style=colour)
            text.append(f" {name:<21} {detail}")
            self._out.print(text, soft_wrap=True)
        else:
            print(f"{status.upper():<5} {name:<21} {detail}", file=sys.stdout)

    @contextmanager
    def progress(self, label: str) -> Iterator[Callable[[str], None]]:
        """A live progress line on stderr; yields ``update(detail)``. Silent off a terminal."""
        if self._err is not None:
            columns = (
                self.rich.progress.SpinnerColumn(),
                self.rich.progress.TextColumn("{task.description}"),
                self.rich.progress.BarColumn(),
                self.rich.progress.TextColumn("{task.fields[detail]}", markup=False),
                self.rich.progress.TimeElapsedColumn(),
            )
            bar = self.rich.progress.Progress(*columns, console=self._err, transient=True)
            task = bar.add_task(label, total=None, detail="")
            with bar:
                yield lambda detail: bar.update(task, detail=detail)
            return
        if not sys.stderr.isatty():
            yield lambda detail: None
            return
        last = 0.0

        def update(detail: str) -> None:
            nonlocal last
            now = time.monotonic()
            if now - last >= _PLAIN_REFRESH_S:
                last = now
                sys.stderr.write(f"\r{label}: {detail}\x1b[K")
                sys.stderr.flush()

        try:
            yield update
        finally:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


def _dumps(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=repr)


def _size(n: int) -> str:
    """Bytes for people: ``512 B``, ``1.5 KiB``."""
    amount = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if amount < 1024 or unit == "TiB":
            return f"{n} B" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    raise AssertionError("unreachable")


def _duration(seconds: float | None) -> str:
    """Seconds for people: ``42s``, ``3m07s``, ``5h02m``, ``12d03h``; ``-`` for None."""
    if seconds is None:
        return "-"
    sign = "-" if seconds < 0 else ""
    s = int(abs(seconds))
    if s < 60:
        return f"{sign}{s}s"
    if s < 3600:
        return f"{sign}{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{sign}{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{sign}{s // 86400}d{s % 86400 // 3600:02d}h"


def _where(cache: AsyncS3Cache) -> str:
    return f"s3://{cache.bucket}/{cache.prefix}"


# -- commands --------------------------------------------------------------------------------

Command = Callable[[AsyncS3Cache, argparse.Namespace, UI], Awaitable[int]]


async def _cmd_check(cache: AsyncS3Cache, args: argparse.Namespace, ui: UI) -> int:
    items = await _maintenance.doctor(cache)
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
            ui.line(f"ok: {_where(cache)} is usable as a cache", style="green")
        else:
            failed = ", ".join(item.name for item in items if item.failed)
            ui.line(f"failed: {failed}", style="bold red")
    return EXIT_OK if ok else EXIT_FAILURE


async def _cmd_ls(cache: AsyncS3Cache, args: argparse.Namespace, ui: UI) -> int:
    entries: list[_maintenance.Entry] = []
    more = False
    async with aclosing(_maintenance.scan(cache, args.sub_prefix, batch=args.page_size)) as it:
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
                _size(e.size),
                _duration(e.age_s),
                _duration(e.ttl_s),
                _duration(e.remaining_s) if not e.expired else "-",
                "yes" if e.expired else "",
                e.key,
            ]
            for e in entries
        ]
        columns = [("SIZE", True), ("AGE", True), ("TTL", True), ("LEFT", True)]
        ui.table([*columns, ("EXPIRED", False), ("KEY", False)], rows)
        expired = sum(1 for e in entries if e.expired)
        ui.note(
            f"{len(entries)} entries, {expired} expired, under {_where(cache)}{args.sub_prefix}"
        )
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
        sys.stdout.write(_dumps(value) + "\n")
    return EXIT_OK


async def _cmd_set(cache: AsyncS3Cache, args: argparse.Namespace, ui: UI) -> int:
    await cache.set(args.key, args.value, ttl=args.ttl)
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


async def _cmd_stats(cache: AsyncS3Cache, args: argparse.Namespace, ui: UI) -> int:
    with ui.progress("listing") as update:
        stats = await _maintenance.storage_stats(
            cache,
            sample=args.sample,
            on_progress=lambda s: update(f"{s.entries:,} entries, {_size(s.bytes)}"),
        )
    if args.json:
        ui.json({"bucket": cache.bucket, "prefix": cache.prefix, **stats.to_json()})
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
            ["where", _where(cache)],
            ["entries", f"{stats.entries:,}"],
            ["bytes", f"{_size(stats.bytes)} ({stats.bytes:,})"],
            ["expired", expired],
        ],
        header=False,
    )
    return EXIT_OK


async def _cmd_clear(cache: AsyncS3Cache, args: argparse.Namespace, ui: UI) -> int:
    with ui.progress("deleting" if not args.dry_run else "listing") as update:
        result = await _maintenance.clear(
            cache,
            dry_run=args.dry_run,
            all_bucket=args.all_bucket,
            on_progress=lambda r: update(f"{r.matched:,} objects, {r.deleted:,} deleted"),
        )
    if args.json:
        ui.json({"bucket": cache.bucket, "prefix": cache.prefix, **result.to_json()})
    elif args.dry_run:
        ui.line(
            f"dry run: would delete {result.matched:,} objects ({_size(result.bytes)}) "
            f"under {_where(cache)}"
        )
    else:
        ui.line(f"deleted {result.deleted:,} objects ({_size(result.bytes)}) under {_where(cache)}")
    return EXIT_OK


async def _cmd_purge(cache: AsyncS3Cache, args: argparse.Namespace, ui: UI) -> int:
    with ui.progress("purging" if not args.dry_run else "scanning") as update:
        result = await _maintenance.purge_expired(
            cache,
            dry_run=args.dry_run,
            all_bucket=args.all_bucket,
            batch=args.page_size,
            on_progress=lambda r: update(
                f"{r.scanned:,} scanned, {r.expired:,} expired, {r.deleted:,} deleted"
            ),
        )
    if args.json:
        ui.json({"bucket": cache.bucket, "prefix": cache.prefix, **result.to_json()})
        return EXIT_OK
    verb = "would delete" if args.dry_run else "deleted"
    count = result.expired if args.dry_run else result.deleted
    ui.line(
        f"scanned {result.scanned:,} entries under {_where(cache)}: {result.expired:,} expired "
        f"({_size(result.bytes)}); {verb} {count:,} in {result.elapsed_s:.1f} s"
        + (" (dry run)" if args.dry_run else "")
    )
    return EXIT_OK


async def _cmd_lifecycle(cache: AsyncS3Cache, args: argparse.Namespace, ui: UI) -> int:
    if args.action == "set":
        rule_id = await _maintenance.set_lifecycle(cache, args.days, all_bucket=args.all_bucket)
        if args.json:
            ui.json({"id": rule_id, "prefix": cache.prefix, "days": args.days})
        else:
            ui.line(
                f"rule {rule_id!r} set: objects under {_where(cache)} are deleted "
                f"{args.days} day(s) after they were written"
            )
        return EXIT_OK
    if args.action == "remove":
        removed = await _maintenance.remove_lifecycle(cache)
        rule_id = _maintenance.lifecycle_rule_id(cache.prefix)
        if args.json:
            ui.json({"id": rule_id, "removed": removed})
        else:
            ui.line(f"removed rule {rule_id!r}" if removed else f"no rule {rule_id!r} to remove")
        return EXIT_OK
    rules = await _maintenance.lifecycle_rules(cache)
    if args.json:
        ui.json(
            {
                "bucket": cache.bucket,
                "prefix": cache.prefix,
                "rules": [rule.to_json() for rule in rules],
            }
        )
    elif not rules:
        ui.line(f"no lifecycle rule reaches {_where(cache)}")
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


_COMMANDS: Final[dict[str, Command]] = {
    "check": _cmd_check,
    "ls": _cmd_ls,
    "get": _cmd_get,
    "set": _cmd_set,
    "delete": _cmd_delete,
    "stats": _cmd_stats,
    "clear": _cmd_clear,
    "purge-expired": _cmd_purge,
    "lifecycle": _cmd_lifecycle,
}


# -- arguments -------------------------------------------------------------------------------


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


_positive_int = _whole_number(1)
_count = _whole_number(0)


def _seconds(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None


def _add_common(parser: argparse.ArgumentParser, *, sub: bool) -> None:
    """Options accepted before and after the command name (after it, they override)."""

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if sub else value

    env = os.environ.get
    group = parser.add_argument_group("store and output options")
    group.add_argument(
        "--bucket", default=default(env("S3CACHE_BUCKET")), help="bucket ($S3CACHE_BUCKET)"
    )
    group.add_argument(
        "--prefix",
        default=default(env("S3CACHE_PREFIX", "")),
        help="key prefix of the cache ($S3CACHE_PREFIX; default: none, the whole bucket)",
    )
    group.add_argument(
        "--endpoint-url",
        default=default(env("S3CACHE_ENDPOINT_URL")),
        help="S3-compatible endpoint, e.g. http://localhost:9000 ($S3CACHE_ENDPOINT_URL)",
    )
    group.add_argument("--region", default=default(None), help="region name")
    group.add_argument("--profile", default=default(None), help="AWS shared-config profile")
    group.add_argument(
        "--timeout",
        type=_seconds,
        default=default(10.0),
        help="deadline per request, seconds (default 10)",
    )
    group.add_argument(
        "--concurrency",
        type=_positive_int,
        default=default(32),
        help="requests in flight at most (default 32)",
    )
    group.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help="machine-readable JSON output",
    )
    group.add_argument(
        "--plain",
        action="store_true",
        default=default(bool(env("S3CACHE_PLAIN"))),
        help="plain text, no tables or progress bars ($S3CACHE_PLAIN)",
    )
    group.add_argument(
        "--debug",
        action="store_true",
        default=default(False),
        help="show tracebacks",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; option defaults come from the environment at call time."""
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="s3cache", description=_DESCRIPTION, epilog=_EPILOG, formatter_class=fmt
    )
    _add_common(parser, sub=False)
    common = argparse.ArgumentParser(add_help=False)
    _add_common(common, sub=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, help_text: str, description: str | None = None) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            parents=[common],
            help=help_text,
            description=description or help_text,
            formatter_class=fmt,
        )

    add(
        "check",
        "doctor: endpoint, credentials, bucket, list/put/get/delete, conditional writes, "
        "clock skew, lifecycle rule",
    )

    ls = add("ls", "list entries with size, age, ttl and an expired flag (one HEAD each)")
    ls.add_argument("sub_prefix", nargs="?", default="", metavar="PREFIX", help="under the prefix")
    ls.add_argument(
        "--limit", type=_count, default=1000, help="at most N entries (default 1000; 0: all)"
    )
    ls.add_argument(
        "--page-size",
        type=_positive_int,
        default=_maintenance.DEFAULT_BATCH,
        help=f"entries inspected concurrently per batch (default {_maintenance.DEFAULT_BATCH})",
    )

    get = add("get", "print an entry's value as JSON (bytes as a hex preview)")
    get.add_argument("key", metavar="KEY")

    put = add("set", "store a value")
    put.add_argument("key", metavar="KEY")
    put.add_argument(
        "value", metavar="VALUE", help="JSON text, or @FILE to read JSON from a file (@- stdin)"
    )
    put.add_argument("--ttl", type=_seconds, default=None, help="seconds until it expires")

    delete = add("delete", "delete an entry")
    delete.add_argument("key", metavar="KEY")

    stats = add(
        "stats",
        "entries, bytes and the expired share under the prefix",
        "Entries and bytes under the prefix (from the full listing), and the share of expired "
        "entries. Judging expiry takes one HEAD per entry, so on large caches the share is "
        "estimated from a uniform random sample (--sample) and the output says so.",
    )
    stats.add_argument(
        "--sample",
        type=_positive_int,
        default=_maintenance.DEFAULT_SAMPLE,
        help=f"entries inspected for the expired share (default {_maintenance.DEFAULT_SAMPLE})",
    )

    for name, help_text, description in (
        (
            "clear",
            "delete everything under the prefix",
            "Delete every object under the prefix, with a progress bar. An empty prefix (the "
            "whole bucket) is refused unless --all-bucket is given.",
        ),
        ("purge-expired", "delete expired entries under the prefix", _PURGE_HELP),
    ):
        cmd = add(name, help_text, description)
        cmd.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
        cmd.add_argument("--dry-run", action="store_true", help="count, delete nothing")
        cmd.add_argument(
            "--all-bucket", action="store_true", help="allow an empty prefix: the whole bucket"
        )
        if name == "purge-expired":
            cmd.add_argument(
                "--page-size",
                type=_positive_int,
                default=_maintenance.DEFAULT_BATCH,
                help="entries inspected concurrently per batch "
                f"(default {_maintenance.DEFAULT_BATCH})",
            )

    lifecycle = add("lifecycle", "show, set or remove the lifecycle rule", _LIFECYCLE_HELP)
    actions = lifecycle.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser(
        "show", parents=[common], help="rules that reach the prefix", formatter_class=fmt
    )
    lc_set = actions.add_parser(
        "set",
        parents=[common],
        help="expire objects under the prefix after N days",
        description=_LIFECYCLE_HELP,
        formatter_class=fmt,
    )
    lc_set.add_argument("--days", type=_positive_int, required=True, help="whole days, >= 1")
    lc_set.add_argument(
        "--all-bucket", action="store_true", help="allow an empty prefix: the whole bucket"
    )
    actions.add_parser(
        "remove", parents=[common], help="remove s3cache's rule for the prefix", formatter_class=fmt
    )
    return parser


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


def _confirm(question: str) -> None:
    """Ask on a terminal; refuse (usage error) when stdin is not one."""
    if not sys.stdin.isatty():
        raise UsageError("not deleting without confirmation: stdin is not a terminal; pass --yes")
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    if sys.stdin.readline().strip().lower() not in ("y", "yes"):
        raise _Declined


def _session(profile: str | None) -> Any:
    """An AioSession for ``--profile``, or None for the library's default session."""
    if profile is None:
        return None
    from aiobotocore.session import AioSession
    from botocore.exceptions import ProfileNotFound

    session = AioSession(profile=profile)
    try:
        session.get_scoped_config()
    except ProfileNotFound:
        raise UsageError(f"no AWS profile named {profile!r} in the shared config files") from None
    return session


def _prepare(args: argparse.Namespace) -> AsyncS3Cache:
    """Validate everything that needs no request, ask for confirmation; build the cache."""
    if not args.bucket:
        raise UsageError("no bucket: pass --bucket or set S3CACHE_BUCKET")
    try:
        cache = AsyncS3Cache(
            args.bucket,
            prefix=args.prefix,
            endpoint_url=args.endpoint_url or None,
            region_name=args.region,
            session=_session(args.profile),
            timeout=args.timeout,
            max_concurrency=args.concurrency,
            on_error="raise",
        )
        if getattr(args, "key", None) is not None:
            _format.object_key(cache.prefix, args.key)
        if args.command == "set":
            args.ttl = _format.normalize_ttl(args.ttl)
            args.value = _read_value(args.value)
        if args.command == "ls":
            _maintenance._scan_prefix(cache, args.sub_prefix)
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None
    scope = args.command in ("clear", "purge-expired") or (
        args.command == "lifecycle" and args.action == "set"
    )
    if scope and not cache.prefix and not args.all_bucket:
        raise UsageError(
            f"refusing to {args.command} with an empty prefix: that is the whole bucket "
            f"{cache.bucket!r}; pass --prefix, or --all-bucket if you mean it"
        )
    if args.command in ("clear", "purge-expired") and not args.yes and not args.dry_run:
        what = "delete EVERY object" if args.command == "clear" else "delete the expired entries"
        _confirm(f"{what} under {_where(cache)}?")
    return cache


async def _run(cache: AsyncS3Cache, args: argparse.Namespace, ui: UI) -> int:
    async with cache:
        return await _COMMANDS[args.command](cache, args, ui)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 failure, 2 bad usage)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or bad usage (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        cache = _prepare(args)
        return asyncio.run(_run(cache, args, UI(plain=args.plain)))
    except UsageError as exc:
        print(f"s3cache: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except _Declined:
        print("s3cache: not confirmed; nothing was deleted", file=sys.stderr)
        return EXIT_FAILURE
    except NotSupportedError as exc:
        _debug(args)
        if args.command == "lifecycle":
            hint = (
                "this server does not support bucket lifecycle rules; "
                "run `s3cache purge-expired` on a schedule instead"
            )
        else:
            hint = "this server does not support that operation"
        print(f"s3cache: {hint} ({exc})", file=sys.stderr)
        return EXIT_FAILURE
    except S3CacheError as exc:
        _debug(args)
        print(f"s3cache: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("s3cache: interrupted", file=sys.stderr)
        return _INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - a bug: one line unless --debug
        _debug(args)
        hint = "" if args.debug else " (--debug shows the traceback)"
        print(f"s3cache: internal error: {type(exc).__name__}: {exc}{hint}", file=sys.stderr)
        return EXIT_FAILURE


def _debug(args: argparse.Namespace) -> None:
    if args.debug:
        traceback.print_exc(file=sys.stderr)
