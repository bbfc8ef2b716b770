"""LangGraph on s3cache: :class:`S3NodeCache`, a node cache (``graph.compile(cache=...)``).

Needs ``pip install 's3cache-async[langgraph]'`` (langgraph 1.x).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Final

from s3cache import _keys
from s3cache._concurrency import gather
from s3cache._core import AsyncS3Cache
from s3cache._sync import S3Cache
from s3cache.integrations._connect import Connected
from s3cache.integrations._keys import encode_segment, hashed_segment

try:
    from langgraph.cache.base import BaseCache, FullKey, Namespace
    from langgraph.checkpoint.serde.base import SerializerProtocol
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without langgraph
    raise ImportError(
        "s3cache.integrations.langgraph needs langgraph: pip install 's3cache-async[langgraph]'"
    ) from exc

__all__ = ["NODE_CACHE_FOLDER", "S3NodeCache"]

logger = logging.getLogger("s3cache")

#: The folder under the cache's prefix that holds :class:`S3NodeCache` entries.
NODE_CACHE_FOLDER: Final = "langgraph-nodes"
_TAG_END: Final = b":"

#: Entries to store, grouped by ttl (seconds, or None for the cache's default_ttl).
_ByTtl = dict[int | float | None, dict[str, bytes]]


class S3NodeCache(Connected, BaseCache[Any]):  # type: ignore[misc,unused-ignore]  # Any without langgraph
    """LangGraph's node cache on S3: ``graph.compile(cache=S3NodeCache("bucket", prefix=...))``.

    A namespace is a folder: entry ``(("a", "b"), key)`` is ``langgraph-nodes/a/b/<key>`` under
    the cache's prefix, each part encoded as :class:`~s3cache.integrations.langchain.S3ByteStore`
    encodes keys, so clearing a namespace deletes that folder (namespaces nested inside it too).
    A key too long to be written out in full (the object key would pass S3's 1,024 bytes) is
    stored under its hashed form, ``<first 128 characters>~<sha256>``, in the same folder; a
    namespace too long to leave room for even that raises ``ValueError``. A value is stored as
    the serde's type tag, ``:``, then the serde's bytes, raw. Each entry's ttl is the node's
    ``CachePolicy(ttl=...)``; None means the cache's ``default_ttl``.

    Args:
        bucket: The bucket, when this object opens its own cache (then pass ``prefix`` and any
            other :class:`~s3cache.AsyncS3Cache` argument as keywords).
        cache: An existing :class:`~s3cache.AsyncS3Cache` or :class:`~s3cache.S3Cache` to use
            instead; it stays open when this object is closed.
        serde: LangGraph's serializer for values (default: its ``JsonPlusSerializer`` without
            the pickle fallback).
        **options: :class:`~s3cache.AsyncS3Cache`'s keyword arguments (with ``bucket`` only).
    """

    def __init__(
        self,
        bucket: str | None = None,
        *,
        cache: AsyncS3Cache | S3Cache | None = None,
        serde: SerializerProtocol | None = None,
        **options: Any,
    ) -> None:
        super().__init__(serde=serde)
        self._connect(bucket, cache, options)

    def get(self, keys: Sequence[FullKey]) -> dict[FullKey, Any]:
        """The live entries among ``keys``, fetched concurrently."""
        wanted = {self._object_key(key): key for key in keys}
        return self._revive(wanted, self._conn.sync.get_many(wanted))

    async def aget(self, keys: Sequence[FullKey]) -> dict[FullKey, Any]:
        """:meth:`get` on the caller's event loop."""
        wanted = {self._object_key(key): key for key in keys}
        return self._revive(wanted, await self._conn.core.get_many(wanted))

    def set(self, pairs: Mapping[FullKey, tuple[Any, int | None]]) -> None:
        """Store each ``key: (value, ttl)``; values are all serialised before any request."""
        for ttl, entries in self._by_ttl(pairs).items():
            self._conn.sync.set_many(entries, ttl)

    async def aset(self, pairs: Mapping[FullKey, tuple[Any, int | None]]) -> None:
        """:meth:`set` on the caller's event loop, every ttl group concurrently."""
        groups = self._by_ttl(pairs)
        await gather(self._conn.core.set_many(entries, ttl) for ttl, entries in groups.items())

    def clear(self, namespaces: Sequence[Namespace] | None = None) -> None:
        """Delete the entries of ``namespaces`` (and of namespaces inside them); None: all."""
        for folder in self._folders(namespaces):
            self._conn.sync.clear(folder)

    async def aclear(self, namespaces: Sequence[Namespace] | None = None) -> None:
        """:meth:`clear` on the caller's event loop, the namespaces concurrently."""
        await gather(self._conn.core.clear(folder) for folder in self._folders(namespaces))

    def _by_ttl(self, pairs: Mapping[FullKey, tuple[Any, int | None]]) -> _ByTtl:
        groups: _ByTtl = {}
        for key, (value, ttl) in pairs.items():
            tag, data = self.serde.dumps_typed(value)
            if ":" in tag:
                raise ValueError(f"the serde's type tag {tag!r} contains ':'")
            groups.setdefault(ttl, {})[self._object_key(key)] = tag.encode() + _TAG_END + data
        return groups

    def _revive(
        self, wanted: Mapping[str, FullKey], found: Mapping[str, Any]
    ) -> dict[FullKey, Any]:
        values: dict[FullKey, Any] = {}
        for okey, body in found.items():
            tag, sep, data = (
                body.partition(_TAG_END) if isinstance(body, bytes) else (b"", b"", b"")
            )
            try:
                if not sep:
                    raise ValueError("no type tag")
                values[wanted[okey]] = self.serde.loads_typed((tag.decode(), data))
            except Exception as exc:  # noqa: BLE001 - any serde failure: a logged miss
                logger.warning("s3cache node cache entry %r unreadable, a miss: %s", okey, exc)
        return values

    def _room(self) -> int:
        """UTF-8 bytes an object key has left after the cache's prefix."""
        return _keys.MAX_KEY_BYTES - len(self._conn.core.prefix.encode())

    def _object_key(self, key: FullKey) -> str:
        """The cache key of entry ``key``: its namespace's folder, then the key written out or,
        if that would not fit, hashed."""
        namespace, name = key
        folder = _namespace_path(namespace)
        written_out = f"{folder}/{encode_segment(name)}"
        if len(written_out) <= self._room():
            return written_out
        hashed = f"{folder}/{hashed_segment(name)}"
        if len(hashed) > self._room():
            raise ValueError(
                f"LangGraph namespace is too long: written out it is {len(folder):,} characters, "
                f"and with the prefix and a key it passes S3's {_keys.MAX_KEY_BYTES:,}-byte "
                "object keys"
            )
        return hashed

    def _folders(self, namespaces: Sequence[Namespace] | None) -> list[str]:
        """The folders to clear, each ending in ``/`` (so namespace ``a`` never covers ``ab``);
        one too long to hold any entry is left out: nothing can be stored there."""
        if namespaces is None:
            return [NODE_CACHE_FOLDER + "/"]
        folders = dict.fromkeys(_namespace_path(ns) + "/" for ns in namespaces)
        return [folder for folder in folders if len(folder) < self._room()]

    def __repr__(self) -> str:
        return f"S3NodeCache({self._conn.core!r})"


def _namespace_path(namespace: Namespace) -> str:
    if isinstance(namespace, str):  # a bare str would be taken as a tuple of characters
        raise TypeError(f"a namespace is a tuple of str, not the str {namespace!r}")
    return "/".join((NODE_CACHE_FOLDER, *(encode_segment(part) for part in namespace)))
