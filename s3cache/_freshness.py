"""Freshness decisions, pure and sans-IO: fresh, refresh early, stale, stale only on error, expired.

What an entry's headers say (read on the server's clock by :func:`read_facts`) and what the
caller asked for (a :class:`Policy`) give one :class:`Verdict`, which tells the core whether to
serve the value and whether to refresh it in the background. Also here: the user-metadata fields
these decisions read, the negative-cache tombstone (:func:`tombstone`, :data:`ABSENT`), the
XFetch draw, and the per-key back-off of failed background refreshes.

Compatibility with readers that know none of this (today's s3cache judges expiry from
``x-amz-meta-s3cache-ttl``, litellm from ``Expires``): the ttl written stays the *fresh* ttl, and
the stale window and compute time are extra fields, so an old reader takes a stale entry for
expired, never for fresh. A tombstone carries ``s3cache-ttl: 0`` and an ``Expires`` in 1970, so
every old reader takes it for expired too; its own ttl is in ``s3cache-absent``.
"""

from __future__ import annotations

import enum
import math
import random
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Final, Literal, NamedTuple

from s3cache._breaker import TRANSPORT_KINDS, CircuitOpenError
from s3cache._expiry import (
    MAX_TTL,
    TTL_HEADER,
    TTL_METADATA,
    format_seconds,
    normalize_ttl,
    parse_http_date,
    remaining_ttl,
)
from s3cache._format import Payload
from s3cache._metadata import (
    ABSENT_HEADER,
    ABSENT_METADATA,
    COMPUTE_HEADER,
    COMPUTE_METADATA,
    STALE_HEADER,
    STALE_METADATA,
)
from s3cache._numbers import whole_number

__all__ = [
    "ABSENT",
    "ABSENT_HEADER",
    "ABSENT_METADATA",
    "COMPUTE_HEADER",
    "COMPUTE_METADATA",
    "STALE_HEADER",
    "STALE_IF_ERROR_KINDS",
    "STALE_METADATA",
    "TOMBSTONE_BODY",
    "TOMBSTONE_CONTENT_TYPE",
    "Absent",
    "EntryFacts",
    "Policy",
    "RefreshBackoff",
    "StaleReason",
    "Verdict",
    "age_bounds",
    "early_beta",
    "format_compute",
    "is_tombstone",
    "judge",
    "parse_seconds",
    "policy",
    "read_facts",
    "serves_stale_on",
    "stale_window",
    "tombstone",
    "with_freshness",
    "xfetch",
    "xfetch_probability",
]

#: A tombstone's body: not JSON, not a Python literal, so a reader that ignored every expiry
#: field would still find it unreadable (a miss), never a value.
TOMBSTONE_BODY: Final = b"absent\n"
TOMBSTONE_CONTENT_TYPE: Final = "text/plain; charset=utf-8"
#: Failure kinds under which ``stale_if_error`` serves the newest value seen: the store failing
#: or unreachable, and the breaker failing fast for it. Never a miss, ``no_such_bucket``,
#: ``access_denied``, ``credentials``, ``corrupt`` or bad input: those are not outages.
STALE_IF_ERROR_KINDS: Final = TRANSPORT_KINDS | {CircuitOpenError.kind}
#: Why a stale value was served, as ``stats()`` counts it: within the stale window while a
#: refresh runs, because the store failed, or because the factory raised.
StaleReason = Literal["revalidating", "store_error", "factory_error"]

#: A metadata number as s3cache writes one: digits, optionally a fraction; at most 1e10.
_NUMBER: Final = re.compile(r"[0-9]{1,11}(?:\.[0-9]{1,17})?")
_EPOCH: Final = datetime.fromtimestamp(0, tz=UTC)


class _Absent(enum.Enum):
    """The type of :data:`ABSENT` (an enum, so that ``x is ABSENT`` narrows for type checkers and
    the sentinel survives pickling and copying as itself)."""

    ABSENT = "ABSENT"

    def __repr__(self) -> str:
        return "s3cache.ABSENT"

    def __bool__(self) -> bool:
        return False


#: What a factory returns to say "this key has no value": ``get_or_set`` stores a tombstone
#: (a negative-cache entry with its own ttl) and returns ``ABSENT`` until it expires, without
#: calling the factory again; ``get`` of a tombstone is a miss. A stored ``None`` stays a value.
#: Public as ``s3cache.ABSENT``; falsy, and compared with ``is``.
ABSENT: Final = _Absent.ABSENT
#: The type of :data:`ABSENT`, for annotations: ``def load(k: str) -> User | Absent``.
Absent = Literal[_Absent.ABSENT]


