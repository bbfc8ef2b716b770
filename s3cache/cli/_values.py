"""What ``set`` stores and what ``get`` prints.

``set KEY VALUE`` stores VALUE as a string, or with ``--json`` the JSON value it spells.
``set KEY --file PATH`` (``-``: stdin) stores the file's contents as bytes, or with ``--text``
as a string (UTF-8), or with ``--json`` the JSON value it holds. ``get`` prints a string as it
is, any other JSON value as indented JSON, and bytes raw to a pipe or a file (on a terminal, a
hex preview instead, so a binary value cannot garble it).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from typing import Any, Final

from s3cache import JsonSerializer
from s3cache.cli._spec import UsageError
from s3cache.cli._ui import UI, dumps, plural

__all__ = ["as_json", "kind", "old_file_syntax", "read_value", "show"]

#: Bytes shown in the hex preview of a binary value printed to a terminal.
BYTES_PREVIEW: Final = 64


def read_value(args: argparse.Namespace) -> Any:
    """The value ``set`` stores, from VALUE or ``--file`` read as its flags say; refuses (exit
    status 2) what cannot be read or stored, before any request."""
    if args.text and args.file is None:
        raise UsageError("--text goes with --file (VALUE is always text, or JSON with --json)")
    if args.text and args.json:
        raise UsageError("--text and --json are two readings of the file: pass one of them")
    if args.file is None:
        source, text = "VALUE", args.value
        return _storable(_parse_json(text, source) if args.json else text, source)
    data, source = _read_file(args.file)
    if args.json:
        return _storable(_parse_json(data, source), source)
    if args.text:
        try:
            return _storable(data.decode("utf-8"), source)
        except UnicodeDecodeError as exc:
            raise UsageError(
                f"{source} is not UTF-8 text ({exc}); without --text it is stored as bytes"
            ) from None
    return data


def _read_file(path: str) -> tuple[bytes, str]:
    """The bytes of ``path`` (``-``: stdin) and how to name it in a message."""
    source = "stdin" if path == "-" else repr(path)
    try:
        if path == "-":
            return sys.stdin.buffer.read(), source
        with open(path, "rb") as f:
            return f.read(), source
    except OSError as exc:
        raise UsageError(f"cannot read {source}: {exc}") from None


def _parse_json(text: str | bytes, source: str) -> Any:
    """``text`` read as JSON (``--json``)."""
    try:
        return json.loads(text)
    except ValueError as exc:
        if isinstance(text, str) and text.startswith("@"):
            hint = " (@FILE is no longer read: use --file FILE)"
        elif source == "VALUE":
            hint = " (without --json, VALUE is stored as a string)"
        else:
            hint = ""
        raise UsageError(f"{source} is not JSON: {exc}{hint}") from None


def _storable(value: Any, source: str) -> Any:
    """``value`` itself, once the cache's serializer has shown it can store it."""
    try:
        JsonSerializer().dumps(value)
    except TypeError as exc:
        raise UsageError(f"{source} cannot be stored: {exc}") from None
    return value


def old_file_syntax(args: argparse.Namespace) -> str | None:
    """A remark for a VALUE spelled ``@PATH`` that names an existing file: it is stored as the
    text it is (``@FILE`` was read as a file before ``--file``); None otherwise."""
    if args.file is None and args.value.startswith("@") and os.path.isfile(args.value[1:]):
        path = args.value[1:]
        return f"stored the text {args.value!r} as it is; --file {path} stores the file's contents"
    return None


def kind(value: Any) -> str:
    """How a value is stored, in a word: ``bytes``, ``text`` (a string) or ``JSON``."""
    if isinstance(value, bytes):
        return "bytes"
    return "text" if isinstance(value, str) else "JSON"


def show(value: Any, ui: UI) -> None:
    """Print a value ``get`` found: a string as it is and a newline, bytes raw (a preview on a
    terminal), anything else as indented JSON."""
    if isinstance(value, bytes):
        _show_bytes(value, ui)
    elif isinstance(value, str):
        sys.stdout.write(value + "\n")
    else:
        sys.stdout.write(dumps(value) + "\n")


def _show_bytes(value: bytes, ui: UI) -> None:
    """Bytes unchanged to a pipe or a file; a hex preview and a remark on a terminal."""
    if not sys.stdout.isatty():
        sys.stdout.flush()
        sys.stdout.buffer.write(value)
        sys.stdout.buffer.flush()
        return
    preview = value[:BYTES_PREVIEW].hex(" ")
    cut = f", first {BYTES_PREVIEW} shown" if len(value) > BYTES_PREVIEW else ""
    ui.line(f"<{plural(len(value), 'byte')}{cut}> {preview}")
    ui.note("bytes are not written raw to a terminal: redirect stdout, or --json for base64")


def as_json(key: str, value: Any) -> dict[str, Any]:
    """The ``get --json`` document: the value, or for bytes their length and base64."""
    if isinstance(value, bytes):
        encoded = base64.b64encode(value).decode("ascii")
        return {"key": key, "bytes": len(value), "base64": encoded}
    return {"key": key, "value": value}
