"""Key layouts (``s3cache._layout``): flat as today, hashed ``<prefix><h>/<key path>`` and back,
the listings covering a sub-prefix, shard uniformity, and the marker that names a mismatch.
Sans-IO, plus one check of the listing plan against the test server's prefix matching."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from typing import Any

import pytest

from s3cache import _expiry, _keys
from s3cache._layout import (
    FLAT,
    HASHED,
    Layout,
    Marker,
    layout,
    marker_key,
    marker_payload,
    mismatch,
    needs_marker,
    read_marker,
)

KEYS = ["a", "a:b", "user:42", "litellm:abc", "é:ü", "x" * 200, "deep/er/path", ".s3cache2:x"]


def headers_of(chosen: Layout) -> dict[str, str]:
    """The lower-cased headers a HEAD of ``chosen``'s marker returns."""
    return {f"x-amz-meta-{k}": v for k, v in marker_payload(chosen).metadata.items()}


# -- where entries live ---------------------------------------------------------------------


@pytest.mark.parametrize("key", KEYS)
def test_flat_is_todays_object_key(key: str) -> None:
    assert FLAT.object_key("p/", key) == _keys.object_key("p/", key)


@pytest.mark.parametrize(
    ("key", "shard"), [("a:b", "c1"), ("a/b", "c1"), ("user:42", "ff"), ("é/ü", "17")]
)
def test_hashed_puts_the_sha256_of_the_key_path_first(key: str, shard: str) -> None:
    """Fixed vectors (``printf %s a/b | sha256sum | cut -c1-2`` is c1): a change of digest,
    width or encoding would strand every entry, so it must fail here."""
    path = key.replace(":", "/")
    assert HASHED.object_key("cache/", key) == f"cache/{shard}/{path}"
    assert hashlib.sha256(path.encode()).hexdigest()[:2] == shard


def test_a_colon_key_and_its_slash_twin_stay_one_entry() -> None:
    assert HASHED.object_key("p/", "ns:k:1") == HASHED.object_key("p/", "ns/k/1")
    assert HASHED.object_key("p/", "ns:k:1") == HASHED.object_key("p/", "ns:k/1")


def test_the_shard_does_not_depend_on_the_prefix() -> None:
    """A cache moved to another prefix keeps its shards."""
    here = HASHED.object_key("one/", "k")
    there = HASHED.object_key("two/deeper/", "k")
    assert here.removeprefix("one/") == there.removeprefix("two/deeper/")


@pytest.mark.parametrize("key", ["", ".s3cache:x", "a::b", "bad\x00key"])
def test_hashed_keys_are_validated_like_flat_ones(key: str) -> None:
    with pytest.raises(ValueError, match="cache key") as flat_error:
        FLAT.object_key("p/", key)
    with pytest.raises(ValueError, match="cache key") as hashed_error:
        HASHED.object_key("p/", key)
    assert str(hashed_error.value) == str(flat_error.value)


def test_the_shard_counts_against_s3s_key_limit() -> None:
    prefix = "p/"
    longest = "k" * (_keys.MAX_KEY_BYTES - len(prefix))
    assert FLAT.object_key(prefix, longest)  # fits flat
    with pytest.raises(ValueError, match=r"1027 UTF-8 bytes.*3-byte shard included"):
        HASHED.object_key(prefix, longest)
    assert len(HASHED.object_key(prefix, longest[:-3])) == _keys.MAX_KEY_BYTES


@pytest.mark.parametrize("chosen", [FLAT, HASHED], ids=["flat", "hashed"])
@pytest.mark.parametrize("key", KEYS)
def test_key_path_inverts_object_key(chosen: Layout, key: str) -> None:
    okey = chosen.object_key("p/", key)
    assert chosen.key_path("p/", okey) == key.replace(":", "/")


@pytest.mark.parametrize(
    "okey",
    [
        "q/c1/a/b",  # outside the prefix
        "p/.s3cache/layout",  # s3cache's own objects
        "p/.s3cache/lease/a/b",
        "p/c2/a/b",  # a shard that is not this path's
        "p/C1/a/b",  # hex digits are lower-case
        "p/c1a/b",  # no slash after the shard
        "p/c1/",  # no path
        "p/a/b",  # a flat entry
        "p/c",
    ],
)
def test_key_path_refuses_what_a_hashed_cache_did_not_write(okey: str) -> None:
    assert HASHED.key_path("p/", okey) is None


