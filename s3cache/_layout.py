"""Key layouts: where an entry's object lives (flat, or hashed into shards), and back; pure.

``flat`` is ``<prefix><key path>``, as today; ``hashed`` is ``<prefix><h>/<key path>``. Also the
listings that cover a sub-prefix, and the marker that names a cache opened with the wrong layout.

Why ``hashed``: S3 serves at least 3,500 writes and 5,500 reads per second per *partitioned*
prefix and splits partitions only after sustained load (30-60 minutes of 503 SlowDown). A flat
cache's keys share one prefix, often one partition. A short digest right after the prefix gives
S3 an even split point: every shard gets the same share of the keys and of the load.

- **Width: 2 hex characters, 256 shards.** 256 partitions hold ~900,000 writes and ~1.4 million
  reads per second, beyond any cache fleet's need. The cost is in listings: covering the whole
  cache, or any sub-prefix (``clear("user/")``), takes at least one ListObjectsV2 per shard,
  since a sub-prefix's keys are spread over all shards. 256 listings cost $0.00128 on S3
  Standard and four round trips at 64 in flight; 4,096 (width 3) would cost 16 times that on
  every ``clear(prefix)``, ``iter_keys(prefix)`` or ``ls``, for headroom no cache uses.
  (sccache nests three single characters, ``a/b/c/``, because it also lays keys out on local
  disks, where directory size matters; S3 has no directories.) The marker records the width,
  so a wider layout can come later without guessing.
- **Digest: the first two hex digits of the SHA-256 of the key path's UTF-8 bytes.** Stable
  across processes, versions and platforms (no seed, unlike ``hash()``), and anyone can
  recompute it: ``printf %s "$path" | sha256sum | cut -c1-2``. It costs ~0.4-0.6 µs per key
  on a 2-core test machine (BLAKE2b with a one-byte digest ~0.33 µs, CRC-32 ~0.27 µs; the
  key's validation, which every layout pays, ~0.9-1.3 µs): ~0.2% of a GET's client CPU (269 µs
  in the README's benchmark run), paid for a shard anyone can check by hand.
- **The key path is hashed, not the key**: ``a:b`` and ``a/b`` are one entry today (``:``
  counts as ``/``) and stay one entry, in one shard. The prefix is not hashed either, so a
  cache keeps its shards when it moves to another prefix.
- **s3cache's own objects stay unsharded** under ``<prefix>.s3cache/`` (leases, locks, probes,
  this module's marker): ``.`` is no hex digit, so they can never look like a shard.

Mixing the layouts under one prefix is ambiguous by construction: the flat entry ``ab/xyz``
and the hashed entry of ``xyz`` (when its shard is ``ab``) are the same object key. That is
why a hashed cache writes a marker object, ``<prefix>.s3cache/layout``, and every cache checks
it before use (:func:`mismatch`), instead of guessing from the keys it finds. No marker means
flat: every cache written before this module.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from s3cache._format import JSON_CONTENT_TYPE, Payload
from s3cache._keys import MAX_KEY_BYTES, RESERVED_SEGMENT, object_key, path_of, sub_prefix
from s3cache._metadata import header

__all__ = [
    "FLAT",
    "HASHED",
    "LAYOUTS",
    "Layout",
    "LayoutName",
    "Marker",
    "layout",
    "marker_key",
    "marker_payload",
    "mismatch",
    "needs_marker",
    "read_marker",
]

LayoutName = Literal["flat", "hashed"]
LAYOUTS: Final = ("flat", "hashed")
#: The version of the hashed scheme (digest, width rule, key form); a newer one is refused.
VERSION: Final = 1
DIGEST: Final = "sha256"
#: The widest shard allowed (65,536 shards: one listing each is already far too many).
MAX_WIDTH: Final = 4
_HEX: Final = frozenset("0123456789abcdef")
#: User-metadata fields of the marker (``x-amz-meta-s3cache-layout``...); no ``s3cache-ttl``, so
#: ``purge-expired`` never takes it for expired.
_FIELDS: Final = {
    "name": "s3cache-layout",
    "width": "s3cache-layout-width",
    "digest": "s3cache-layout-digest",
    "version": "s3cache-layout-version",
}


@dataclass(frozen=True, slots=True)
class Layout:
    """A key layout: ``flat`` (width 0) or ``hashed`` with ``width`` hex digits of shard."""

    name: LayoutName
    width: int = 0

    def __post_init__(self) -> None:
        if self.name not in LAYOUTS:
            raise ValueError(f"layout must be 'flat' or 'hashed', not {str(self.name)[:40]!r}")
        widths = (0, 0) if self.name == "flat" else (1, MAX_WIDTH)
        if isinstance(self.width, bool) or not isinstance(self.width, int):
            raise TypeError(f"layout width must be an int, not {type(self.width).__name__}")
        if not widths[0] <= self.width <= widths[1]:
            raise ValueError(f"a {self.name} layout's width must be in {widths}, not {self.width}")

    def shard(self, path: str) -> str:
        """The shard of a key path (``:`` already ``/``): its SHA-256's first ``width`` hex."""
        return hashlib.sha256(path.encode("utf-8")).hexdigest()[: self.width]

    def object_key(self, prefix: str, key: str) -> str:
        """The object key of cache ``key`` (validated as :func:`~s3cache._keys.object_key`
        validates it), S3's 1,024-byte limit checked on the whole key, shard included."""
        if not self.width:
            return object_key(prefix, key)
        path = path_of(key, "cache key")
        full = f"{prefix}{self.shard(path)}/{path}"
        size = len(full) if full.isascii() else len(full.encode("utf-8"))
        if size > MAX_KEY_BYTES:
            raise ValueError(
                f"cache key is too long: the object key would be {size} UTF-8 bytes, over S3's "
                f"{MAX_KEY_BYTES}-byte limit (prefix and {self.width + 1}-byte shard included)"
            )
        return full

    def key_path(self, prefix: str, okey: str) -> str | None:
        """The key path of a listed object key, or None when it is no entry of this layout
        (outside ``prefix``, one of s3cache's own objects, or, hashed, a wrong or missing
        shard: such an object was not written by a cache with this layout)."""
        if not okey.startswith(prefix):
            return None
        rest = okey[len(prefix) :]
        if rest.startswith(RESERVED_SEGMENT + "/"):
            return None
        width = self.width
        if not width:
            return rest
        shard, path = rest[:width], rest[width + 1 :]
        if rest[width : width + 1] != "/" or not path or not _HEX.issuperset(shard):
            return None
        return path if self.shard(path) == shard else None

    def shards(self) -> tuple[str, ...]:
        """Every shard, in listing order (``("",)`` when flat: the prefix itself)."""
        if not self.width:
            return ("",)
        return tuple(f"{n:0{self.width}x}" for n in range(16**self.width))

    def listing_prefixes(self, prefix: str, sub: str = "") -> tuple[str, ...]:
        """The ListObjectsV2 prefixes that together cover the keys under ``sub`` (a string
        prefix of key paths, ``:`` counting as ``/``, as ``clear(prefix)`` takes it): one when
        flat, one per shard when hashed, the sub-prefix applied after the shard. Validated as
        :func:`~s3cache._keys.sub_prefix` validates, once."""
        if not self.width:
            return (sub_prefix(prefix, sub),)
        first = sub_prefix(f"{prefix}{'0' * self.width}/", sub)  # validates, shard included
        rest = first[len(prefix) + self.width + 1 :]
        return tuple(f"{prefix}{shard}/{rest}" for shard in self.shards())

    def describe(self) -> str:
        """``flat layout``, or ``hashed layout (width 2)``: how messages name it."""
        return f"{self.name} layout" + (f" (width {self.width})" if self.width else "")


