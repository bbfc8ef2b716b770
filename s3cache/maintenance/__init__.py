"""Storage hygiene for a cache bucket: scan entries, storage stats, clear a prefix, purge expired
entries (and those invalidated by a tag), list tag records, manage a lifecycle rule, and a
doctor that checks a bucket step by step.

S3 never deletes an expired entry by itself (``Expires`` is only a caching hint), so these are
the tools that reclaim storage. Every function takes an :class:`~s3cache.AsyncS3Cache` and acts
on the objects under its prefix, never outside it. Expiry is judged exactly as reads judge it,
on the server's clock. The ``s3cache`` command line is built on this module.

They act on objects directly, as another process would: a :class:`~s3cache.LocalTier` in the
same cache object is not consulted.
"""

from s3cache.maintenance._doctor import DoctorItem, DoctorStatus, doctor
from s3cache.maintenance._lifecycle import (
    LifecycleRule,
    lifecycle_remove,
    lifecycle_rule_id,
    lifecycle_rules,
    lifecycle_set,
)
from s3cache.maintenance._purge import (
    ClearResult,
    PurgeResult,
    check_scope,
    clear_prefix,
    purge_expired,
)
from s3cache.maintenance._scan import (
    DEFAULT_BATCH,
    DEFAULT_SAMPLE,
    Entry,
    StorageStats,
    object_prefix,
    scan,
    storage_stats,
)
from s3cache.maintenance._tag_records import TagRecord, tag_records

__all__ = [
    "DEFAULT_BATCH",
    "DEFAULT_SAMPLE",
    "ClearResult",
    "DoctorItem",
    "DoctorStatus",
    "Entry",
    "LifecycleRule",
    "PurgeResult",
    "StorageStats",
    "TagRecord",
    "check_scope",
    "clear_prefix",
    "doctor",
    "lifecycle_remove",
    "lifecycle_rule_id",
    "lifecycle_rules",
    "lifecycle_set",
    "object_prefix",
    "purge_expired",
    "scan",
    "storage_stats",
    "tag_records",
]
