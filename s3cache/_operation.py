"""One operation being recorded (:class:`Op`): what ``with recorder.op(name, key) as op``
yields; its outcome is set on the way and handed to its recorder when the block ends (see
:mod:`s3cache._recorder`, which owns counting, sinks and ``on_error``)."""

from __future__ import annotations

import time
from typing import Any, Literal, Protocol, TypeVar

from s3cache._stats import Counters, Outcome
from s3cache.errors import S3CacheError

__all__ = ["Op", "Recording"]

T = TypeVar("T")
_monotonic = time.monotonic


class Recording(Protocol):
    """What an :class:`Op` tells its recorder (:class:`~s3cache._recorder.Recorder`)."""

    counters: Counters

    def finish(self, op: Op) -> None:
        """Count and hand on the finished ``op``."""

    def close_trace(self, op: Op) -> None:
        """End ``op``'s span."""

    def unverified(self, okey: str | None, reason: str) -> None:
        """Log an entry that failed verification."""

    def note(self, exc: S3CacheError) -> None:
        """Log a store failure (rate-limited)."""

    def failed(self, exc: S3CacheError, fallback: T) -> T:
        """Raise ``exc`` or log it and return ``fallback``, per ``on_error``."""


class Op:
    """One operation being recorded: its name (the public method), object key (None for the
    whole cache), start, and, once set, its outcome, body bytes, error and entries removed."""

    __slots__ = (
        "_recorder",
        "duration",
        "error",
        "key",
        "name",
        "nbytes",
        "outcome",
        "removed",
        "served_stale",
        "started",
        "trace",
    )

    def __init__(self, recorder: Recording, name: str, key: str | None) -> None:
        self._recorder = recorder
        self.name = name
        self.key = key
        self.started = _monotonic()
        self.outcome: Outcome | None = None
        self.nbytes = 0
        self.error: S3CacheError | None = None
        self.removed = 0
        self.duration = 0.0
        self.trace: Any = None  # the tracer's, while the operation is open (its span)
        self.served_stale = False  # a hit on a value past its ttl

    def __enter__(self) -> Op:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.outcome is not None:
            self._recorder.finish(self)
        if self.trace is not None:
            self._recorder.close_trace(self)

    @property
    def tier(self) -> Literal["local", "s3"]:
        """Which tier answered: the local one, or S3 (for every outcome but a local hit)."""
        return "local" if self.outcome == "local_hit" else "s3"

    @property
    def error_kind(self) -> str | None:
        """The :attr:`~s3cache.errors.S3CacheError.kind` of the error, if the outcome is one."""
        return self.error.kind if self.error is not None else None

    def hit(self, nbytes: int) -> None:
        """Found on S3, live and readable (``nbytes``: its body)."""
        self.outcome, self.nbytes = "hit", nbytes

    def local_hit(self, nbytes: int) -> None:
        """Served by the local tier."""
        self.outcome, self.nbytes = "local_hit", nbytes

    def miss(self) -> None:
        """Nothing stored under the key."""
        self.outcome = "miss"

    def expired(self) -> None:
        """An entry past its ttl (a miss)."""
        self.outcome = "expired"

    def invalidated(self) -> None:
        """An entry invalidated by one of its tags (a miss), counted in ``invalidated``."""
        self.outcome = "invalidated"

    def unverified(self, reason: str) -> None:
        """An entry whose signature did not verify (a miss): counted by ``reason``, logged."""
        self.outcome = "unverified"
        self._recorder.unverified(self.key, reason)

    def stale(self, reason: str, nbytes: int) -> None:
        """A hit on a value past its ttl, served for ``reason`` (``revalidating``: while one
        refresh runs); counted in ``stale_served`` as well as in the hits."""
        self.outcome, self.nbytes, self.served_stale = "hit", nbytes, True
        self._recorder.counters.stale_served[reason] += 1

    def stale_on_error(self, exc: S3CacheError) -> None:
        """The store failed with ``exc`` (a ``stale_if_error`` kind) and the newest value seen
        was served instead: a hit, counted in ``stale_served["store_error"]``, and the failure
        counted by kind and logged (rate-limited), whatever ``on_error`` says."""
        self.outcome, self.error = "hit", exc
        self._recorder.counters.stale_served["store_error"] += 1
        self._recorder.note(exc)

    def stored(self, nbytes: int) -> None:
        """A write landed (``nbytes``: its body)."""
        self.outcome, self.nbytes = "stored", nbytes

    def rejected(self, nbytes: int) -> None:
        """A conditional write refused: the key was taken."""
        self.outcome, self.nbytes = "rejected", nbytes

    def deleted(self, count: int) -> None:
        """``count`` entries removed."""
        self.outcome = "deleted"
        self.removed = count

    def errored(self, exc: S3CacheError) -> None:
        """A store failure, recorded here and counted by whoever handles it (a batch counts
        its failed keys itself: see :meth:`Recorder.batch_failed`)."""
        self.outcome, self.error = "error", exc

    def failed(self, exc: S3CacheError, fallback: T) -> T:
        """A store failure handled as ``on_error`` says: raised, or logged and ``fallback``."""
        self.errored(exc)
        return self._recorder.failed(exc, fallback)
