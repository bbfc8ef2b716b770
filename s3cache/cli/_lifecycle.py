"""The ``lifecycle`` command: show, set or remove the S3 lifecycle rule s3cache manages for the
prefix, which is what reclaims the storage of expired entries in whole days."""

from __future__ import annotations

import argparse
from typing import Final

from s3cache import AsyncS3Cache, maintenance
from s3cache.cli._spec import EXIT_MISSING, EXIT_OK
from s3cache.cli._ui import UI, plural, scoped, where

__all__ = ["HELP", "NO_LIFECYCLE", "cmd_remove", "cmd_set", "cmd_show"]

HELP: Final = """\
An S3 lifecycle rule deletes objects under the prefix N whole days after they were written.
Lifecycles act in days, not seconds: S3 rounds to the next midnight UTC and deletes in the
background, often a day or more later. Per-entry TTLs act on every read instead: an expired entry
is a miss at once, judged on the server's clock, but nothing deletes its object. So a rule is
what reclaims the storage. Choose N at least as long as your longest TTL (rounded up to days):
an object the rule deletes while its TTL still runs simply becomes a miss early. Entries stored
without a TTL are deleted after N days as well. For cleanup finer than days, run
`s3cache purge-expired` on a schedule. `set` and `remove` touch only the rule s3cache manages
for this prefix (ID "s3cache:<prefix>"); other rules of the bucket are kept. `remove` exits 1
when there was no such rule."""

NO_LIFECYCLE: Final = (
    "this server does not support bucket lifecycle rules; "
    "run `s3cache purge-expired` on a schedule instead"
)


async def cmd_set(cache: AsyncS3Cache, args: argparse.Namespace, ui: UI) -> int:
    """Set the rule: objects under the prefix are deleted ``--days`` after they were written."""
    rule_id = await maintenance.lifecycle_set(cache, args.days, all_bucket=args.all_bucket)
    if args.json:
        ui.json({"id": rule_id, "prefix": cache.prefix, "days": args.days})
    else:
        ui.line(
            f"rule {rule_id!r} set: objects under {where(cache)} are deleted "
            f"{plural(args.days, 'day')} after they were written"
        )
    return EXIT_OK


async def cmd_remove(cache: AsyncS3Cache, args: argparse.Namespace, ui: UI) -> int:
    """Remove s3cache's rule for the prefix; exit 1 when there was none."""
    removed = await maintenance.lifecycle_remove(cache)
    rule_id = maintenance.lifecycle_rule_id(cache.prefix)
    if args.json:
        ui.json({"id": rule_id, "removed": removed})
    else:
        ui.line(f"removed rule {rule_id!r}" if removed else f"no rule {rule_id!r} to remove")
    return EXIT_OK if removed else EXIT_MISSING


async def cmd_show(cache: AsyncS3Cache, args: argparse.Namespace, ui: UI) -> int:
    """The bucket's rules that reach the prefix, s3cache's own marked."""
    rules = await maintenance.lifecycle_rules(cache)
    if args.json:
        ui.json(scoped(cache, {"rules": [rule.to_json() for rule in rules]}))
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
                plural(r.days, "day") if r.days is not None else "(not an expiration by age)",
                r.covers + (", filtered" if r.filtered else ""),
                r.prefix or "(whole bucket)",
            ]
            for r in rules
        ]
        columns = [("ID", False), ("STATUS", False), ("EXPIRE AFTER", False)]
        ui.table([*columns, ("COVERS", False), ("PREFIX", False)], rows)
    return EXIT_OK
