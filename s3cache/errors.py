"""Exceptions raised by s3cache.

Every failure of the store (S3, the network, a deadline) is an :class:`S3CacheError` subclass
with a stable ``kind``, which is also the key under which :meth:`AsyncS3Cache.stats` counts it.
Messages name the operation and the cause, never credentials or cached values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

__all__ = [
    "AccessDeniedError",
    "BatchError",
    "BucketNotFoundError",
    "BucketOwnerError",
    "CacheClosedError",
    "ChecksumMismatchError",
    "CircuitOpenError",
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


#: How a batch names what it completed, by operation (default: "deleted").
_DONE_AS: Final = {"set_many": "stored"}


class BatchError(S3CacheError):
    """Some keys of a batch (``set_many``, ``delete_many``, ``clear``, the maintenance runs)
    failed, or the batch stopped before it reached every key; what it did stands.

    ``failed`` maps each failed key to its own error (a timeout, a server error...); ``total`` is
    how many keys the batch held (for one that stopped early: how many it had reached, so at
    least that many); ``done`` how many it completed, stored or deleted (None: not counted).
    ``stopped`` is the error that ended it early (a listing that failed, a store that stopped
    answering; None when every key was tried) and ``stopped_after`` the last key it had reached
    then (None: none yet). Each failed key, and the stopping error, is also counted in
    ``stats().errors`` under its own kind; ``batch`` is only this summary's kind.
    """

    kind = "batch"

    def __init__(
        self,
        operation: str,
        failed: Mapping[str, S3CacheError],
        total: int,
        done: int | None = None,
        stopped: S3CacheError | None = None,
        stopped_after: str | None = None,
    ) -> None:
        self.operation = operation
        self.failed: Mapping[str, S3CacheError] = dict(failed)
        self.total = total
        self.done = done
        self.stopped = stopped
        self.stopped_after = stopped_after
        if not self.failed and stopped is None:
            raise ValueError("a BatchError needs a failed key or the error that stopped it")
        parts: list[str] = []
        if done is not None:
            verb = _DONE_AS.get(operation, "deleted")
            parts.append(f"{verb} {done:,} of {'at least ' if stopped else ''}{total:,}")
        first: S3CacheError | None = None
        if self.failed:
            first_key, first = next(iter(self.failed.items()))
            parts.append(f"{len(self.failed)} of {total} keys failed; first {first_key!r}: {first}")
        if stopped is not None:
            at = f"after {stopped_after!r}" if stopped_after is not None else "at the start"
            parts.append(f"stopped {at}: {stopped}")
        super().__init__(f"{operation}: {'; '.join(parts)}")
        self.__cause__ = stopped if stopped is not None else first

    def __reduce__(self) -> tuple[type[BatchError], tuple[Any, ...]]:
        arguments = (self.operation, self.failed, self.total, self.done, self.stopped)
        return type(self), (*arguments, self.stopped_after)


class LockNotAcquiredError(S3CacheError):
    """``lock()`` found the lock held by another holder, still after waiting ``wait`` seconds."""

    kind = "lock_not_acquired"


class CircuitOpenError(S3CacheError):
    """The circuit breaker for the store is open: the request failed at once, unsent.

    ``retry_after``: seconds until the next probe may go.
    """

    kind = "circuit_open"

    def __init__(self, message: str, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def __reduce__(self) -> tuple[type[CircuitOpenError], tuple[str, float]]:
        return type(self), (str(self), self.retry_after)
