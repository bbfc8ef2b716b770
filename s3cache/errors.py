"""Exceptions raised by s3cache.

Every failure of the store (S3, the network, a deadline) is an :class:`S3CacheError` subclass
with a stable ``kind``, which is also the key under which :meth:`AsyncS3Cache.stats` counts it.
Messages name the operation and the cause, never credentials or cached values.
"""

from __future__ import annotations

__all__ = [
    "AccessDeniedError",
    "BucketNotFoundError",
    "CacheClosedError",
    "CorruptEntryError",
    "CredentialsError",
    "EndpointUnreachableError",
    "NotSupportedError",
    "S3CacheError",
    "ServerError",
    "StoreTimeoutError",
]


class S3CacheError(Exception):
    """Base class: the cache store failed (the cause is chained as ``__cause__``)."""

    kind = "other"


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


class CredentialsError(S3CacheError):
    """No credentials were found, or the server rejected them (bad key, bad signature, expired)."""

    kind = "credentials"


class ServerError(S3CacheError):
    """The server answered 5xx or SlowDown after botocore's retries."""

    kind = "server"


class CorruptEntryError(S3CacheError):
    """A stored body could not be decoded; it is treated as a miss."""

    kind = "corrupt"


class CacheClosedError(S3CacheError, RuntimeError):
    """The cache was used after ``close()``: a programming error, always raised."""

    kind = "closed"


class NotSupportedError(S3CacheError):
    """The server does not implement an S3 API that was asked for (e.g. bucket lifecycles)."""

    kind = "unsupported"
