"""s3cache: a native-async cache on Amazon S3 and S3-compatible stores.

``AsyncS3Cache`` is the asyncio core; ``S3Cache`` is its blocking twin for sync code.
"""

from s3cache import _sinks
from s3cache._batch import DeleteResult
from s3cache._breaker import Breaker
from s3cache._capabilities import Capabilities
from s3cache._check import CheckReport
from s3cache._core import AsyncS3Cache
from s3cache._fleet import HeldLock
from s3cache._format import JsonSerializer, Serializer
from s3cache._freshness import ABSENT, Absent
from s3cache._habits import CachedDecorator, CachedFunction, CachedIterator
from s3cache._local import LocalTier
from s3cache._pricing import PriceTable, Savings, Spend
from s3cache._serializers import MsgpackSerializer, PickleSerializer
from s3cache._stats import CacheEvent, CacheObserver, CacheStats, LatencySummary
from s3cache._sync import S3Cache
from s3cache.errors import (
    AccessDeniedError,
    BatchError,
    BucketNotFoundError,
    BucketOwnerError,
    CacheClosedError,
    ChecksumMismatchError,
    CircuitOpenError,
    CorruptEntryError,
    CredentialsError,
    EncryptionError,
    EndpointUnreachableError,
    KeyTooLongError,
    LockNotAcquiredError,
    NotSupportedError,
    S3CacheError,
    ServerError,
    StoreTimeoutError,
)

__version__ = "0.1.0"


def _instrument(cache: AsyncS3Cache) -> None:
    """``telemetry=True``: :func:`s3cache.telemetry.instrument`, imported only now."""
    from s3cache import telemetry

    telemetry.instrument(cache)


_sinks.install(_instrument)

__all__ = [
    "ABSENT",
    "Absent",
    "AccessDeniedError",
    "AsyncS3Cache",
    "BatchError",
    "Breaker",
    "BucketNotFoundError",
    "BucketOwnerError",
    "CacheClosedError",
    "CacheEvent",
    "CacheObserver",
    "CacheStats",
    "CachedDecorator",
    "CachedFunction",
    "CachedIterator",
    "Capabilities",
    "CheckReport",
    "ChecksumMismatchError",
    "CircuitOpenError",
    "CorruptEntryError",
    "CredentialsError",
    "DeleteResult",
    "EncryptionError",
    "EndpointUnreachableError",
    "HeldLock",
    "JsonSerializer",
    "KeyTooLongError",
    "LatencySummary",
    "LocalTier",
    "LockNotAcquiredError",
    "MsgpackSerializer",
    "NotSupportedError",
    "PickleSerializer",
    "PriceTable",
    "S3Cache",
    "S3CacheError",
    "Savings",
    "Serializer",
    "ServerError",
    "Spend",
    "StoreTimeoutError",
    "__version__",
]
