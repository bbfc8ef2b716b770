"""Why S3 refused a request, in words: the typed error and the likely cause, judged from the
operation, the answer and the options the request carried. Consulted only on a failure.

S3 answers most of these refusals with a bare 403 AccessDenied (a bucket policy that requires
encryption, a wrong SSE-C key, a bucket of another owner look alike), so the cause named is
the likely one given what was sent, and the message says what else it could be.
"""

from __future__ import annotations

from typing import Final

from s3cache._bucket_options import BucketOptions
from s3cache._keys import MAX_KEY_BYTES, key_length_detail
from s3cache.errors import (
    AccessDeniedError,
    BucketOwnerError,
    ChecksumMismatchError,
    EncryptionError,
    NotSupportedError,
    S3CacheError,
)

__all__ = ["explain", "key_too_long"]

Explained = tuple[type[S3CacheError], str]

_DENIED: Final = frozenset({"AccessDenied", "Forbidden", "403"})
_BAD_REQUEST: Final = frozenset({"InvalidRequest", "InvalidArgument", "400"})
_DIGEST: Final = frozenset(
    {"BadDigest", "InvalidDigest", "XAmzContentChecksumMismatch", "InvalidChecksum"}
)
_READS: Final = frozenset({"GetObject", "HeadObject"})


def explain(
    options: BucketOptions, op: str, code: str, status: int, message: str
) -> Explained | None:
    """The error class and likely cause of a refusal, or None when the plain translation says
    it all."""
    text = message.lower()
    if code.startswith("KMS.") or (status in (400, 403) and "kms" in text):
        return EncryptionError, _kms(options, op)
    if code in _DIGEST:
        return ChecksumMismatchError, (
            "the server computed another checksum of the body it received: it was damaged in "
            "transit, and nothing was stored"
        )
    if code == "InvalidStorageClass":
        wanted = options.storage_class
        return NotSupportedError, f"this server does not take storage_class={wanted!r}"
    if code in _BAD_REQUEST:
        return _bad_request(options, op, text)
    if code in _DENIED or status == 403:
        return _denied(options, op, text)
    return None


def key_too_long(key: str) -> str:
    """Why a server refused object key ``key`` as too long, and what to do about it."""
    return (
        f"the server refused the key as too long: {key_length_detail(key)} (S3 takes "
        f"{MAX_KEY_BYTES:,} bytes in all; SeaweedFS at most 255 in the last segment); hash long "
        "natural keys, e.g. with a key= function"
    )


def _kms(options: BucketOptions, op: str) -> str:
    key = options.sse_kms_key_id or "of the bucket's default encryption"
    need = "kms:GenerateDataKey" if op == "PutObject" else "kms:Decrypt"
    return (
        f"the KMS key {key} cannot be used: the credentials need {need} on it, and the key "
        "must be enabled and in the bucket's region"
    )


def _bad_request(options: BucketOptions, op: str, text: str) -> Explained | None:
    """400s about encryption (SSE-C) or checksums; other 400s keep the plain translation."""
    bodyless = op == "HeadObject" and not text
    if op in _READS and ("encrypt" in text or bodyless):
        if options.sse_customer_key is None:
            return EncryptionError, (
                "the entry is stored with SSE-C: reading it needs the sse_customer_key it was "
                "written with"
            )
        return EncryptionError, (
            "the entry is not stored with SSE-C, so sse_customer_key does not apply to it "
            "(written by another writer, or before the key was configured)"
        )
    if op != "PutObject":
        return None
    if "checksum" in text and options.checksum is not None:
        return NotSupportedError, (
            f"this server does not take checksum={options.checksum!r} (see the README's "
            "table of servers and checksums)"
        )
    encrypting = options.sse is not None or options.sse_customer_key is not None
    if "encrypt" in text or (encrypting and "storage" not in text):
        return EncryptionError, (
            f"the server refused the encryption asked for ({options.describe()}): "
            "S3-compatible servers often have no KMS, or take SSE-C over HTTPS only"
        )
    if options.storage_class is not None:
        return NotSupportedError, (
            f"this server may not take storage_class={options.storage_class!r}"
        )
    return None


def _denied(options: BucketOptions, op: str, text: str) -> Explained:
    """403s: a wrong SSE-C key, a bucket of another owner, a policy that requires encryption,
    a requester-pays bucket, or plainly a missing permission."""
    if op in _READS and options.sse_customer_key is not None:
        return EncryptionError, (
            "the entry is stored with another SSE-C key than sse_customer_key (or the "
            "credentials lack s3:GetObject)"
        )
    cls: type[S3CacheError] = AccessDeniedError
    causes: list[str] = []
    if options.expected_bucket_owner is not None:
        cls = BucketOwnerError
        causes.append(
            f"the bucket may not be owned by account {options.expected_bucket_owner} "
            "(expected_bucket_owner): S3 refuses every request to a bucket of another owner, "
            "as after it was deleted and re-created under another account"
        )
    if op == "PutObject":
        if cls is AccessDeniedError and "explicit deny" in text:
            cls = EncryptionError  # a policy's Deny: most often an encryption requirement
        causes.append(
            "a bucket policy may require server-side encryption that this cache does not send "
            f"(it sends: {options.describe()}; `s3cache check` names what the policy requires)"
        )
    causes.append(f"the credentials lack {_PERMISSIONS.get(op, 'permission for ' + op)}")
    if op in _READS and options.request_payer is None:
        causes.append("the bucket is requester-pays and request_payer='requester' is not set")
    return cls, "; or ".join(causes)


_PERMISSIONS: Final = {
    "GetObject": "s3:GetObject",
    "HeadObject": "s3:GetObject",
    "PutObject": "s3:PutObject",
    "DeleteObject": "s3:DeleteObject",
    "DeleteObjects": "s3:DeleteObject",
    "ListObjectsV2": "s3:ListBucket",
    "HeadBucket": "s3:ListBucket",
    "GetBucketPolicy": "s3:GetBucketPolicy",
    "GetBucketEncryption": "s3:GetEncryptionConfiguration",
    "GetBucketLifecycleConfiguration": "s3:GetLifecycleConfiguration",
    "PutBucketLifecycleConfiguration": "s3:PutLifecycleConfiguration",
    "DeleteBucketLifecycle": "s3:PutLifecycleConfiguration",
}
