"""Removing a cache's entries: deletes that count only live entries, ``clear`` a page at a time,
and the listing of its keys; each recorded, coherent with the local tier and single flight."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence

from s3cache import _keys
from s3cache._batch import DeleteResult
from s3cache._concurrency import paced
from s3cache._parts import Parts
from s3cache.errors import S3CacheError

__all__ = ["Removal"]


class Removal:
    """Deletes and listings of one cache's entries (see :meth:`AsyncS3Cache.delete_many`,
    :meth:`~AsyncS3Cache.clear` and :meth:`~AsyncS3Cache.iter_keys`)."""

    __slots__ = ("_parts",)

    def __init__(self, parts: Parts) -> None:
        self._parts = parts

    async def remove(self, okeys: Sequence[str]) -> tuple[int, dict[str, S3CacheError]]:
        """Delete ``okeys``: how many live entries went, and the keys that failed, with why.

        S3 reports every key of a delete as deleted, so each key is looked up first (HEAD) and
        only objects that exist are deleted. A key whose HEAD failed is not deleted: it fails
        with that error (a second request would only spend a second deadline). Recorded as one
        ``delete``; the failures are the caller's to count.
        """
        transport = self._parts.transport
        one = okeys[0] if len(okeys) == 1 else None
        with self._parts.recorder.op("delete", one) as op, self._parts.coherence.writing(okeys):
            heads = await paced(transport.head, okeys, transport.max_concurrency)
            failed: dict[str, S3CacheError] = {}
            present: list[str] = []
            live: list[str] = []
            for okey, head in zip(okeys, heads, strict=True):
                if isinstance(head, S3CacheError):
                    failed[okey] = head
                elif head is not None:
                    present.append(okey)
                    if self._parts.entries.is_live(head):
                        live.append(okey)
            failed.update(await transport.delete_many(present))
            removed = sum(1 for okey in live if okey not in failed)
            op.deleted(removed)
            if failed:
                op.errored(next(iter(failed.values())))
        return removed, failed

    async def remove_many(self, names: Mapping[str, str]) -> DeleteResult:
        """:meth:`remove` the object keys of ``names`` (object key -> cache key); the failed
        keys (by cache key) are counted and raised or logged as one batch per ``on_error``."""
        live, failures = await self.remove(list(names))
        failed = {names[okey]: error for okey, error in failures.items()}
        self._parts.recorder.batch_failed("delete_many", failed, len(names), live)
        return DeleteResult(live, failed)

    async def clear(self, prefix: str, scope: str, *, spare_reserved: bool) -> DeleteResult:
        """Delete every object under ``scope`` (within the cache's ``prefix``; with
        ``spare_reserved``, s3cache's own objects are left alone), a listed page at a time;
        failures are counted and raised or logged per ``on_error`` (see
        :meth:`AsyncS3Cache.clear`)."""
        recorder = self._parts.recorder
        with recorder.op("clear", None) as op:
            self._parts.coherence.forget_all()
            try:
                deleted, failed, stopped, last = await self._clear_pages(
                    prefix, scope, spare_reserved
                )
            finally:
                # reads sent meanwhile may have seen deleted entries
                self._parts.coherence.forget_all()
            op.deleted(deleted)
            error = stopped or next(iter(failed.values()), None)
            if error is not None:
                op.errored(error)
            if stopped is not None and not deleted and not failed:
                recorder.failed(stopped, None)  # nothing was done: the failure itself
            else:
                total = deleted + len(failed)
                recorder.batch_failed("clear", failed, total, deleted, stopped, last)
        return DeleteResult(deleted, failed, stopped, last)

    async def _clear_pages(
        self, prefix: str, scope: str, spare_reserved: bool
    ) -> tuple[int, dict[str, S3CacheError], S3CacheError | None, str | None]:
        """The pages of a clear: deleted, failed keys, the listing error that stopped it, and
        the last key listed."""
        transport = self._parts.transport
        deleted = 0
        failed: dict[str, S3CacheError] = {}
        last: str | None = None
        token: str | None = None
        while True:
            try:
                page, token = await transport.list_page(scope, token)
            except S3CacheError as exc:  # nothing more can be found to delete
                return deleted, failed, exc, last
            # Never trust a listing to stay under the prefix: check every key.
            okeys = [
                o.key
                for o in page
                if o.key.startswith(scope)
                and not (spare_reserved and _keys.is_reserved(prefix, o.key))
            ]
            page_failed = await transport.delete_many(okeys)
            deleted += len(okeys) - len(page_failed)
            failed.update(page_failed)
            last = page[-1].key if page else last
            if token is None:
                return deleted, failed, None, last

    async def keys(self, prefix: str, scope: str) -> AsyncGenerator[str, None]:
        """The cache keys listed under ``scope`` (without the cache's ``prefix``), s3cache's
        own objects left out; a listing failure ends them, per ``on_error``."""
        with self._parts.recorder.op("iter_keys", None) as op:
            token: str | None = None
            while True:
                try:
                    page, token = await self._parts.transport.list_page(scope, token)
                except S3CacheError as exc:
                    op.failed(exc, None)
                    return
                for obj in page:
                    # Never trust a listing to stay under the prefix: check every key.
                    if obj.key.startswith(scope) and not _keys.is_reserved(prefix, obj.key):
                        yield obj.key[len(prefix) :]
                if token is None:
                    return
