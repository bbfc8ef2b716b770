"""Object keys, pure and sans-IO: cache keys and prefixes to S3 object keys, validated (S3's
1,024-byte limit, characters no key may hold, path segments servers rewrite), and the reserved
namespace of s3cache's own objects (leases, locks, probes)."""

from __future__ import annotations

import hashlib
import re
from typing import Final

__all__ = [
    "MAX_KEY_BYTES",
    "MAX_PREFIX_BYTES",
    "RESERVED_SEGMENT",
    "is_reserved",
    "key_length_detail",
    "normalize_prefix",
    "object_key",
    "path_of",
    "reserved_key",
    "sub_prefix",
]

#: S3's limit on a whole object key, prefix included, in UTF-8 bytes.
MAX_KEY_BYTES: Final = 1024

#: The first path segment under the prefix that s3cache keeps for its own objects (leases, locks,
#: probes). No cache key may start with it, so no user entry can collide with them.
RESERVED_SEGMENT: Final = ".s3cache"

#: Bytes after the prefix kept for s3cache's own objects: the longest is a hashed reserved key,
#: ``.s3cache/<kind>-sha256/<64 hex digits>`` (see :func:`reserved_key`).
RESERVED_ROOM: Final = 128

#: The longest prefix, so that s3cache's own objects always fit under S3's key limit.
MAX_PREFIX_BYTES: Final = MAX_KEY_BYTES - RESERVED_ROOM

#: What a key may not hold: control characters (trouble in URLs, logs and XML), lone surrogates
#: (not encodable), and Unicode's noncharacters (XML 1.0 forbids U+FFFE and U+FFFF, so
#: DeleteObjects cannot carry them: servers answer 400 or 500 for the whole batch). The
#: noncharacters beyond the first plane (U+1FFFE, U+1FFFF... U+10FFFF) are checked apart, to
#: keep this character class small and the check cheap.
_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff]")

_ASTRAL = re.compile("[\U00010000-\U0010ffff]")

_BAD_SEGMENTS: Final = frozenset({"", ".", ".."})


def normalize_prefix(prefix: str) -> str:
    """Validate a prefix; a non-empty one ends in ``/``, so ``cache`` never sees ``cache2/``."""
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a str, not {type(prefix).__name__}")
    if not prefix:
        return ""
    path = prefix.rstrip("/")
    if not path:
        raise ValueError(
            "prefix must not be only '/': object keys cannot start with an empty segment"
        )
    _check_path(path, "prefix")
    size = _utf8_size(path) + 1
    if size > MAX_PREFIX_BYTES:
        raise ValueError(
            f"prefix is {size} UTF-8 bytes (with its '/'), over the {MAX_PREFIX_BYTES}-byte "
            f"limit: S3 keys take at most {MAX_KEY_BYTES} bytes, and s3cache's own objects need "
            f"{RESERVED_ROOM} of them after the prefix"
        )
    return path + "/"


def object_key(prefix: str, key: str) -> str:
    """The object key for cache ``key``: prefix + key with ``:`` as ``/``, validated."""
    full = prefix + path_of(key, "cache key")
    size = _utf8_size(full)
    if size > MAX_KEY_BYTES:
        raise ValueError(
            f"cache key is too long: the object key would be {size} UTF-8 bytes, "
            f"over S3's {MAX_KEY_BYTES}-byte limit (prefix included)"
        )
    return full


def path_of(key: str, what: str) -> str:
    """``key`` with ``:`` as ``/``, validated as a path under the prefix (``what`` names it).

    Besides the checks every object key gets, its first segment must not be
    :data:`RESERVED_SEGMENT`: that namespace belongs to s3cache's own objects.
    """
    if not isinstance(key, str):
        raise TypeError(f"{what} must be a str, not {type(key).__name__}")
    if not key:
        raise ValueError(f"{what} must not be empty")
    path = key.replace(":", "/")
    _check_path(path, what)
    if path.partition("/")[0] == RESERVED_SEGMENT:
        raise ValueError(
            f"{what} {key!r} starts with {RESERVED_SEGMENT!r} (':' counts as '/'): that segment "
            "is reserved for s3cache's own objects (leases, locks, probes)"
        )
    return path


