"""The ``s3cache`` command line: check, inspect and clean a cache bucket.

The top layer: it parses arguments, builds an :class:`AsyncS3Cache`, runs one command with
``asyncio.run`` and prints. The commands are described in :mod:`s3cache.cli._commands`; the
operations themselves live in :mod:`s3cache.maintenance`. Tables and progress bars use ``rich``
when it is installed (``pip install s3cache-async[cli]``) and plain text otherwise, or with
``--plain`` / ``S3CACHE_PLAIN=1``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any, Final

from s3cache import maintenance
from s3cache._bucket_options import BUCKET_ARGS, CHECKSUMS, SSE_MODES, STORAGE_CLASSES
from s3cache._core import AsyncS3Cache
from s3cache._signing import decode_keys
from s3cache.cli._commands import (
    COMMANDS,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    Arg,
    Spec,
    UsageError,
    base64_key,
    positive_int,
    seconds,
    true_or_false,
)
from s3cache.cli._ui import UI, where
from s3cache.errors import BatchError, NotSupportedError, S3CacheError

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "UI",
    "build_parser",
    "main",
]

_RERUN: Final = "; run the same command again to finish"
#: Where the signing keys are read from without --signing-key-env.
SIGNING_KEY_VARIABLE: Final = "S3CACHE_SIGNING_KEY"

_DESCRIPTION = """\
Check, inspect and clean an s3cache store: a bucket and a key prefix on Amazon S3 or any
S3-compatible server. Credentials come from the standard AWS_* variables, the shared config
files, or --profile."""

_EPILOG = """\
environment:
  S3CACHE_BUCKET, S3CACHE_PREFIX, S3CACHE_ENDPOINT_URL   defaults for --bucket, --prefix,
                                                         --endpoint-url
  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE, AWS_DEFAULT_REGION, ...
  S3CACHE_SSE, S3CACHE_SSE_KMS_KEY_ID, S3CACHE_SSE_BUCKET_KEY_ENABLED,
  S3CACHE_SSE_CUSTOMER_KEY, S3CACHE_EXPECTED_BUCKET_OWNER, S3CACHE_CHECKSUM,
  S3CACHE_STORAGE_CLASS, S3CACHE_REQUEST_PAYER           defaults for the company-bucket options
  S3CACHE_SIGNING_KEY                                    signing key(s), base64, commas between
                                                         (or the variable --signing-key-env names)
  S3CACHE_PLAIN=1                                        plain output even when rich is installed

