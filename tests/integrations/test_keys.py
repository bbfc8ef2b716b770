"""Key segments of the framework integrations: any string, one valid segment, back exactly."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s3cache import _keys
from s3cache.integrations._keys import (
    LEAD,
    decode_segment,
    encode_segment,
    hashed_segment,
    is_hashed,
)

AWKWARD = [
    "",
    ".",
    "..",
    "~",
    "a:b",
    "a/b",
    "a//b",
    "/",
    "%2F",
    ".2E",
    "_-",
    "tab\there",
    "nul\x00",
    "del\x7f",
    "c1\x85",
    "日本語",
    "emoji 🎉",
    "text-embedding-3-small" + "0123456789abcdef" * 4,
    "__pregel_ns_writes",
    "tests.test_graph.<locals>.node",
    "lone \ud800 surrogate",
    "\udfff",
    "\ud83d\ude00",  # two lone surrogates: a different string from the emoji "😀"
    "😀",
]


@pytest.mark.parametrize("text", AWKWARD)
def test_any_string_is_one_valid_segment_that_decodes_back(text: str) -> None:
    segment = encode_segment(text)
    assert "/" not in segment
    assert ":" not in segment
    assert set(segment) <= set(string.ascii_letters + string.digits + "-_.~")
    assert _keys.object_key("p/", "folder/" + segment)  # a valid cache key, as is
    assert decode_segment(segment) == text


#: Any Python string, lone surrogates included.
TEXT = st.text(st.characters(), max_size=40)


@settings(max_examples=500, deadline=None)
@given(TEXT)
def test_any_text_round_trips(text: str) -> None:
    assert decode_segment(encode_segment(text)) == text


@settings(max_examples=500, deadline=None)
@given(TEXT, TEXT)
def test_listing_under_an_encoded_prefix_finds_exactly_the_keys_with_that_prefix(
    key: str, prefix: str
) -> None:
    for candidate in (prefix, key[: len(prefix)]):
        if candidate:
            starts = encode_segment(key).startswith(encode_segment(candidate))
            assert starts is key.startswith(candidate)


def test_safe_keys_are_kept_readable() -> None:
    assert encode_segment("model_v1-abc123") == "model_v1-abc123"
    assert encode_segment("a:b.c") == "a.3Ab.2Ec"
    assert encode_segment("é") == ".C3.A9"
    assert encode_segment("") == "~"


@pytest.mark.parametrize(
    "segment",
    ["", "a/b", "a:b", "a.2", "a.zz", "a.2e", ".41", ".FF", "~~", "a~", "x y", ".C3"],
)
def test_only_what_we_write_decodes(segment: str) -> None:
    assert decode_segment(segment) is None


def test_bad_keys_raise_before_any_request() -> None:
    with pytest.raises(TypeError, match="key must be a str"):
        encode_segment(b"bytes")  # type: ignore[arg-type]


def test_lone_surrogates_are_written_as_surrogatepass_bytes() -> None:
    assert encode_segment("a\ud800") == "a.ED.A0.80"
    assert encode_segment("\ud83d\ude00") != encode_segment("😀")


@pytest.mark.parametrize("text", ["x" * 1100, "日" * 120, "é" * 400, "\ud800" * 50, "a" * 129])
def test_a_hashed_segment_is_valid_short_and_never_an_encoded_one(text: str) -> None:
    segment = hashed_segment(text)
    assert is_hashed(segment)
    assert decode_segment(segment) is None  # never read as a written-out key
    assert len(segment) == LEAD + 1 + 64  # under SeaweedFS's 255 characters per segment
    assert segment.startswith(encode_segment(text)[:LEAD])
    assert _keys.object_key("p/", "folder/" + segment)
    assert hashed_segment(text) == segment  # the same in every process
    assert hashed_segment(text + "!") != segment


@settings(max_examples=300, deadline=None)
@given(TEXT)
def test_no_encoded_segment_looks_hashed(text: str) -> None:
    assert not is_hashed(encode_segment(text))


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(), min_size=60, max_size=200), TEXT)
def test_listing_under_a_cut_encoded_prefix_finds_hashed_keys_with_that_prefix(
    key: str, prefix: str
) -> None:
    """What ``yield_keys`` lists under: the encoded prefix cut to LEAD characters, under which
    every key starting with the prefix lies, written out or hashed."""
    for candidate in (prefix, key[: len(prefix)]):
        if candidate and key.startswith(candidate):
            assert hashed_segment(key).startswith(encode_segment(candidate)[:LEAD])
