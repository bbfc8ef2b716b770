"""What a batch delete returns: :class:`DeleteResult`, a count that also names what failed.

The deletes themselves have one home, :meth:`Transport.delete_many`.
"""

from __future__ import annotations

from collections.abc import Mapping

from s3cache.errors import S3CacheError

__all__ = ["DeleteResult"]


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
