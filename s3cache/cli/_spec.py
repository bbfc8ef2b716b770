"""The vocabulary of the command line: how a command is described, and its exit statuses.

A command's :class:`Spec` holds its arguments, the checks made before any request, whether it
acts on everything under the prefix (``scope``: an empty prefix then needs ``--all-bucket``),
whether it asks for confirmation, and its handler. The statuses follow grep: 0 found (or done),
1 missing, 2 error.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from s3cache import AsyncS3Cache
from s3cache.cli._ui import UI

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_MISSING",
    "EXIT_OK",
    "Arg",
    "Check",
    "Handler",
    "Spec",
    "UsageError",
    "arg",
]

#: Success: the command did its job, or found what it was asked about.
EXIT_OK: Final = 0
#: The answer is no: ``get``, ``exists`` or ``delete`` found no live entry, ``lifecycle
#: remove`` no rule, ``check`` a store that is not usable.
EXIT_MISSING: Final = 1
#: The command could not do its job: an S3 failure, bad usage, a declined confirmation.
EXIT_ERROR: Final = 2
#: 128 + SIGINT, as shells report a Ctrl-C.
EXIT_INTERRUPTED: Final = 130

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
    """An :class:`Arg`, written as the ``add_argument`` call it stands for."""
    return Arg(flags, options)


@dataclass(frozen=True, slots=True)
class Spec:
    """One command (or one action of a command), described once.

    ``check`` validates the arguments against the cache before any request (raising
    ``ValueError``, ``TypeError`` or :class:`UsageError`: exit status 2). ``one_of`` are
    arguments of which exactly one must be given (``set``: VALUE or ``--file``). ``scope`` names
    what the command does to everything under the prefix ("clear"): it then takes
    ``--all-bucket``, without which an empty prefix is refused. ``confirm`` is the question
    asked before deleting: the command then takes ``--yes`` and ``--dry-run``. ``unsupported``
    is the hint printed when the server lacks the API. A command with ``actions`` runs one of
    them (``lifecycle show|set|remove``).
    """

    name: str
    help: str
    run: Handler | None = None
    description: str | None = None
    args: tuple[Arg, ...] = ()
    one_of: tuple[Arg, ...] = ()
    check: Check | None = None
    scope: str | None = None
    confirm: str | None = None
    unsupported: str = "this server does not support that operation"
    actions: tuple[Spec, ...] = ()
