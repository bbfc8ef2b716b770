"""Bucket administration for maintenance, ``check()`` and the doctor: HeadBucket, lifecycle
rules, the bucket policy and the encryption it requires. Always sent through aiobotocore."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from s3cache._policy import required_encryption
from s3cache._rules import RULES
from s3cache._send import Request, Sender
from s3cache.errors import S3CacheError

__all__ = ["Admin"]

_HEAD_BUCKET: Final = RULES["HeadBucket"]
_GET_LIFECYCLE: Final = "GetBucketLifecycleConfiguration"
_PUT_LIFECYCLE: Final = "PutBucketLifecycleConfiguration"
_DELETE_LIFECYCLE: Final = "DeleteBucketLifecycle"
_GET_POLICY: Final = "GetBucketPolicy"


class Admin:
    """The bucket-level operations of one transport (``transport.admin``)."""

    __slots__ = ("_params", "_sender")

    def __init__(self, sender: Sender, params: Mapping[str, Mapping[str, Any]]) -> None:
        """Operations sent by ``sender``, each with its ``params`` from the bucket options."""
        self._sender = sender
        self._params = params

    async def _send(self, op: str, extra: Mapping[str, Any] | None = None) -> tuple[str, Any]:
        """Send bucket operation ``op``; its outcome and aiobotocore's parsed response."""
        params = {**self._params[op], **(extra or {})}
        request = Request(op, self._sender.bucket, params, RULES[op], has_key=False)
        outcome, reply = await self._sender.call(request, botocore=True)
        return outcome, reply.data

    async def head_bucket(self) -> Mapping[str, str]:
        """Lower-cased headers of HeadBucket: proves the endpoint answers and the bucket exists.

        A 403 (no body, so no code) is explained by a one-key listing, whose refusal says
        whether it is the credentials; a missing bucket is :class:`BucketNotFoundError`.
        """
        bucket = self._sender.bucket
        listing = {**self._params["ListObjectsV2"], "MaxKeys": 1}
        probe = Request("ListObjectsV2", bucket, listing, RULES["ListObjectsV2"], has_key=False)
        params = self._params["HeadBucket"]
        request = Request("HeadBucket", bucket, params, _HEAD_BUCKET, has_key=False, probe=probe)
        _, reply = await self._sender.call(request, botocore=True)
        return reply.headers

    async def create_bucket(self) -> bool:
        """Create the bucket (``s3cache create-bucket``; see :meth:`Sender.make_bucket`): True
        when created, False when it already existed and is ours."""
        return await self._sender.make_bucket()

    async def get_lifecycle_rules(self) -> list[dict[str, Any]]:
        """The bucket's lifecycle rules, [] when it has none; NotSupportedError without the API."""
        outcome, resp = await self._send(_GET_LIFECYCLE)
        return [] if outcome == "empty" else list(resp.get("Rules") or [])

    async def put_lifecycle_rules(self, rules: list[dict[str, Any]]) -> None:
        """Replace the bucket's whole lifecycle configuration with ``rules``."""
        await self._send(_PUT_LIFECYCLE, {"LifecycleConfiguration": {"Rules": rules}})

    async def delete_lifecycle(self) -> None:
        """Remove the bucket's lifecycle configuration (every rule)."""
        await self._send(_DELETE_LIFECYCLE)

    async def get_bucket_policy(self) -> str | None:
        """The bucket policy's JSON text, None when the bucket has none (raises when denied)."""
        outcome, resp = await self._send(_GET_POLICY)
        return None if outcome == "empty" else str(resp.get("Policy") or "") or None

    async def required_encryption(self) -> str | None:
        """What encryption the bucket policy requires of PutObject, in words with the options to
        set; None when it requires none, or cannot be read (s3:GetBucketPolicy)."""
        try:
            policy = await self.get_bucket_policy()
        except S3CacheError:
            return None
        return required_encryption(policy) if policy else None
