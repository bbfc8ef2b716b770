"""The commands on tags: ``invalidate TAG...`` and ``tags`` (see "Invalidation" in the README).

``invalidate`` is :meth:`AsyncS3Cache.invalidate`: one PUT per tag, its tags checked before
any request. ``tags`` lists the tag records under the prefix with the time each tag was last
invalidated (:func:`s3cache.maintenance.tag_records`).
"""

from __future__ import annotations

import argparse

from s3cache import AsyncS3Cache, maintenance
from s3cache._tags import normalize_tags
from s3cache.cli._spec import EXIT_OK
from s3cache.cli._ui import UI

__all__ = ["check_invalidate", "cmd_invalidate", "cmd_tags"]


def check_invalidate(cache: AsyncS3Cache, args: argparse.Namespace) -> None:
    """Refuse a tag no record can have (``ValueError``), before any request."""
    for tag in args.tags:
        normalize_tags([tag], "invalidate")


async def cmd_invalidate(cache: AsyncS3Cache, args: argparse.Namespace, ui: UI) -> int:
    """Invalidate every entry carrying one of the tags (a failure raises: exit 2)."""
    await cache.invalidate(*args.tags)
    tags = sorted(set(args.tags))
    if args.json:
        ui.json({"invalidated": tags, "prefix": cache.prefix})
    else:
        ui.line(
            f"invalidated {', '.join(map(repr, tags))} under s3://{cache.bucket}/{cache.prefix}"
        )
    return EXIT_OK


async def cmd_tags(cache: AsyncS3Cache, args: argparse.Namespace, ui: UI) -> int:
    """List the tag records under the prefix, each with when its tag was last invalidated."""
    records = await maintenance.tag_records(cache)
    if args.json:
        ui.json([r.to_json() for r in records])
        return EXIT_OK
    if not records:
        ui.line(f"no tag records under s3://{cache.bucket}/{cache.prefix}")
    for record in records:
        ui.line(f"{record.tag}\tinvalidated {record.to_json()['invalidated_at_iso']}")
    return EXIT_OK