FLAT: Final = Layout("flat")
HASHED: Final = Layout("hashed", 2)


def layout(value: object) -> Layout:
    """The ``layout=`` argument as a :class:`Layout`: ``"flat"`` (the default) or ``"hashed"``,
    or a Layout; anything else is refused, naming the choices."""
    if isinstance(value, Layout):
        return value
    if value == "flat":
        return FLAT
    if value == "hashed":
        return HASHED
    if not isinstance(value, str):
        raise TypeError(f"layout must be 'flat' or 'hashed', not {type(value).__name__}")
    raise ValueError(f"layout must be 'flat' or 'hashed', not {value[:40]!r}")


# -- the marker ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Marker:
    """What a layout marker says, as written (a newer s3cache may write what this one lacks)."""

    name: str
    width: int
    digest: str
    version: int


def marker_key(prefix: str) -> str:
    """``<prefix>.s3cache/layout``: in the reserved namespace, never listed as an entry."""
    return f"{prefix}{RESERVED_SEGMENT}/layout"


def marker_payload(chosen: Layout) -> Payload:
    """The marker object for ``chosen``: the fields in user metadata (a HEAD reads them) and
    again as a JSON body for people; no expiry, so nothing ever takes it for expired."""
    fields = {"name": chosen.name, "width": str(chosen.width), "digest": DIGEST}
    fields["version"] = str(VERSION)
    metadata = {_FIELDS[f]: v for f, v in fields.items()}
    document = {
        "layout": chosen.name,
        "width": chosen.width,
        "digest": DIGEST,
        "version": VERSION,
        "about": "s3cache key layout of this prefix; see 'Storage format' in s3cache's README",
    }
    body = json.dumps(document, indent=2).encode() + b"\n"
    return Payload(body, JSON_CONTENT_TYPE, metadata, None, None)


