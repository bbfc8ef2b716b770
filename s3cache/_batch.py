"""Batch deletes, paced through the concurrency bound, with failures reported per key.

:func:`delete_objects` is the one home of batch deletes (the core's ``delete_many`` and ``clear``,
and :mod:`s3cache.maintenance`); :class:`DeleteResult` is what the core returns for them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from s3cache._concurrency import paced
from s3cache._transport import DELETE_BATCH, Transport
from s3cache.errors import S3CacheError

__all__ = ["DeleteResult", "delete_objects"]

#: Error kinds of a batch refused as a whole that single deletes may get past: 400s about the
#: request (``other``: Ceph's answer to an XML body it cannot parse) and 5xx (moto's).
_REFUSED: Final = frozenset({"other", "server"})


class DeleteResult(int):
    """How many entries a delete removed (an ``int``, so existing callers keep working), and
    ``failed``: the keys that could not be deleted, each with its error (empty when none)."""

    failed: Mapping[str, S3CacheError]

    def __new__(cls, count: int, failed: Mapping[str, S3CacheError] | None = None) -> DeleteResult:
        result = super().__new__(cls, count)
        result.failed = failed or {}
        return result

    def __reduce__(self) -> tuple[type[DeleteResult], tuple[int, Mapping[str, S3CacheError]]]:
        return type(self), (int(self), dict(self.failed))


async def delete_objects(transport: Transport, okeys: Sequence[str]) -> dict[str, S3CacheError]:
    """Delete objects; returns those that could not be deleted, with why ({} when all went).

    One key is a DeleteObject; more go in DeleteObjects batches of up to 1,000, paced. A batch
    the server refuses as a whole (a 4xx about the request, or a 5xx: what one key its XML body
    cannot carry causes) is retried key by key, so such a key fails alone. A batch that timed
    out or could not connect is reported for all its keys: one by one would fare no better.
    """
    width = transport.max_concurrency
    if len(okeys) == 1:
        return _errors(okeys, await paced(transport.delete, okeys, width))
    batches = [okeys[i : i + DELETE_BATCH] for i in range(0, len(okeys), DELETE_BATCH)]
    failed: dict[str, S3CacheError] = {}
    one_by_one: list[str] = []
    outcomes = await paced(transport.delete_batch, batches, width)
    for batch, outcome in zip(batches, outcomes, strict=True):
        if not isinstance(outcome, S3CacheError):
            failed.update(outcome)  # keys the server listed under Errors
        elif outcome.kind in _REFUSED:
            one_by_one += batch
        else:
            failed.update(dict.fromkeys(batch, outcome))
    failed.update(_errors(one_by_one, await paced(transport.delete, one_by_one, width)))
    return failed


def _errors(keys: Sequence[str], outcomes: Sequence[object]) -> dict[str, S3CacheError]:
    return {k: r for k, r in zip(keys, outcomes, strict=True) if isinstance(r, S3CacheError)}
