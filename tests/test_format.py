"""The storage format, tested without a server (it is sans-IO)."""

from __future__ import annotations

import gzip
import json
import math
import re
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from s3cache import (
    AsyncS3Cache,
    _compression,
    _expiry,
    _format,
    _keys,
)
from s3cache._format import JsonSerializer

SER = JsonSerializer()


def http_date(epoch: float) -> str:
    return format_datetime(datetime.fromtimestamp(epoch, tz=UTC), usegmt=True)


# -- keys -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [("", ""), ("cache", "cache/"), ("cache/", "cache/"), ("a/b", "a/b/"), ("a/b//", "a/b/")],
)
def test_prefix_is_normalised_to_end_in_slash(prefix: str, expected: str) -> None:
    assert _keys.normalize_prefix(prefix) == expected


@pytest.mark.parametrize("prefix", ["/", "/cache", "a//b", "a/./b", "../x", "a\nb"])
def test_bad_prefix_is_rejected(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        _keys.normalize_prefix(prefix)


def test_colons_become_folders_like_litellm() -> None:
    assert _keys.object_key("p/", "ns:abc123") == "p/ns/abc123"
    assert _keys.object_key("", "a:b:c") == "a/b/c"
    assert _keys.object_key("p/", "plain") == "p/plain"


@pytest.mark.parametrize(
    ("key", "error", "rule"),
    [
        ("", ValueError, "empty"),
        (b"bytes", TypeError, "str"),
        (42, TypeError, "str"),
        ("a\x00b", ValueError, "control character"),
        ("tab\there", ValueError, "control character"),
        ("del\x7f", ValueError, "control character"),
        ("a::b", ValueError, "segment"),
        ("a//b", ValueError, "segment"),
        ("/abs", ValueError, "segment"),
        ("trailing:", ValueError, "segment"),
        ("a/./b", ValueError, "segment"),
        ("a/../b", ValueError, "segment"),
        ("..", ValueError, "segment"),
        ("x" * 1025, ValueError, "1024"),
        ("\ud800", ValueError, "surrogate"),
    ],
)
def test_bad_keys_name_the_rule(key: Any, error: type[Exception], rule: str) -> None:
    with pytest.raises(error, match=rule):
        _keys.object_key("", key)


def test_key_limit_counts_utf8_bytes_and_the_prefix() -> None:
    assert _keys.object_key("", "x" * 1024) == "x" * 1024
    with pytest.raises(ValueError, match="1025 UTF-8 bytes"):
        _keys.object_key("p/", "x" * 1023)
    two_byte = "é" * 512  # 1,024 bytes exactly
    assert _keys.object_key("", two_byte) == two_byte
    with pytest.raises(ValueError, match="UTF-8 bytes"):
        _keys.object_key("", two_byte + "x")


def test_unicode_keys_are_allowed() -> None:
    assert _keys.object_key("", "日本:語") == "日本/語"


@pytest.mark.parametrize(
    ("char", "point"),
    [
        ("\ufffe", "U+FFFE"),
        ("\uffff", "U+FFFF"),
        ("\ufdd0", "U+FDD0"),
        ("\ufdef", "U+FDEF"),
        ("\U0001fffe", "U+1FFFE"),
        ("\U0001ffff", "U+1FFFF"),
        ("\U0010ffff", "U+10FFFF"),
    ],
)
def test_noncharacters_are_rejected_naming_the_code_point(char: str, point: str) -> None:
    """XML 1.0 cannot carry them, so a DeleteObjects batch holding one fails as a whole."""
    for key in (f"a{char}b", f"😀{char}"):
        with pytest.raises(ValueError, match=re.escape(f"{point}, a Unicode noncharacter")):
            _keys.object_key("", key)
    with pytest.raises(ValueError, match=re.escape(f"prefix contains {point}")):
        _keys.normalize_prefix(f"p{char}")


@pytest.mark.parametrize("char", ["\ufffd", "\ufdcf", "\ufdf0", "\ue000", "\U0001fffd", "😀"])
def test_the_neighbours_of_noncharacters_are_allowed(char: str) -> None:
    assert _keys.object_key("p/", f"a{char}") == f"p/a{char}"


@pytest.mark.parametrize("key", [".s3cache", ".s3cache:lease:k", ".s3cache/lock/job"])
def test_the_reserved_first_segment_is_refused(key: str) -> None:
    with pytest.raises(ValueError, match="reserved for s3cache's own objects"):
        _keys.object_key("p/", key)


def test_keys_that_only_resemble_the_reserved_segment_are_allowed() -> None:
    assert _keys.object_key("p/", "a:.s3cache") == "p/a/.s3cache"
    assert _keys.object_key("p/", ".s3cache2:x") == "p/.s3cache2/x"
    assert _keys.object_key("p/", "s3cache-check") == "p/s3cache-check"


def test_reserved_keys_are_unreachable_by_cache_keys_and_recognised() -> None:
    okey = _keys.reserved_key("p/", "lease", "ns/abc")
    assert okey == "p/.s3cache/lease/ns/abc"
    assert _keys.is_reserved("p/", okey)
    assert not _keys.is_reserved("p/", _keys.object_key("p/", "ns:abc"))
    assert not _keys.is_reserved("q/", okey)  # another cache's prefix
    assert _keys.is_reserved("", _keys.reserved_key("", "lock", "job"))


def test_reserved_keys_too_long_for_s3_end_in_a_digest() -> None:
    path = _keys.path_of("x" * 1010, "cache key")
    okey = _keys.reserved_key("prefix/", "lease", path)
    assert okey.startswith("prefix/.s3cache/lease-sha256/")
    assert len(okey) <= _keys.MAX_KEY_BYTES
    assert okey == _keys.reserved_key("prefix/", "lease", path)  # every caller agrees


def test_the_longest_prefix_leaves_room_for_every_reserved_key() -> None:
    prefix = _keys.normalize_prefix("p" * (_keys.MAX_PREFIX_BYTES - 1))
    for kind in ("lease", "lock", "check"):
        okey = _keys.reserved_key(prefix, kind, "x" * 1024)
        assert len(okey) <= _keys.MAX_KEY_BYTES
    with pytest.raises(ValueError, match="over the 896-byte limit"):
        _keys.normalize_prefix("é" * 448)  # 896 bytes, and the '/'
    with pytest.raises(ValueError, match="the lease object key would be 1087 UTF-8 bytes"):
        _keys.reserved_key("p" * 1000 + "/", "lease", "k" * 100)  # were the prefix allowed


def test_key_length_detail_names_the_last_and_the_longest_segment() -> None:
    assert _keys.key_length_detail("p/" + "n" * 300) == (
        "the object key is 302 UTF-8 bytes; its last segment 'nnnnnnnnnnnnnnnnnnnnnnn…' is "
        "300 bytes"
    )
    assert _keys.key_length_detail("d" * 400 + "/日本") == (
        "the object key is 407 UTF-8 bytes; its last segment '日本' is 6 bytes, its longest "
        "(1 of 2) 400 bytes"
    )


def test_sub_prefix_is_a_plain_string_prefix_with_colons_as_slashes() -> None:
    assert _keys.sub_prefix("cache/", "") == "cache/"
    assert _keys.sub_prefix("cache/", "ns:a") == "cache/ns/a"
    assert _keys.sub_prefix("", "ns/") == "ns/"  # a folder: empty last segment allowed
    assert _keys.sub_prefix("c/", "日本") == "c/日本"


@pytest.mark.parametrize(
    ("sub", "error", "match"),
    [
        (None, TypeError, "prefix must be a str"),
        ("a\x00", ValueError, "control character"),
        ("\ud800", ValueError, "lone surrogate"),
        ("a\ufffe", ValueError, "U\\+FFFE, a Unicode noncharacter"),
        ("x" * 1023, ValueError, "1025 UTF-8 bytes, over S3's 1024-byte"),
    ],
)
def test_bad_sub_prefix_is_rejected(sub: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        _keys.sub_prefix("p/", sub)


# -- ttl ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ttl", "seconds"),
    [(None, None), (1, 1.0), (2.5, 2.5), (timedelta(minutes=2), 120.0), (3600, 3600.0)],
)
def test_ttl_accepts_seconds_and_timedelta(ttl: Any, seconds: float | None) -> None:
    assert _expiry.normalize_ttl(ttl) == seconds


@pytest.mark.parametrize(
    ("ttl", "error", "match"),
    [
        (0, ValueError, "positive"),
        (-5, ValueError, "positive"),
        (timedelta(seconds=-1), ValueError, "positive"),
        (math.nan, ValueError, "finite"),
        (math.inf, ValueError, "finite"),
        (0.5, ValueError, "at least 1 second"),
        (10**400, ValueError, "at most"),
        (1e12, ValueError, "at most"),
        (b"60", TypeError, "bytes"),  # a str is a duration ("60", "1h"): issue 26
        (True, TypeError, "bool"),
        ([1], TypeError, "list"),
    ],
)
def test_bad_ttl_is_rejected(ttl: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        _expiry.normalize_ttl(ttl)


# -- encoding -------------------------------------------------------------------------------


def test_json_values_are_orjson_with_ttl_headers_for_both_readers() -> None:
    now = 1_700_000_000.0
    payload = _format.encode({"a": [1, 2.5, None]}, 90.0, SER, now)
    assert payload.body == b'{"a":[1,2.5,null]}'
    assert payload.content_type == "application/json"
    assert payload.metadata == {"s3cache-ttl": "90"}
    assert payload.expires == datetime.fromtimestamp(now + 90, tz=UTC)
    assert payload.cache_control == "max-age=90"


def test_fractional_ttl_round_trips_in_metadata() -> None:
    payload = _format.encode("v", 1.5, SER, 0.0)
    assert payload.metadata == {"s3cache-ttl": "1.5"}
    assert payload.cache_control == "max-age=2"


def test_no_ttl_writes_no_expiry_headers() -> None:
    payload = _format.encode("v", None, SER, 0.0)
    assert (payload.metadata, payload.expires, payload.cache_control) == ({}, None, None)


@pytest.mark.parametrize("raw", [b"\x00\xff", bytearray(b"ab"), memoryview(b"cd")])
def test_bytes_are_stored_raw_and_come_back_as_bytes(raw: Any) -> None:
    payload = _format.encode(raw, None, SER, 0.0)
    assert payload.content_type == "application/octet-stream"
    assert payload.body == bytes(raw)
    back = _format.decode(payload.body, payload.content_type, SER)
    assert back == bytes(raw)
    assert type(back) is bytes


def test_none_is_a_value() -> None:
    payload = _format.encode(None, None, SER, 0.0)
    assert payload.body == b"null"
    assert _format.decode(payload.body, payload.content_type, SER) is None


@pytest.mark.parametrize("value", [object(), {1: "non-str key"}, {1, 2}, 2**70])
def test_unserialisable_values_raise_type_error(value: Any) -> None:
    with pytest.raises(TypeError):
        _format.encode(value, None, SER, 0.0)


def test_circular_values_raise_type_error() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(TypeError):
        _format.encode(loop, None, SER, 0.0)


# -- decoding -------------------------------------------------------------------------------


def test_reads_litellm_json_dumps_bodies_including_nan() -> None:
    value = {"timestamp": 1.5, "response": '{"id": "x"}', "score": float("nan")}
    decoded = _format.decode(json.dumps(value).encode(), "application/json", SER)
    assert decoded["response"] == '{"id": "x"}'
    assert math.isnan(decoded["score"])


def test_reads_python_literal_bodies_as_a_fallback() -> None:
    body = repr({"a": (1, 2), "b": None, "c": True}).encode()
    assert _format.decode(body, "application/json", SER) == {"a": (1, 2), "b": None, "c": True}


def test_literal_fallback_never_evaluates_code() -> None:
    with pytest.raises(ValueError, match="neither JSON nor a Python literal"):
        _format.decode(b"__import__('os').getcwd()", "application/json", SER)


def test_literal_fallback_is_size_capped() -> None:
    big = repr(["x" * 100] * 3000).replace('"', "'").encode()  # not JSON: single quotes
    assert len(big) > _format.LITERAL_EVAL_MAX_BYTES
    with pytest.raises(ValueError, match="cap"):
        _format.decode(big, "application/json", SER)


@pytest.mark.parametrize("body", [b'{"truncated": [1, 2', b"\xff\xfe garbage", b""])
def test_unreadable_bodies_raise_value_error(body: bytes) -> None:
    with pytest.raises(ValueError, match="neither JSON"):
        _format.decode(body, "application/json", SER)


def test_content_type_parameters_are_ignored() -> None:
    assert _format.decode(b"[1]", "application/json; charset=utf-8", SER) == [1]
    assert _format.decode(b"[1]", "Application/Octet-Stream", SER) == b"[1]"


# -- expiry ---------------------------------------------------------------------------------

T0 = 1_750_000_000.0


def headers(**values: str) -> dict[str, str]:
    return {k.replace("_", "-"): v for k, v in values.items()}


def test_no_ttl_no_expires_never_expires() -> None:
    assert _expiry.remaining_ttl({"date": http_date(T0)}, T0) is None


def test_ttl_is_judged_on_the_server_clock_never_late() -> None:
    h = {
        "x-amz-meta-s3cache-ttl": "10",
        "last-modified": http_date(T0),
        "date": http_date(T0 + 3),
    }
    # age is 3 s, plus one second for the whole-second dates: 6 s left
    assert _expiry.remaining_ttl(h, now=0.0) == pytest.approx(6.0)
    h["date"] = http_date(T0 + 9)  # true age below 10 s: still live, on the last second
    assert _expiry.remaining_ttl(h, now=0.0) == pytest.approx(0.0)
    h["date"] = http_date(T0 + 10)  # true age may be 10.9 s: expired, never served late
    assert _expiry.remaining_ttl(h, now=0.0) == pytest.approx(-1.0)


def test_generous_remaining_ttl_never_calls_an_object_expired_early() -> None:
    h = {"x-amz-meta-s3cache-ttl": "2", "last-modified": http_date(T0), "date": http_date(T0 + 2)}
    # Date - Last-Modified = 2 s may be a true age of 1.01 s: not surely past a 2 s ttl yet.
    assert _expiry.generous_remaining_ttl(h, now=0.0) == pytest.approx(1.0)
    h["date"] = http_date(T0 + 3)  # a true age above 2 s: surely run out
    assert _expiry.generous_remaining_ttl(h, now=0.0) == pytest.approx(0.0)
    assert _expiry.generous_remaining_ttl({"date": http_date(T0)}, T0) is None
    with pytest.raises(KeyError):
        _expiry.generous_remaining_ttl({"x-amz-meta-s3cache-ttl": "2"}, T0)


def test_client_clock_does_not_change_the_outcome() -> None:
    h = {"x-amz-meta-s3cache-ttl": "10", "last-modified": http_date(T0), "date": http_date(T0 + 2)}
    for skew in (-3600.0, 0.0, 3600.0):
        assert _expiry.remaining_ttl(h, now=T0 + skew) == pytest.approx(7.0)


def test_expires_only_entries_compare_expires_with_server_date() -> None:
    h = {"expires": http_date(T0 + 30), "date": http_date(T0)}
    assert _expiry.remaining_ttl(h, now=0.0) == pytest.approx(29.0)
    h["date"] = http_date(T0 + 31)
    remaining = _expiry.remaining_ttl(h, now=0.0)
    assert remaining is not None
    assert remaining < 0


def test_unreadable_expires_counts_as_expired() -> None:
    h = {"expires": "not a date", "date": http_date(T0)}
    remaining = _expiry.remaining_ttl(h, now=T0)
    assert remaining is not None
    assert remaining < 0


def test_missing_date_falls_back_to_the_given_clock() -> None:
    h = {"x-amz-meta-s3cache-ttl": "10", "last-modified": http_date(T0)}
    assert _expiry.remaining_ttl(h, now=T0 + 4) == pytest.approx(5.0)


def test_bad_ttl_metadata_is_an_error_not_a_hit() -> None:
    h = {"x-amz-meta-s3cache-ttl": "soon", "last-modified": http_date(T0), "date": http_date(T0)}
    with pytest.raises(ValueError, match="soon"):
        _expiry.remaining_ttl(h, now=T0)


@pytest.mark.parametrize(
    "text",
    [
        "Thu, 26 Nov 2026 03:13:41 GMT",
        "Thursday, 26-Nov-26 03:13:41 GMT",
        "Thu Nov 26 03:13:41 2026",
    ],
)
def test_http_dates_in_all_three_formats(text: str) -> None:
    expected = datetime(2026, 11, 26, 3, 13, 41, tzinfo=UTC).timestamp()
    assert _expiry.parse_http_date(text) == expected


def test_bad_http_date_raises_value_error() -> None:
    with pytest.raises(ValueError, match="HTTP date"):
        _expiry.parse_http_date("yesterday")


def test_listing_timestamps_as_text_or_datetime() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert _expiry.parse_timestamp("2026-01-02T03:04:05.000Z") == when.timestamp()
    assert _expiry.parse_timestamp(when) == when.timestamp()


# -- compression cap ------------------------------------------------------------------------

SMALL_CAP = 4096


@pytest.fixture
def small_cap(monkeypatch: pytest.MonkeyPatch) -> int:
    """A 4 KiB decompression cap, so that the cap is tested without 256 MiB values."""
    monkeypatch.setattr(_compression, "MAX_DECOMPRESSED_BYTES", SMALL_CAP)
    return SMALL_CAP


@pytest.mark.parametrize("encoding", ["gzip", "zstd"])
def test_both_encodings_refuse_to_expand_past_the_same_cap(encoding: str, small_cap: int) -> None:
    compressor = _compression.Compressor(encoding, threshold=0)
    at_cap = compressor.compress(b"a" * small_cap)
    assert _compression.decompress(at_cap, encoding) == b"a" * small_cap
    with pytest.raises(ValueError, match="expands past"):
        _compression.decompress(compressor.compress(b"a" * (small_cap + 1)), encoding)


def test_zstd_cap_holds_for_frames_without_a_declared_size(small_cap: int) -> None:
    import zstandard

    unsized = zstandard.ZstdCompressor(write_content_size=False).compress(b"a" * (small_cap + 1))
    with pytest.raises(ValueError, match="zstd"):
        _compression.decompress(unsized, "zstd")


@pytest.mark.parametrize("encoding", ["gzip", "zstd"])
def test_encode_refuses_what_decompress_would_refuse(encoding: str, small_cap: int) -> None:
    compressor = _compression.Compressor(encoding, threshold=0)
    fits = "a" * (small_cap - 2)  # its JSON, quotes included, is exactly the cap
    payload = _format.encode(fits, None, SER, 0.0, compressor)
    assert _format.decode(payload.body, payload.content_type, SER, encoding) == fits
    with pytest.raises(ValueError, match="cap on compressed entries"):
        _format.encode(fits + "a", None, SER, 0.0, compressor)
    # Uncompressed bodies are never expanded, so the cap does not apply to them.
    assert len(_format.encode(fits * 2, None, SER, 0.0).body) > small_cap


# -- compression ----------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
async def test_compression_above_the_threshold(
    cache_kwargs: dict[str, Any], s3: Any, compression: Any
) -> None:
    if compression == "zstd":
        pytest.importorskip("zstandard")
    big = {"text": "abc" * 2000}
    async with AsyncS3Cache(
        **cache_kwargs, compression=compression, compression_threshold=1024, on_error="raise"
    ) as cache:
        await cache.set("big", big)
        await cache.set("small", "tiny")
        assert await cache.get("big") == big
        assert await cache.get("small") == "tiny"
    head = s3.head_object(Bucket=cache_kwargs["bucket"], Key="big")
    assert head["ContentEncoding"] == compression
    assert head["ContentLength"] < 1000
    assert "ContentEncoding" not in s3.head_object(Bucket=cache_kwargs["bucket"], Key="small")
    async with AsyncS3Cache(**cache_kwargs, on_error="raise") as plain_reader:
        assert await plain_reader.get("big") == big, "any reader decodes by Content-Encoding"


def test_a_gzip_bomb_is_refused() -> None:
    bomb = gzip.compress(b"\0" * (_compression.MAX_DECOMPRESSED_BYTES + 1))
    with pytest.raises(ValueError, match="expands past"):
        _compression.decompress(bomb, "gzip")
    with pytest.raises(ValueError, match="truncated"):
        _compression.decompress(gzip.compress(b"abc" * 100)[:-12], "gzip")


async def test_reads_gzip_entries_written_by_others(cache_kwargs: dict[str, Any], s3: Any) -> None:
    s3.put_object(
        Bucket=cache_kwargs["bucket"],
        Key="gz",
        Body=gzip.compress(b'{"a": 1}'),
        ContentType="application/json",
        ContentEncoding="gzip",
    )
    async with AsyncS3Cache(**cache_kwargs, on_error="raise") as cache:
        assert await cache.get("gz") == {"a": 1}


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"compression": "lz4"}, "compression"),
        ({"compression": "gzip", "compression_threshold": -1}, "threshold"),
    ],
)
def test_compression_options_are_validated(options: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        AsyncS3Cache("bucket", **options)
