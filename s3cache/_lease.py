"""The lease object format, pure and sans-IO: what a lease or lock object records, and how its
holder, fencing token and expiry are read back, on the server's clock.

A lease object lives at a reserved key (:func:`s3cache._keys.reserved_key`). Its user metadata
is the record; the JSON body repeats it for people browsing the bucket.

- ``x-amz-meta-s3cache-ttl``: the lease in seconds (maintenance judges expiry from it);
- ``x-amz-meta-s3cache-lease``: ``held`` or ``released``;
- ``x-amz-meta-s3cache-holder``: who wrote it (host, process, and a part unique per acquisition);
- ``x-amz-meta-s3cache-token``: the fencing token, once its holder knows it (renewal, release);
- ``x-amz-meta-s3cache-after``: on an acquisition, the token of the record it replaced.

The fencing token of a record is its ``token``; an acquisition's is derived from the server's
``Last-Modified`` (epoch seconds ``s``) so that no client clock is involved: ``max(after + 1,
s * 10**6)`` when it replaced a record, ``(s + 1) * 10**6`` when it created the object. So every
acquisition's token exceeds the one before it, and a lease object that was deleted (by
``purge-expired``, a lifecycle rule, or a purge racing a takeover) is recreated with a larger
token still: tokens issued up to second ``s`` stay below ``(s + 1) * 10**6`` (fewer than a
million acquisitions of one key per second).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

import orjson

from s3cache._expiry import (
    MIN_TTL,
    TTL_METADATA,
    format_seconds,
    generous_remaining_ttl,
    parse_http_date,
)
from s3cache._format import JSON_CONTENT_TYPE, Payload
from s3cache._metadata import PREFIX

__all__ = ["HELD", "RELEASED", "TOKEN_SCALE", "LeaseState", "encode", "read"]

HELD: Final = "held"
RELEASED: Final = "released"
State = Literal["held", "released"]
#: Tokens per second of Last-Modified: room for a million acquisitions of one key per second.
TOKEN_SCALE: Final = 1_000_000

_STATE: Final = "s3cache-lease"
_HOLDER: Final = "s3cache-holder"
_TOKEN: Final = "s3cache-token"  # noqa: S105 - a metadata name, not a secret
_AFTER: Final = "s3cache-after"


@dataclass(frozen=True, slots=True)
class LeaseState:
    """A lease object as read back from HEAD: who holds it, its token, and for how long."""

    etag: str
    held: bool  #: held and not yet surely expired; False: free to take (released or expired)
    holder: str
    token: int
    wait: float  #: seconds until it is surely expired, on the server's clock (<= 0: it is)


def encode(
    state: State,
    holder: str,
    lease: float,
    *,
    token: int | None = None,
    after: int = 0,
) -> Payload:
    """A lease record. An acquisition gives ``after`` (the replaced record's token, 0 for
    none); a renewal or release gives its known ``token``. A released record keeps the
    shortest ttl, so that maintenance may remove it soon."""
    ttl = lease if state == HELD else MIN_TTL
    metadata = {TTL_METADATA: format_seconds(ttl), _STATE: state, _HOLDER: holder}
    record: dict[str, object] = {"state": state, "holder": holder, "lease_s": lease}
    if token is not None:
        metadata[_TOKEN] = str(token)
        record["token"] = token
    else:
        metadata[_AFTER] = str(after)
        record["after"] = after
    return Payload(orjson.dumps(record), JSON_CONTENT_TYPE, metadata, None, None)


def read(headers: Mapping[str, str], now: float) -> LeaseState:
    """The record in a lease object's lower-cased HEAD headers. ``now`` (the local clock)
    stands in for a missing ``Date``. Unreadable records are free, so they can be replaced."""
    get = headers.get
    try:
        wait = generous_remaining_ttl(headers, now)
    except (ValueError, KeyError):
        wait = None
    wait = 0.0 if wait is None else wait
    token = _whole(get(PREFIX + _TOKEN))
    if token is None:
        after = _whole(get(PREFIX + _AFTER)) or 0
        second = _second(get("last-modified"))
        token = max(after + 1, second * TOKEN_SCALE) if after else (second + 1) * TOKEN_SCALE
    return LeaseState(
        etag=get("etag") or "",
        held=get(PREFIX + _STATE) == HELD and wait > 0,
        holder=get(PREFIX + _HOLDER) or "",
        token=token,
        wait=wait,
    )


def _second(last_modified: str | None) -> int:
    if not last_modified:
        return 0
    try:
        return int(parse_http_date(last_modified))
    except ValueError:
        return 0


def _whole(raw: str | None) -> int | None:
    if raw is None or not raw.isdigit():
        return None
    return int(raw)
