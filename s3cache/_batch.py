"""What a batch delete returns: :class:`DeleteResult`, a count that also names what failed.

The deletes themselves have one home, :meth:`Transport.delete_many`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from s3cache.errors import S3CacheError

__all__ = ["DeleteResult"]


class DeleteResult(int):
    """How many entries a delete removed (an ``int``, so existing callers keep working), and
    ``failed``: the keys that could not be deleted, each with its error (empty when none).

    ``stopped`` is the error that ended a ``clear`` before it had listed everything (None when
    it reached every object), and ``stopped_after`` the last object key it had listed then:
    what it deleted until then is in the count, and running it again finishes the job.
    """

    failed: Mapping[str, S3CacheError]
    stopped: S3CacheError | None
    stopped_after: str | None

    def __new__(
        cls,
        count: int,
        failed: Mapping[str, S3CacheError] | None = None,
        stopped: S3CacheError | None = None,
        stopped_after: str | None = None,
    ) -> DeleteResult:
        result = super().__new__(cls, count)
        result.failed = failed or {}
        result.stopped = stopped
        result.stopped_after = stopped_after
        return result

    def __reduce__(self) -> tuple[type[DeleteResult], tuple[Any, ...]]:
        return type(self), (int(self), dict(self.failed), self.stopped, self.stopped_after)
