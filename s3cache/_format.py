"""The storage format, pure and sans-IO: object keys, value encoding, and TTL/expiry metadata.

Other programs read what s3cache writes, so everything that decides the bytes and headers of an
object lives here, testable without a server. See "Storage format" in the README.
"""

from __future__ import annotations

import ast
import calendar
import email.utils
import gzip
import hashlib
import json
import math
import re
import uuid
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, Protocol, TypeAlias, runtime_checkable

import orjson

__all__ = [
    "BYTES_CONTENT_TYPE",
    "JSON_CONTENT_TYPE",
    "MAX_KEY_BYTES",
    "MAX_PREFIX_BYTES",
    "MEANING_HEADERS",
    "RESERVED_SEGMENT",
    "TTL_HEADER",
    "TTL_METADATA",
    "Body",
    "Compression",
    "Compressor",
    "JsonSerializer",
    "Payload",
    "Serializer",
    "decode",
    "decompress",
    "encode",
    "format_seconds",
    "generous_remaining_ttl",
    "is_expired",
    "is_reserved",
    "key_length_detail",
    "make_compressor",
    "normalize_prefix",
    "normalize_ttl",
    "object_key",
    "parse_http_date",
    "parse_timestamp",
    "path_of",
    "payload_headers",
    "probe_entry",
    "remaining_ttl",
    "reserved_key",
    "safe_remaining_ttl",
    "sub_prefix",
]

JSON_CONTENT_TYPE: Final = "application/json"
BYTES_CONTENT_TYPE: Final = "application/octet-stream"
#: User-metadata key holding the entry's ttl in seconds (header ``x-amz-meta-s3cache-ttl``).
TTL_METADATA: Final = "s3cache-ttl"
TTL_HEADER: Final = "x-amz-meta-" + TTL_METADATA
#: The headers, as a response carries them (lower-cased), that change what an entry's body
#: means: how it is decoded and how long it lives. A signed entry's signature covers each one
#: it carries (:mod:`s3cache._signing`): every metadata field added to the format that changes
#: how a body is read or served goes here, and is signed from then on.
MEANING_HEADERS: Final = ("content-type", "content-encoding", TTL_HEADER)
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
#: Largest body handed to the ``ast.literal_eval`` fallback (litellm's Python-repr bodies).
LITERAL_EVAL_MAX_BYTES: Final = 256 * 1024
#: S3 dates have one-second resolution, so shorter ttls cannot be enforced.
MIN_TTL: Final = 1.0
MAX_TTL: Final = 1e10

#: An object body as read: ``bytes``, or the ``bytearray`` the wire path read a large body into
#: (handed up without a copy; :func:`decode` makes the one copy a raw-bytes value needs).
Body: TypeAlias = bytes | bytearray

_RAW_TYPES: Final = (bytes, bytearray, memoryview)
#: What a key may not hold: control characters (trouble in URLs, logs and XML), lone surrogates
#: (not encodable), and Unicode's noncharacters (XML 1.0 forbids U+FFFE and U+FFFF, so
#: DeleteObjects cannot carry them: servers answer 400 or 500 for the whole batch). The
#: noncharacters beyond the first plane (U+1FFFE, U+1FFFF... U+10FFFF) are checked apart, to
#: keep this character class small and the check cheap.
_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff]")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_BAD_SEGMENTS: Final = frozenset({"", ".", ".."})
_MONTHS: Final = {
    m: i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}


@runtime_checkable
class Serializer(Protocol):
    """Turns values into object bodies and back; ``content_type`` labels what it writes."""

    content_type: str

    def dumps(self, value: Any) -> bytes:
        """Encode ``value``; raise ``TypeError`` for values it cannot represent."""
        ...

    def loads(self, data: bytes) -> Any:
        """Decode a body; raise ``ValueError`` for bodies it cannot read."""
        ...


