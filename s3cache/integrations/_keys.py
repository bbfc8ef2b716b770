"""Reversible key segments for the framework integrations: any string as one safe path segment.

LangChain and LangGraph keys may hold any character, but an s3cache key may not hold control
characters or empty, ``.`` and ``..`` segments, and ``:`` in it means ``/``. Letters, digits, ``-``
and ``_`` are kept as they are; every other character becomes ``.`` plus the two upper-case hex
digits of each of its UTF-8 bytes (a lone surrogate as the three bytes Python's
``surrogatepass`` gives it); the empty string is ``~``. The result holds only characters that S3
clients never escape differently, and is one segment that decodes back exactly.

The encoding is prefix-preserving (each character has its own code, and no code is the start of
another): ``encode(k)`` starts with ``encode(p)`` exactly when ``k`` starts with ``p`` (``p``
non-empty), so listing under ``encode(p)`` finds the keys starting with ``p``.

A key whose encoded form would make the object key too long for S3 gets the *hashed* segment
instead (:func:`hashed_segment`): the first :data:`LEAD` characters of its encoded form, ``~``,
and the SHA-256 of the key. It keeps the prefix property for prefixes of up to :data:`LEAD`
encoded characters, and contains a ``~`` no encoded segment has, so the two never collide.
"""

from __future__ import annotations

import hashlib
import re
import string
from typing import Final

__all__ = ["LEAD", "decode_segment", "encode_segment", "hashed_segment", "is_hashed"]

_SAFE: Final = frozenset(string.ascii_letters + string.digits + "-_")
_ESCAPE: Final = "."
_EMPTY: Final = "~"
_HEX: Final = frozenset("0123456789ABCDEF")
#: Characters of a long key's encoded form that start its hashed segment.
LEAD: Final = 128
_HASHED: Final = re.compile(rf"[A-Za-z0-9_.-]{{1,{LEAD}}}~[0-9a-f]{{64}}")


def encode_segment(text: str) -> str:
    """``text`` as one path segment of letters, digits, ``-``, ``_``, ``.`` escapes (or ``~``)."""
    if not isinstance(text, str):
        raise TypeError(f"key must be a str, not {type(text).__name__}")
    if not text:
        return _EMPTY
    if all(c in _SAFE for c in text):
        return text
    out: list[str] = []
    for char in text:
        if char in _SAFE:
            out.append(char)
            continue
        raw = char.encode("utf-8", "surrogatepass")
        out.extend(f"{_ESCAPE}{byte:02X}" for byte in raw)
    return "".join(out)


def decode_segment(segment: str) -> str | None:
    """The string ``segment`` encodes, or None when it is not exactly what we would write."""
    if segment == _EMPTY:
        return ""
    raw = bytearray()
    i, n = 0, len(segment)
    if not n:
        return None
    while i < n:
        char = segment[i]
        if char in _SAFE:
            raw.append(ord(char))
            i += 1
        elif char == _ESCAPE and i + 3 <= n and _HEX.issuperset(segment[i + 1 : i + 3]):
            byte = int(segment[i + 1 : i + 3], 16)
            if chr(byte) in _SAFE:  # a safe character is never escaped: not our writing
                return None
            raw.append(byte)
            i += 3
        else:
            return None
    try:
        return raw.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return None


def hashed_segment(text: str) -> str:
    """The segment of a key too long to be written out: the first :data:`LEAD` characters of
    its encoded form, ``~``, and the hex SHA-256 of its UTF-8 bytes (surrogates passed)."""
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{encode_segment(text)[:LEAD]}~{digest}"


def is_hashed(segment: str) -> bool:
    """Whether ``segment`` has the form :func:`hashed_segment` writes."""
    return _HASHED.fullmatch(segment) is not None
