"""S3's request-rate limits, emulated: token buckets per partition, 503 SlowDown, splits.

S3 serves at least 3,500 PUT/COPY/POST/DELETE and 5,500 GET/HEAD requests per second per
*partitioned prefix*, answers 503 SlowDown beyond that, and re-partitions a prefix that stays
busy (30 to 60 minutes, in the background). This module is a model of that, pure (no I/O, an
injectable clock), that the mini server (:mod:`harness.miniserver`, ``--limits``) applies to
every object request before answering it. It is a **simplification**, not S3's algorithm,
which AWS does not publish:

- Each bucket's key space is cut into *partitions*, contiguous key ranges ``[low, high)``; a
  fresh bucket is one partition. Every partition has two token buckets of its own, refilled
  continuously: reads (GET and HEAD, ListObjectsV2 included: a GET on the wire) at
  ``read_rate`` per second and writes (PUT, CopyObject, POST, DELETE) at ``write_rate``, each
  holding up to ``burst_s`` seconds of its rate. AWS names the two classes by HTTP method;
  LIST's price is a PUT's, but which class it draws from is not documented, and here it is a
  read. A request is charged to the partition holding its key (ListObjectsV2: its ``prefix``;
  DeleteObjects: once, as one write, to its first key). Bucket requests (create, head, delete,
  ListBuckets) are not limited.
- A request that finds its bucket empty is answered 503 SlowDown with S3's body and headers
  (``Connection: close`` included, as S3 does), is not applied, and takes no token.
- *Load* is what a partition is asked for (admitted plus throttled), per ``window_s`` window.
  Once it has stayed at or above ``split_load`` times either class's capacity for
  ``split_after_s`` seconds in a row, the partition splits in two at the median of the keys it
  saw recently (``sample`` of them, weighted by requests), cut back to the shortest prefix that
  still separates them: ``[low, b)`` and ``[b, high)``. Each half gets the full rates, so a
  split doubles the capacity of that key range (and halves the load on each half only if
  requests spread over the range); each half starts with the tokens the whole had left, so a
  split brings no burst of its own. A partition whose recent requests all name one key cannot
  split. At most ``max_partitions`` per bucket. Partitions never merge again.

The rates default to S3's divided by 100, and splits come after seconds, not minutes, so that
one small machine can exceed the limits and see a split within a benchmark run. The state
(partitions, their ranges, counters of admitted and throttled requests per partition and
class, the timeline of splits, and per-second totals) is :meth:`Emulator.snapshot`, served by
the mini server as JSON on ``GET /_mini/limits`` (``PUT`` with a JSON :class:`Limits` installs
a fresh emulator, ``DELETE`` removes it); :func:`read_limits` and :func:`set_limits` are the
client side. Times are the emulator's clock: ``time.monotonic()``, which on Linux is one clock
for every process of the machine.
"""

from __future__ import annotations

import base64
import bisect
import json
import math
import os
import time
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any, Final

__all__ = [
    "S3_READ_RATE",
    "S3_WRITE_RATE",
    "SLOWDOWN_MESSAGE",
    "Emulator",
    "Limits",
    "Partition",
    "Split",
    "control",
    "limited_key",
    "read_limits",
    "set_limits",
    "slowdown_body",
    "slowdown_reply",
]

#: S3's published floor per partitioned prefix, requests per second.
S3_READ_RATE: Final = 5500.0
S3_WRITE_RATE: Final = 3500.0
SLOWDOWN_MESSAGE: Final = "Please reduce your request rate."
_SCALE: Final = 0.01  # the default rates: S3's divided by 100
_READ_METHODS: Final = frozenset({"GET", "HEAD"})
_CLASSES: Final = ("read", "write")
_SERIES_LIMIT: Final = 3600  # seconds of per-second totals kept
_EPSILON: Final = 1e-9


