"""The user-metadata fields s3cache writes, named in one place: each field's name (as
aiobotocore's ``Metadata`` spells it) and its header (``x-amz-meta-`` + name, as the wire path
and HEAD replies spell it), so the two spellings cannot drift and no two modules claim one name.
Part of the storage format: other programs read these (see "Storage format" in the README)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

__all__ = [
    "ABSENT_HEADER",
    "ABSENT_METADATA",
    "COMPUTE_HEADER",
    "COMPUTE_METADATA",
    "KEY_HEADER",
    "KEY_METADATA",
    "METADATA_LIMIT",
    "NONCE_HEADER",
    "NONCE_METADATA",
    "OTHER_METADATA_BUDGET",
    "PREFIX",
    "SERIALIZER_HEADER",
    "SERIALIZER_METADATA",
    "SIGNATURE_HEADER",
    "SIGNATURE_METADATA",
    "STALE_HEADER",
    "STALE_METADATA",
    "TAGS_HEADER",
    "TAGS_METADATA",
    "TAG_RECORD_HEADER",
    "TAG_RECORD_METADATA",
    "TTL_HEADER",
    "TTL_METADATA",
    "field",
    "header",
    "metadata_size",
]

#: What S3 puts before each user-metadata name in a header.
PREFIX: Final = "x-amz-meta-"
#: S3's cap on an object's user metadata, in bytes. It counts each name and value in UTF-8;
#: s3cache counts the names with their ``x-amz-meta-`` prefix, which errs towards fitting.
METADATA_LIMIT: Final = 2048
#: Bytes of user metadata kept for every field s3cache writes beside tags: the ttl (at most
#: 51 bytes with its name), compute time (40), stale window (53), tombstone ttl (54), write
#: nonce (40) and signature (98): 336 bytes today, the rest is room for fields to come. Ten
#: tags of 128 characters take 1,312 bytes, so every valid tag set fits beside them:
#: ``OTHER_METADATA_BUDGET + 1,312 <= METADATA_LIMIT`` (tests hold it).
OTHER_METADATA_BUDGET: Final = 512


def header(name: str) -> str:
    """The header that carries user metadata ``name``."""
    return PREFIX + name


def field(name: str) -> tuple[str, str]:
    """A metadata field's two spellings: ``(name, header)``."""
    return name, PREFIX + name


#: The entry's ttl in seconds, judged against the server's ``Last-Modified`` (``_expiry``).
TTL_METADATA, TTL_HEADER = field("s3cache-ttl")
#: How long the factory took to compute the value, in seconds (XFetch's delta; ``_freshness``).
COMPUTE_METADATA, COMPUTE_HEADER = field("s3cache-compute")
#: Seconds past the ttl during which the writer allows the value to be served while one refresh
#: runs (stale-while-revalidate; ``_freshness``).
STALE_METADATA, STALE_HEADER = field("s3cache-stale")
#: A tombstone's ("this key has no value") own ttl, in seconds (``_freshness``).
ABSENT_METADATA, ABSENT_HEADER = field("s3cache-absent")
#: An entry's tags, sorted, separated by one space (``_tags``).
TAGS_METADATA, TAGS_HEADER = field("s3cache-tags")
#: A tag record's tag (its key may be a hash of it; ``_tags``).
TAG_RECORD_METADATA, TAG_RECORD_HEADER = field("s3cache-tag")
#: Which serializer wrote the entry (``_serializers``).
SERIALIZER_METADATA, SERIALIZER_HEADER = field("s3cache-serializer")
#: The entry's signature (``_signing``).
SIGNATURE_METADATA, SIGNATURE_HEADER = field("s3cache-sig")
#: The writer's nonce, to recognise its own write (``_nonce``).
NONCE_METADATA, NONCE_HEADER = field("s3cache-nonce")
#: The encoded original of a key stored under its hashed segment (the LangChain store).
KEY_METADATA, KEY_HEADER = field("s3cache-key")


def metadata_size(metadata: Mapping[str, str]) -> int:
    """Bytes of user metadata as :data:`METADATA_LIMIT` counts them (names with their prefix)."""
    return sum(len(header(k).encode()) + len(v.encode()) for k, v in metadata.items())
