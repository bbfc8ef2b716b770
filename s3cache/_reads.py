"""Reading a cache's entries: a local hit, or a GET shared by the readers of a key, verified,
judged on the server's clock and decoded; and ``exists``. Each read recorded once."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any, Final

from s3cache import _expiry
from s3cache._freshness import ABSENT, ABSENT_HEADER, Policy, Verdict, judge, serves_stale_on
from s3cache._last_seen import NOTHING
from s3cache._local import LocalEntry
from s3cache._parts import Parts
from s3cache._recorder import Op
from s3cache._tagging import Tagging
from s3cache._tags import TAGS_HEADER
from s3cache.errors import CorruptEntryError, S3CacheError

__all__ = ["MISSING", "Reads"]

#: What a read returns when there is no value to serve (a miss, an expiry, a logged failure).
MISSING: Final[Any] = object()
#: No freshness option: the read judges expiry as it always has (``get``).
_OFF: Final = Policy()
#: The verdicts under which a read serves the entry it found.
_SERVED: Final = frozenset({Verdict.FRESH, Verdict.EARLY, Verdict.STALE})
#: The verdicts under which a read decodes the entry it found (``ERROR_ONLY``: for
#: ``get_or_set`` to serve if its factory fails).
_DECODED: Final = _SERVED | {Verdict.ERROR_ONLY}


class Reads:
    """The read path of one cache (see :meth:`AsyncS3Cache.get` and ``exists``)."""

    __slots__ = ("_parts", "_policy", "rng", "tagging")

    def __init__(self, parts: Parts, prefix: str, check_open: Callable[[], None]) -> None:
        """The reads of a cache under ``prefix`` (``check_open``: see :class:`Tagging`)."""
        self._parts = parts
        #: The tag checks of tagged entries, and ``invalidate`` (which updates what they know).
        self.tagging = Tagging(parts, prefix, check_open)
        #: XFetch's random source, one per cache (tests seed it).
        self.rng = random.Random()
        window = parts.entries.freshness.stale_if_error
        #: ``get``'s policy: the constructor's ``stale_if_error`` (it never serves stale
        #: otherwise: it has no factory to refresh with).
        self._policy = _OFF if window is None else Policy(stale_if_error=window)
        if window is not None:
            parts.coherence.seen.armed = True

    async def read(self, okey: str) -> Any:
        """The value under ``okey`` or :data:`MISSING`; recorded, errors per ``on_error``."""
        value, verdict = await self.lookup(okey, self._policy)
        return MISSING if verdict is Verdict.ERROR_ONLY or value is ABSENT else value

    async def read_judged(self, okey: str, policy: Policy) -> tuple[Any, bool]:
        """:meth:`read` under ``policy``, and whether the value is stale (past its ttl, within
        its stale window): for a caller that recomputes it itself, having no factory to give."""
        value, verdict = await self.lookup(okey, policy)
        if verdict is Verdict.ERROR_ONLY or value is ABSENT:
            return MISSING, False
        return value, verdict is Verdict.STALE

    async def lookup(self, okey: str, policy: Policy) -> tuple[Any, Verdict]:
        """The value under ``okey`` (or :data:`MISSING`) and its :class:`Verdict` under
        ``policy`` (stale: for the caller to refresh; ``ERROR_ONLY``: to serve only if its
        refresh fails). ``stale_if_error``: a qualifying store failure serves the newest value
        seen within the window (as ``FRESH``). A tombstone is ``ABSENT``. An entry invalidated
        by a tag is a miss before freshness: never served stale, nor kept as seen."""
        parts = self._parts  # locals: this is every GET's path
        coherence, entries = parts.coherence, parts.entries
        if coherence.switch.off:  # cache.disabled(): a miss, no request, nothing recorded
            return MISSING, Verdict.EXPIRED
        with parts.recorder.op("get", okey) as op:
            if coherence.local is not None:
                entry = coherence.cached(okey, op.started)
                if entry is not None and entry.tags and not await self._local_holds(okey, entry):
                    entry = None  # dropped: S3 may hold a newer entry
                if entry is not None and (value := self._local_value(okey, entry)) is not MISSING:
                    op.local_hit(len(entry.body))
                    return value, Verdict.FRESH
            try:
                fetched = await coherence.fetch(okey, parts.transport.get)
            except S3CacheError as exc:
                return self._failed(op, okey, exc, policy.stale_if_error)
            if fetched.found is None:
                op.miss()
                return MISSING, Verdict.EXPIRED
            body, headers = fetched.found
            reason = entries.unverified(okey, body, headers) if entries.signer else None
            if reason is not None:
                op.unverified(reason)
                return MISSING, Verdict.EXPIRED
            if TAGS_HEADER in headers and not await self._holds(headers, op):
                coherence.seen.forget(okey)
                return MISSING, Verdict.EXPIRED
            if ABSENT_HEADER in headers:
                return self._tombstone(op, headers)
            remaining, verdict = self._judge(headers, policy)
            if verdict not in _DECODED:
                op.expired()
                return MISSING, verdict
            try:
                if (refused := entries.refusal(headers)) is not None:
                    raise ValueError(refused)  # another serializer wrote it: typed, not garbage
                value = entries.decode(
                    body, headers.get("content-type"), headers.get("content-encoding")
                )
            except (ValueError, KeyError) as exc:
                error = CorruptEntryError(f"GetObject {okey!r}: unreadable entry: {exc}")
                error.__cause__ = exc
                return op.failed(error, MISSING), Verdict.EXPIRED
            if policy.stale_if_error is not None:
                coherence.seen.keep(okey, value, remaining)
            if verdict is Verdict.ERROR_ONLY:
                op.expired()  # a miss, unless the refresh fails
            elif verdict is Verdict.STALE:
                op.stale("revalidating", len(body))  # never kept by the local tier
            else:
                if coherence.local is not None:
                    coherence.keep(okey, fetched, body, headers, remaining)
                op.hit(len(body))
            return value, verdict

    def _failed(
        self, op: Op, okey: str, exc: S3CacheError, window: float | None
    ) -> tuple[Any, Verdict]:
        """A GET failed with ``exc``: the newest value seen for ``okey`` when ``window``
        (``stale_if_error``) covers it and the failure is of a kind it applies to, else the
        failure per ``on_error``."""
        if window is not None and serves_stale_on(exc.kind):
            stale = self._parts.coherence.seen.within(okey, window)
            if stale is not NOTHING:
                op.stale_on_error(exc)
                return stale, Verdict.FRESH
        return op.failed(exc, MISSING), Verdict.EXPIRED

    def _tombstone(self, op: Op, headers: Mapping[str, str]) -> tuple[Any, Verdict]:
        """A tombstone read (recorded as a miss): :data:`ABSENT` while it lives, else expired."""
        facts = self._parts.entries.facts(headers)
        if facts.dead or facts.remaining is None or facts.remaining < 0:
            op.expired()
            return MISSING, Verdict.EXPIRED
        op.miss()
        return ABSENT, Verdict.FRESH

    def _judge(self, headers: Mapping[str, str], policy: Policy) -> tuple[float | None, Verdict]:
        """The entry's seconds of fresh ttl left and its verdict under ``policy`` (without
        one, expiry as it always was: the freshness fields are not even read)."""
        if policy.off:
            remaining = self._parts.entries.remaining(headers)
            return remaining, Verdict.EXPIRED if _expiry.is_expired(remaining) else Verdict.FRESH
        facts = self._parts.entries.facts(headers)
        return facts.remaining, judge(facts, policy, self.rng)

    async def _holds(self, headers: Mapping[str, str], op: Op) -> bool:
        """Whether a tagged entry's tags still hold; if not, ``op`` is an invalidated read, or
        a failure (a tag record's GET failed: it cannot tell) handled per ``on_error``."""
        try:
            invalidated = await self.tagging.entry_invalidated(headers)
        except S3CacheError as exc:
            return op.failed(exc, False)
        if invalidated:
            op.invalidated()
        return not invalidated

    async def _local_holds(self, okey: str, entry: LocalEntry) -> bool:
        """Whether the local tier's tagged ``entry`` still holds; if not (or if it cannot be
        told: the read goes on to S3, which judges and records it), it is dropped."""
        try:
            holds = not await self.tagging.invalidated(entry.tags, entry.written)
        except S3CacheError:
            holds = False
        if not holds:
            self._parts.coherence.discard(okey)
        return holds

    def _local_value(self, okey: str, entry: LocalEntry) -> Any:
        """The value of the local tier's ``entry``, or :data:`MISSING` when it would not decode
        (then dropped). The tier holds only entries this cache wrote or verified."""
        try:
            return self._parts.entries.decode(
                entry.body, entry.content_type, entry.content_encoding
            )
        except ValueError:
            self._parts.coherence.discard(okey)
            return MISSING

    async def exists(self, okey: str) -> bool:
        """Whether a live (and, with a signing key, signed) entry is under ``okey``."""
        if self._parts.coherence.switch.off:
            return False
        with self._parts.recorder.op("exists", okey) as op:
            entry = self._parts.coherence.cached(okey, op.started)
            if entry is not None and (not entry.tags or await self._local_holds(okey, entry)):
                op.local_hit(0)
                return True
            try:
                headers = await self._parts.transport.head(okey)
            except S3CacheError as exc:
                return op.failed(exc, False)
            live = headers is not None and self._parts.entries.is_live(headers)
            reason = (
                self._parts.entries.unverified(okey, None, headers) if live and headers else None
            )
            if reason is not None:
                op.unverified(reason)
                return False
            if live and headers and TAGS_HEADER in headers and not await self._holds(headers, op):
                return False
            if live:
                op.hit(0)
            else:
                op.miss()
            return live
