"""Writing a cache's entries: a PUT, a batch of them, the conditional writes of ``add``, and a
``get_or_set`` factory's value; each recorded once and coherent with the local tier."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from s3cache._capabilities import Learner
from s3cache._concurrency import paced
from s3cache._format import Payload
from s3cache._freshness import ABSENT
from s3cache._parts import Parts
from s3cache._tagging import Tagging
from s3cache._tags import TAGS_HEADER, normalize_tags
from s3cache.errors import NotSupportedError, S3CacheError

__all__ = ["Writes"]


class Writes:
    """The write path of one cache (see :meth:`AsyncS3Cache.set`, ``set_many`` and ``add``)."""

    __slots__ = ("_capabilities", "_coherence", "_entries", "_recorder", "_tagging", "_transport")

    def __init__(self, parts: Parts, capabilities: Learner, tagging: Tagging) -> None:
        """``tagging``: how ``add`` tells an entry invalidated by a tag (replaced, as an
        expired one is)."""
        self._transport = parts.transport
        self._coherence = parts.coherence
        self._recorder = parts.recorder
        self._entries = parts.entries
        self._capabilities = capabilities
        self._tagging = tagging

    async def store(
        self,
        okey: str,
        value: Any,
        seconds: float | None,
        *,
        compute: float | None = None,
        stale: float | None = None,
        tags: Iterable[str] = (),
    ) -> None:
        """Encode and PUT one value (``compute``: the factory's duration; ``stale``: the stale
        window, else the cache's; both recorded; ``tags``: validated here, before any request);
        a store failure is counted, raised or logged per ``on_error``; skipped where the cache
        is disabled."""
        tagged = normalize_tags(tags)
        if self._coherence.switch.off:
            return
        payload = self._entries.encode(
            okey, value, seconds, compute=compute, stale=stale, tags=tagged
        )
        error = await self.put(okey, payload, seconds)
        # the newest value seen for stale_if_error, stored or not (a refresh during an outage)
        self._coherence.seen.keep(okey, value, seconds)
        if error is not None:
            self._recorder.failed(error, None)

    async def put(
        self, okey: str, payload: Payload, seconds: float | None, *, local: bool = True
    ) -> S3CacheError | None:
        """PUT one entry, recorded; a store failure is returned (for the caller to count).
        ``local=False``: the local tier does not keep it (a tombstone)."""
        with self._recorder.op("set", okey) as op, self._coherence.writing([okey]) as write:
            try:
                await self._transport.put(okey, payload)
            except S3CacheError as exc:  # whether it landed is unknown: the tier keeps nothing
                op.errored(exc)
                return exc
            if local:
                write.stored(payload, seconds, op.started)
            op.stored(len(payload.body))
            return None

    async def put_many(
        self, items: Sequence[tuple[str, str, Payload]], seconds: float | None
    ) -> dict[str, S3CacheError]:
        """PUT every ``(key, okey, payload)``, paced by the concurrency bound; the keys that
        failed, with why, counted and raised or logged as one batch per ``on_error``."""
        if self._coherence.switch.off:  # cache.disabled(): nothing stored, nothing failed
            return {}
        width = self._transport.max_concurrency
        errors = await paced(lambda item: self.put(item[1], item[2], seconds), items, width)
        failed = {item[0]: e for item, e in zip(items, errors, strict=True) if e is not None}
        self._recorder.batch_failed("set_many", failed, len(items), len(items) - len(failed))
        return failed

    async def add(self, okey: str, payload: Payload, seconds: float | None) -> bool:
        """Store ``payload`` only if no live entry is under ``okey``; True when it was stored
        (False where the cache is disabled: nothing is)."""
        if self._coherence.switch.off:
            return False
        with self._recorder.op("add", okey) as op, self._coherence.writing([okey]) as write:
            try:
                stored = await self._put_if_absent(okey, payload)
            except NotSupportedError:
                raise
            except S3CacheError as exc:  # whether it landed is unknown: the tier keeps nothing
                return op.failed(exc, False)
            if stored:
                write.stored(payload, seconds, op.started)
                op.stored(len(payload.body))
            else:
                op.rejected(len(payload.body))
            return stored

    async def _put_if_absent(self, okey: str, payload: Payload) -> bool:
        """The conditional writes of :meth:`add`; True when ``payload`` was stored.

        A refused create is looked at (the HEAD that also tells a write whose response was
        lost, see :meth:`Transport.put_if`): an expired entry is replaced with ``If-Match`` on
        its ETag, in the form this server honours; a vanished one is created once more.
        """
        transport = self._transport
        await self._capabilities.require_create("add()")
        written = await transport.put_if(okey, payload, if_absent=True)
        if written.stored:
            return True
        headers = written.found
        if headers is None:  # deleted in between: try once more
            return (await transport.put_if(okey, payload, if_absent=True)).stored
        if not headers.get("etag") or await self._holds(headers):
            return False
        capabilities = await self._capabilities.require("add() over an expired entry")
        condition = capabilities.if_match(headers["etag"])
        return (await transport.put_if(okey, payload, if_match=condition)).stored

    async def _holds(self, headers: Mapping[str, str]) -> bool:
        """Whether the entry a refused create found is live: not expired, nor invalidated by
        one of its tags (a read would miss it; ``add`` replaces it)."""
        if not self._entries.is_live(headers):
            return False
        return TAGS_HEADER not in headers or not await self._tagging.entry_invalidated(headers)

    async def fill(
        self,
        okey: str,
        factory: Callable[[], Any],
        seconds: float | None,
        stale: float | None = None,
        tags: tuple[str, ...] = (),
        condition: Callable[[Any], object] | None = None,
        negative: float | None = None,
    ) -> Any:
        """Run ``factory`` (sync or async) and store its value under ``okey`` with ``tags``,
        and how long it took (XFetch's compute time, recorded only on entries with a ttl),
        unless ``condition(value)`` is false: then the value is only returned. A factory that
        returns ``ABSENT`` stores a tombstone for ``negative`` seconds (None: nothing)."""
        with self._recorder.phase("factory") as ran:  # counted, timed (and its span)
            value = factory()
            if inspect.isawaitable(value):
                value = await value
        if value is ABSENT:
            if negative is not None:
                await self.store_absent(okey, negative)
            return ABSENT
        if condition is None or condition(value):
            await self.store(okey, value, seconds, compute=ran.duration, stale=stale, tags=tags)
        return value

    async def store_absent(self, okey: str, seconds: float) -> None:
        """PUT a tombstone ("no value") under ``okey`` for ``seconds``; never kept by the local
        tier; a store failure is counted, raised or logged per ``on_error``; skipped where the
        cache is disabled."""
        if self._coherence.switch.off:
            return
        error = await self.put(okey, self._entries.tombstone(okey, seconds), None, local=False)
        if error is not None:
            self._recorder.failed(error, None)

    def encoded(
        self,
        object_key: Callable[[str], str],
        mapping: Mapping[str, Any],
        seconds: float | None,
        metadata: Mapping[str, Mapping[str, str]],
        tags: Iterable[str] = (),
    ) -> list[tuple[str, str, Payload]]:
        """``(key, okey, payload)`` of every item of ``mapping`` (``object_key`` validates a key
        into its object key), with the extra user ``metadata`` of some keys and ``tags`` on
        all; all validated and encoded, in order, before any request."""
        encode, tags = self._entries.encode, normalize_tags(tags)
        return [
            (key, okey := object_key(key), encode(okey, v, seconds, metadata.get(key), tags=tags))
            for key, v in mapping.items()
        ]
