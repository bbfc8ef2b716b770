"""Invalidation by tag, pure and sans-IO: tags, their metadata, tag records, and tag checks.

No index: each tag has one small object, its *tag record* at ``<prefix>.s3cache/tags/<tag>``,
whose server-side ``Last-Modified`` is the time the tag was last invalidated (``invalidate`` is
one unconditional PUT of it, whatever the number of entries). An entry lists its tags in user
metadata (``x-amz-meta-s3cache-tags``, sorted, space-separated) and was written at its own
``Last-Modified``. An entry written at ``w`` is invalidated when any of its tags' records has
``Last-Modified >= w``: S3 dates have one-second resolution, so an entry written in the same
second as an invalidation counts as written before it (a miss, never a wrong value).

Readers cache what they learn of tag records per process (:class:`TagChecks`), so a read of a
tagged entry costs at most one GET per tag per ``tag_check_interval``; invalidations made by
the process itself are known at once. An entry without tags costs nothing: no field, no GET.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Final

from s3cache._expiry import parse_http_date
from s3cache._format import JSON_CONTENT_TYPE, Payload
from s3cache._keys import RESERVED_SEGMENT, reserved_key
from s3cache._metadata import (
    METADATA_LIMIT,
    OTHER_METADATA_BUDGET,
    TAG_RECORD_HEADER,
    TAG_RECORD_METADATA,
    TAGS_HEADER,
    TAGS_METADATA,
    metadata_size,
)
from s3cache._numbers import whole_number

__all__ = [
    "MAX_TAGS",
    "MAX_TAG_LENGTH",
    "METADATA_LIMIT",
    "OTHER_METADATA_BUDGET",
    "TAGS_HEADER",
    "TAGS_METADATA",
    "TAG_RECORD_HEADER",
    "TAG_RECORD_METADATA",
    "TagChecks",
    "check_metadata_size",
    "invalidates",
    "is_invalidated",
    "metadata_size",
    "normalize_tags",
    "parse_tags",
    "record_time",
    "tag_check_interval",
    "tag_record",
    "tag_record_key",
    "tag_record_scopes",
    "with_tags",
    "written_at",
]

#: The most tags one entry may carry (each costs a GET per check interval on reads).
MAX_TAGS: Final = 10
#: The longest tag, in characters (all ASCII, see :func:`normalize_tags`).
MAX_TAG_LENGTH: Final = 128
#: What a tag may hold: letters, digits and ``- _ . : = @ +`` (ids, emails, ``model=x``,
#: ``prompt:v3``), nothing that needs escaping in a header value or an object key, and no
#: ``/`` (a tag is one path segment of its record's key), no space (the separator).
_TAG: Final = re.compile(r"[A-Za-z0-9_.:=@+\-]+")
_DOTS: Final = frozenset({".", ".."})


def normalize_tags(tags: Iterable[str] | None, what: str = "tags") -> tuple[str, ...]:
    """Validate ``tags`` (an iterable of str, or None) into a sorted tuple without repeats.

    A clear ``TypeError``/``ValueError`` naming the problem, before any request: a bare str (it
    would be taken letter by letter), a tag that is not a non-empty str of at most
    :data:`MAX_TAG_LENGTH` of the allowed characters, ``.`` or ``..``, or more than
    :data:`MAX_TAGS` distinct tags.
    """
    if tags is None:
        return ()
    if isinstance(tags, (str, bytes)):
        raise TypeError(
            f"{what} must be a list of str, not a single {type(tags).__name__}: "
            f"write {what}=[{tags!r}]"
        )
    unique: set[str] = set()
    for tag in tags:
        _check_tag(tag, what)
        unique.add(tag)
    if len(unique) > MAX_TAGS:
        raise ValueError(
            f"{what}: {len(unique)} tags, over the {MAX_TAGS} one entry may carry (they travel "
            f"in user metadata, which S3 caps at {METADATA_LIMIT} bytes)"
        )
    return tuple(sorted(unique))


def _check_tag(tag: object, what: str) -> None:
    if not isinstance(tag, str):
        raise TypeError(f"{what}: each tag must be a str, not {type(tag).__name__}")
    if not tag:
        raise ValueError(f"{what}: a tag must not be empty")
    if len(tag) > MAX_TAG_LENGTH:
        raise ValueError(
            f"{what}: tag {tag[:40]!r}... is {len(tag)} characters, over {MAX_TAG_LENGTH}; "
            "hash long tags (e.g. 'doc:' + sha256 hex)"
        )
    if _TAG.fullmatch(tag) is None:
        bad = next(c for c in tag if _TAG.fullmatch(c) is None)
        raise ValueError(
            f"{what}: tag {tag!r} holds {bad!r} (U+{ord(bad):04X}); tags may hold ASCII letters, "
            "digits and - _ . : = @ + only"
        )
    if tag in _DOTS:
        raise ValueError(f"{what}: {tag!r} is not a tag (a '.' or '..' path segment)")


def with_tags(payload: Payload, tags: tuple[str, ...]) -> Payload:
    """``payload`` with ``tags`` (normalised) in its user metadata; untouched without tags."""
    if not tags:
        return payload
    return replace(payload, metadata={**payload.metadata, TAGS_METADATA: " ".join(tags)})


def parse_tags(headers: Mapping[str, str]) -> tuple[str, ...] | None:
    """The tags in lower-cased response ``headers``: () for none, None when the field cannot be
    read (a reader must then treat the entry as invalidated: it cannot tell)."""
    raw = headers.get(TAGS_HEADER)
    if raw is None:
        return ()
    tags = tuple(raw.split(" "))
    if not tags or len(tags) > MAX_TAGS:
        return None
    for tag in tags:
        if len(tag) > MAX_TAG_LENGTH or _TAG.fullmatch(tag) is None or tag in _DOTS:
            return None
    return tags


def check_metadata_size(metadata: Mapping[str, str], what: str) -> None:
    """Raise ``ValueError`` before the PUT of ``what`` when ``metadata`` would pass S3's cap."""
    size = metadata_size(metadata)
    if size > METADATA_LIMIT:
        raise ValueError(
            f"{what}: {size} bytes of user metadata, over S3's {METADATA_LIMIT}-byte cap "
            f"(fields: {', '.join(sorted(metadata))}); use fewer or shorter tags"
        )


