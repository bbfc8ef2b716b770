"""Fixtures for the reliability suite: a fault-injecting proxy in front of the test server."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from harness.faultproxy import FaultProxy, closed_port
from s3cache import AsyncS3Cache

#: The same dummy credentials as the top-level conftest (moto accepts any).
CREDENTIALS: dict[str, Any] = {
    "aws_access_key_id": "testing-key-id",
    "aws_secret_access_key": "testing-secret",
    "region_name": "us-east-1",
}


def address(endpoint: str) -> tuple[str, int]:
    """``(host, port)`` of an ``http://host:port`` endpoint."""
    parts = urlsplit(endpoint)
    assert parts.hostname is not None
    assert parts.port is not None
    return parts.hostname, parts.port


@pytest.fixture
def proxied_kwargs(proxy: FaultProxy, bucket: str) -> dict[str, Any]:
    """Constructor arguments for a cache on the test bucket, through the proxy."""
    return {"bucket": bucket, "endpoint_url": proxy.endpoint, **CREDENTIALS}


@pytest.fixture
def closed_endpoint() -> str:
    """An endpoint on a loopback port nobody listens on (connection refused)."""
    return closed_port()


async def warm_with_deadline(cache: AsyncS3Cache, seconds: float) -> None:
    """Open the cache's client under the default deadline, then shorten it to ``seconds``.

    Creating a client (loading botocore's models) counts against the first operation's
    deadline and can take a second on a loaded 2-core machine; the faults are what is measured.
    """
    await cache.exists("warm-up")
    cache._transport.timeout = seconds


@pytest.fixture(autouse=True)
def _collected() -> Iterator[None]:
    """Collect garbage as each test ends, so that a socket or transport a test leaves unclosed
    is reported (ResourceWarning is an error) in that test, not in whichever later test
    happens to trigger a collection."""
    yield
    gc.collect()