class JsonSerializer:
    """orjson out; orjson, then stdlib json, then a size-capped ``ast.literal_eval`` back in.

    The fallbacks read what litellm's S3Cache writes: ``json.dumps`` output (which may hold
    ``NaN``) and, from its Redis heritage, Python-literal reprs. Nothing is ever ``eval``-ed.
    """

    content_type = JSON_CONTENT_TYPE

    def dumps(self, value: Any) -> bytes:
        return orjson.dumps(value)

    def loads(self, data: Body) -> Any:
        """Decode a body; a ``bytearray`` is read in place (orjson and json take it)."""
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
        try:
            return json.loads(data)
        except (ValueError, RecursionError):  # RecursionError: deeply nested arrays/objects
            pass
        if len(data) > LITERAL_EVAL_MAX_BYTES:
            raise ValueError(
                f"body is not JSON, and at {len(data)} bytes it is over the "
                f"{LITERAL_EVAL_MAX_BYTES}-byte cap for the Python-literal fallback"
            )
        try:
            return ast.literal_eval(data.decode("utf-8"))
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as exc:
            raise ValueError("body is neither JSON nor a Python literal") from exc

    def __repr__(self) -> str:
        return "JsonSerializer()"


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


def normalize_ttl(ttl: float | timedelta | None, name: str = "ttl") -> float | None:
    """Seconds as a float, or None for no expiry; rejects wrong types and unenforceable values.

    ``name`` is the parameter named in error messages (leases and locks are validated alike).
    """
    if ttl is None:
        return None
    if isinstance(ttl, timedelta):
        seconds = ttl.total_seconds()
    elif isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
        raise TypeError(
            f"{name} must be seconds (int or float) or a timedelta, not {type(ttl).__name__}"
        )
    else:
        try:
            seconds = float(ttl)
        except OverflowError:
            raise ValueError(f"{name} must be at most {MAX_TTL:.0e} seconds") from None
    if math.isnan(seconds) or math.isinf(seconds):
        raise ValueError(f"{name} must be a finite number of seconds, not {seconds}")
    if seconds <= 0:
        hint = "; use delete() to drop an entry" if name == "ttl" else ""
        raise ValueError(f"{name} must be positive, not {seconds}{hint}")
    if seconds < MIN_TTL:
        raise ValueError(
            f"{name} must be at least {MIN_TTL:g} second: S3's Last-Modified and Date headers "
            f"have one-second resolution, so {seconds} s cannot be enforced"
        )
    if seconds > MAX_TTL:
        hint = "; use ttl=None for no expiry" if name == "ttl" else ""
        raise ValueError(f"{name} must be at most {MAX_TTL:.0e} seconds{hint}")
    return seconds


@dataclass(frozen=True, slots=True)
class Payload:
    """Everything a PutObject sends for one entry."""

    body: bytes
    content_type: str
    metadata: dict[str, str]
    expires: datetime | None
    cache_control: str | None
    content_encoding: str | None = None


def payload_headers(payload: Payload) -> dict[str, str]:
    """The meaning-bearing headers (:data:`MEANING_HEADERS`) a GET of ``payload`` will carry,
    named as a response names them: what a signature written with the entry covers."""
    headers = {"content-type": payload.content_type}
    if payload.content_encoding:
        headers["content-encoding"] = payload.content_encoding
    for name, value in payload.metadata.items():
        headers["x-amz-meta-" + name] = value
    return headers


def encode(
    value: Any,
    ttl: float | None,
    serializer: Serializer,
    now: float,
    compressor: Compressor | None = None,
) -> Payload:
    """Encode ``value`` with its ``ttl`` (seconds, already normalised) at wall-clock time ``now``.

    ``bytes`` are stored raw; everything else goes through ``serializer``. The ttl goes into user
    metadata (what s3cache reads) and into ``Expires``/``Cache-Control`` (what litellm reads).
    With a ``compressor``, bodies at or above its threshold are compressed and labelled with
    ``Content-Encoding``, so that any reader of the format can decode them; one over
    :data:`MAX_DECOMPRESSED_BYTES` is a ``ValueError``, since :func:`decompress` would refuse it.
    """
    if isinstance(value, _RAW_TYPES):
        body, content_type = bytes(value), BYTES_CONTENT_TYPE
    else:
        body, content_type = serializer.dumps(value), serializer.content_type
    encoding = None
    if compressor is not None and len(body) >= compressor.threshold:
        if len(body) > MAX_DECOMPRESSED_BYTES:  # reads would refuse to expand it
            raise ValueError(
                f"the value serialises to {len(body):,} bytes, over the "
                f"{MAX_DECOMPRESSED_BYTES:,}-byte cap on compressed entries (reads refuse to "
                "expand a body past it); store it through a cache with compression=None"
            )
        body, encoding = compressor.compress(body), compressor.encoding
    if ttl is None:
        return Payload(body, content_type, {}, None, None, encoding)
    metadata = {TTL_METADATA: format_seconds(ttl)}
    expires = datetime.fromtimestamp(now + ttl, tz=UTC)
    return Payload(body, content_type, metadata, expires, f"max-age={math.ceil(ttl)}", encoding)


