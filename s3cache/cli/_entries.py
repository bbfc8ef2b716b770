"""The commands on one key: ``get``, ``exists``, ``set`` and ``delete``, with their checks.

``get``, ``exists`` and ``delete`` exit 1 when there is no live entry under the key, as grep
exits 1 when nothing matched; ``set`` stores what :mod:`s3cache.cli._values` read.
"""

from __future__ import annotations

import argparse
import sys

from s3cache import AsyncS3Cache, _format
from s3cache.cli import _values
from s3cache.cli._spec import EXIT_MISSING, EXIT_OK
from s3cache.cli._ui import UI

__all__ = ["check_key", "check_set", "cmd_delete", "cmd_exists", "cmd_get", "cmd_set"]


def check_key(cache: AsyncS3Cache, args: argparse.Namespace) -> None:
    """Refuse a key no entry can have (``ValueError``), before any request."""
    _format.object_key(cache.prefix, args.key)


def check_set(cache: AsyncS3Cache, args: argparse.Namespace) -> None:
    """Check the key and the ttl, and read the value ``set`` stores (into ``args.value``)."""
    check_key(cache, args)
    args.ttl = _format.normalize_ttl(args.ttl)
    args.remark = _values.old_file_syntax(args)
    args.value = _values.read_value(args)


async def cmd_get(cache: AsyncS3Cache, args: argparse.Namespace, ui: UI) -> int:
    """Print the value under the key; exit 1 when there is none."""
    missing = object()
    value = await cache.get(args.key, missing)
    if value is missing:
        print(f"s3cache: no live entry for key {args.key!r}", file=sys.stderr)
        return EXIT_MISSING
    if args.json:
        ui.json(_values.as_json(args.key, value))
    else:
        _values.show(value, ui)
    return EXIT_OK


async def cmd_exists(cache: AsyncS3Cache, args: argparse.Namespace, ui: UI) -> int:
    """Say whether a live entry is stored under the key: exit 0 if so, 1 if not."""
    found = await cache.exists(args.key)
    return _answer(args, ui, "exists", found, f"{args.key!r} has a live entry")


async def cmd_set(cache: AsyncS3Cache, args: argparse.Namespace, ui: UI) -> int:
    """Store the value (read and checked by :func:`check_set`) under the key."""
    await cache.set(args.key, args.value, ttl=args.ttl)
    okey = _format.object_key(cache.prefix, args.key)
    stored_as = _values.kind(args.value)
    if args.json:
        ui.json({"key": args.key, "object_key": okey, "ttl": args.ttl, "stored_as": stored_as})
    else:
        ttl = f", ttl {args.ttl:g} s" if args.ttl is not None else ", no ttl"
        ui.line(f"stored {args.key!r} ({stored_as}) at s3://{cache.bucket}/{okey}{ttl}")
    if args.remark:
        ui.note(args.remark)
    return EXIT_OK


async def cmd_delete(cache: AsyncS3Cache, args: argparse.Namespace, ui: UI) -> int:
    """Delete the entry under the key; exit 1 when there was no live one."""
    deleted = await cache.delete(args.key)
    return _answer(args, ui, "deleted", deleted, f"deleted {args.key!r}")


def _answer(args: argparse.Namespace, ui: UI, field: str, found: bool, said: str) -> int:
    """Print whether a command on the key found its entry (``field`` in JSON, ``said`` as text)
    and exit 0 if it did, 1 if not."""
    if args.json:
        ui.json({"key": args.key, field: found})
    else:
        ui.line(said if found else f"no live entry for {args.key!r}")
    return EXIT_OK if found else EXIT_MISSING
