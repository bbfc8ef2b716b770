"""The argument parser of the ``s3cache`` command line, built from :data:`COMMANDS`.

The store and output options are accepted before and after the command name (after it, they
override); their defaults come from the environment (``S3CACHE_*``) when the parser is built.
"""

from __future__ import annotations

import argparse
import os
from importlib import metadata
from typing import Any, Final

import s3cache
from s3cache._bucket_options import CHECKSUMS, SSE_MODES, STORAGE_CLASSES
from s3cache.cli._commands import COMMANDS
from s3cache.cli._spec import Arg, Spec
from s3cache.cli._types import base64_key, positive_int, seconds, true_or_false

__all__ = ["DISTRIBUTION", "SIGNING_KEY_VARIABLE", "build_parser", "version"]

#: The distribution ``--version`` names (what ``pip install`` takes).
DISTRIBUTION: Final = "s3cache-async"
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
  S3CACHE_URL=s3://bucket/prefix?endpoint_url=...        the cache as a URL (see the README); the
                                                         flags and variables above win over it

exit status (as grep: found, missing, error):
  0    success; `get`, `exists` or `delete` found a live entry, `check` a usable store
  1    missing: `get`, `exists` or `delete` found no live entry under the key, `lifecycle
       remove` no rule to remove, `check` a required step failing
  2    error: an S3 failure (a one-line cause on stderr; --debug for the traceback), bad usage
       (unknown option, bad key, ttl or value, missing --yes off a terminal), a declined
       confirmation, an internal error. A clear or purge-expired that stopped part-way says
       what it had deleted ("deleted 1,000 of at least 1,000; stopped after '<key>':
       ...SlowDown"); running it again finishes the job
  130  interrupted (Ctrl-C): the requests in flight are dropped, and one line on stderr says
       how far the command got

progress:
  long commands (ls, stats, clear, purge-expired) show their progress on stderr when it is
  a terminal, and nothing otherwise"""


def version() -> str:
    """``s3cache-async 0.1.0``: the installed distribution's version, or the package's own
    ``__version__`` when it runs uninstalled (from a checkout on ``PYTHONPATH``)."""
    try:
        number = metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        number = s3cache.__version__
    return f"{DISTRIBUTION} {number}"


class _PrintVersion(argparse.Action):
    """``--version``: prints :func:`version` and exits 0; the version is looked up only then."""

    def __init__(self, option_strings: list[str], dest: str, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        print(version())
        parser.exit()


def _store_options() -> tuple[Arg, ...]:
    """Options accepted before and after the command name; defaults read from the environment
    now (``S3CACHE_*``)."""
    env = os.environ.get
    return (
        Arg(("--bucket",), {"default": env("S3CACHE_BUCKET"), "help": "bucket ($S3CACHE_BUCKET)"}),
        Arg(
            ("--prefix",),
            {
                "default": env("S3CACHE_PREFIX"),  # None: $S3CACHE_URL's, else none
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
            {"type": seconds, "default": None, "help": "deadline per request, s (default 10)"},
        ),
        Arg(
            ("--concurrency",),
            {
                "type": positive_int,
                "default": None,  # CLI_DEFAULTS in _main, under $S3CACHE_URL
                "help": "requests in flight at most (default 32)",
            },
        ),
        *_bucket_options(),
        Arg(
            ("--json",),
            {
                "action": "store_true",
                "default": False,
                "help": "machine-readable JSON output (for `set`: VALUE or the file is JSON too)",
            },
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


def _add_command(commands: Any, spec: Spec, common: argparse.ArgumentParser) -> None:
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
    if spec.one_of:  # after the other arguments: a positional among them comes last
        exclusive = parser.add_mutually_exclusive_group(required=True)
        for option in spec.one_of:
            exclusive.add_argument(*option.flags, **option.options)
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
            _add_command(actions, action, common)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, built from :data:`COMMANDS`; defaults come from the environment."""
    parser = argparse.ArgumentParser(
        prog="s3cache",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=_PrintVersion, help="print the version and exit")
    _add_store_options(parser, after_command=False)
    common = argparse.ArgumentParser(add_help=False)
    _add_store_options(common, after_command=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for spec in COMMANDS:
        _add_command(commands, spec, common)
    return parser