def probe_entry(prefix: str, now: float) -> tuple[str, Payload]:
    """A fresh probe: a unique key in s3cache's reserved namespace under ``prefix`` (no cache
    key can collide with it) and a 60-second entry naming it (``purge-expired`` removes a
    probe a failed check left behind)."""
    key = reserved_key(prefix, "check", uuid.uuid4().hex)
    return key, encode({"probe": key}, 60.0, JsonSerializer(), now)


def format_seconds(seconds: float) -> str:
    """Seconds as metadata text: ``60`` for whole numbers, ``1.5`` otherwise."""
    return str(int(seconds)) if seconds.is_integer() else repr(seconds)


def decode(
    body: Body,
    content_type: str | None,
    serializer: Serializer,
    content_encoding: str | None = None,
) -> Any:
    """The value stored in ``body``; raises ``ValueError`` for a body that cannot be read.

    Only ``application/octet-stream`` (what ``encode`` writes for bytes) means raw bytes; an
    unlabelled object (S3 reports ``binary/octet-stream``) goes through the serializer. A
    ``Content-Encoding`` of ``zstd`` or ``gzip`` is undone first, whoever wrote the entry.

    A ``bytearray`` body is copied once into ``bytes`` for a raw-bytes value or a serializer
    other than :class:`JsonSerializer` (whose ``loads`` takes ``bytes``), and not at all for
    JSON; ``bytes(b)`` of a ``bytes`` is ``b`` itself.
    """
    if content_encoding:
        body = decompress(body, content_encoding)
    if content_type:
        media_type = content_type.partition(";")[0].strip().lower()
        if media_type == BYTES_CONTENT_TYPE:
            return bytes(body)
    if type(serializer) is JsonSerializer:
        return serializer.loads(body)
    return serializer.loads(bytes(body))


