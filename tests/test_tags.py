"""Tags (``s3cache._tags``), sans-IO: validation before any request, the metadata field and its
budget within S3's 2 KB, tag records and their keys, the comparison at one-second resolution,
and the per-process tag-check cache on a fake clock."""

from __future__ import annotations

import json
import math

import pytest

from s3cache import _format, _keys
from s3cache._expiry import TTL_METADATA
from s3cache._format import JsonSerializer
from s3cache._freshness import ABSENT_METADATA, tombstone, with_freshness
from s3cache._tags import (
    MAX_TAG_LENGTH,
    MAX_TAGS,
    METADATA_LIMIT,
    OTHER_METADATA_BUDGET,
    TAG_RECORD_METADATA,
    TAGS_HEADER,
    TAGS_METADATA,
    TagChecks,
    check_metadata_size,
    invalidates,
    is_invalidated,
    metadata_size,
    normalize_tags,
    parse_tags,
    record_time,
    tag_check_interval,
    tag_record,
    tag_record_key,
    tag_record_scopes,
    with_tags,
    written_at,
)
from tests.test_freshness import http_date
from tests.test_pacing import FakeClock

T0 = 1_700_000_000.0

# -- validation ------------------------------------------------------------------------------


def test_good_tags_are_sorted_without_repeats() -> None:
    tags = ["user:42", "doc=7", "model:gpt-4o", "a.b_c+d@example.com", "user:42", "X"]
    assert normalize_tags(tags) == (
        "X",
        "a.b_c+d@example.com",
        "doc=7",
        "model:gpt-4o",
        "user:42",
    )
    assert normalize_tags(None) == ()
    assert normalize_tags([]) == ()
    assert normalize_tags(iter(["t"] * 50)) == ("t",)  # repeats do not count against the cap
    assert normalize_tags(["x" * MAX_TAG_LENGTH]) == ("x" * MAX_TAG_LENGTH,)


@pytest.mark.parametrize(
    ("tags", "error", "words"),
    [
        ("user:42", TypeError, r"tags=\['user:42'\]"),
        (b"user", TypeError, "single bytes"),
        ([42], TypeError, "not int"),
        ([None], TypeError, "not NoneType"),
        ([""], ValueError, "empty"),
        (["x" * (MAX_TAG_LENGTH + 1)], ValueError, "129 characters"),
        (["a b"], ValueError, "' '"),
        (["a/b"], ValueError, "'/'"),
        (["a,b"], ValueError, "','"),
        (["zoë"], ValueError, "U\\+00EB"),
        (["tab\t"], ValueError, "U\\+0009"),
        (["a%20"], ValueError, "'%'"),
        (["."], ValueError, "path segment"),
        ([".."], ValueError, "path segment"),
        ([f"t{i}" for i in range(MAX_TAGS + 1)], ValueError, "11 tags, over the 10"),
    ],
)
def test_bad_tags_are_refused_with_the_reason(tags: object, error: type, words: str) -> None:
    with pytest.raises(error, match=words):
        normalize_tags(tags)  # type: ignore[arg-type]


def test_the_error_names_the_parameter() -> None:
    with pytest.raises(ValueError, match=r"^cached\(tags=\.\.\.\): a tag must not be empty"):
        normalize_tags([""], "cached(tags=...)")


# -- the metadata field and its budget -------------------------------------------------------


def test_tags_round_trip_through_metadata() -> None:
    payload = _format.encode({"v": 1}, 60.0, JsonSerializer(), T0)
    tags = normalize_tags(["user:42", "doc:7"])
    tagged = with_tags(payload, tags)
    assert tagged.metadata[TAGS_METADATA] == "doc:7 user:42"
    assert tagged.metadata[TTL_METADATA] == "60"
    headers = {"x-amz-meta-" + k: v for k, v in tagged.metadata.items()}
    assert parse_tags(headers) == tags


def test_an_untagged_entry_carries_nothing_extra() -> None:
    payload = _format.encode({"v": 1}, 60.0, JsonSerializer(), T0)
    assert with_tags(payload, ()) is payload
    assert parse_tags({"x-amz-meta-s3cache-ttl": "60"}) == ()


@pytest.mark.parametrize(
    "raw",
    ["", " ", "a  b", "a/b", "a b ", " ".join(["t"] * (MAX_TAGS + 1)), "é", "x" * 200, ". a"],
)
def test_unreadable_tag_metadata_is_none_never_no_tags(raw: str) -> None:
    assert parse_tags({TAGS_HEADER: raw}) is None