exit status:
  0    success
  1    an S3 failure or a failed check (a one-line cause on stderr; --debug for the traceback);
       also `get` of a key with no live entry, and a declined confirmation. A clear or
       purge-expired that stopped part-way says what it had deleted ("deleted 1,000 of at
       least 1,000; stopped after '<key>': ...SlowDown"); running it again finishes the job
  2    bad usage (unknown option, bad key, ttl or JSON value, missing --yes off a terminal)
  130  interrupted (Ctrl-C): the requests in flight are dropped, and one line on stderr says
       how far the command got

progress:
  long commands (ls, stats, clear, purge-expired) show their progress on stderr when it is
  a terminal, and nothing otherwise"""


class _Declined(Exception):
    """The user answered no at a confirmation prompt."""


# -- arguments -------------------------------------------------------------------------------


def _store_options() -> tuple[Arg, ...]:
    """Options accepted before and after the command name; defaults read from the environment
    now (``S3CACHE_*``)."""
    env = os.environ.get
    return (
        Arg(("--bucket",), {"default": env("S3CACHE_BUCKET"), "help": "bucket ($S3CACHE_BUCKET)"}),
        Arg(
            ("--prefix",),
            {
                "default": env("S3CACHE_PREFIX", ""),
                "help": "key prefix of the cache "
                "($S3CACHE_PREFIX; default: none, the whole bucket)",
            },
        ),
        Arg(
            ("--endpoint-url",),
            {
                "default": env("S3CACHE_ENDPOINT_URL"),
                "help": "S3-compatible endpoint, e.g. http://localhost:9000 "
                "($S3CACHE_ENDPOINT_URL)",
            },
        ),
        Arg(("--region",), {"default": None, "help": "region name"}),
        Arg(("--profile",), {"default": None, "help": "AWS shared-config profile"}),
        Arg(
            ("--timeout",),
            {
                "type": seconds,
                "default": 10.0,
                "help": "deadline per request, seconds (default 10)",
            },
        ),
        Arg(
            ("--concurrency",),
            {
                "type": positive_int,
                "default": 32,
                "help": "requests in flight at most (default 32)",
            },
        ),
        *_bucket_options(),
        Arg(
            ("--json",),
            {"action": "store_true", "default": False, "help": "machine-readable JSON output"},
        ),
        Arg(
            ("--plain",),
            {
                "action": "store_true",
                "default": bool(env("S3CACHE_PLAIN")),
                "help": "plain text, no tables or progress bars ($S3CACHE_PLAIN)",
            },
        ),
        Arg(("--debug",), {"action": "store_true", "default": False, "help": "show tracebacks"}),
    )


def _from_env(flag: str, help_text: str, **options: Any) -> Arg:
    """An option whose default is the environment variable named after it (``--sse`` reads
    ``S3CACHE_SSE``), named in its help."""
    variable = "S3CACHE_" + flag.lstrip("-").replace("-", "_").upper()
    default = os.environ.get(variable) or None
    return Arg((flag,), {"default": default, "help": f"{help_text} (${variable})", **options})


def _bucket_options() -> tuple[Arg, ...]:
    """The company-bucket options (encryption, owner, checksum, class, payer)."""
    return (
        _from_env("--sse", "server-side encryption of writes (default: the bucket's)",
                  choices=SSE_MODES),
        _from_env("--sse-kms-key-id", "KMS key id, ARN or alias for --sse aws:kms",
                  metavar="KEY"),
        _from_env("--sse-bucket-key-enabled", "S3 Bucket Keys for KMS writes",
                  type=true_or_false, metavar="true|false"),
        _from_env("--sse-customer-key", "SSE-C key: 32 bytes, base64 (prefer the variable: "
                  "a flag shows in the process list)", type=base64_key, metavar="BASE64"),
        _from_env("--expected-bucket-owner", "refuse a bucket of another account",
                  metavar="ACCOUNT"),
        _from_env("--checksum", "checksum sent with writes, verified on reads",
                  choices=CHECKSUMS),
        _from_env("--storage-class", "storage class of writes, e.g. STANDARD_IA",
                  choices=sorted(STORAGE_CLASSES), metavar="CLASS"),
        _from_env("--request-payer", "for requester-pays buckets", choices=("requester",)),
        Arg(("--signing-key-env",), {"default": None, "metavar": "NAME", "help": "the "
            "environment variable holding the signing key(s): base64, commas between keys, the "
            f"first signs (default: ${SIGNING_KEY_VARIABLE} when set)"}),
    )  # fmt: skip


def _add_store_options(parser: argparse.ArgumentParser, *, after_command: bool) -> None:
    """The store and output options; given after the command name, they override."""
    group = parser.add_argument_group("store and output options")
    for option in _store_options():
        options = dict(option.options)
        if after_command:
            options["default"] = argparse.SUPPRESS
        group.add_argument(*option.flags, **options)


def _add_command(commands: Any, spec: Spec, common: argparse.ArgumentParser, dest: str) -> None:
    """A sub-parser for ``spec``: its arguments, then those its scope and confirmation imply."""
    parser: argparse.ArgumentParser = commands.add_parser(
        spec.name,
        parents=[common],
        help=spec.help,
        description=spec.description or spec.help,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(spec=spec)
    for option in spec.args:
        parser.add_argument(*option.flags, **option.options)
    if spec.confirm:
        parser.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
        parser.add_argument("--dry-run", action="store_true", help="count, delete nothing")
    if spec.scope:
        parser.add_argument(
            "--all-bucket", action="store_true", help="allow an empty prefix: the whole bucket"
        )
    if spec.actions:
        actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
        for action in spec.actions:
            _add_command(actions, action, common, "action")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, built from :data:`COMMANDS`; defaults come from the environment."""
    parser = argparse.ArgumentParser(
        prog="s3cache",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_store_options(parser, after_command=False)
    common = argparse.ArgumentParser(add_help=False)
    _add_store_options(common, after_command=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for spec in COMMANDS:
        _add_command(commands, spec, common, "command")
    return parser


# -- running ---------------------------------------------------------------------------------


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
    return decode_keys(text, f"${variable or SIGNING_KEY_VARIABLE}")


def _prepare(args: argparse.Namespace) -> AsyncS3Cache:
    """Validate everything that needs no request, ask for confirmation; build the cache."""
    spec: Spec = args.spec
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
            signing_key=_signing_keys(args.signing_key_env),
            **{name: getattr(args, name) for name in BUCKET_ARGS},
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
    spec: Spec = args.spec
    assert spec.run is not None  # a command with actions always has one chosen
    async with cache:
        return await spec.run(cache, args, ui)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 failure, 2 bad usage, 130
    interrupted)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or bad usage (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    ui = UI(plain=args.plain)
    try:
        cache = _prepare(args)
        return asyncio.run(_run(cache, args, ui))
    except UsageError as exc:
        print(f"s3cache: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except _Declined:
        print("s3cache: not confirmed; nothing was deleted", file=sys.stderr)
        return EXIT_FAILURE
    except NotSupportedError as exc:
        _debug(args)
        print(f"s3cache: {args.spec.unsupported} ({exc})", file=sys.stderr)
        return EXIT_FAILURE
    except S3CacheError as exc:
        _debug(args)
        so_far = f" ({ui.so_far})" if ui.so_far else ""
        rerun = _RERUN if isinstance(exc, BatchError) and _deletes(args) else ""
        print(f"s3cache: {exc}{so_far}{rerun}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        so_far = f" while {ui.so_far}" if ui.so_far else ""
        rerun = _RERUN if ui.so_far and _deletes(args) else ""
        print(f"s3cache: interrupted{so_far}{rerun}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - a bug: one line unless --debug
        _debug(args)
        hint = "" if args.debug else " (--debug shows the traceback)"
        print(f"s3cache: internal error: {type(exc).__name__}: {exc}{hint}", file=sys.stderr)
        return EXIT_FAILURE


def _deletes(args: argparse.Namespace) -> bool:
    """Whether the command deletes (rather than counts) under the prefix."""
    return bool(args.spec.confirm) and not args.dry_run


def _debug(args: argparse.Namespace) -> None:
    if args.debug:
        traceback.print_exc(file=sys.stderr)