class Verdict(enum.Enum):
    """What to do with an entry read from the store (or the local tier)."""

    #: Serve it; nothing else to do.
    FRESH = "fresh"
    #: Serve it, and refresh it in the background: XFetch drew an early refresh.
    EARLY = "early"
    #: Past its ttl, within the stale window: serve it at once and refresh it in the background.
    STALE = "stale"
    #: Past its ttl and stale window, within ``stale_if_error``: a miss, unless refreshing it
    #: fails (the store under :data:`STALE_IF_ERROR_KINDS`, or the factory); then serve it.
    ERROR_ONLY = "stale_if_error"
    #: A miss.
    EXPIRED = "expired"


class EntryFacts(NamedTuple):
    """What an entry's headers say about its freshness, on the server's clock (a named tuple:
    built on every read that has a policy, so cheap to make).

    ``remaining``: seconds of fresh ttl left, never more than the truth (S3 dates have one-second
    resolution, see :func:`age_bounds`); negative once past the ttl; None: the entry never
    expires. ``compute``: the recorded factory duration (XFetch's delta); ``stale``: the stale
    window the writer allowed; both None when absent or unreadable. ``tombstone``: a
    negative-cache entry. ``dead``: unreadable expiry metadata (or a garbled tombstone), never
    served, fresh or stale.
    """

    remaining: float | None
    compute: float | None = None
    stale: float | None = None
    tombstone: bool = False
    dead: bool = False

    def aged(self, seconds: float) -> EntryFacts:
        """These facts ``seconds`` later (a local-tier entry judged without a request)."""
        if self.remaining is None or seconds <= 0:
            return self
        return self._replace(remaining=self.remaining - seconds)


_DEAD: Final = EntryFacts(remaining=-math.inf, dead=True)


@dataclass(frozen=True, slots=True)
class Policy:
    """A read's freshness options, validated (see :func:`policy`); the default is all off.

    ``stale_ttl``: the longest the caller accepts a value past its ttl while it is refreshed
    (bounded by the window the writer recorded, :func:`stale_window`). ``stale_if_error``: the
    longest past its ttl a value may be served when refreshing it fails. ``beta``: XFetch's
    factor, None for no early refresh.
    """

    stale_ttl: float | None = None
    stale_if_error: float | None = None
    beta: float | None = None

    @property
    def off(self) -> bool:
        """No option set: the read path may skip every freshness step (but the tombstone check)."""
        return self.stale_ttl is None and self.stale_if_error is None and self.beta is None


def policy(
    stale_ttl: float | timedelta | str | None = None,
    stale_if_error: float | timedelta | str | None = None,
    early: bool | float | None = None,
) -> Policy:
    """The :class:`Policy` for these options; a clear error for bad values, before any request.

    ``stale_ttl`` and ``stale_if_error`` are seconds or a timedelta (at least 1 s: S3 dates have
    one-second resolution); None or 0 turns the window off. ``early`` is ``True`` (β = 1),
    a β factor > 0, or ``False``/None (off).
    """
    return Policy(
        _window(stale_ttl, "stale_ttl"),
        _window(stale_if_error, "stale_if_error"),
        early_beta(early),
    )


def _window(value: float | timedelta | str | None, name: str) -> float | None:
    if value is None or (isinstance(value, (int, float, timedelta)) and not value):
        return None  # 0 turns a window off (to override a constructor default per call)
    return normalize_ttl(value, name)


def early_beta(early: bool | float | None) -> float | None:
    """XFetch's β for ``early=``: True is 1.0 (the paper's default), a number > 0 is itself
    (> 1 refreshes earlier), False and None are off."""
    if early is None or early is False:
        return None
    if early is True:
        return 1.0
    if not isinstance(early, (int, float)):
        raise TypeError(f"early must be True, False or a number > 0, not {type(early).__name__}")
    beta = float(early)
    if not math.isfinite(beta) or beta <= 0:
        raise ValueError(f"early must be a finite number > 0 (XFetch's beta), not {early!r}")
    return beta


def stale_window(requested: float | None, recorded: float | None) -> float:
    """Seconds past the ttl an entry may be served while refreshed: what the reader accepts,
    bounded by what the writer recorded. Either missing means none (0): both must opt in, so
    an entry written before stale windows existed, or by a writer without one, is never stale."""
    if requested is None or recorded is None:
        return 0.0
    return min(requested, recorded)


def parse_seconds(raw: str | None) -> float | None:
    """A number of seconds from user metadata, or None when absent or unreadable (garbage, a
    sign, an exponent, NaN, over 1e10): an unreadable field counts as absent."""
    if raw is None or _NUMBER.fullmatch(raw) is None:
        return None
    seconds = float(raw)
    return seconds if seconds <= MAX_TTL else None


