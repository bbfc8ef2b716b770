"""The commands of the ``s3cache`` command line, each described once in :data:`COMMANDS`.

Adding a command is adding one :class:`~s3cache.cli._spec.Spec` here; its handler lives with
the commands of its kind (:mod:`._entries`: one key; :mod:`._prefix`: everything under the
prefix; :mod:`._lifecycle`: the bucket's lifecycle rule).
"""

from __future__ import annotations

from typing import Final

from s3cache import maintenance
from s3cache.cli import _entries, _lifecycle, _prefix, _tags
from s3cache.cli._spec import Spec, arg
from s3cache.cli._types import count, positive_int, positive_seconds, seconds

__all__ = ["COMMANDS"]

#: ``stats --watch``'s default interval, in seconds.
WATCH_S: Final = 5.0

_PURGE_HELP = """\
Delete the entries under the prefix that a read would treat as expired. Every entry is looked
at with one HEAD request (concurrently) and judged by its ttl against the server's clock, the
same rule reads apply; expired ones are deleted in batches of up to 1,000. Leases and locks
(under <prefix>.s3cache/) that were released or have run out go too. With --invalidated, so do
the entries invalidated by a tag (the tag records are listed first; each entry is judged by the
HEAD it gets anyway)."""

_SET_HELP = """\
Store a value under KEY. VALUE is stored as a string, as it is; with --json it is read as JSON
(and the confirmation printed is JSON too). --file PATH reads the value from a file instead
('-': stdin): its bytes are stored as bytes, unless --text (stored as a string, UTF-8) or
--json (the JSON value it holds). `get` prints a string as it is, bytes unchanged (a preview on
a terminal) and other JSON values as JSON."""

_GET_HELP = """\
Print the value under KEY: a string as it is (and a newline), any other JSON value as indented
JSON, bytes unchanged when stdout is a pipe or a file (on a terminal, a hex preview, so that a
binary value cannot garble it). With --json: {"key", "value"}, or for bytes {"key", "bytes",
"base64"}. Exits 1, with one line on stderr, when there is no live entry under KEY."""

_KEY = arg("key", metavar="KEY")
_PAGE_SIZE = arg(
    "--page-size",
    type=positive_int,
    default=maintenance.DEFAULT_BATCH,
    help="entries inspected (one HEAD each, --concurrency at a time) per batch "
    f"(default {maintenance.DEFAULT_BATCH})",
)

_KEY_COMMANDS: Final = (
    Spec(
        "get",
        "print an entry's value (exit 1 if there is none)",
        _entries.cmd_get,
        description=_GET_HELP,
        args=(_KEY,),
        check=_entries.check_key,
    ),
    Spec(
        "exists",
        "exit 0 if a live entry is stored under KEY, 1 if not",
        _entries.cmd_exists,
        args=(_KEY,),
        check=_entries.check_key,
    ),
    Spec(
        "set",
        "store a value: a string, JSON with --json, or a file's contents with --file",
        _entries.cmd_set,
        description=_SET_HELP,
        args=(
            _KEY,
            arg("--text", action="store_true", help="with --file: store it as a string (UTF-8)"),
            arg("--ttl", type=seconds, default=None, help="seconds until it expires"),
        ),
        one_of=(
            arg("value", nargs="?", metavar="VALUE", help="a string (JSON text with --json)"),
            arg(
                "--file",
                metavar="PATH",
                help="read the value from PATH ('-': stdin), stored as bytes unless --text "
                "or --json",
            ),
        ),
        check=_entries.check_set,
    ),
    Spec(
        "delete",
        "delete an entry (exit 1 if there was none)",
        _entries.cmd_delete,
        args=(_KEY,),
        check=_entries.check_key,
    ),
)

