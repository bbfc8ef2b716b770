"""Durations as users write them (``90``, ``"90s"``, ``"1h30m"``, ``timedelta``) as seconds; pure.

A string that is not one is a ValueError naming the input and what is wrong with it.

The grammar (a string, after stripping surrounding whitespace)::

    duration := number | part+
    number   := digits ["." digits]      seconds: "90", "2.5"
    part     := digits unit              "90s", "15m", "1h", "7d", "250ms"
    unit     := "d" | "h" | "m" | "s" | "ms"

- Parts combine, largest unit first and each unit at most once: ``"1h30m"``, ``"1d12h"``,
  ``"1s500ms"``; ``"30m1h"`` and ``"1m1m"`` are refused (one spelling per value, as in
  Prometheus durations).
- Counts are whole numbers; a fraction is written in the next unit down (``"1h30m"``, not
  ``"1.5h"``). Only the bare number form takes a fraction, and it means seconds.
- Units are lower-case only: ``"1M"`` is refused rather than guessed (minutes or months?).
- No spaces inside (``"1h 30m"`` is refused, naming the fix), no sign (``"-5s"``), no exponent.
- ``"0s"`` is a valid duration of zero: whether zero (or a sub-second value, such as a ttl of
  ``"500ms"``: S3's dates have one-second resolution) is acceptable is the caller's rule, as for
  numbers.

:func:`seconds` is the one conversion for every duration parameter (ttl, default_ttl, lease,
lock ttl and wait, the local tier's ttl, timeouts from a URL); each caller then applies its own
range. :func:`spell` writes seconds back in this grammar, so that ``seconds(spell(x)) == x``.
"""

from __future__ import annotations

import math
import re
import sys
from datetime import timedelta
from typing import Final

__all__ = ["UNITS", "seconds", "spell"]

#: Milliseconds per unit, largest first (the order parts must come in).
UNITS: Final = {"d": 86_400_000, "h": 3_600_000, "m": 60_000, "s": 1000, "ms": 1}
#: Longest string looked at: far beyond any real duration, and it bounds the work on junk.
_MAX_TEXT: Final = 64
_NUMBER: Final = re.compile(r"\d+(?:\.\d+)?")
_PART: Final = re.compile(r"(\d+)([A-Za-z]*)")
_HINT: Final = (
    "write a number of seconds ('90', '2.5') or whole counts with units, largest first "
    "('90s', '15m', '1h30m', '7d'; units d, h, m, s, ms)"
)


def seconds(value: float | timedelta | str, name: str = "duration") -> float:
    """``value`` as a finite float of seconds (negative or zero kept, for the caller to judge).

    Takes an int or float (not a bool), a ``timedelta``, or a string in the grammar above.
    Raises TypeError for any other type and ValueError for a malformed string or a number that
    is not finite; ``name`` (the parameter) starts every message.
    """
    if isinstance(value, str):
        return _parse(value, name)
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"{name} must be seconds (int or float), a timedelta or a duration string such as "
            f"'90s', '15m', '1h' or '7d', not {type(value).__name__}"
        )
    try:
        result = float(value)
    except OverflowError:  # an int past the float range
        raise ValueError(
            f"{name} is too large: a number of seconds must be at most {sys.float_info.max:.1e}"
        ) from None
    if not math.isfinite(result):
        raise ValueError(f"{name} must be a finite number of seconds, not {result}")
    return result


def spell(value: float) -> str:
    """Seconds in the grammar above, shortest exact form: ``5400.0`` → ``"1h30m"``, ``1.5`` →
    ``"1s500ms"``, ``0.0`` → ``"0s"``; a value that is no whole number of milliseconds stays a
    number (``"0.0001"``). Raises ValueError for a negative or non-finite value."""
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"only a finite, non-negative number of seconds can be spelled: {value}")
    total = round(value * 1000)
    if total / 1000 != value:
        return repr(float(value))
    if total == 0:
        return "0s"
    parts: list[str] = []
    for unit, size in UNITS.items():
        count, total = divmod(total, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def _parse(text: str, name: str) -> float:
    """A duration string as seconds (see the module's grammar)."""
    stripped = text.strip()
    if not stripped:
        raise _malformed(name, text, "it is empty")
    if len(stripped) > _MAX_TEXT:
        raise _malformed(name, text, f"it is over {_MAX_TEXT} characters")
    if _NUMBER.fullmatch(stripped):
        return float(stripped)
    order = list(UNITS)
    total, position, rank = 0, 0, -1  # rank: index in UNITS of the last unit seen
    while position < len(stripped):
        part = _PART.match(stripped, position)
        if part is None:
            raise _malformed(name, text, _no_count(stripped, position))
        count, unit = part.groups()
        if unit not in UNITS:
            raise _malformed(name, text, _no_unit(stripped, part.end(), unit))
        if order.index(unit) <= rank:
            why = f"'{unit}' after '{order[rank]}': units go largest first, each once"
            raise _malformed(name, text, why)
        rank = order.index(unit)
        total += int(count) * UNITS[unit]
        position = part.end()
    return total / 1000


def _no_count(text: str, position: int) -> str:
    """Why no count can start at ``position`` of ``text``, in words."""
    if any(c.isspace() for c in text):
        return "it has a space inside (write '1h30m', not '1h 30m')"
    if text[position] in "+-":
        return "a duration has no sign"
    return f"{text[position]!r} is not where a count (a whole number) belongs"


def _no_unit(text: str, end: int, unit: str) -> str:
    """Why ``unit`` (letters, or none, ending at ``end``) is not one, in words."""
    if unit.lower() in UNITS:
        return "units are lower-case ('1M' would leave minutes and months to a guess)"
    if unit:
        return f"{unit[:8]!r} is not a unit"
    if end < len(text) and text[end] == ".":
        return "counts with a unit are whole numbers (write '1h30m', not '1.5h')"
    if end < len(text):
        return _no_count(text, end)
    return "the last count has no unit (or write the whole value as seconds: '90')"


def _malformed(name: str, text: str, why: str) -> ValueError:
    shown = text if len(text) <= 40 else text[:40] + "..."
    return ValueError(f"{name} {shown!r} is not a duration: {why}; {_HINT}")