def format_compute(seconds: float) -> str:
    """A compute time as metadata text, in milliseconds' precision: ``0.213``, ``12.5``, ``0``."""
    clamped = min(max(seconds, 0.0), MAX_TTL) if math.isfinite(seconds) else 0.0
    text = f"{clamped:.3f}".rstrip("0").rstrip(".")
    return text or "0"


def with_freshness(payload: Payload, compute: float | None, stale: float | None) -> Payload:
    """``payload`` with its compute time and stale window added to its user metadata.

    Only entries with a ttl carry them (one that never expires is never stale nor refreshed
    early); with neither, ``payload`` is returned as it is: the feature costs nothing unused.
    The ttl, ``Expires`` and ``Cache-Control`` are untouched: they stay the fresh ttl.
    """
    if TTL_METADATA not in payload.metadata or (compute is None and stale is None):
        return payload
    metadata = dict(payload.metadata)
    if compute is not None:
        metadata[COMPUTE_METADATA] = format_compute(compute)
    if stale is not None:
        metadata[STALE_METADATA] = format_seconds(stale)
    return replace(payload, metadata=metadata)


def tombstone(ttl: float) -> Payload:
    """The negative-cache entry for ``ttl`` seconds (normalised: ``normalize_ttl(...,
    "negative_ttl")``): :data:`TOMBSTONE_BODY`, its ttl in ``s3cache-absent``, and expiry fields
    that every older reader takes for expired: ``s3cache-ttl: 0``, ``Expires`` in 1970."""
    metadata = {TTL_METADATA: "0", ABSENT_METADATA: format_seconds(ttl)}
    return Payload(TOMBSTONE_BODY, TOMBSTONE_CONTENT_TYPE, metadata, _EPOCH, "max-age=0")


def is_tombstone(headers: Mapping[str, str]) -> bool:
    """Whether lower-cased response ``headers`` are a tombstone's (one lookup: for every read)."""
    return ABSENT_HEADER in headers


def age_bounds(headers: Mapping[str, str], now: float) -> tuple[float, float]:
    """The lowest and highest true age of an object, from its ``Date`` and ``Last-Modified``.

    Both are whole seconds, truncated, so the true age is within one second either side of
    ``Date - Last-Modified``. Whoever must never serve late uses the highest (an entry is fresh
    while ``ttl - highest >= 0``, as :func:`s3cache._expiry.remaining_ttl` judges); whoever must
    never give up early uses the lowest. ``now`` stands in for a missing ``Date``. Raises
    ``ValueError`` or ``KeyError`` for unreadable or missing dates.
    """
    date_raw = headers.get("date")
    server_now = parse_http_date(date_raw) if date_raw else now
    age = server_now - parse_http_date(headers["last-modified"])
    return max(0.0, age - 1.0), age + 1.0


def read_facts(headers: Mapping[str, str], now: float) -> EntryFacts:
    """The :class:`EntryFacts` of lower-cased GET or HEAD ``headers`` (``now``: the wall clock,
    used only when ``Date`` is missing). Never raises: what cannot be read is never fresh."""
    if ABSENT_HEADER in headers:
        ttl = parse_seconds(headers[ABSENT_HEADER])
        if not ttl:
            return _DEAD  # garbled: its s3cache-ttl of 0 says expired, and so do we
        try:
            return EntryFacts(ttl - age_bounds(headers, now)[1], tombstone=True)
        except (ValueError, KeyError):
            return _DEAD
    ttl_raw = headers.get(TTL_HEADER)
    if ttl_raw is not None and not parse_seconds(ttl_raw):
        return _DEAD  # garbage, or 0: only a tombstone writes 0
    if ttl_raw is None and not _readable_date(headers.get("expires")):
        return _DEAD
    try:
        remaining = remaining_ttl(headers, now)
    except (ValueError, KeyError):
        return _DEAD
    if remaining is None:
        return EntryFacts(None)
    compute = parse_seconds(headers.get(COMPUTE_HEADER))
    return EntryFacts(remaining, compute, parse_seconds(headers.get(STALE_HEADER)))


def _readable_date(raw: str | None) -> bool:
    """Whether an ``Expires`` is absent or readable (litellm's entries carry only that)."""
    if raw is None:
        return True
    try:
        parse_http_date(raw)
    except ValueError:
        return False
    return True


def xfetch_probability(remaining: float, delta: float, beta: float) -> float:
    """The chance that one read refreshes early: ``exp(-remaining / (delta * beta))`` (from
    ``now - delta * beta * ln(rand) >= expiry`` with rand uniform in (0, 1])."""
    if remaining <= 0:
        return 1.0
    if delta <= 0:
        return 0.0
    return math.exp(-remaining / (delta * beta))