@dataclass(frozen=True, slots=True)
class Limits:
    """The emulated limits; every rate is per partition, in requests per second.

    ``read_rate``: GET and HEAD (S3: 5,500). ``write_rate``: PUT, COPY, POST, DELETE (S3:
    3,500). ``burst_s``: each token bucket holds this many seconds of its rate (at least one
    request). ``split_load``: the fraction of a class's capacity that counts as load.
    ``split_after_s``: how long the load must last before the partition splits (S3: 30 to 60
    minutes). ``window_s``: the window load is measured over. ``max_partitions``: per bucket.
    ``sample``: recent keys kept per partition to choose where it splits. ``close``: end the
    connection after a SlowDown, as S3 does.
    """

    read_rate: float = S3_READ_RATE * _SCALE
    write_rate: float = S3_WRITE_RATE * _SCALE
    burst_s: float = 1.0
    split_load: float = 0.8
    split_after_s: float = 5.0
    window_s: float = 1.0
    max_partitions: int = 64
    sample: int = 512
    close: bool = True

    def __post_init__(self) -> None:
        positive = ("read_rate", "write_rate", "burst_s", "split_load", "window_s")
        for name in positive:
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"Limits.{name} must be a positive number, not {value!r}")
        if not self.split_after_s >= 0:
            raise ValueError(f"Limits.split_after_s must be >= 0, not {self.split_after_s!r}")
        if self.max_partitions < 1 or self.sample < 2:
            raise ValueError("Limits.max_partitions must be >= 1 and Limits.sample >= 2")

    @classmethod
    def scaled(cls, scale: float, **changes: Any) -> Limits:
        """S3's rates times ``scale`` (``Limits.scaled(1.0)``: S3's own), with ``changes``."""
        return cls(read_rate=S3_READ_RATE * scale, write_rate=S3_WRITE_RATE * scale, **changes)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Limits:
        """From :meth:`to_json`'s form; ValueError names an unknown field."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown Limits field(s) {unknown}; known: {sorted(known)}")
        return cls(**data)

    def to_json(self) -> dict[str, Any]:
        """A plain dict (what ``PUT /_mini/limits`` takes)."""
        return asdict(self)


class _TokenBucket:
    """Tokens refilled at ``rate`` per second up to ``capacity``; one per admitted request."""

    __slots__ = ("capacity", "last", "rate", "tokens")

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.last = now

    def refill(self, now: float) -> None:
        """Add the tokens earned since the last call, up to the capacity."""
        if now > self.last:
            self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
            self.last = now

    def take(self, now: float) -> bool:
        """Refill up to ``now``, then take one token if there is one."""
        self.refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class Partition:
    """One key range ``[low, high)`` of a bucket (``high`` None: to the end) and its state.

    Made by the :class:`Emulator`: ``ident`` numbers it, ``limits`` gives its buckets' rates,
    ``now`` (the emulator's clock) is when it was made, with its buckets full.
    """

    __slots__ = (
        "admitted",
        "bucket",
        "buckets",
        "created",
        "demand",
        "high",
        "hot_since",
        "id",
        "keys",
        "low",
        "throttled",
        "window_end",
    )

    def __init__(
        self, ident: int, bucket: str, low: str, high: str | None, limits: Limits, now: float
    ) -> None:
        self.id = ident
        self.bucket = bucket
        self.low = low
        self.high = high
        self.created = now
        self.buckets = tuple(
            _TokenBucket(rate, max(1.0, rate * limits.burst_s), now)
            for rate in (limits.read_rate, limits.write_rate)
        )
        self.admitted = [0, 0]
        self.throttled = [0, 0]
        self.demand = [0, 0]  # requests (admitted or not) in the current window
        self.window_end = (math.floor(now / limits.window_s) + 1) * limits.window_s
        self.hot_since: float | None = None
        self.keys: deque[str] = deque(maxlen=limits.sample)

    def view(self) -> dict[str, Any]:
        """This partition as JSON-ready data."""
        return {
            "bucket": self.bucket,
            "id": self.id,
            "low": self.low,
            "high": self.high,
            "created": self.created,
            "admitted": dict(zip(_CLASSES, self.admitted, strict=True)),
            "throttled": dict(zip(_CLASSES, self.throttled, strict=True)),
            "hot_since": self.hot_since,
        }


@dataclass(frozen=True, slots=True)
class Split:
    """One partition split in two at ``boundary``, at time ``at``, after serving what it did."""

    at: float
    bucket: str
    parent: int
    low: str
    high: str | None
    boundary: str
    children: tuple[int, int]
    admitted: tuple[int, int]  # (read, write) the parent admitted in its life
    throttled: tuple[int, int]


class Emulator:
    """The limits of every bucket of one server; :meth:`admit` decides each request.

    ``limits``: the :class:`Limits` (default: S3's rates divided by 100). ``clock`` (seconds,
    monotonic) is injectable so that tests step time instead of sleeping. Not thread-safe: one
    event loop (the server's) calls it.
    """

    def __init__(self, limits: Limits | None = None, clock: Callable[[], float] = time.monotonic):
        self.limits = limits or Limits()
        self.clock = clock
        self.splits: list[Split] = []
        self.admitted = [0, 0]
        self.throttled = [0, 0]
        self._partitions: dict[str, list[Partition]] = {}
        self._lows: dict[str, list[str]] = {}
        self._ids = 0
        self._series: dict[int, list[int]] = {}  # second -> [admitted r, w, throttled r, w]

    def admit(self, method: str, bucket: str, key: str) -> bool:
        """Whether a ``method`` request for ``key`` may be served now (else: SlowDown)."""
        now = self.clock()
        klass = 0 if method in _READ_METHODS else 1
        part = self._find(bucket, key, now)
        if now >= part.window_end and self._roll(part, now):
            part = self._find(bucket, key, now)
        part.demand[klass] += 1
        part.keys.append(key)
        second = self._series.get(math.floor(now))
        if second is None:
            second = self._series[math.floor(now)] = [0, 0, 0, 0]
            if len(self._series) > _SERIES_LIMIT:
                del self._series[next(iter(self._series))]
        if part.buckets[klass].take(now):
            part.admitted[klass] += 1
            self.admitted[klass] += 1
            second[klass] += 1
            return True
        part.throttled[klass] += 1
        self.throttled[klass] += 1
        second[2 + klass] += 1
        return False

    def partitions(self, bucket: str) -> list[Partition]:
        """The bucket's partitions in key order (one, until it splits)."""
        return list(self._partitions.get(bucket, ()))

    def snapshot(self) -> dict[str, Any]:
        """Everything observable, JSON-ready: limits, partitions, splits, totals, series."""
        return {
            "limits": self.limits.to_json(),
            "now": self.clock(),
            "partitions": [p.view() for parts in self._partitions.values() for p in parts],
            "splits": [asdict(s) for s in self.splits],
            "totals": {
                "admitted": dict(zip(_CLASSES, self.admitted, strict=True)),
                "throttled": dict(zip(_CLASSES, self.throttled, strict=True)),
            },
            # [second, admitted reads, admitted writes, throttled reads, throttled writes]
            "series": [[second, *counts] for second, counts in self._series.items()],
        }

    def _find(self, bucket: str, key: str, now: float) -> Partition:
        parts = self._partitions.get(bucket)
        if parts is None:
            parts = self._partitions[bucket] = [self._new(bucket, "", None, now)]
            self._lows[bucket] = [""]
        return parts[bisect.bisect_right(self._lows[bucket], key) - 1]

    def _new(self, bucket: str, low: str, high: str | None, now: float) -> Partition:
        self._ids += 1
        return Partition(self._ids, bucket, low, high, self.limits, now)

    def _roll(self, part: Partition, now: float) -> bool:
        """Close the partition's finished window; True when that split it."""
        limits = self.limits
        ended = part.window_end
        capacity = [rate * limits.window_s for rate in (limits.read_rate, limits.write_rate)]
        hot = any(d >= limits.split_load * c for d, c in zip(part.demand, capacity, strict=True))
        if not hot or now >= ended + limits.window_s:  # a quiet window, or idle ones since
            part.hot_since = None
        elif part.hot_since is None:
            part.hot_since = ended - limits.window_s
        part.demand = [0, 0]
        part.window_end = (math.floor(now / limits.window_s) + 1) * limits.window_s
        due = part.hot_since is not None and ended - part.hot_since >= limits.split_after_s
        return due and self._split(part, now)

    def _split(self, part: Partition, now: float) -> bool:
        parts = self._partitions[part.bucket]
        boundary = _boundary(part.keys)
        if boundary is None or len(parts) >= self.limits.max_partitions:
            part.hot_since = None  # try again after another sustained stretch
            return False
        left = self._new(part.bucket, part.low, boundary, now)
        right = self._new(part.bucket, boundary, part.high, now)
        for half in (left, right):  # no fresh burst: each half starts where the whole was
            for mine, parents in zip(half.buckets, part.buckets, strict=True):
                parents.refill(now)
                mine.tokens = parents.tokens
        for key in part.keys:
            (left if key < boundary else right).keys.append(key)
        index = parts.index(part)
        parts[index : index + 1] = [left, right]
        self._lows[part.bucket] = [p.low for p in parts]
        self.splits.append(
            Split(
                now,
                part.bucket,
                part.id,
                part.low,
                part.high,
                boundary,
                (left.id, right.id),
                (part.admitted[0], part.admitted[1]),
                (part.throttled[0], part.throttled[1]),
            )
        )
        return True


def _boundary(keys: deque[str]) -> str | None:
    """Where to cut: the shortest prefix of the median key above every key below it."""
    if not keys:
        return None
    ordered = sorted(keys)
    median = ordered[len(ordered) // 2]
    if median == ordered[0]:  # the lower half is one key: cut just above it
        above = bisect.bisect_right(ordered, median)
        if above == len(ordered):
            return None  # one key only: nothing to separate
        median = ordered[above]
    below = ordered[bisect.bisect_left(ordered, median) - 1]
    for end in range(1, len(median) + 1):
        if median[:end] > below:
            return median[:end]
    return median  # pragma: no cover - median > below, so some prefix is


def limited_key(method: str, key: str, query: dict[str, str], body: bytes) -> str | None:
    """The key a request is charged to, or None when it is not limited (bucket requests)."""
    if key:
        return key
    if method == "GET" and query.get("list-type") == "2":
        return query.get("prefix", "")
    if method == "POST" and "delete" in query:
        start = body.find(b"<Key>")
        end = body.find(b"</Key>", start)
        return body[start + 5 : end].decode(errors="replace") if 0 <= start < end else ""
    return None


# -- the wire ------------------------------------------------------------------------------------


def slowdown_body(request_id: str, host_id: str) -> bytes:
    """S3's XML body for 503 SlowDown, byte for byte."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>SlowDown</Code><Message>{SLOWDOWN_MESSAGE}</Message>"
        f"<RequestId>{request_id}</RequestId><HostId>{host_id}</HostId></Error>"
    ).encode()


def slowdown_reply(date: str, *, head: bool, close: bool) -> bytes:
    """A whole 503 SlowDown response as S3 sends it: ``Server: AmazonS3``, a 16-character
    request id, a base64 ``x-amz-id-2`` (both repeated in the body), a chunked XML body (none
    for HEAD), and ``Connection: close`` when ``close``."""
    request_id = base64.b32encode(os.urandom(10)).decode()
    host_id = base64.b64encode(os.urandom(57)).decode()
    lines = [
        "HTTP/1.1 503 Slow Down",
        f"x-amz-request-id: {request_id}",
        f"x-amz-id-2: {host_id}",
        "Content-Type: application/xml",
        *([] if head else ["Transfer-Encoding: chunked"]),
        f"Date: {date}",
        "Server: AmazonS3",
        *(["Connection: close"] if close else []),
    ]
    message = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    if head:
        return message
    body = slowdown_body(request_id, host_id)
    return message + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"


def control(
    emulator: Emulator | None, method: str, body: bytes
) -> tuple[Emulator | None, int, bytes]:
    """The ``/_mini/limits`` endpoint: (the emulator from now on, status, JSON body).

    GET: the snapshot (``{"enabled": false}`` without limits). PUT: a fresh emulator with the
    :class:`Limits` in the JSON body (``{}``: the defaults). DELETE: no limits any more.
    """
    if method == "PUT":
        try:
            limits = Limits.from_json(json.loads(body or b"{}"))
        except (ValueError, TypeError) as exc:
            return emulator, 400, json.dumps({"error": str(exc)}).encode()
        emulator = Emulator(limits)
    elif method == "DELETE":
        emulator = None
    elif method != "GET":
        return emulator, 405, json.dumps({"error": f"{method} /_mini/limits"}).encode()
    state = {"enabled": False} if emulator is None else {"enabled": True, **emulator.snapshot()}
    return emulator, 200, json.dumps(state).encode()


def read_limits(endpoint: str) -> dict[str, Any]:
    """The mini server's :meth:`Emulator.snapshot` (with ``enabled``), over HTTP."""
    return _call(endpoint, "GET", None)


def set_limits(endpoint: str, limits: Limits | None) -> dict[str, Any]:
    """Install a fresh emulator with ``limits`` on the mini server (None: remove it)."""
    if limits is None:
        return _call(endpoint, "DELETE", None)
    return _call(endpoint, "PUT", json.dumps(limits.to_json()).encode())


def _call(endpoint: str, method: str, body: bytes | None) -> dict[str, Any]:
    url = endpoint.rstrip("/") + "/_mini/limits"
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) endpoint: {endpoint!r}")
    request = urllib.request.Request(url, data=body, method=method)
    with urllib.request.urlopen(request, timeout=10) as reply:
        state: dict[str, Any] = json.load(reply)
    return state
