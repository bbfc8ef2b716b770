"""Default ``@cached`` keys: injective over the documented types, stable across processes."""

from __future__ import annotations

import enum
import hashlib
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any, NamedTuple

import pytest

from s3cache import (
    AsyncS3Cache,
)
from s3cache._callkey import function_key


class Color(enum.IntEnum):
    RED = 7


class Shade(enum.Enum):
    RED = 7


class Perm(enum.Flag):
    R = 1
    W = 2


@dataclass
class Point:
    x: Any
    y: Any


@dataclass
class Other:
    x: Any
    y: Any


class Pair(NamedTuple):
    a: Any
    b: Any


def f(x: Any) -> None:
    """One argument: the keys of calls with different arguments are compared."""


def key(x: Any) -> str:
    return function_key(f, (x,), {})


UID = uuid.UUID("12345678-1234-5678-1234-567812345678")

#: Pairs of arguments that are different values (or types) and must never share a key.
DISTINCT: list[tuple[Any, Any]] = [
    (float("nan"), None),
    (float("inf"), None),
    (float("-inf"), float("inf")),
    (float("nan"), float("inf")),
    (Color.RED, 7),
    (Shade.RED, Color.RED),
    (Shade.RED, "RED"),
    (UID, str(UID)),
    (b"hi", {"__bytes__": "6869"}),
    ({1, 2}, {"__set__": [1, 2]}),
    (1, True),
    (0, False),
    (1, 1.0),
    (0.0, -0.0),
    ("1", 1),
    ([1, 2], (1, 2)),
    ({1, 2}, frozenset({1, 2})),
    ({1, 2}, [1, 2]),
    ({"a": 1}, [["a", 1]]),
    ({"a": 1}, ["d", "a", 1]),
    ({1: "a"}, {"1": "a"}),
    (datetime(2026, 1, 2, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC).isoformat()),
    (date(2026, 1, 2), datetime(2026, 1, 2)),
    (time(12, 0), "12:00:00"),
    (Point(1, 2), {"x": 1, "y": 2}),
    (Point(1, 2), Other(1, 2)),
    (Perm.R | Perm.W, 3),
    (2**64, str(2**64)),
    (2**64, -(2**64)),
    (2**64, 2**64 + 1),
    (2**64, ["I", hex(2**64)]),
    (2**63 - 1, 2**63),
    ("", None),
    ([], ()),
    ({}, []),
]


@pytest.mark.parametrize(("a", "b"), DISTINCT, ids=[f"{a!r}-vs-{b!r}"[:60] for a, b in DISTINCT])
def test_different_arguments_never_share_a_key(a: Any, b: Any) -> None:
    assert key(a) != key(b)


def test_every_documented_type_keys_without_collision() -> None:
    values = [v for pair in DISTINCT for v in pair]
    keys: dict[str, list[Any]] = {}
    for value in values:
        keys.setdefault(key(value), []).append(value)
    collisions = [vs for vs in keys.values() if len({repr(v) for v in vs}) > 1]
    assert collisions == []


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ({"b": 1, "a": 2}, {"a": 2, "b": 1}),  # dict order does not matter
        ({3: "x", "k": "y"}, {"k": "y", 3: "x"}),
        ({"c", "a", "b"}, {"b", "c", "a"}),
        (Pair(1, 2), (1, 2)),  # a NamedTuple is a tuple
        (Perm.R, Perm(1)),
    ],
)
def test_equal_arguments_share_a_key(a: Any, b: Any) -> None:
    assert key(a) == key(b)


def test_ints_of_any_size_are_keys() -> None:
    """``int`` is a documented type, so ``f(2**64)`` and larger must work."""
    assert key(2**64).startswith("tests.test_callkey:f:")
    assert key(10**5000) != key(10**5000 + 1)


@pytest.mark.parametrize("value", [object(), [object()], {"k": {object()}}, {(1, 2): object()}])
def test_other_types_still_ask_for_key(value: Any) -> None:
    with pytest.raises(TypeError, match="pass key="):
        key(value)


def test_a_self_referencing_argument_is_a_type_error() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(TypeError, match="pass key="):
        key(loop)


#: Calls whose keys must come out the same in another process (other hash seed, other set order).
STABLE_ARGS: list[Any] = [
    {"zeta", "alpha", "mid", "β"},
    frozenset({b"x", b"y", b"z"}),
    {"b": [1, 2.5, None], "a": (Color.RED, Shade.RED)},
    {(1, "a"): 1, "k": 2, 3: {4, 5}},
    Point(UID, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
    2**64,
    float("nan"),
]


def test_default_keys_are_stable_across_processes() -> None:
    here = [key(value) for value in STABLE_ARGS]
    code = (
        "from tests.test_callkey import STABLE_ARGS, key\n"
        "for value in STABLE_ARGS: print(key(value))"
    )
    for seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )
        assert out.stdout.split() == here


def test_the_encoding_is_pinned() -> None:
    """A key worked out by hand: a change here is a one-time cold cache for every user."""
    encoded = b'["d","x",["d","n",["I","0x10000000000000000"],"q",["l",1,"two",null,["f","2.5"]]]]'
    digest = hashlib.sha256(b"s3cache-call-key/2\n" + encoded).hexdigest()
    assert key({"q": [1, "two", None, 2.5], "n": 2**64}) == f"tests.test_callkey:f:{digest}"


def test_cached_rejects_what_it_cannot_key(cache_kwargs: dict[str, Any]) -> None:
    cache = AsyncS3Cache(**cache_kwargs)

    def plain() -> int:
        return 1

    with pytest.raises(TypeError, match=r"S3Cache\.cached"):
        cache.cached()(plain)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ttl"):
        cache.cached(ttl=-1)

    async def takes(obj: object) -> None:
        return None

    with pytest.raises(TypeError, match="pass key="):
        function_key(takes, (object(),), {})