def read_marker(headers: Mapping[str, str]) -> Marker:
    """The marker in a GET's or HEAD's lower-cased ``headers``; ValueError when a field is
    missing or unreadable (someone else's object, or a damaged one: never guessed at)."""
    raw = {f: headers.get(header(meta)) for f, meta in _FIELDS.items()}
    missing = sorted(meta for f, meta in _FIELDS.items() if raw[f] is None)
    if missing:
        raise ValueError(f"layout marker lacks its {', '.join(missing)} metadata")
    try:
        width, version = int(raw["width"] or ""), int(raw["version"] or "")
    except ValueError:
        raise ValueError("layout marker has a width or version that is not a number") from None
    return Marker(raw["name"] or "", width, raw["digest"] or "", version)


def needs_marker(found: Marker | None, opened: Layout) -> bool:
    """Whether a cache opened with ``opened`` must write its marker (``If-None-Match: *``) before
    its first entry: a hashed cache on a prefix without one. A flat cache never writes one (no
    marker means flat), so litellm and older s3cache versions see nothing new."""
    return found is None and opened.width > 0


def mismatch(found: Marker | None, opened: Layout, bucket: str, prefix: str) -> str | None:
    """What is wrong with opening ``bucket``/``prefix`` with ``opened`` when its marker says
    ``found`` (None: no marker, so flat), in words with the fix; None when they agree."""
    where = f"bucket {bucket!r}, prefix {prefix!r}"
    if found is None:
        return None  # flat, or a hashed cache's first use (see needs_marker)
    if found.version > VERSION or (found.name == "hashed" and found.digest != DIGEST):
        return (
            f"{where} holds a key layout written by a newer s3cache (layout {found.name!r}, "
            f"version {found.version}, digest {found.digest!r}); this one knows version "
            f"{VERSION}: upgrade s3cache"
        )
    if found.name not in LAYOUTS:
        return f"{where} holds an unknown key layout {found.name[:40]!r}: upgrade s3cache"
    try:
        held = Layout("hashed", found.width) if found.name == "hashed" else FLAT
    except (TypeError, ValueError):
        return f"{where} holds a hashed layout of width {found.width}: upgrade s3cache"
    if held == opened:
        return None
    if opened.name == held.name:  # both hashed, of different widths
        return (
            f"{where} holds a {held.describe()} but this s3cache's layout='hashed' has width "
            f"{opened.width}: use the s3cache version that wrote it"
        )
    return (
        f"{where} holds a {held.describe()} but the cache was opened with "
        f"layout={opened.name!r}: open it with layout={held.name!r}, or move the entries with "
        f"`s3cache migrate-layout --to {opened.name}`"
    )
