"""Key segments of the framework integrations: any string, one valid segment, back exactly."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s3cache import _format
from s3cache.integrations._keys import decode_segment, encode_segment

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
]


@pytest.mark.parametrize("text", AWKWARD)
def test_any_string_is_one_valid_segment_that_decodes_back(text: str) -> None:
    segment = encode_segment(text)
    assert "/" not in segment
    assert ":" not in segment
    assert set(segment) <= set(string.ascii_letters + string.digits + "-_.~")
    assert _format.object_key("p/", "folder/" + segment)  # a valid cache key, as is
    assert decode_segment(segment) == text


#: Any valid Unicode text (lone surrogates cannot be keys: they are not UTF-8).
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)


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
    with pytest.raises(ValueError, match="lone surrogate"):
        encode_segment("\ud800")