def longest_other_fields() -> dict[str, str]:
    """Every field s3cache writes beside tags, at the longest value each can take."""
    longest = "1" * 11 + "." + "1" * 17  # the longest number parse_seconds reads (29 chars)
    payload = _format.encode({"v": 1}, 1234567890.1234567, JsonSerializer(), T0)
    payload = with_freshness(payload, 9999999999.999, 1234567890.1234567)
    metadata = dict(payload.metadata)
    metadata[TTL_METADATA] = longest
    metadata[ABSENT_METADATA] = longest  # a tombstone's (one entry never has both; count both)
    metadata["s3cache-stale"] = longest
    # From the write-nonce and signing branches: 16 hex digits; v1:<8 hex>:<64 hex>.
    metadata["s3cache-nonce"] = "0" * 16
    metadata["s3cache-sig"] = "v1:" + "0" * 8 + ":" + "0" * 64
    return metadata


def test_the_metadata_budget_fits_every_valid_tag_set_beside_every_other_field() -> None:
    others = longest_other_fields()
    assert metadata_size(others) == 336  # as documented at OTHER_METADATA_BUDGET
    assert metadata_size(others) <= OTHER_METADATA_BUDGET
    tags = normalize_tags([f"{i}" + "t" * (MAX_TAG_LENGTH - 1) for i in range(MAX_TAGS)])
    tag_field = with_tags(tombstone(1.0), tags).metadata
    assert metadata_size({TAGS_METADATA: tag_field[TAGS_METADATA]}) == 1312
    worst = {**others, TAGS_METADATA: tag_field[TAGS_METADATA]}
    assert OTHER_METADATA_BUDGET + 1312 <= METADATA_LIMIT
    assert metadata_size(worst) <= METADATA_LIMIT
    check_metadata_size(worst, "set('k')")  # does not raise


def test_metadata_over_the_cap_is_refused_before_the_put() -> None:
    fixed = len("x-amz-meta-s3cache-tags") + 1 + len("x-amz-meta-s3cache-key")
    exactly = {TAGS_METADATA: "t", "s3cache-key": "k" * (METADATA_LIMIT - fixed)}
    assert metadata_size(exactly) == METADATA_LIMIT
    check_metadata_size(exactly, "set('k')")  # at the cap: fits
    too_much = {**exactly, "s3cache-key": exactly["s3cache-key"] + "k"}  # a long key original
    with pytest.raises(ValueError, match=r"set\('k'\): 2049 bytes .* over S3's 2048-byte cap"):
        check_metadata_size(too_much, "set('k')")
    with pytest.raises(ValueError, match="s3cache-key, s3cache-tags"):
        check_metadata_size(too_much, "set('k')")
    assert metadata_size({"s3cache-key": "é"}) == len("x-amz-meta-s3cache-key") + 2  # UTF-8


# -- tag records -----------------------------------------------------------------------------


def test_tag_records_live_in_the_reserved_namespace() -> None:
    key = tag_record_key("cache/", "user:42")
    assert key == "cache/.s3cache/tags/user:42"
    assert _keys.is_reserved("cache/", key)
    assert key == _keys.reserved_key("cache/", "tags", "user:42")
    assert any(key.startswith(scope) for scope in tag_record_scopes("cache/"))


def test_a_tag_record_key_too_long_for_s3_is_hashed() -> None:
    prefix = "p" * 900 + "/"
    tag = "t" * MAX_TAG_LENGTH
    key = tag_record_key(prefix, tag)
    assert len(key.encode()) <= _keys.MAX_KEY_BYTES
    assert key.startswith(prefix + ".s3cache/tags-sha256/")
    assert key == tag_record_key(prefix, tag)  # every process derives the same key
    assert key != tag_record_key(prefix, tag[:-1] + "u")
    assert any(key.startswith(scope) for scope in tag_record_scopes(prefix))


def test_a_tag_record_is_small_keeps_its_tag_and_never_expires() -> None:
    record = tag_record("user:42")
    assert record.metadata == {TAG_RECORD_METADATA: "user:42"}
    assert TTL_METADATA not in record.metadata
    assert record.expires is None
    assert json.loads(record.body)["tag"] == "user:42"
    assert len(record.body) < 64


def test_record_and_write_times_come_from_last_modified() -> None:
    assert record_time({"last-modified": http_date(T0)}) == T0
    assert record_time({"last-modified": "garbage"}) == math.inf  # every entry invalidated
    assert record_time({}) == math.inf
    assert written_at({"last-modified": http_date(T0 + 5)}) == T0 + 5
    assert written_at({"last-modified": "garbage"}) is None


# -- the comparison, at one-second resolution ------------------------------------------------


