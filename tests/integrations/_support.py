"""Plain helpers of the framework-integration tests (fixtures are in conftest.py)."""

from __future__ import annotations

import time
from typing import Any

#: The cache prefix every adapter of these tests works under.
PREFIX = "it"


def object_keys(s3: Any, bucket: str) -> list[str]:
    """Every object key in the bucket, sorted."""
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


def wait_until(moment: float) -> None:
    """Let wall-clock time pass ``moment`` (TTL tests: expiry is the point, not synchronisation)."""
    while (left := moment - time.time()) > 0:
        time.sleep(left)
