"""Running one command: parse the arguments, check what needs no request, ask for
confirmation, build the :class:`AsyncS3Cache`, run the handler with ``asyncio.run``, and turn
every way it can end into one exit status and at most one line on stderr."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any, Final

from s3cache import AsyncS3Cache, _signing, _url, maintenance
from s3cache._bucket_options import BUCKET_ARGS
from s3cache.cli._parser import SIGNING_KEY_VARIABLE, build_parser
from s3cache.cli._spec import EXIT_ERROR, EXIT_INTERRUPTED, Spec, UsageError
from s3cache.cli._ui import UI, where
from s3cache.errors import BatchError, NotSupportedError, S3CacheError

__all__ = ["main", "prepare"]

_RERUN: Final = "; run the same command again to finish"
#: The command line's own defaults, under ``$S3CACHE_URL`` (which may set them too).
CLI_DEFAULTS: Final = {"prefix": "", "timeout": 10.0, "max_concurrency": 32}


class _Declined(Exception):
    """The user answered no at a confirmation prompt."""


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


def _signing_keys(variable: str | None) -> list[bytes] | None:
    """The signing keys in the environment variable ``variable`` (``--signing-key-env``), or in
    ``$S3CACHE_SIGNING_KEY`` when it is set; None for none. Never shows a key."""
    text = os.environ.get(variable or SIGNING_KEY_VARIABLE, "").strip()
    if not text:
        if variable is not None:
            raise UsageError(f"--signing-key-env {variable}: that environment variable is not set")
        return None
    return _signing.decode_keys(text, f"${variable or SIGNING_KEY_VARIABLE}")


def _cache_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The cache's keyword arguments: the flags (and ``S3CACHE_<OPTION>`` variables, their
    defaults) over ``$S3CACHE_URL`` over :data:`CLI_DEFAULTS`; ValueError for a bad URL."""
    given = {
        "bucket": getattr(args, "new_bucket", None) or args.bucket,  # create-bucket BUCKET
        "prefix": args.prefix,
        "endpoint_url": args.endpoint_url or None,
        "region_name": args.region,
        "timeout": args.timeout,
        "max_concurrency": args.concurrency,
        **{name: getattr(args, name) for name in BUCKET_ARGS},
    }
    kwargs = _url.merge(CLI_DEFAULTS, _url.from_environ(os.environ), given)
    kwargs["on_error"] = "raise"  # a command reports every failure
    return kwargs


def prepare(args: argparse.Namespace) -> AsyncS3Cache:
    """Validate everything that needs no request, ask for confirmation; build the cache."""
    spec: Spec = args.spec
    try:
        kwargs = _cache_kwargs(args)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not kwargs.get("bucket"):
        raise UsageError("no bucket: pass --bucket or set S3CACHE_BUCKET (or S3CACHE_URL)")
    args.bucket = kwargs["bucket"]
    try:
        cache = AsyncS3Cache(
            **kwargs,
            session=_session(args.profile),
            signing_key=_signing_keys(args.signing_key_env),
        )
        if spec.check is not None:
            spec.check(cache, args)
        if spec.scope is not None:
            maintenance.check_scope(cache, args.all_bucket, spec.scope)
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None
    if spec.confirm and not args.yes and not args.dry_run:
        _confirm(f"{spec.confirm} under {where(cache)}?")
    return cache


async def _run(cache: AsyncS3Cache, args: argparse.Namespace, ui: UI) -> int:
    """Run the chosen command's handler with the cache open; closed however it ends."""
    spec: Spec = args.spec
    assert spec.run is not None  # a command with actions always has one chosen
    async with cache:
        return await spec.run(cache, args, ui)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status: 0 success or found, 1 missing, 2 error
    (an S3 failure, bad usage), 130 interrupted."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help or --version (0), or bad usage (2)
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    ui = UI(plain=args.plain)
    try:
        cache = prepare(args)
        return asyncio.run(_run(cache, args, ui))
    except KeyboardInterrupt:
        so_far = f" while {ui.so_far}" if ui.so_far else ""
        rerun = _RERUN if ui.so_far and _deletes(args) else ""
        print(f"s3cache: interrupted{so_far}{rerun}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - every failure ends in one line on stderr
        print(f"s3cache: {_failure(exc, args, ui)}", file=sys.stderr)
        return EXIT_ERROR


def _failure(exc: Exception, args: argparse.Namespace, ui: UI) -> str:
    """The line that says why the command failed (after the traceback, with ``--debug``, for
    failures that are not the user's input)."""
    if isinstance(exc, UsageError):
        return f"error: {exc}"
    if isinstance(exc, _Declined):
        return "not confirmed; nothing was deleted"
    if args.debug:
        traceback.print_exc(file=sys.stderr)
    if isinstance(exc, NotSupportedError):
        return f"{args.spec.unsupported} ({exc})"
    if isinstance(exc, S3CacheError):
        so_far = f" ({ui.so_far})" if ui.so_far else ""
        rerun = _RERUN if isinstance(exc, BatchError) and _deletes(args) else ""
        return f"{exc}{so_far}{rerun}"
    hint = "" if args.debug else " (--debug shows the traceback)"
    return f"internal error: {type(exc).__name__}: {exc}{hint}"


def _deletes(args: argparse.Namespace) -> bool:
    """Whether the command deletes (rather than counts) under the prefix."""
    return bool(args.spec.confirm) and not args.dry_run
