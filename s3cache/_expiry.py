"""Expiry, pure and sans-IO: ttls normalised to seconds, the ttl metadata field, HTTP dates, and
the time an entry has left, judged on the server's clock (``Date`` and ``Last-Modified``)."""

from __future__ import annotations

import calendar
import email.utils
import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Final

from s3cache import _durations
from s3cache._metadata import TTL_HEADER, TTL_METADATA

__all__ = [
    "MAX_TTL",
    "MIN_TTL",
    "TTL_HEADER",
    "TTL_METADATA",
    "format_seconds",
    "generous_remaining_ttl",
    "is_expired",
    "normalize_ttl",
    "parse_http_date",
    "parse_timestamp",
    "remaining_ttl",
    "safe_remaining_ttl",
]


#: S3 dates have one-second resolution, so shorter ttls cannot be enforced.
MIN_TTL: Final = 1.0

MAX_TTL: Final = 1e10

_MONTHS: Final = {
    m: i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}


def normalize_ttl(ttl: float | timedelta | str | None, name: str = "ttl") -> float | None:
    """Seconds as a float, or None for no expiry; rejects wrong types and unenforceable values.
    A string is a duration (``"90s"``, ``"15m"``, ``"1h"``, ``"7d"``: :mod:`s3cache._durations`).

    ``name`` is the parameter named in error messages (leases and locks are validated alike).
    """
    if ttl is None:
        return None
    if isinstance(ttl, timedelta):
        seconds = ttl.total_seconds()
    elif isinstance(ttl, str):  # issue 26: TTL strings
        seconds = _durations.seconds(ttl, name)
    elif isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
        raise TypeError(
            f'{name} must be seconds (int or float), a timedelta or a duration string ("1h"), '
            f"not {type(ttl).__name__}"
        )
    else:
        try:
            seconds = float(ttl)
        except OverflowError:
            raise ValueError(f"{name} must be at most {MAX_TTL:.0e} seconds") from None
    if math.isnan(seconds) or math.isinf(seconds):
        raise ValueError(f"{name} must be a finite number of seconds, not {seconds}")
    if seconds <= 0:
        hint = "; use delete() to drop an entry" if name == "ttl" else ""
        raise ValueError(f"{name} must be positive, not {seconds}{hint}")
    if seconds < MIN_TTL:
        raise ValueError(
            f"{name} must be at least {MIN_TTL:g} second: S3's Last-Modified and Date headers "
            f"have one-second resolution, so {seconds} s cannot be enforced"
        )
    if seconds > MAX_TTL:
        hint = "; use ttl=None for no expiry" if name == "ttl" else ""
        raise ValueError(f"{name} must be at most {MAX_TTL:.0e} seconds{hint}")
    return seconds


def format_seconds(seconds: float) -> str:
    """Seconds as metadata text: ``60`` for whole numbers, ``1.5`` otherwise."""
    return str(int(seconds)) if seconds.is_integer() else repr(seconds)


def remaining_ttl(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds an entry has left (negative: expired), on the server's clock; None: no expiry.

    ``headers`` are the lower-cased response headers of a GET or HEAD. For our entries the age is
    ``Date - Last-Modified``, both from the server; both are whole seconds, so the true age is
    below that plus one second, which is what counts: an entry is never served late, and may
    expire up to a second early. Entries with only ``Expires`` (litellm's) compare it with
    ``Date`` the same way. ``now`` is used only when ``Date`` is absent.
    """
    ttl_raw = headers.get(TTL_HEADER)
    expires_raw = headers.get("expires")
    if ttl_raw is None and expires_raw is None:
        return None
    date_raw = headers.get("date")
    server_now = parse_http_date(date_raw) if date_raw else now
    if ttl_raw is not None:
        ttl = float(ttl_raw)
        if math.isnan(ttl):
            raise ValueError(f"bad {TTL_HEADER} header {ttl_raw!r}")
        last_modified = parse_http_date(headers["last-modified"])
        return ttl - (server_now - last_modified + 1.0)
    assert expires_raw is not None
    try:
        expires = parse_http_date(expires_raw)
    except ValueError:
        return -1.0  # an unreadable Expires: treat as expired, a miss is always safe
    return expires - (server_now + 1.0)


def safe_remaining_ttl(headers: Mapping[str, str], now: float) -> float | None:
    """:func:`remaining_ttl`, with unreadable expiry metadata counted as expired (never served)."""
    try:
        return remaining_ttl(headers, now)
    except (ValueError, KeyError):
        return -1.0


def generous_remaining_ttl(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds until an object is expired on *every* reading of its one-second dates.

    The mirror image of :func:`remaining_ttl`: there an entry is never served late; here an
    object (a lease) is never taken for expired early. The true age is above
    ``Date - Last-Modified - 1 s``, so the object is surely past its ttl once that reaches the
    ttl. Only ``x-amz-meta-s3cache-ttl`` counts; None: the object has none. Raises
    ``ValueError`` or ``KeyError`` for unreadable metadata.
    """
    ttl_raw = headers.get(TTL_HEADER)
    if ttl_raw is None:
        return None
    ttl = float(ttl_raw)
    if math.isnan(ttl):
        raise ValueError(f"bad {TTL_HEADER} header {ttl_raw!r}")
    date_raw = headers.get("date")
    server_now = parse_http_date(date_raw) if date_raw else now
    return ttl - (server_now - parse_http_date(headers["last-modified"]) - 1.0)


def is_expired(remaining: float | None) -> bool:
    """Whether :func:`remaining_ttl`'s answer means expired (the one place that decides)."""
    return remaining is not None and remaining < 0


def parse_http_date(value: str) -> float:
    """Epoch seconds of an HTTP date; fast path for the IMF-fixdate every S3 server sends."""
    if len(value) == 29 and value.endswith(" GMT"):
        try:
            return float(
                calendar.timegm(
                    (
                        int(value[12:16]),
                        _MONTHS[value[8:11]],
                        int(value[5:7]),
                        int(value[17:19]),
                        int(value[20:22]),
                        int(value[23:25]),
                    )
                )
            )
        except (KeyError, ValueError):
            pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError) as exc:
        raise ValueError(f"not an HTTP date: {value!r}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def parse_timestamp(value: str | datetime) -> float:
    """Epoch seconds of a listing's ``LastModified`` (ISO 8601 text or a datetime)."""
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return parse_http_date(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()
