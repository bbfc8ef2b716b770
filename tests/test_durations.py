"""Duration strings (``s3cache._durations``), sans-IO: the grammar, its refusals with the reason
named, numbers and timedeltas, and spelling seconds back."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import pytest

from s3cache import _expiry
from s3cache._durations import seconds, spell


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90", 90.0),
        ("2.5", 2.5),
        ("90s", 90.0),
        ("15m", 900.0),
        ("1h", 3600.0),
        ("7d", 604_800.0),
        ("1h30m", 5400.0),
        ("1d12h", 129_600.0),
        ("2d3h4m5s", 2 * 86_400 + 3 * 3600 + 4 * 60 + 5.0),
        ("1s500ms", 1.5),
        ("250ms", 0.25),
        ("05m", 300.0),
        ("0s", 0.0),
        ("  1h \n", 3600.0),  # surrounding whitespace (env vars, YAML) is stripped
    ],
)
def test_strings_in_the_grammar_are_seconds(text: str, expected: float) -> None:
    assert seconds(text, "ttl") == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("1h 30m", "space inside"),
        ("1 h", "space inside"),
        ("1.5h", "whole numbers"),
        ("5.", "whole numbers"),
        ("30m1h", "'h' after 'm': units go largest first"),
        ("1m1m", "'m' after 'm'"),
        ("1s1m", "'m' after 's'"),
        ("1M", "lower-case"),
        ("1H", "lower-case"),
        ("1Ms", "lower-case"),
        ("-5s", "no sign"),
        ("+5s", "no sign"),
        ("1hour", "'hour' is not a unit"),
        ("1w", "'w' is not a unit"),
        ("1e3", "'e' is not a unit"),
        ("1h30", "last count has no unit"),
        ("h", "'h' is not where a count"),
        ("inf", "'i' is not where a count"),
        ("nan", "'n' is not where a count"),
        ("9" * 65, "over 64 characters"),
    ],
)
def test_malformed_strings_name_the_input_and_why(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match="is not a duration") as caught:
        seconds(text, "lease")
    message = str(caught.value)
    assert message.startswith(f"lease '{text[:40]}")
    assert reason in message
    assert "'1h30m'" in message  # the grammar, by example


def test_a_long_bad_input_is_shown_truncated() -> None:
    with pytest.raises(ValueError, match=r"'x{40}\.\.\.' is not a duration"):
        seconds("x" * 50, "ttl")


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1, 1.0), (2.5, 2.5), (-3, -3.0), (0, 0.0), (timedelta(minutes=2), 120.0)],
)
def test_numbers_and_timedeltas_pass_through_for_the_caller_to_judge(
    value: Any, expected: float
) -> None:
    assert seconds(value, "ttl") == expected


@pytest.mark.parametrize("value", [True, None, [1], b"90", object()])
def test_other_types_are_type_errors_naming_the_parameter(value: Any) -> None:
    with pytest.raises(TypeError, match=rf"^wait must be seconds .* not {type(value).__name__}$"):
        seconds(value, "wait")


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_refused(value: float) -> None:
    with pytest.raises(ValueError, match="ttl must be a finite number of seconds"):
        seconds(value, "ttl")


def test_an_int_past_the_float_range_is_refused() -> None:
    with pytest.raises(ValueError, match=r"ttl is too large: .* at most"):
        seconds(10**400, "ttl")


@pytest.mark.parametrize(
    ("value", "spelled"),
    [
        (0.0, "0s"),
        (1.0, "1s"),
        (90, "1m30s"),
        (3600, "1h"),
        (5400.0, "1h30m"),
        (604_801, "7d1s"),
        (1.5, "1s500ms"),
        (0.25, "250ms"),
        (1.001, "1s1ms"),
        (1e10, "115740d17h46m40s"),
        (0.0001, "0.0001"),  # not a whole number of milliseconds: stays a number
        (1 / 3, repr(1 / 3)),
    ],
)
def test_spell_writes_the_shortest_exact_form_and_reads_back(value: float, spelled: str) -> None:
    assert spell(value) == spelled
    assert seconds(spell(value)) == value


def test_spell_round_trips_every_millisecond_count_exactly() -> None:
    for total in (*range(0, 5000, 7), 86_399_999, 86_400_001, 123_456_789_012):
        value = total / 1000
        assert seconds(spell(value)) == value


@pytest.mark.parametrize("value", [-1.0, math.nan, math.inf])
def test_spell_refuses_what_no_duration_is(value: float) -> None:
    with pytest.raises(ValueError, match="only a finite, non-negative"):
        spell(value)


# -- the later wiring: normalize_ttl(x) becomes range checks over seconds(x, name) --------------


@pytest.mark.parametrize("value", [1, 2.5, 3600, timedelta(minutes=2), 1e10])
def test_seconds_agrees_with_normalize_ttl_on_every_value_it_takes_today(value: Any) -> None:
    assert seconds(value, "ttl") == _expiry.normalize_ttl(value)


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        (True, TypeError, "must be seconds.*bool"),
        ([1], TypeError, "must be seconds.*list"),
        (math.nan, ValueError, "finite"),
        (math.inf, ValueError, "finite"),
        (10**400, ValueError, "at most"),
    ],
)
def test_seconds_refuses_what_normalize_ttl_refuses_today_with_the_same_words(
    value: Any, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        _expiry.normalize_ttl(value)
    with pytest.raises(error, match=match):
        seconds(value, "ttl")