def tag_record_key(prefix: str, tag: str) -> str:
    """The object key of ``tag``'s record (``tag`` validated): ``<prefix>.s3cache/tags/<tag>``,
    or its SHA-256 under ``tags-sha256/`` when too long for S3 (as every reserved key)."""
    return reserved_key(prefix, "tags", tag)


def tag_record_scopes(prefix: str) -> tuple[str, str]:
    """The two key prefixes holding every tag record under ``prefix`` (to list them)."""
    base = f"{prefix}{RESERVED_SEGMENT}/tags"
    return base + "/", base + "-sha256/"


def tag_record(tag: str) -> Payload:
    """The record PUT by ``invalidate(tag)``: its time is its ``Last-Modified`` (the server's);
    the tag is in metadata (``s3cache tags`` lists it even when the key is hashed) and in a JSON
    body for people. No ttl: purge keeps it; ``clear()`` removes it."""
    body = json.dumps({"s3cache": "tag record", "tag": tag}).encode()
    return Payload(body, JSON_CONTENT_TYPE, {TAG_RECORD_METADATA: tag}, None, None)


def record_time(headers: Mapping[str, str]) -> float:
    """When a tag record says its tag was invalidated: its ``Last-Modified``, epoch seconds.
    Unreadable: infinity (every entry of the tag counts as invalidated: never a wrong value)."""
    try:
        return parse_http_date(headers["last-modified"])
    except (KeyError, ValueError):
        return math.inf


def written_at(headers: Mapping[str, str]) -> float | None:
    """When an entry was written: its ``Last-Modified``; None when unreadable (a reader must
    then treat a tagged entry as invalidated)."""
    try:
        return parse_http_date(headers["last-modified"])
    except (KeyError, ValueError):
        return None