def test_flat_key_path_leaves_out_only_the_reserved_namespace_and_other_prefixes() -> None:
    assert FLAT.key_path("p/", "p/c1/a/b") == "c1/a/b"
    assert FLAT.key_path("p/", "p/.s3cache/lock/x") is None
    assert FLAT.key_path("p/", "other/x") is None
    assert FLAT.key_path("", "x/y") == "x/y"


# -- shards and listings --------------------------------------------------------------------


def test_there_are_256_shards_in_listing_order() -> None:
    shards = HASHED.shards()
    assert len(shards) == 256 == len(set(shards))
    assert list(shards) == sorted(shards)
    assert shards[0] == "00"
    assert shards[-1] == "ff"
    assert FLAT.shards() == ("",)


def test_shards_share_the_keys_evenly() -> None:
    """65,536 keys over 256 shards: a chi-square far below the 0.1% critical value (for 255
    degrees of freedom, about 330), and no shard off its share by more than a third."""
    counts = Counter(HASHED.shard(f"user/{i}") for i in range(65_536))
    assert len(counts) == 256
    expected = 65_536 / 256
    chi_square = sum((n - expected) ** 2 / expected for n in counts.values())
    assert chi_square < 330
    assert max(counts.values()) < expected * 4 / 3
    assert min(counts.values()) > expected * 2 / 3


def test_flat_lists_one_prefix_with_the_sub_prefix_as_given() -> None:
    assert FLAT.listing_prefixes("p/", "user:") == ("p/user/",)
    assert FLAT.listing_prefixes("p/") == ("p/",)


def test_hashed_lists_each_shard_with_the_sub_prefix_after_it() -> None:
    prefixes = HASHED.listing_prefixes("p/", "user:")
    assert len(prefixes) == 256
    assert prefixes[0] == "p/00/user/"
    assert prefixes[255] == "p/ff/user/"
    assert HASHED.listing_prefixes("p/")[:2] == ("p/00/", "p/01/")


@pytest.mark.parametrize("sub", ["", "u", "user/", "user:4", "user/42", "zzz"])
def test_the_listings_cover_exactly_the_keys_under_the_sub_prefix(sub: str) -> None:
    okeys = [HASHED.object_key("p/", f"user:{i}") for i in range(500)]
    okeys += ["p/.s3cache/layout", "p/user/7"]  # s3cache's own, and a flat stray
    found = {
        path
        for listing in HASHED.listing_prefixes("p/", sub)
        for okey in okeys
        if okey.startswith(listing) and (path := HASHED.key_path("p/", okey)) is not None
    }
    wanted = {f"user/{i}" for i in range(500) if f"user/{i}".startswith(sub.replace(":", "/"))}
    assert found == wanted


def test_a_bad_sub_prefix_is_refused_once_like_sub_prefix_refuses_it() -> None:
    with pytest.raises(ValueError, match="control character"):
        HASHED.listing_prefixes("p/", "a\x00")
    with pytest.raises(ValueError, match="over S3's 1024-byte key limit"):
        HASHED.listing_prefixes("p/", "k" * 1020)


def test_s3_matches_the_shard_listings_as_planned(s3: Any, bucket: str) -> None:
    """On the test server: the 256 ListObjectsV2 prefixes of a sub-prefix find exactly the
    hashed entries under it, and nothing of s3cache's own."""
    keys = ["user:1", "user:2", "user:10", "team:1", "u"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=HASHED.object_key("c/", key), Body=b"{}")
    s3.put_object(Bucket=bucket, Key=marker_key("c/"), Body=marker_payload(HASHED).body)
    s3.put_object(Bucket=bucket, Key="c/user/3", Body=b"{}")  # a flat stray
    users = {"user/1", "user/2", "user/10"}
    for sub, wanted in (("user:", users), ("", users | {"team/1", "u"})):
        found: set[str | None] = set()
        for listing in HASHED.listing_prefixes("c/", sub):
            page = s3.list_objects_v2(Bucket=bucket, Prefix=listing)
            found.update(HASHED.key_path("c/", o["Key"]) for o in page.get("Contents", []))
        assert found == wanted


# -- the ``layout=`` argument ----------------------------------------------------------------


def test_layout_takes_the_two_names_or_a_layout() -> None:
    assert layout("flat") is FLAT
    assert layout("hashed") is HASHED
    assert layout(HASHED) is HASHED
    assert HASHED.width == 2


