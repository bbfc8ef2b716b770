"""Exceptions raised by s3cache.

Every failure of the store (S3, the network, a deadline) is an :class:`S3CacheError` subclass
with a stable ``kind``, which is also the key under which :meth:`AsyncS3Cache.stats` counts it.
Messages name the operation and the cause, never credentials or cached values.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "AccessDeniedError",
    "BatchError",
    "BucketNotFoundError",
    "BucketOwnerError",
    "CacheClosedError",
    "ChecksumMismatchError",
    "CorruptEntryError",
    "CredentialsError",
    "EncryptionError",
    "EndpointUnreachableError",
    "KeyTooLongError",
    "LockNotAcquiredError",
    "NotSupportedError",
    "S3CacheError",
    "ServerError",
    "StoreTimeoutError",
]


class S3CacheError(Exception):
    """Base class: the cache store failed (the cause is chained as ``__cause__``)."""

    kind = "other"


# One class per failure kind, each the same shape by design: a docstring and its ``kind``.


class StoreTimeoutError(S3CacheError, TimeoutError):
    """The operation's deadline passed (waiting for a slot, the request, or the body)."""

    kind = "timeout"


class EndpointUnreachableError(S3CacheError, ConnectionError):
    """The endpoint could not be reached, or the connection broke mid-request."""

    kind = "connection"


class BucketNotFoundError(S3CacheError):
    """The bucket does not exist on this endpoint."""

    kind = "no_such_bucket"


class AccessDeniedError(S3CacheError, PermissionError):
    """The credentials are valid but lack permission for this operation."""

    kind = "access_denied"


class EncryptionError(AccessDeniedError):
    """Refused over server-side encryption: the SSE-C key is not the one the entry was written
    with (or the entry has none, or another kind), the KMS key cannot be used, or a bucket policy
    requires encryption headers that were not sent. The message names the likely cause."""

    kind = "encryption"


class BucketOwnerError(AccessDeniedError):
    """Refused while ``expected_bucket_owner`` was sent: the bucket may belong to another account
    (deleted and re-created under it); nothing was read from it or written to it."""

    kind = "bucket_owner"


class CredentialsError(S3CacheError):
    """No credentials were found, or the server rejected them (bad key, bad signature, expired)."""

    kind = "credentials"


class ServerError(S3CacheError):
    """The server answered 5xx or SlowDown after botocore's retries."""

    kind = "server"


class CorruptEntryError(S3CacheError):
    """A stored body could not be decoded; it is treated as a miss."""

    kind = "corrupt"


class ChecksumMismatchError(CorruptEntryError):
    """The body's checksum is not the one the server holds for it (``checksum=``): damaged in
    transit or at rest. A read treats it as a miss; a write refused for it stored nothing."""

    kind = "checksum"


class CacheClosedError(S3CacheError, RuntimeError):
    """The cache was used after ``close()``: a programming error, always raised."""

    kind = "closed"


class KeyTooLongError(S3CacheError):
    """The server refused an object key as too long, although it is within S3's 1,024 bytes
    (SeaweedFS takes at most 255 bytes in the last segment). The message names the key's length
    and that of its segments; hash long natural keys (a ``key=`` function, ``hashlib``)."""

    kind = "key_too_long"


class NotSupportedError(S3CacheError):
    """The server does not implement an S3 API that was asked for (e.g. bucket lifecycles)."""

    kind = "unsupported"


class BatchError(S3CacheError):
    """Some keys of a batch (``set_many``, ``delete_many``, ``clear``) failed; the rest succeeded.

    ``failed`` maps each failed key to its own error (a timeout, a server error...); ``total`` is
    how many keys the batch held. Each failed key is also counted in ``stats().errors`` under its
    own error's kind; ``batch`` is only this summary's kind.
    """

    kind = "batch"

    def __init__(self, operation: str, failed: Mapping[str, S3CacheError], total: int) -> None:
        self.operation = operation
        self.failed: Mapping[str, S3CacheError] = dict(failed)
        self.total = total
        if not self.failed:
            raise ValueError("a BatchError needs at least one failed key")
        first_key, first = next(iter(self.failed.items()))
        super().__init__(
            f"{operation}: {len(self.failed)} of {total} keys failed; first {first_key!r}: {first}"
        )
        self.__cause__ = first

    def __reduce__(self) -> tuple[type[BatchError], tuple[str, Mapping[str, S3CacheError], int]]:
        return type(self), (self.operation, self.failed, self.total)


class LockNotAcquiredError(S3CacheError):
    """``lock()`` found the lock held by another holder, still after waiting ``wait`` seconds."""

    kind = "lock_not_acquired"
