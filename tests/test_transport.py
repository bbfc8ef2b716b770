"""The transport's error translation against servers that answer with S3 errors over HTTP."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from s3cache import AccessDeniedError, AsyncS3Cache, CredentialsError, S3CacheError
from s3cache.maintenance import doctor

CREDS: dict[str, Any] = {"aws_access_key_id": "id", "aws_secret_access_key": "secret"}


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("SignatureDoesNotMatch", CredentialsError),
        ("InvalidAccessKeyId", CredentialsError),
        ("AccessDenied", AccessDeniedError),
    ],
)
async def test_a_bodyless_403_to_a_head_is_explained_by_a_get(
    canned_error_server: Callable[[int, str], str], code: str, error: type[S3CacheError]
) -> None:
    """A 403 to HEAD carries no error code; the same request as a GET names it, so bad
    credentials are never reported as a permissions problem (exists, delete, HeadBucket)."""
    url = canned_error_server(403, code)
    async with AsyncS3Cache("bucket", endpoint_url=url, on_error="raise", **CREDS) as cache:
        for call in (cache.exists("k"), cache.delete("k"), cache.transport.head_bucket()):
            with pytest.raises(error, match=code):
                await call


@pytest.mark.parametrize("code", ["SignatureDoesNotMatch", "InvalidAccessKeyId"])
async def test_the_doctor_never_passes_rejected_credentials(
    canned_error_server: Callable[[int, str], str], code: str
) -> None:
    url = canned_error_server(403, code)
    async with AsyncS3Cache("bucket", endpoint_url=url, **CREDS) as cache:
        items = {item.name: item for item in await doctor(cache)}
    assert items["endpoint reachable"].status == "pass"
    assert items["credentials accepted"].status == "fail"
    assert code in items["credentials accepted"].detail
    assert {items[n].status for n in ("bucket exists", "list", "put", "get", "delete")} == {"skip"}
