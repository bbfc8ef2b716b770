"""The argparse types of the command line: each turns one option's text into its value, or says
what is wrong with it (exit status 2, before anything else runs)."""

from __future__ import annotations

import argparse
import base64
import math
from collections.abc import Callable

__all__ = ["base64_key", "count", "positive_int", "positive_seconds", "seconds", "true_or_false"]


def _whole_number(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {value}")
        return value

    return parse


#: A whole number, at least 1.
positive_int = _whole_number(1)
#: A whole number, at least 0.
count = _whole_number(0)


def seconds(text: str) -> float:
    """An argparse type: a number of seconds."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None


def positive_seconds(text: str) -> float:
    """An argparse type: a finite number of seconds, above 0."""
    value = seconds(text)
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"not a number of seconds above 0: {text!r}")
    return value


def true_or_false(text: str) -> bool:
    """An argparse type: ``true`` or ``false`` (also 1/0, yes/no, on/off)."""
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"not true or false: {text!r}")


def base64_key(text: str) -> bytes:
    """An argparse type: a base64-encoded key. The error never repeats the value (a secret)."""
    try:
        return base64.b64decode(text.strip(), validate=True)
    except ValueError:
        raise argparse.ArgumentTypeError("not valid base64 (the value is not shown)") from None