def invalidates(record: float, written: float) -> bool:
    """Whether a tag record of time ``record`` invalidates an entry written at ``written`` (both
    ``Last-Modified``, whole seconds): the one place that decides. Equal counts as invalidated:
    at one-second resolution the invalidation may have come after the write."""
    return record >= written


def is_invalidated(written: float, tags: Iterable[str], records: Mapping[str, float]) -> bool:
    """Whether an entry written at ``written`` carrying ``tags`` is invalidated by ``records``
    (tag → its record's ``Last-Modified``; a tag without a record was never invalidated): what
    a purge judges after listing the records once."""
    return any(invalidates(records.get(tag, -math.inf), written) for tag in tags)


def tag_check_interval(seconds: float) -> float:
    """Validate ``tag_check_interval=``: seconds >= 0, finite (0: check on every read)."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"tag_check_interval must be seconds, not {type(seconds).__name__}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"tag_check_interval must be >= 0 and finite, not {seconds!r}")
    return float(seconds)


class TagChecks:
    """What this process knows of tag records: tag → (record time, when it was checked).

    Sans-IO: the core asks :meth:`due` which tags need a GET of their record, sends those
    (one flight per tag), passes each answer to :meth:`learn`, then asks :meth:`invalidated`.
    A check is good for ``interval`` seconds (monotonic, counted from when its GET was *sent*,
    so the bound holds whatever the GET's latency); 0 checks on every read. This process's own
    ``invalidate`` calls :meth:`learn` too, so it is known at once. At most ``max_tags`` tags
    are remembered (least recently used forgotten first: re-checked, never trusted). A lock
    guards the table: a cache may be used from several event loops in several threads.
    """

    __slots__ = ("_clock", "_interval", "_known", "_lock", "_max_tags")

    def __init__(
        self,
        interval: float = 1.0,
        *,
        max_tags: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``interval``: ``tag_check_interval`` (validated); ``max_tags``: tags remembered;
        ``clock``: monotonic seconds (injectable for tests)."""
        self._interval = tag_check_interval(interval)
        self._max_tags = whole_number(max_tags, "max_tags")
        self._clock = clock
        self._known: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def interval(self) -> float:
        """Seconds a check of a tag record stays good."""
        return self._interval

    def due(self, tags: Iterable[str], written: float) -> tuple[str, ...]:
        """The tags whose records must be fetched before answering for an entry written at
        ``written``: none when one already known invalidates it (the answer needs no request)."""
        now = self._clock()
        interval = self._interval
        known = self._known
        due: list[str] = []
        with self._lock:
            for tag in tags:
                found = known.get(tag)
                if found is not None:
                    if invalidates(found[0], written):
                        return ()
                    if interval and now - found[1] <= interval:
                        known.move_to_end(tag)
                        continue
                due.append(tag)
        return tuple(due)

    def learn(self, tag: str, record: float | None, checked: float) -> None:
        """A record's time as found by a GET sent at monotonic ``checked`` (None: no record,
        never invalidated), or as written by this process's ``invalidate`` (the PUT's ``Date``,
        which is never before the record's ``Last-Modified``). Times only move forward: an
        answer that arrives late never hides a newer invalidation."""
        when = -math.inf if record is None else record
        with self._lock:
            found = self._known.pop(tag, None)
            if found is not None:
                when, checked = max(when, found[0]), max(checked, found[1])
            self._known[tag] = (when, checked)
            while len(self._known) > self._max_tags:
                self._known.popitem(last=False)

    def invalidated(self, tags: Iterable[str], written: float) -> bool:
        """Whether what is known invalidates an entry written at ``written`` with ``tags``
        (call after the :meth:`due` tags were learned)."""
        known = self._known
        with self._lock:
            for tag in tags:
                found = known.get(tag)
                if found is not None and invalidates(found[0], written):
                    return True
        return False

    def forget(self) -> None:
        """Forget every check (after ``clear()``, which removes the tag records)."""
        with self._lock:
            self._known.clear()

    def __len__(self) -> int:
        return len(self._known)
