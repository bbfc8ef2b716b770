"""Whole-number options, checked in one place: a bool, a float or one below the minimum is
refused with the option's name."""

from __future__ import annotations

__all__ = ["whole_number"]


def whole_number(value: object, name: str, minimum: int = 1) -> int:
    """``value`` if it is an ``int`` (not a ``bool``) of at least ``minimum``; else ValueError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, not {value!r}")
    return value
