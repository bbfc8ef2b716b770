"""Writing a cache's entries: a PUT, a batch of them, the conditional writes of ``add``, and a
``get_or_set`` factory's value; each recorded once and coherent with the local tier."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from s3cache._capabilities import Learner
from s3cache._concurrency import paced
from s3cache._format import Payload
from s3cache._parts import Parts
from s3cache.errors import NotSupportedError, S3CacheError

__all__ = ["Writes"]


class Writes:
    """The write path of one cache (see :meth:`AsyncS3Cache.set`, ``set_many`` and ``add``)."""

    __slots__ = ("_capabilities", "_coherence", "_entries", "_recorder", "_transport")

    def __init__(self, parts: Parts, capabilities: Learner) -> None:
        self._transport = parts.transport
        self._coherence = parts.coherence
        self._recorder = parts.recorder
        self._entries = parts.entries
        self._capabilities = capabilities

    async def store(
        self,
        okey: str,
        value: Any,
        seconds: float | None,
        *,
        compute: float | None = None,
        stale: float | None = None,
    ) -> None:
        """Encode and PUT one value (``compute``: the factory's duration; ``stale``: the stale
        window, else the cache's; both recorded); a store failure is counted, raised or logged
        per ``on_error``."""
        payload = self._entries.encode(okey, value, seconds, compute=compute, stale=stale)
        error = await self.put(okey, payload, seconds)
        if error is not None:
            self._recorder.failed(error, None)

    async def put(self, okey: str, payload: Payload, seconds: float | None) -> S3CacheError | None:
        """PUT one entry, recorded; a store failure is returned (for the caller to count)."""
        with self._recorder.op("set", okey) as op, self._coherence.writing([okey]) as write:
            try:
                await self._transport.put(okey, payload)
            except S3CacheError as exc:  # whether it landed is unknown: the tier keeps nothing
                op.errored(exc)
                return exc
            write.stored(payload, seconds, op.started)
            op.stored(len(payload.body))
            return None

    async def put_many(
        self, items: Sequence[tuple[str, str, Payload]], seconds: float | None
    ) -> dict[str, S3CacheError]:
        """PUT every ``(key, okey, payload)``, paced by the concurrency bound; the keys that
        failed, with why, counted and raised or logged as one batch per ``on_error``."""
        width = self._transport.max_concurrency
        errors = await paced(lambda item: self.put(item[1], item[2], seconds), items, width)
        failed = {item[0]: e for item, e in zip(items, errors, strict=True) if e is not None}
        self._recorder.batch_failed("set_many", failed, len(items), len(items) - len(failed))
        return failed

    async def add(self, okey: str, payload: Payload, seconds: float | None) -> bool:
        """Store ``payload`` only if no live entry is under ``okey``; True when it was stored."""
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
        if self._entries.is_live(headers) or not headers.get("etag"):
            return False
        capabilities = await self._capabilities.require("add() over an expired entry")
        condition = capabilities.if_match(headers["etag"])
        return (await transport.put_if(okey, payload, if_match=condition)).stored

    async def fill(
        self,
        okey: str,
        factory: Callable[[], Any],
        seconds: float | None,
        stale: float | None = None,
    ) -> Any:
        """Run ``factory`` (sync or async) and store its value under ``okey``, with how long
        it took (XFetch's compute time, recorded only on entries with a ttl)."""
        with self._recorder.phase("factory") as ran:  # counted, timed (and its span)
            value = factory()
            if inspect.isawaitable(value):
                value = await value
        await self.store(okey, value, seconds, compute=ran.duration, stale=stale)
        return value

    def encoded(
        self,
        object_key: Callable[[str], str],
        mapping: Mapping[str, Any],
        seconds: float | None,
        metadata: Mapping[str, Mapping[str, str]],
    ) -> list[tuple[str, str, Payload]]:
        """``(key, okey, payload)`` of every item of ``mapping`` (``object_key`` validates a key
        into its object key), with the extra user ``metadata`` of some keys; all validated and
        encoded, in order, before any request."""
        encode = self._entries.encode
        return [
            (key, okey := object_key(key), encode(okey, value, seconds, metadata.get(key)))
            for key, value in mapping.items()
        ]
