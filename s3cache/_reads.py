"""Reading a cache's entries: a local hit, or a GET shared by the readers of a key, verified,
judged on the server's clock and decoded; and ``exists``. Each read recorded once."""

from __future__ import annotations

from typing import Any, Final

from s3cache import _expiry
from s3cache._local import LocalEntry
from s3cache._parts import Parts
from s3cache.errors import CorruptEntryError, S3CacheError

__all__ = ["MISSING", "Reads"]

#: What a read returns when there is no value to serve (a miss, an expiry, a logged failure).
MISSING: Final[Any] = object()


class Reads:
    """The read path of one cache (see :meth:`AsyncS3Cache.get` and ``exists``)."""

    __slots__ = ("_parts",)

    def __init__(self, parts: Parts) -> None:
        self._parts = parts

    async def read(self, okey: str) -> Any:
        """The value under ``okey`` or :data:`MISSING`; recorded, errors per ``on_error``."""
        parts = self._parts  # locals: this is every GET's path
        coherence, entries = parts.coherence, parts.entries
        with parts.recorder.op("get", okey) as op:
            if coherence.local is not None:
                entry = coherence.cached(okey, op.started)
                if entry is not None and (value := self._local_value(okey, entry)) is not MISSING:
                    op.local_hit(len(entry.body))
                    return value
            try:
                fetched = await coherence.fetch(okey, parts.transport.get)
            except S3CacheError as exc:
                return op.failed(exc, MISSING)
            if fetched.found is None:
                op.miss()
                return MISSING
            body, headers = fetched.found
            reason = entries.unverified(okey, body, headers) if entries.signer else None
            if reason is not None:
                op.unverified(reason)
                return MISSING
            remaining = entries.remaining(headers)
            if _expiry.is_expired(remaining):
                op.expired()
                return MISSING
            try:
                value = entries.decode(
                    body, headers.get("content-type"), headers.get("content-encoding")
                )
            except (ValueError, KeyError) as exc:
                error = CorruptEntryError(f"GetObject {okey!r}: unreadable entry: {exc}")
                error.__cause__ = exc
                return op.failed(error, MISSING)
            if coherence.local is not None:
                coherence.keep(okey, fetched, body, headers, remaining)
            op.hit(len(body))
            return value

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
        with self._parts.recorder.op("exists", okey) as op:
            if self._parts.coherence.cached(okey, op.started) is not None:
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
            if live:
                op.hit(0)
            else:
                op.miss()
            return live
