"""The head of one HTTP/1.1 request, written and checked (sans-IO): the request line and
headers of the wire path, refused before anything is sent when a name or value could smuggle
a second request (CR, LF, NUL, a space in the target, a name that is not a token).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

__all__ = ["request_head"]

#: An HTTP token (RFC 9110): what a header name is made of.
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: Header names already checked (they come from a few fixed sets: checked once each).
_checked_names: set[str] = set()


def request_head(method: str, target: str, headers: Mapping[str, str], length: int | None) -> bytes:
    """The request line and headers (``content-length`` added when ``length`` is given).

    Raises ``ValueError`` before anything is sent when a header name is not an HTTP token,
    or when a name, value or the target holds CR, LF or NUL (request smuggling), or is not
    ASCII.
    """
    parts = [method, " ", target, " HTTP/1.1\r\n"]
    for name, value in headers.items():
        if name not in _checked_names:
            _check_name(name)
        parts += (name, ": ", value, "\r\n")
    if length is not None:
        parts += ("content-length: ", str(length), "\r\n")
    parts.append("\r\n")
    text = "".join(parts)
    lines = len(headers) + 2 + (length is not None)
    if text.count("\n") != lines or text.count("\r") != lines or "\0" in text or " " in target:
        raise ValueError(_unsafe(method, target, headers))
    return text.encode("ascii")  # UnicodeEncodeError is a ValueError


def _check_name(name: str) -> None:
    if not _TOKEN.fullmatch(name):
        raise ValueError(f"header name {name!r} is not an HTTP token; nothing was sent")
    if len(_checked_names) < 1024:
        _checked_names.add(name)


def _unsafe(method: str, target: str, headers: Mapping[str, str]) -> str:
    """Which part of a request would smuggle a line break, NUL or space into the head."""
    for name, value in headers.items():
        if any(c in value for c in "\r\n\0"):
            return f"header {name!r} holds CR, LF or NUL: {value!r}; nothing was sent"
    return f"{method} target {target!r} holds a space, CR, LF or NUL; nothing was sent"