def remaining_ttl(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds an entry has left (negative: expired), on the server's clock; None: no expiry.

    ``headers`` are the lower-cased response headers of a GET or HEAD. For our entries the age is
    ``Date - Last-Modified``, both from the server; both are whole seconds, so the true age is
    below that plus one second, which is what counts: an entry is never served late, and may
    expire up to a second early. Entries with only ``Expires`` (litellm's) compare it with
    ``Date`` the same way. ``now`` is used only when ``Date`` is absent.
    """
    ttl_raw = headers.get(TTL_HEADER)
    expires_raw = headers.get("expires")
    if ttl_raw is None and expires_raw is None:
        return None
    date_raw = headers.get("date")
    server_now = parse_http_date(date_raw) if date_raw else now
    if ttl_raw is not None:
        ttl = float(ttl_raw)
        if math.isnan(ttl):
            raise ValueError(f"bad {TTL_HEADER} header {ttl_raw!r}")
        last_modified = parse_http_date(headers["last-modified"])
        return ttl - (server_now - last_modified + 1.0)
    assert expires_raw is not None
    try:
        expires = parse_http_date(expires_raw)
    except ValueError:
        return -1.0  # an unreadable Expires: treat as expired, a miss is always safe
    return expires - (server_now + 1.0)


def safe_remaining_ttl(headers: Mapping[str, str], now: float) -> float | None:
    """:func:`remaining_ttl`, with unreadable expiry metadata counted as expired (never served)."""
    try:
        return remaining_ttl(headers, now)
    except (ValueError, KeyError):
        return -1.0


def generous_remaining_ttl(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds until an object is expired on *every* reading of its one-second dates.

    The mirror image of :func:`remaining_ttl`: there an entry is never served late; here an
    object (a lease) is never taken for expired early. The true age is above
    ``Date - Last-Modified - 1 s``, so the object is surely past its ttl once that reaches the
    ttl. Only ``x-amz-meta-s3cache-ttl`` counts; None: the object has none. Raises
    ``ValueError`` or ``KeyError`` for unreadable metadata.
    """
    ttl_raw = headers.get(TTL_HEADER)
    if ttl_raw is None:
        return None
    ttl = float(ttl_raw)
    if math.isnan(ttl):
        raise ValueError(f"bad {TTL_HEADER} header {ttl_raw!r}")
    date_raw = headers.get("date")
    server_now = parse_http_date(date_raw) if date_raw else now
    return ttl - (server_now - parse_http_date(headers["last-modified"]) - 1.0)


def is_expired(remaining: float | None) -> bool:
    """Whether :func:`remaining_ttl`'s answer means expired (the one place that decides)."""
    return remaining is not None and remaining < 0


def parse_http_date(value: str) -> float:
    """Epoch seconds of an HTTP date; fast path for the IMF-fixdate every S3 server sends."""
    if len(value) == 29 and value.endswith(" GMT"):
        try:
            return float(
                calendar.timegm(
                    (
                        int(value[12:16]),
                        _MONTHS[value[8:11]],
                        int(value[5:7]),
                        int(value[17:19]),
                        int(value[20:22]),
                        int(value[23:25]),
                    )
                )
            )
        except (KeyError, ValueError):
            pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError) as exc:
        raise ValueError(f"not an HTTP date: {value!r}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def parse_timestamp(value: str | datetime) -> float:
    """Epoch seconds of a listing's ``LastModified`` (ISO 8601 text or a datetime)."""
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return parse_http_date(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


# -- compression ----------------------------------------------------------------------------

#: Largest body a compressed entry may expand to (a guard against decompression bombs).
MAX_DECOMPRESSED_BYTES: Final = 256 * 1024 * 1024
COMPRESSIONS: Final = ("zstd", "gzip")
Compression = Literal["zstd", "gzip"]


@dataclass(frozen=True, slots=True)
class Compressor:
    """Compresses bodies of at least ``threshold`` bytes with ``encoding`` (zstd or gzip)."""

    encoding: str
    threshold: int
    level: int | None = None

    def compress(self, body: bytes) -> bytes:
        if self.encoding == "gzip":
            return gzip.compress(body, compresslevel=self.level or 6, mtime=0)
        compressed: bytes = _zstd().ZstdCompressor(level=self.level or 3).compress(body)
        return compressed


def make_compressor(compression: Compression | None, threshold: int) -> Compressor | None:
    """Validate the ``compression`` options; zstd needs the ``zstd`` extra (``zstandard``)."""
    if compression is None:
        return None
    if compression not in COMPRESSIONS:
        raise ValueError(f"compression must be one of {COMPRESSIONS} or None, not {compression!r}")
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 0:
        raise ValueError(
            f"compression_threshold must be a whole number of bytes >= 0: {threshold!r}"
        )
    if compression == "zstd":
        _zstd()  # fail at construction, not at the first set
    return Compressor(compression, threshold)


def decompress(body: Body, content_encoding: str) -> Body:
    """Undo a ``Content-Encoding``; raises ``ValueError`` for one we cannot read, or for a body
    that would expand past :data:`MAX_DECOMPRESSED_BYTES` (gzip and zstd alike)."""
    encoding = content_encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    try:
        if encoding == "gzip":
            inflater = zlib.decompressobj(wbits=31)  # gzip framing
            out = inflater.decompress(body, MAX_DECOMPRESSED_BYTES)
            if inflater.unconsumed_tail:
                raise ValueError(f"gzip body expands past {MAX_DECOMPRESSED_BYTES} bytes")
            if not inflater.eof:
                raise ValueError("truncated gzip body")
        elif encoding == "zstd":
            zstd = _zstd()
            # max_output_size only binds frames without a declared size: check the declared one.
            if zstd.frame_content_size(body) > MAX_DECOMPRESSED_BYTES:
                raise ValueError(f"zstd body expands past {MAX_DECOMPRESSED_BYTES} bytes")
            out = zstd.ZstdDecompressor().decompress(body, max_output_size=MAX_DECOMPRESSED_BYTES)
        else:
            raise ValueError(f"unsupported Content-Encoding {content_encoding!r}")
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"corrupt {encoding} body: {exc}") from exc
    except ImportError as exc:
        raise ValueError(str(exc)) from exc
    except Exception as exc:  # zstandard.ZstdError
        if type(exc).__name__ == "ZstdError":
            raise ValueError(f"corrupt zstd body: {exc}") from exc
        raise
    return out


def _zstd() -> Any:
    try:
        import zstandard
    except ImportError:
        raise ImportError(
            "zstd compression needs the 'zstandard' package: pip install 's3cache-async[zstd]'"
        ) from None
    return zstandard