@pytest.mark.parametrize(
    ("written", "invalidated", "expected"),
    [
        (T0 + 0.2, T0 + 0.8, True),  # written before, same second: invalidated
        (T0 + 0.8, T0 + 0.2, True),  # written after, same second: cannot tell, a miss
        (T0 + 1.1, T0 + 0.8, False),  # written in a later second: survives
        (T0 + 0.9, T0 + 1.0, True),  # written in an earlier second: invalidated
    ],
)
def test_equal_seconds_count_as_invalidated(
    written: float, invalidated: float, expected: bool
) -> None:
    """The server truncates both times to the second; a miss is safe, a wrong value is not."""
    w = written_at({"last-modified": http_date(written)})
    r = record_time({"last-modified": http_date(invalidated)})
    assert w is not None
    assert invalidates(r, w) is expected
    assert is_invalidated(w, ("a", "b"), {"b": r}) is expected
    assert not is_invalidated(w, ("a",), {"b": r})  # a tag without a record: never invalidated


# -- the tag-check cache ---------------------------------------------------------------------


def test_a_check_is_good_for_the_interval_counted_from_its_send() -> None:
    clock = FakeClock()
    checks = TagChecks(1.0, clock=clock)
    assert checks.due(("a", "b"), T0) == ("a", "b")
    sent = clock.now
    clock.now += 0.3  # the GETs' latency
    checks.learn("a", None, sent)
    checks.learn("b", T0 - 100, sent)
    assert checks.due(("a", "b"), T0) == ()
    assert not checks.invalidated(("a", "b"), T0)
    clock.now = sent + 1.0
    assert checks.due(("a", "b"), T0) == ()  # exactly the interval old: still good
    clock.now = sent + 1.01
    assert checks.due(("a", "b"), T0) == ("a", "b")
    assert checks.interval == 1.0


def test_interval_zero_checks_on_every_read() -> None:
    clock = FakeClock()
    checks = TagChecks(0, clock=clock)
    checks.learn("a", None, clock.now)
    assert checks.due(("a",), T0) == ("a",)


def test_an_own_invalidation_is_known_at_once_and_needs_no_request() -> None:
    clock = FakeClock()
    checks = TagChecks(0, clock=clock)  # even when checking on every read
    checks.learn("a", None, clock.now)
    checks.learn("a", T0 + 10, clock.now)  # our invalidate(): its PUT's Date
    assert checks.due(("a", "b"), T0 + 10) == ()
    assert checks.invalidated(("b", "a"), T0 + 10)
    assert checks.due(("a",), T0 + 11) == ("a",)  # a later entry: the record must be read


def test_a_late_answer_never_hides_a_newer_invalidation() -> None:
    clock = FakeClock()
    checks = TagChecks(5.0, clock=clock)
    checks.learn("a", T0 + 10, clock.now)  # our invalidation
    checks.learn("a", None, clock.now - 1)  # a GET sent before it answers 404
    checks.learn("a", T0, clock.now - 1)  # or an older record
    assert checks.invalidated(("a",), T0 + 10)
    assert checks.due(("a",), T0 + 11) == ()  # the newest check time is kept


def test_another_process_invalidation_is_seen_on_the_next_check() -> None:
    clock = FakeClock()
    checks = TagChecks(1.0, clock=clock)
    checks.learn("a", None, clock.now)
    clock.now += 0.5
    assert checks.due(("a",), T0) == ()
    assert not checks.invalidated(("a",), T0)  # within the bound: not known yet
    clock.now += 0.6
    assert checks.due(("a",), T0) == ("a",)
    checks.learn("a", T0 + 3, clock.now)
    assert checks.invalidated(("a",), T0)


def test_tag_checks_memory_is_bounded_and_forgettable() -> None:
    clock = FakeClock()
    checks = TagChecks(10.0, max_tags=2, clock=clock)
    for tag in "abc":
        checks.learn(tag, T0, clock.now)
    assert len(checks) == 2
    assert checks.due(("a",), T0 + 1) == ("a",)  # forgotten: checked again, never trusted
    assert checks.due(("c",), T0 + 1) == ()
    checks.forget()
    assert len(checks) == 0
    assert checks.due(("c",), T0 + 1) == ("c",)


def test_tag_check_interval_is_validated() -> None:
    assert tag_check_interval(0) == 0.0
    assert tag_check_interval(2.5) == 2.5
    for bad in (-1, math.inf, math.nan):
        with pytest.raises(ValueError, match="tag_check_interval"):
            tag_check_interval(bad)
    with pytest.raises(TypeError, match="tag_check_interval"):
        tag_check_interval(True)
    with pytest.raises(ValueError, match="max_tags"):
        TagChecks(max_tags=0)
