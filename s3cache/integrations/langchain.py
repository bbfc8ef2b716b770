"""LangChain on s3cache: :class:`S3LLMCache` (LLM and chat-model responses) and
:class:`S3ByteStore` (a ``ByteStore``, e.g. behind ``CacheBackedEmbeddings``).

Both take an existing cache (``cache=``) or :class:`~s3cache.AsyncS3Cache`'s arguments, and keep
their entries in their own folder under the cache's prefix, so one cache can serve both and
``clear`` never touches anything else. Async methods are native; sync ones run on s3cache's
private loop. Needs ``pip install 's3cache-async[langchain]'`` (langchain-core 1.x).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Iterator, Sequence
from contextlib import aclosing
from datetime import timedelta
from typing import Any, Final

from s3cache import _core, _expiry, _keys, _loop
from s3cache._concurrency import paced
from s3cache._core import AsyncS3Cache
from s3cache._metadata import KEY_HEADER, KEY_METADATA
from s3cache._sync import S3Cache
from s3cache._tags import normalize_tags
from s3cache.errors import S3CacheError
from s3cache.integrations._connect import Connected
from s3cache.integrations._keys import (
    LEAD,
    decode_segment,
    encode_segment,
    hashed_segment,
    is_hashed,
)

try:
    from langchain_core.caches import RETURN_VAL_TYPE, BaseCache
    from langchain_core.load import dumps, loads
    from langchain_core.messages import AIMessage, AIMessageChunk
    from langchain_core.outputs import (
        ChatGeneration,
        ChatGenerationChunk,
        Generation,
        GenerationChunk,
    )
    from langchain_core.stores import ByteStore
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without langchain
    raise ImportError(
        "s3cache.integrations.langchain needs langchain-core: "
        "pip install 's3cache-async[langchain]'"
    ) from exc

__all__ = [
    "BYTE_STORE_FOLDER",
    "KEY_METADATA",
    "LLM_CACHE_FOLDER",
    "MAX_HASHED_KEY",
    "S3ByteStore",
    "S3LLMCache",
]

logger = logging.getLogger("s3cache")

#: The folder under the cache's prefix that holds :class:`S3LLMCache` entries.
LLM_CACHE_FOLDER: Final = "langchain-llm"
#: The folder under the cache's prefix that holds :class:`S3ByteStore` entries.
BYTE_STORE_FOLDER: Final = "langchain-bytes"
#: The only classes a cached response may revive as: an entry someone else wrote into the
#: bucket cannot make ``loads`` build anything else (a model, a prompt, a client).
_GENERATION_CLASSES: Final = (
    Generation,
    GenerationChunk,
    ChatGeneration,
    ChatGenerationChunk,
    AIMessage,
    AIMessageChunk,
)
_BYTES: Final = (bytes, bytearray, memoryview)
#: The longest encoded form of a key stored hashed: its original has to fit in S3's 2 KB of
#: user metadata, beside s3cache's own fields.
MAX_HASHED_KEY: Final = 1536
#: Hashed keys whose metadata ``yield_keys`` reads (HEAD) at a time.
_RESOLVE_BATCH: Final = 100


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class _Entries(Connected):
    """The constructor both LangChain classes share.

    Args:
        bucket: The bucket, when this object opens its own cache (then pass ``prefix`` and any
            other :class:`~s3cache.AsyncS3Cache` argument as keywords).
        cache: An existing :class:`~s3cache.AsyncS3Cache` or :class:`~s3cache.S3Cache` to use
            instead; it stays open when this object is closed.
        ttl: Seconds (or a timedelta, at least 1 s) every entry lives; None: the cache's
            ``default_ttl``.
        tags: Tags every entry written carries, for ``cache.invalidate(tag)`` (per model or
            prompt version, say); validated here, before any request.
        **options: :class:`~s3cache.AsyncS3Cache`'s keyword arguments (with ``bucket`` only).
    """

    def __init__(
        self,
        bucket: str | None = None,
        *,
        cache: AsyncS3Cache | S3Cache | None = None,
        ttl: float | timedelta | None = None,
        tags: Iterable[str] = (),
        **options: Any,
    ) -> None:
        self._ttl = _expiry.normalize_ttl(ttl)
        self._tags = normalize_tags(tags)
        self._connect(bucket, cache, options)


class S3LLMCache(_Entries, BaseCache):  # type: ignore[misc,unused-ignore]  # Any without langchain
    """LangChain's LLM cache on S3: ``set_llm_cache(S3LLMCache("bucket", prefix="llm"))``.

    An entry's key is ``langchain-llm/<sha256 of llm_string>/<sha256 of prompt>`` under the
    cache's prefix; its body is the generations as ``langchain_core.load.dumps`` writes them.
    An entry that cannot be revived (corrupt, or naming a class other than a generation or an
    AI message) is logged and is a miss.

    Takes ``bucket`` (or ``cache=``), ``ttl`` and AsyncS3Cache's keyword arguments, as every
    s3cache integration does (documented on the shared constructor, ``_Entries``).
    """

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        """The cached generations for ``prompt`` with this model configuration, or None."""
        return _revive(self._conn.sync.get(self._key(prompt, llm_string)))

    async def alookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        """:meth:`lookup` on the caller's event loop."""
        return _revive(await self._conn.core.get(self._key(prompt, llm_string)))

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        """Store ``return_val`` for ``prompt`` with this model configuration."""
        key = self._key(prompt, llm_string)
        self._conn.sync.set(key, _dump(return_val), self._ttl, self._tags)

    async def aupdate(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        """:meth:`update` on the caller's event loop."""
        key = self._key(prompt, llm_string)
        await self._conn.core.set(key, _dump(return_val), self._ttl, self._tags)

    def clear(self, **kwargs: Any) -> None:
        """Delete every entry of this LLM cache (only its folder, never the rest of the prefix)."""
        _no_options("clear", kwargs)
        self._conn.sync.clear(LLM_CACHE_FOLDER + "/")

    async def aclear(self, **kwargs: Any) -> None:
        """:meth:`clear` on the caller's event loop."""
        _no_options("aclear", kwargs)
        await self._conn.core.clear(LLM_CACHE_FOLDER + "/")

    def _key(self, prompt: str, llm_string: str) -> str:
        if not isinstance(prompt, str) or not isinstance(llm_string, str):
            raise TypeError("prompt and llm_string must be str")
        return f"{LLM_CACHE_FOLDER}/{_digest(llm_string)}/{_digest(prompt)}"

    def __repr__(self) -> str:
        return f"S3LLMCache({self._conn.core!r})"


def _dump(return_val: RETURN_VAL_TYPE) -> bytes:
    generations = list(return_val)
    if not all(isinstance(g, Generation) for g in generations):
        raise TypeError("an LLM cache stores a sequence of langchain_core Generation objects")
    text: str = dumps(generations)
    return text.encode("utf-8")


def _revive(body: Any) -> RETURN_VAL_TYPE | None:
    """The generations in ``body`` (what :func:`_dump` wrote), or None for a miss or bad entry."""
    if body is None:
        return None
    try:
        if not isinstance(body, bytes):
            raise TypeError(f"the entry is {type(body).__name__}, not LangChain's JSON")
        generations = loads(body.decode("utf-8"), allowed_objects=_GENERATION_CLASSES)
        if not isinstance(generations, list) or not all(
            isinstance(g, Generation) for g in generations
        ):
            raise TypeError("the entry is not a list of generations")
    except Exception as exc:  # noqa: BLE001 - a bucket's contents are data: any failure, a miss
        logger.warning("s3cache LLM cache entry could not be revived, treated as a miss: %s", exc)
        return None
    return generations


def _no_options(method: str, kwargs: dict[str, Any]) -> None:
    if kwargs:
        raise TypeError(f"S3LLMCache.{method}() takes no options, got {', '.join(sorted(kwargs))}")


class S3ByteStore(_Entries, ByteStore):  # type: ignore[misc,unused-ignore]  # Any without langchain
    """A LangChain ``ByteStore`` on S3, e.g. the ``document_embedding_cache`` of
    ``CacheBackedEmbeddings.from_bytes_store``.

    Values are stored raw (``application/octet-stream``). Each key becomes one object,
    ``langchain-bytes/<key>`` under the cache's prefix, with letters, digits, ``-`` and ``_``
    kept and every other character written as ``.`` plus the hex of its UTF-8 bytes, so that
    ``yield_keys`` returns it exactly. A key too long for that (the object key would pass
    S3's 1,024 bytes) is stored as ``langchain-bytes/<first 128 characters>~<sha256>``, its
    encoded original in the user metadata ``s3cache-key``, which ``yield_keys`` reads back
    (one HEAD per such key listed); one whose encoded form passes :data:`MAX_HASHED_KEY`
    characters cannot fit there, and ``mset`` refuses it. Batches run concurrently, bounded by
    the cache's ``max_concurrency``; ``mdelete`` looks each key up before deleting it.

    Takes ``bucket`` (or ``cache=``), ``ttl`` and AsyncS3Cache's keyword arguments, as every
    s3cache integration does (documented on the shared constructor, ``_Entries``).
    """

    def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        """The value of each key, None where there is none (or it expired)."""
        okeys = [self._key(k) for k in keys]
        found = self._conn.sync.get_many(okeys)
        return [_as_bytes(found.get(okey)) for okey in okeys]

    async def amget(self, keys: Sequence[str]) -> list[bytes | None]:
        """:meth:`mget` on the caller's event loop."""
        okeys = [self._key(k) for k in keys]
        found = await self._conn.core.get_many(okeys)
        return [_as_bytes(found.get(okey)) for okey in okeys]

    def mset(self, key_value_pairs: Sequence[tuple[str, bytes]]) -> None:
        """Store every pair; all are checked (keys, bytes values) before any request."""
        entries, originals = self._entries(key_value_pairs)
        _loop.run(_core.set_many(self._conn.core, entries, self._ttl, originals, self._tags))

    async def amset(self, key_value_pairs: Sequence[tuple[str, bytes]]) -> None:
        """:meth:`mset` on the caller's event loop."""
        entries, originals = self._entries(key_value_pairs)
        await _core.set_many(self._conn.core, entries, self._ttl, originals, self._tags)

    def mdelete(self, keys: Sequence[str]) -> None:
        """Delete the keys (absent ones are fine)."""
        self._conn.sync.delete_many([self._key(k) for k in keys])

    async def amdelete(self, keys: Sequence[str]) -> None:
        """:meth:`mdelete` on the caller's event loop."""
        await self._conn.core.delete_many([self._key(k) for k in keys])

    def yield_keys(self, *, prefix: str | None = None) -> Iterator[str]:
        """The keys (starting with ``prefix``), listed a page of 1,000 at a time.

        A listing carries no expiry, so keys of expired entries not yet deleted are included.
        Hashed keys are matched against ``prefix`` by their original, read from metadata.
        """
        return _loop.iterate(self._keys(_listing(prefix), prefix))

    async def ayield_keys(self, *, prefix: str | None = None) -> AsyncIterator[str]:
        """:meth:`yield_keys` on the caller's event loop."""
        async with aclosing(self._keys(_listing(prefix), prefix)) as keys:
            async for key in keys:
                yield key

    async def _keys(self, scope: str, prefix: str | None) -> AsyncGenerator[str, None]:
        """The store keys listed under ``scope`` that start with ``prefix``; hashed ones are
        resolved (their metadata read) a batch at a time."""
        hashed: list[str] = []
        async with aclosing(self._conn.core.iter_keys(scope)) as listed:
            async for listed_key in listed:
                folder, _, segment = listed_key.partition("/")
                if folder != BYTE_STORE_FOLDER:
                    continue
                if not is_hashed(segment):
                    key = decode_segment(segment)
                    if key is not None and key.startswith(prefix or ""):
                        yield key
                    continue
                hashed.append(listed_key)
                if len(hashed) == _RESOLVE_BATCH:
                    for key in await self._originals(hashed, prefix):
                        yield key
                    hashed = []
        for key in await self._originals(hashed, prefix):
            yield key

    async def _originals(self, listed_keys: list[str], prefix: str | None) -> list[str]:
        """The original keys of hashed entries (one HEAD each, paced), those that start with
        ``prefix``; an object whose metadata does not name the key its segment hashes is not
        ours. A failed HEAD is counted, then raised or logged per ``on_error``."""
        core = self._conn.core
        okeys = [core.prefix + k for k in listed_keys]
        heads = await paced(core.transport.head, okeys, core.transport.max_concurrency)
        keys: list[str] = []
        for listed_key, head in zip(listed_keys, heads, strict=True):
            if isinstance(head, S3CacheError):
                _core.failed(core, head, None)
                continue
            original = decode_segment(head.get(KEY_HEADER, "")) if head is not None else None
            if original is None or hashed_segment(original) != listed_key.partition("/")[2]:
                continue  # gone since the listing, or not written by this store
            if original.startswith(prefix or ""):
                keys.append(original)
        return keys

    def _key(self, key: str) -> str:
        """The cache key of store key ``key`` (hashed when written out it would not fit)."""
        return self._placed(key)[0]

    def _placed(self, key: str) -> tuple[str, str | None]:
        """The cache key of ``key``, and its encoded original when that key is hashed."""
        segment = encode_segment(key)
        room = _keys.MAX_KEY_BYTES - len(self._conn.core.prefix.encode()) - len(_FOLDER)
        if len(segment) <= room:
            return _FOLDER + segment, None
        return _FOLDER + hashed_segment(key), segment

    def _entries(
        self, pairs: Iterable[tuple[str, bytes]]
    ) -> tuple[dict[str, bytes], dict[str, dict[str, str]]]:
        """The cache entries of ``pairs``, and the metadata of those stored hashed."""
        entries: dict[str, bytes] = {}
        originals: dict[str, dict[str, str]] = {}
        for key, value in pairs:
            if not isinstance(value, _BYTES):
                raise TypeError(f"S3ByteStore values must be bytes, not {type(value).__name__}")
            okey, original = self._placed(key)
            if original is not None:
                if len(original) > MAX_HASHED_KEY:
                    raise ValueError(
                        f"S3ByteStore key is too long: written out it is {len(original):,} "
                        f"characters, over the {MAX_HASHED_KEY:,} that fit in S3's 2 KB of "
                        "metadata, where a hashed key keeps its original; hash such keys "
                        "yourself (CacheBackedEmbeddings: key_encoder='sha256')"
                    )
                originals[okey] = {KEY_METADATA: original}
            entries[okey] = bytes(value)
        return entries, originals

    def __repr__(self) -> str:
        return f"S3ByteStore({self._conn.core!r})"


_FOLDER: Final = BYTE_STORE_FOLDER + "/"


def _listing(prefix: str | None) -> str:
    """The listing prefix under the cache's for store keys starting with ``prefix``: its
    encoded form, cut to the part hashed segments keep (:data:`LEAD` characters)."""
    if prefix is not None and not isinstance(prefix, str):
        raise TypeError(f"prefix must be a str or None, not {type(prefix).__name__}")
    return _FOLDER + (encode_segment(prefix)[:LEAD] if prefix else "")


def _as_bytes(value: Any) -> bytes | None:
    return value if isinstance(value, bytes) else None
