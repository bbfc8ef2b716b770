"""The storage format, pure and sans-IO: payloads, value encoding and decoding, serializers, and
the metadata fields that change what a body means (signing covers them).

Other programs read what s3cache writes, so everything that decides the bytes and headers of an
object lives in the format modules, testable without a server: this one, :mod:`s3cache._keys`
(object keys), :mod:`s3cache._expiry` (ttls and dates) and :mod:`s3cache._compression`. See
"Storage format" in the README.
"""

from __future__ import annotations

import ast
import json
import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol, runtime_checkable

import orjson

from s3cache import _compression
from s3cache._compression import Body, Compression, Compressor
from s3cache._expiry import TTL_HEADER, TTL_METADATA, format_seconds, normalize_ttl
from s3cache._keys import object_key, reserved_key
from s3cache._metadata import (
    ABSENT_HEADER,
    COMPUTE_HEADER,
    SERIALIZER_HEADER,
    STALE_HEADER,
    TAGS_HEADER,
    header,
)

__all__ = [
    "BYTES_CONTENT_TYPE",
    "JSON_CONTENT_TYPE",
    "MEANING_HEADERS",
    "Body",
    "Compression",
    "Compressor",
    "JsonSerializer",
    "Payload",
    "Serializer",
    "decode",
    "encode",
    "normalize_ttl",
    "object_key",
    "payload_headers",
    "probe_entry",
]

#: Kept here for the command line (``s3cache.cli``, being split on another branch), which
#: imports them from this module: their home is :mod:`s3cache._keys` and :mod:`s3cache._expiry`.
_FOR_THE_CLI: Final = (object_key, normalize_ttl)

JSON_CONTENT_TYPE: Final = "application/json"

BYTES_CONTENT_TYPE: Final = "application/octet-stream"

#: The headers, as a response carries them (lower-cased), that change what an entry's body
#: means: how it is decoded and how long it lives. A signed entry's signature covers each one
#: it carries (:mod:`s3cache._signing`): every metadata field added to the format that changes
#: how a body is read or served goes here, and is signed from then on.
#: An entry's tags are signed too: a forger who strips them would defeat invalidation by tag.
MEANING_HEADERS: Final = (
    "content-type",
    "content-encoding",
    TTL_HEADER,
    COMPUTE_HEADER,  # the freshness fields: a forged stale window would extend serving
    STALE_HEADER,
    ABSENT_HEADER,
    TAGS_HEADER,
    SERIALIZER_HEADER,  # which serializer wrote it
)

#: Largest body handed to the ``ast.literal_eval`` fallback (litellm's Python-repr bodies).
LITERAL_EVAL_MAX_BYTES: Final = 256 * 1024


_RAW_TYPES: Final = (bytes, bytearray, memoryview)


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
    name = "json"

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
        headers[header(name)] = value
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
    :data:`~s3cache._compression.MAX_DECOMPRESSED_BYTES` is a ``ValueError``, since reads
    would refuse to expand it.
    """
    if isinstance(value, _RAW_TYPES):
        body, content_type = bytes(value), BYTES_CONTENT_TYPE
    else:
        body, content_type = serializer.dumps(value), serializer.content_type
    encoding = None
    if compressor is not None and len(body) >= compressor.threshold:
        cap = _compression.MAX_DECOMPRESSED_BYTES
        if len(body) > cap:  # reads would refuse to expand it
            raise ValueError(
                f"the value serialises to {len(body):,} bytes, over the {cap:,}-byte cap on "
                "compressed entries (reads refuse to expand a body past it); store it through a "
                "cache with compression=None"
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
        body = _compression.decompress(body, content_encoding)
    if content_type:
        media_type = content_type.partition(";")[0].strip().lower()
        if media_type == BYTES_CONTENT_TYPE:
            return bytes(body)
    if type(serializer) is JsonSerializer:
        return serializer.loads(body)
    return serializer.loads(bytes(body))