def xfetch(remaining: float, delta: float, beta: float, rng: random.Random) -> bool:
    """One XFetch draw (Vattani, Chierichetti, Lowenstein, VLDB 2015): refresh now when
    ``-delta * beta * ln(rand) >= remaining``, rand in (0, 1] from ``rng``; ``remaining`` is
    ``expiry - now``. No lock: each reader draws alone, and in a stampede of any size the
    expected number of early refreshes stays near one."""
    return -delta * beta * math.log(1.0 - rng.random()) >= remaining


def judge(facts: EntryFacts, options: Policy, rng: random.Random) -> Verdict:
    """The :class:`Verdict` for an entry with ``facts``, read under ``options``.

    Windows are inclusive at their end (``remaining`` already errs towards expired). A
    tombstone is fresh or expired, never early nor stale. An entry invalidated by a tag is
    none of the caller's business here: the core treats it as :attr:`Verdict.EXPIRED`
    whatever this says (invalidated means wrong, not old).
    """
    if facts.dead:
        return Verdict.EXPIRED
    remaining = facts.remaining
    if remaining is None:
        return Verdict.FRESH
    if remaining >= 0:
        beta, delta = options.beta, facts.compute
        if beta is None or not delta or facts.tombstone:
            return Verdict.FRESH
        return Verdict.EARLY if xfetch(remaining, delta, beta, rng) else Verdict.FRESH
    if facts.tombstone:
        return Verdict.EXPIRED
    over = -remaining
    if over <= stale_window(options.stale_ttl, facts.stale):
        return Verdict.STALE
    if options.stale_if_error is not None and over <= options.stale_if_error:
        return Verdict.ERROR_ONLY
    return Verdict.EXPIRED


def serves_stale_on(kind: str) -> bool:
    """Whether a store failure of ``kind`` lets ``stale_if_error`` serve a stale value."""
    return kind in STALE_IF_ERROR_KINDS


class RefreshBackoff:
    """When a key's failed background refresh may be retried: jittered exponential back-off.

    After the n-th failure in a row a key waits ``d/2 + U(0, d/2)`` seconds, with
    ``d = min(cap, base * 2**(n-1))`` ("equal jitter": never less than half the step, so a
    failing refresh is not retried on every read, yet a fleet does not retry in step). A success
    forgets the key. At most ``max_keys`` keys are remembered (the oldest failure is forgotten
    first, so memory is bounded and a forgotten key merely retries sooner). ``clock`` is
    monotonic seconds; ``rng`` draws the jitter. :meth:`allows` takes no lock, and with no
    failure remembered reads no clock; the writes take one (a cache may be used from several
    event loops in several threads).
    """

    __slots__ = ("_base", "_cap", "_clock", "_failing", "_lock", "_max_keys", "_rng")

    def __init__(
        self,
        base: float = 1.0,
        cap: float = 60.0,
        *,
        max_keys: int = 4096,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        """``base``: the first back-off step in seconds; ``cap``: the largest; ``max_keys``:
        keys remembered; ``clock`` and ``rng``: injectable for tests."""
        if not (math.isfinite(base) and math.isfinite(cap) and 0 < base <= cap):
            raise ValueError(f"back-off needs 0 < base <= cap, finite: {base!r}, {cap!r}")
        whole_number(max_keys, "max_keys")
        self._base = base
        self._cap = cap
        self._max_keys = max_keys
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        #: key -> (monotonic time before which no refresh, failures in a row)
        self._failing: OrderedDict[str, tuple[float, int]] = OrderedDict()
        self._lock = threading.Lock()

    def allows(self, key: str) -> bool:
        """Whether a background refresh of ``key`` may start now."""
        if not self._failing:
            return True
        entry = self._failing.get(key)
        return entry is None or self._clock() >= entry[0]

    def failed(self, key: str) -> float:
        """Note a failed refresh of ``key``; returns the back-off chosen, in seconds."""
        with self._lock:
            _, failures = self._failing.pop(key, (0.0, 0))
            failures += 1
            step = min(self._cap, self._base * 2.0 ** min(failures - 1, 64))
            delay = step / 2 + self._rng.random() * step / 2
            self._failing[key] = (self._clock() + delay, failures)
            while len(self._failing) > self._max_keys:
                self._failing.popitem(last=False)
        return delay

    def succeeded(self, key: str) -> None:
        """Note a refresh of ``key`` that stored its value: its back-off is over."""
        if self._failing:
            with self._lock:
                self._failing.pop(key, None)

    def failures(self, key: str) -> int:
        """Failed refreshes of ``key`` in a row (0: none remembered)."""
        entry = self._failing.get(key)
        return 0 if entry is None else entry[1]

    def __len__(self) -> int:
        return len(self._failing)
