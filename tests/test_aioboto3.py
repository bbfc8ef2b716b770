"""Interop: an aioboto3.Session passed as ``session=`` (``nox -s aioboto3``)."""

from __future__ import annotations

from typing import Any

import pytest

from s3cache import AsyncS3Cache, S3Cache

aioboto3 = pytest.importorskip("aioboto3")
pytestmark = pytest.mark.aioboto3


async def test_an_aioboto3_session_is_used(s3_endpoint: str, bucket: str) -> None:
    session = aioboto3.Session(
        aws_access_key_id="id", aws_secret_access_key="secret", region_name="us-east-1"
    )
    sent: list[str] = []

    def count(**kwargs: Any) -> None:
        sent.append(kwargs["event_name"])

    # Hooks registered on the user's session apply to our requests: proof it is the one used.
    session.events.register("before-send.s3", count)
    async with AsyncS3Cache(
        bucket, endpoint_url=s3_endpoint, session=session, on_error="raise"
    ) as cache:
        await cache.set("k", {"via": "aioboto3"}, ttl=60)
        assert await cache.get("k") == {"via": "aioboto3"}
        assert await cache.exists("k")
        assert await cache.delete("k") is True
    ops = [name.rsplit(".", 1)[1] for name in sent]
    assert ops == ["PutObject", "GetObject", "HeadObject", "HeadObject", "DeleteObject"]


def test_the_sync_facade_accepts_an_aioboto3_session(s3_endpoint: str, bucket: str) -> None:
    session = aioboto3.Session(
        aws_access_key_id="id", aws_secret_access_key="secret", region_name="us-east-1"
    )
    with S3Cache(bucket, endpoint_url=s3_endpoint, session=session, on_error="raise") as cache:
        cache.set("k", [1, 2])
        assert cache.get("k") == [1, 2]