@pytest.mark.parametrize(
    ("value", "error"),
    [("Hashed", ValueError), ("", ValueError), (2, TypeError), (None, TypeError)],
)
def test_layout_refuses_anything_else(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="layout must be 'flat' or 'hashed'"):
        layout(value)


@pytest.mark.parametrize(
    ("name", "width", "match"),
    [("flat", 2, r"width must be in \(0, 0\)"), ("hashed", 0, "width must be in"),
     ("hashed", 5, "width must be in"), ("sharded", 2, "layout must be")],
)  # fmt: skip
def test_a_layout_checks_its_width(name: Any, width: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Layout(name, width)


# -- the marker ------------------------------------------------------------------------------


def test_the_marker_lives_unsharded_in_the_reserved_namespace() -> None:
    key = marker_key("p/")
    assert key == "p/.s3cache/layout"
    assert _keys.is_reserved("p/", key)
    assert FLAT.key_path("p/", key) is None
    assert HASHED.key_path("p/", key) is None
    assert marker_key("") == ".s3cache/layout"


def test_the_marker_says_its_layout_in_metadata_and_body_and_never_expires() -> None:
    payload = marker_payload(HASHED)
    assert payload.metadata == {
        "s3cache-layout": "hashed",
        "s3cache-layout-width": "2",
        "s3cache-layout-digest": "sha256",
        "s3cache-layout-version": "1",
    }
    assert _expiry.TTL_METADATA not in payload.metadata  # purge-expired keeps it
    assert payload.expires is None
    assert payload.cache_control is None
    assert payload.content_type == "application/json"
    document = json.loads(payload.body)
    assert (document["layout"], document["width"], document["version"]) == ("hashed", 2, 1)


@pytest.mark.parametrize("chosen", [FLAT, HASHED], ids=["flat", "hashed"])
def test_read_marker_reads_what_marker_payload_writes(chosen: Layout) -> None:
    found = read_marker(headers_of(chosen))
    assert found == Marker(chosen.name, chosen.width, "sha256", 1)
    assert mismatch(found, chosen, "bkt", "p/") is None


def test_an_unreadable_marker_is_refused_not_guessed() -> None:
    with pytest.raises(ValueError, match="lacks its s3cache-layout, s3cache-layout-digest"):
        read_marker(
            {"x-amz-meta-s3cache-layout-width": "2", "x-amz-meta-s3cache-layout-version": "1"}
        )
    damaged = {**headers_of(HASHED), "x-amz-meta-s3cache-layout-width": "two"}
    with pytest.raises(ValueError, match="not a number"):
        read_marker(damaged)


def test_a_hashed_prefix_opened_flat_is_named_with_the_fix() -> None:
    message = mismatch(read_marker(headers_of(HASHED)), FLAT, "bkt", "app/")
    assert message == (
        "bucket 'bkt', prefix 'app/' holds a hashed layout (width 2) but the cache was opened "
        "with layout='flat': open it with layout='hashed', or move the entries with "
        "`s3cache migrate-layout --to flat`"
    )


def test_a_flat_marker_opened_hashed_is_named() -> None:
    message = mismatch(read_marker(headers_of(FLAT)), HASHED, "bkt", "app/")
    assert message is not None
    assert "holds a flat layout but the cache was opened with layout='hashed'" in message


@pytest.mark.parametrize(
    ("found", "words"),
    [
        (Marker("hashed", 3, "sha256", 1), "hashed layout (width 3) but this s3cache's"),
        (Marker("hashed", 2, "sha256", 2), "written by a newer s3cache"),
        (Marker("hashed", 2, "blake3", 1), "written by a newer s3cache"),
        (Marker("hashed", 9, "sha256", 1), "width 9: upgrade s3cache"),
        (Marker("trie", 2, "sha256", 1), "unknown key layout 'trie'"),
    ],
)
def test_markers_this_version_cannot_serve_are_named(found: Marker, words: str) -> None:
    message = mismatch(found, HASHED, "bkt", "p/")
    assert message is not None
    assert words in message


def test_no_marker_means_flat_and_a_hashed_cache_writes_one() -> None:
    assert mismatch(None, FLAT, "bkt", "p/") is None
    assert mismatch(None, HASHED, "bkt", "p/") is None
    assert needs_marker(None, HASHED)
    assert not needs_marker(None, FLAT)  # litellm and older versions see nothing new
    assert not needs_marker(read_marker(headers_of(HASHED)), HASHED)
