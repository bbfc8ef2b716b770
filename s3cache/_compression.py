"""Compression of entry bodies, pure and sans-IO: the zstd and gzip compressors, and
``decompress``, which refuses what it cannot read or what would expand past a cap."""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeAlias

__all__ = [
    "COMPRESSIONS",
    "MAX_DECOMPRESSED_BYTES",
    "Body",
    "Compression",
    "Compressor",
    "decompress",
    "make_compressor",
]

#: An object body as read: ``bytes``, or the ``bytearray`` the wire path read a large body into
#: (handed up without a copy; :func:`decode` makes the one copy a raw-bytes value needs).
Body: TypeAlias = bytes | bytearray

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
        """``body`` compressed (gzip without a timestamp, so equal bodies compress equally)."""
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