_PREFIX_COMMANDS: Final = (
    Spec(
        "ls",
        "list entries with size, age, ttl and an expired flag (one HEAD each)",
        _prefix.cmd_ls,
        args=(
            arg("sub_prefix", nargs="?", default="", metavar="PREFIX", help="under the prefix"),
            arg(
                "--limit", type=count, default=1000, help="at most N entries (default 1000; 0: all)"
            ),
            _PAGE_SIZE,
        ),
        check=_prefix.check_ls,
    ),
    Spec(
        "stats",
        "entries, bytes and the expired share under the prefix",
        _prefix.cmd_stats,
        description="Entries and bytes under the prefix (from the full listing), the share "
        "of expired entries, and entries by age since written. Judging expiry takes one HEAD "
        "per entry, so on large caches the share is estimated from a uniform random sample "
        "(--sample) and the output says so. --watch repeats it: it watches the bucket (what "
        "every process of a fleet stored), not one process's counters, which live in that "
        "process (see stats() and s3cache.telemetry).",
        args=(
            arg(
                "--sample",
                type=positive_int,
                default=maintenance.DEFAULT_SAMPLE,
                help="entries inspected for the expired share "
                f"(default {maintenance.DEFAULT_SAMPLE})",
            ),
            arg(
                "--watch",
                type=positive_seconds,
                nargs="?",
                const=WATCH_S,
                default=None,
                metavar="SECONDS",
                help=f"again every SECONDS (default {WATCH_S:g}), with the change since the "
                "last round, until Ctrl-C (or --count rounds); with --json, one line a round",
            ),
            arg(
                "--count",
                type=count,
                default=0,
                metavar="N",
                help="with --watch: stop after N rounds (default 0: until Ctrl-C)",
            ),
        ),
        check=_prefix.check_stats,
    ),
    Spec(
        "clear",
        "delete everything under the prefix",
        _prefix.cmd_clear,
        description="Delete every object under the prefix, with a progress bar. An empty prefix "
        "(the whole bucket) is refused unless --all-bucket is given.",
        scope="clear",
        confirm="delete EVERY object",
    ),
    Spec(
        "purge-expired",
        "delete expired entries under the prefix",
        _prefix.cmd_purge,
        description=_PURGE_HELP,
        args=(
            _PAGE_SIZE,
            arg(
                "--invalidated",
                action="store_true",
                help="also delete the entries invalidated by a tag",
            ),
        ),
        scope="purge-expired",
        confirm="delete the expired entries",
    ),
)

_LIFECYCLE: Final = Spec(
    "lifecycle",
    "show, set or remove the lifecycle rule",
    description=_lifecycle.HELP,
    unsupported=_lifecycle.NO_LIFECYCLE,
    actions=(
        Spec(
            "show",
            "rules that reach the prefix",
            _lifecycle.cmd_show,
            unsupported=_lifecycle.NO_LIFECYCLE,
        ),
        Spec(
            "set",
            "expire objects under the prefix after N days",
            _lifecycle.cmd_set,
            description=_lifecycle.HELP,
            args=(arg("--days", type=positive_int, required=True, help="whole days, >= 1"),),
            scope="set a lifecycle rule",
            unsupported=_lifecycle.NO_LIFECYCLE,
        ),
        Spec(
            "remove",
            "remove s3cache's rule for the prefix (exit 1 if there was none)",
            _lifecycle.cmd_remove,
            unsupported=_lifecycle.NO_LIFECYCLE,
        ),
    ),
)

#: Every command, in the order ``--help`` lists them.
COMMANDS: Final[tuple[Spec, ...]] = (
    Spec(
        "check",
        "doctor: endpoint, credentials, bucket, list/put/get/delete, conditional create and "
        "replace, clock skew, lifecycle rule (exit 1 if the store is not usable)",
        _prefix.cmd_check,
        description="Run s3cache.maintenance.doctor(): every step of AsyncS3Cache.check() and "
        "more, one verdict per line, stopping at the first required failure. Exits 0 when "
        "the store is usable as a cache, 1 when a required step failed.",
    ),
    Spec(
        "create-bucket",
        "create the bucket (BUCKET, else --bucket) in the region; nothing if it is yours",
        _prefix.cmd_create_bucket,
        description="Create the bucket, idempotently, in --region (the client's region): "
        "what create_bucket=True does on the first request that finds it missing. Exits 0 "
        "whether it was created or already existed and is yours.",
        args=(arg("new_bucket", nargs="?", metavar="BUCKET", help="default: --bucket"),),
    ),
    *_KEY_COMMANDS,
    Spec(
        "invalidate",
        "invalidate every entry carrying one of the tags (one PUT per tag)",
        _tags.cmd_invalidate,
        description="AsyncS3Cache.invalidate(*tags): each tag's record under "
        "<prefix>.s3cache/tags/ is written; every reader then misses the entries written before "
        "it that carry the tag (within tag_check_interval elsewhere).",
        args=(arg("tags", nargs="+", metavar="TAG"),),
        check=_tags.check_invalidate,
    ),
    Spec(
        "tags",
        "list the tag records under the prefix, with when each tag was last invalidated",
        _tags.cmd_tags,
    ),
    *_PREFIX_COMMANDS,
    _LIFECYCLE,
)