def reserved_key(prefix: str, kind: str, path: str) -> str:
    """The object key of one of s3cache's own objects: ``<prefix>.s3cache/<kind>/<path>``.

    ``kind`` names what it is (``lease``, ``lock``, ``check``); ``path`` is already validated
    (see :func:`path_of`). A key that would exceed S3's limit ends in the SHA-256 of ``path``
    instead, under ``<kind>-sha256/``, so every caller derives the same key.
    """
    full = f"{prefix}{RESERVED_SEGMENT}/{kind}/{path}"
    if _utf8_size(full) <= MAX_KEY_BYTES:
        return full
    digest = hashlib.sha256(path.encode("utf-8")).hexdigest()
    hashed = f"{prefix}{RESERVED_SEGMENT}/{kind}-sha256/{digest}"
    if _utf8_size(hashed) > MAX_KEY_BYTES:  # a prefix over MAX_PREFIX_BYTES, or a long kind
        raise ValueError(
            f"the {kind} object key would be {_utf8_size(hashed)} UTF-8 bytes, over S3's "
            f"{MAX_KEY_BYTES}-byte limit (prefix included)"
        )
    return hashed


def is_reserved(prefix: str, okey: str) -> bool:
    """Whether object key ``okey`` (under ``prefix``) is one of s3cache's own objects."""
    return okey.startswith(RESERVED_SEGMENT + "/", len(prefix)) and okey.startswith(prefix)


def _utf8_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def key_length_detail(okey: str) -> str:
    """How long object key ``okey`` is, in words, for a server's "key too long" refusal: its
    UTF-8 bytes, its last segment (the object's name, which file-backed servers limit) and its
    longest segment when that is another one, each shortened for display."""
    segments = okey.split("/")
    sizes = [_utf8_size(s) for s in segments]
    last = len(segments) - 1
    longest = max(range(len(segments)), key=sizes.__getitem__)
    text = (
        f"the object key is {_utf8_size(okey):,} UTF-8 bytes; its last segment "
        f"{_shortened(segments[last])!r} is {sizes[last]:,} bytes"
    )
    if longest != last and sizes[longest] > sizes[last]:
        text += f", its longest ({longest + 1} of {len(segments)}) {sizes[longest]:,} bytes"
    return text


def _shortened(text: str, limit: int = 24) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def sub_prefix(prefix: str, sub: str) -> str:
    """The object-key prefix for listing ``sub`` under the cache ``prefix`` (``:`` counts as ``/``).

    A plain string prefix, as S3 matches it: ``a`` covers ``a/x`` and ``ab``; end it in ``/`` to
    mean one folder. Characters no key may hold are refused; empty segments are allowed.
    """
    if not isinstance(sub, str):
        raise TypeError(f"prefix must be a str, not {type(sub).__name__}")
    _check_chars(sub, "prefix")
    full = prefix + sub.replace(":", "/")
    size = _utf8_size(full)
    if size > MAX_KEY_BYTES:
        raise ValueError(f"prefix is {size} UTF-8 bytes, over S3's {MAX_KEY_BYTES}-byte key limit")
    return full


def _check_path(path: str, what: str) -> None:
    _check_chars(path, what)
    segments = path.split("/")
    if _BAD_SEGMENTS.intersection(segments):
        raise ValueError(
            f"{what} {path!r} has an empty, '.' or '..' path segment "
            "(':' counts as '/'); S3-compatible servers reject or rewrite those"
        )


def _check_chars(path: str, what: str) -> None:
    """Refuse control characters, lone surrogates and noncharacters, naming the code point."""
    found = _FORBIDDEN.search(path)
    if found is not None:
        raise ValueError(_forbidden(what, found.group()))
    if not path.isascii():
        for astral in _ASTRAL.finditer(path):
            if ord(astral.group()) & 0xFFFE == 0xFFFE:  # U+nFFFE or U+nFFFF
                raise ValueError(_forbidden(what, astral.group()))


def _forbidden(what: str, char: str) -> str:
    """Why ``char`` cannot be in a key, naming its code point (the key may not print)."""
    point = f"U+{ord(char):04X}"
    if ord(char) < 0xA0:
        return f"{what} contains a control character ({point}), which S3 keys cannot safely hold"
    if 0xD800 <= ord(char) <= 0xDFFF:
        return f"{what} is not valid Unicode (lone surrogate {point})"
    return (
        f"{what} contains {point}, a Unicode noncharacter: S3's XML APIs (DeleteObjects, "
        "listings) cannot carry it, so such an entry could not be deleted in a batch"
    )
