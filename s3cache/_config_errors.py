"""Configuration errors: a store failure that no retry will cure, told once per kind with its fix.

A missing bucket, access denied, credentials refused or not found, and an endpoint that refuses
the connection before any request was answered mean the cache was never configured right; a
log line among transient failures would hide that. :class:`ConfigAlarm` recognises them, adds
to the error's message the bucket, the endpoint (without user info), the region and what to
do, and says whether it is the first of its kind for this cache (the recorder logs that one at
ERROR). Transient failures (timeouts, 5xx, a connection lost after the endpoint answered) are
left as they are. Pure but for reading botocore's endpoint variables: no I/O.
"""

from __future__ import annotations

import os
from typing import Final

from s3cache._options import redact_url
from s3cache.errors import (
    AccessDeniedError,
    BucketNotFoundError,
    CredentialsError,
    EndpointUnreachableError,
    S3CacheError,
)

__all__ = ["ConfigAlarm", "ambient_endpoint", "fix_for"]

#: The error classes that are configuration errors (exactly these: subclasses such as
#: EncryptionError have their own kinds and explain themselves).
_CLASSES: Final = (BucketNotFoundError, AccessDeniedError, CredentialsError)
_WHERE: Final = "bucket {bucket!r} at {endpoint} (region {region})"
#: The fix of each kind, given the bucket, the endpoint and the region.
_FIXES: Final = {
    "no_such_bucket": "bucket {bucket!r} does not exist at {endpoint} (region {region}): create "
    "it with `s3cache create-bucket {bucket}` or pass `create_bucket=True`",
    "access_denied": "access denied to " + _WHERE + ": give these credentials s3:GetObject, "
    "s3:PutObject and s3:DeleteObject on the bucket (s3:ListBucket for clear and listings), or "
    "check its bucket policy",
    "credentials": "credentials refused or not found for " + _WHERE + ": set AWS_ACCESS_KEY_ID "
    "and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), or pass aws_access_key_id= and "
    "aws_secret_access_key=; a refused signature can also mean the wrong region (region_name=)",
    "connection": "nothing answers at {endpoint} for bucket {bucket!r} (region {region}): check "
    "endpoint_url (or AWS_ENDPOINT_URL_S3) and that the server is running",
}


def fix_for(kind: str, bucket: str, endpoint: str | None, region: str | None) -> str:
    """The sentence that says what is wrong with the configuration and how to fix it."""
    return _FIXES[kind].format(
        bucket=bucket,
        endpoint=endpoint or "AWS",
        region=region or "from the AWS configuration",
    )


def ambient_endpoint() -> str | None:
    """The endpoint botocore takes from the environment when none is given (without user
    info), None for AWS's own."""
    given = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    return redact_url(given) if given else None


class ConfigAlarm:
    """Recognises one cache's configuration errors and remembers which kinds it has told.

    ``answered`` turns True once any request got an answer: from then on a refused connection
    is an outage (transient), not a wrong endpoint.
    """

    __slots__ = ("_bucket", "_endpoint", "_region", "_told", "answered")

    def __init__(self, bucket: str, endpoint: str | None, region: str | None) -> None:
        """The alarm of a cache on ``bucket`` at ``endpoint`` (shown: no user info), ``region``."""
        self._bucket = bucket
        self._endpoint = endpoint or ambient_endpoint()
        self._region = region
        self._told: set[str] = set()
        self.answered = False

    def is_config(self, exc: S3CacheError) -> bool:
        """Whether ``exc`` is a configuration error (see the module)."""
        if type(exc) is EndpointUnreachableError:
            return not self.answered
        return type(exc) in _CLASSES

    def explain(self, exc: S3CacheError) -> tuple[S3CacheError, bool]:
        """``exc`` with its fix added when it is a configuration error (same type and kind,
        the same cause), and whether it is the first of its kind told for this cache."""
        if not self.is_config(exc) or ". Fix: " in str(exc):  # not twice
            return exc, False
        fix = fix_for(exc.kind, self._bucket, self._endpoint, self._region)
        explained = type(exc)(f"{exc}. Fix: {fix}")
        explained.__cause__ = exc.__cause__
        first = exc.kind not in self._told
        self._told.add(exc.kind)
        return explained, first
