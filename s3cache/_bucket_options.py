"""Options of buckets as companies run them: server-side encryption (SSE-S3, SSE-KMS, SSE-C),
bucket-owner checks, integrity checksums, storage class, requester pays, and S3 Express
directory buckets.

Validated once, before any request (:func:`bucket_options`), then turned into the botocore
parameters each operation carries (:meth:`BucketOptions.params`): the transport's one place
for request parameters takes them from here, for the wire path and aiobotocore alike. Pure:
no I/O; the checksum functions of ``crc32c`` and ``crc64nvme`` come from ``awscrt``.
"""

from __future__ import annotations

import base64
import hashlib
import re
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from s3cache._format import Body

__all__ = [
    "BUCKET_ARGS",
    "CHECKSUMS",
    "SSE_MODES",
    "STORAGE_CLASSES",
    "BucketOptions",
    "Checksum",
    "RequestPayer",
    "ServerSideEncryption",
    "bucket_options",
    "checksum_mismatch",
    "encryption_in_use",
    "is_directory_bucket",
]

ServerSideEncryption = Literal["AES256", "aws:kms", "aws:kms:dsse"]
Checksum = Literal["crc32", "crc32c", "sha256", "crc64nvme"]
RequestPayer = Literal["requester"]

SSE_MODES: Final = ("AES256", "aws:kms", "aws:kms:dsse")
KMS_MODES: Final = frozenset({"aws:kms", "aws:kms:dsse"})
CHECKSUMS: Final = ("crc32", "crc32c", "sha256", "crc64nvme")
#: S3's storage class names, as botocore's model lists them (a test holds them equal).
STORAGE_CLASSES: Final = frozenset(
    {
        "STANDARD",
        "REDUCED_REDUNDANCY",
        "STANDARD_IA",
        "ONEZONE_IA",
        "INTELLIGENT_TIERING",
        "GLACIER",
        "DEEP_ARCHIVE",
        "OUTPOSTS",
        "GLACIER_IR",
        "SNOW",
        "EXPRESS_ONEZONE",
        "FSX_OPENZFS",
        "FSX_ONTAP",
        "AWS_BACKUP_WARM",
        "AWS_BACKUP_LOW_COST_WARM",
    }
)
#: Classes whose objects a GET cannot read before a restore: every entry would be a miss.
_ARCHIVE_CLASSES: Final = frozenset({"GLACIER", "DEEP_ARCHIVE"})
SSE_C_KEY_BYTES: Final = 32
_DIRECTORY_BUCKET: Final = re.compile(r"[a-z0-9][a-z0-9-]*--[a-z0-9-]+--x-s3")
_ACCOUNT_ID: Final = re.compile(r"[0-9]{12}")
#: The operations that carry the SSE-C key (S3 needs it to read, write or describe the object).
_SSE_C_OPS: Final = frozenset({"GetObject", "HeadObject", "PutObject"})
#: The operations s3cache sends that take ``RequestPayer`` (HeadBucket and the bucket
#: configuration calls do not).
_PAYER_OPS: Final = frozenset(
    {"GetObject", "HeadObject", "PutObject", "DeleteObject", "DeleteObjects", "ListObjectsV2"}
)
#: Options that PutObject carries as they are: (attribute, botocore parameter).
_PUT_FIELDS: Final = (
    ("sse", "ServerSideEncryption"),
    ("sse_kms_key_id", "SSEKMSKeyId"),
    ("sse_bucket_key_enabled", "BucketKeyEnabled"),
    ("storage_class", "StorageClass"),
)
#: Full-object checksums a GET may return, in the order they are checked.
_VERIFIABLE: Final = ("crc64nvme", "crc32c", "crc32", "sha256", "sha1")


#: The constructor arguments :func:`bucket_options` takes after the bucket.
BUCKET_ARGS: Final = frozenset(
    (
        "sse",
        "sse_kms_key_id",
        "sse_bucket_key_enabled",
        "sse_customer_key",
        "expected_bucket_owner",
        "checksum",
        "storage_class",
        "request_payer",
    )
)


def is_directory_bucket(bucket: str) -> bool:
    """Whether ``bucket`` names an S3 Express One Zone directory bucket
    (``<name>--<zone id>--x-s3``)."""
    return _DIRECTORY_BUCKET.fullmatch(bucket) is not None


@dataclass(frozen=True, slots=True)
class BucketOptions:
    """The validated options; the SSE-C key is never shown (``repr`` hides it)."""

    sse: ServerSideEncryption | None = None
    sse_kms_key_id: str | None = None
    sse_bucket_key_enabled: bool | None = None
    sse_customer_key: bytes | None = field(default=None, repr=False)
    expected_bucket_owner: str | None = None
    checksum: Checksum | None = None
    storage_class: str | None = None
    request_payer: RequestPayer | None = None
    directory_bucket: bool = False

    def __repr__(self) -> str:
        shown = [
            f"{name}={getattr(self, name)!r}"
            for name in (
                "sse",
                "sse_kms_key_id",
                "sse_bucket_key_enabled",
                "expected_bucket_owner",
                "checksum",
                "storage_class",
                "request_payer",
            )
            if getattr(self, name) is not None
        ]
        if self.sse_customer_key is not None:
            shown.append("sse_customer_key=<hidden>")
        return f"BucketOptions({', '.join(shown)})"

    def params(self, op: str) -> dict[str, Any]:
        """The botocore parameters every request of ``op`` carries, besides Bucket and Key
        (the body's checksum value is added per PUT: :meth:`checksum_params`)."""
        out: dict[str, Any] = {}
        if op == "PutObject":
            out.update(self._put_params())
        if op in _SSE_C_OPS and self.sse_customer_key is not None:
            out.update(_sse_c_params(self.sse_customer_key))
        if op == "GetObject" and self.checksum is not None:
            out["ChecksumMode"] = "ENABLED"
        if op in _PAYER_OPS and self.request_payer is not None:
            out["RequestPayer"] = self.request_payer
        if self.expected_bucket_owner is not None:
            out["ExpectedBucketOwner"] = self.expected_bucket_owner
        return out

    def _put_params(self) -> dict[str, Any]:
        return {name: v for field, name in _PUT_FIELDS if (v := getattr(self, field)) is not None}

    def checksummer(self) -> Callable[[bytes], dict[str, str]] | None:
        """A function from a PUT body to its checksum parameters (algorithm and value, sent as
        headers for the server to verify), or None without ``checksum``."""
        if self.checksum is None:
            return None
        compute = _checksum_function(self.checksum)
        algorithm = self.checksum.upper()
        member = f"Checksum{algorithm}"
        return lambda body: {"ChecksumAlgorithm": algorithm, member: compute(body)}

    def describe(self) -> str:
        """The encryption this cache asks for, in words (never the SSE-C key)."""
        if self.sse_customer_key is not None:
            return "SSE-C (a customer-provided AES256 key on every request)"
        if self.sse is None:
            return "none requested (the bucket's default encryption applies)"
        text = {"AES256": "SSE-S3 (AES256)", "aws:kms": "SSE-KMS", "aws:kms:dsse": "DSSE-KMS"}
        parts = [text[self.sse]]
        if self.sse in KMS_MODES:
            parts.append(f"key {self.sse_kms_key_id or 'the AWS managed key (aws/s3)'}")
            if self.sse_bucket_key_enabled is not None:
                parts.append(f"bucket key {'on' if self.sse_bucket_key_enabled else 'off'}")
        return ", ".join(parts)


# -- validation -----------------------------------------------------------------------------


def bucket_options(
    bucket: str,
    *,
    sse: object = None,
    sse_kms_key_id: object = None,
    sse_bucket_key_enabled: object = None,
    sse_customer_key: object = None,
    expected_bucket_owner: object = None,
    checksum: object = None,
    storage_class: object = None,
    request_payer: object = None,
) -> BucketOptions:
    """Validate the options (TypeError or ValueError naming the problem, never the SSE-C key)."""
    options = BucketOptions(
        sse=_check_sse(sse, sse_kms_key_id, sse_bucket_key_enabled),
        sse_kms_key_id=_optional_str("sse_kms_key_id", sse_kms_key_id),
        sse_bucket_key_enabled=_optional_bool("sse_bucket_key_enabled", sse_bucket_key_enabled),
        sse_customer_key=_check_customer_key(sse_customer_key, sse),
        expected_bucket_owner=_check_owner(expected_bucket_owner),
        checksum=_check_checksum(checksum),
        storage_class=_check_storage_class(storage_class),
        request_payer=_check_request_payer(request_payer),
        directory_bucket=is_directory_bucket(bucket),
    )
    if options.directory_bucket:
        _check_directory_bucket(options)
    return options


def _optional_str(name: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise TypeError(f"{name} must be a non-empty str or None, not {type(value).__name__}")
    return value


def _optional_bool(name: str, value: object) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool or None, not {type(value).__name__}")
    return value


def _check_sse(sse: object, key_id: object, bucket_key: object) -> ServerSideEncryption | None:
    """``sse`` is one of :data:`SSE_MODES`; a KMS key id or bucket-key choice needs a KMS mode."""
    if sse is not None and sse not in SSE_MODES:
        raise ValueError(f"sse must be None, 'AES256', 'aws:kms' or 'aws:kms:dsse', not {sse!r}")
    if sse not in KMS_MODES:
        for name, value in (("sse_kms_key_id", key_id), ("sse_bucket_key_enabled", bucket_key)):
            if value is not None:
                raise ValueError(
                    f"{name} goes with sse='aws:kms' or 'aws:kms:dsse', not sse={sse!r}"
                )
    return sse


def _check_customer_key(key: object, sse: object) -> bytes | None:
    """32 bytes, and not together with ``sse`` (S3 refuses both on one object)."""
    if key is None:
        return None
    if not isinstance(key, (bytes, bytearray, memoryview)):
        raise TypeError(
            f"sse_customer_key must be {SSE_C_KEY_BYTES} bytes, not {type(key).__name__} "
            "(decode a base64 key with base64.b64decode first)"
        )
    raw = bytes(key)
    if len(raw) != SSE_C_KEY_BYTES:
        raise ValueError(f"sse_customer_key must be {SSE_C_KEY_BYTES} bytes, not {len(raw)}")
    if sse is not None:
        raise ValueError(f"sse_customer_key (SSE-C) cannot be combined with sse={sse!r}")
    return raw


def _check_owner(owner: object) -> str | None:
    if owner is None:
        return None
    if not isinstance(owner, str) or not _ACCOUNT_ID.fullmatch(owner):
        raise ValueError("expected_bucket_owner must be a 12-digit AWS account id")
    return owner


def _check_checksum(checksum: object) -> Checksum | None:
    if checksum is not None and checksum not in CHECKSUMS:
        raise ValueError(
            f"checksum must be None, 'crc32', 'crc32c', 'sha256' or 'crc64nvme', not {checksum!r}"
        )
    if checksum is not None:
        _checksum_function(str(checksum))  # raises when awscrt is missing
    return checksum


def _check_storage_class(storage_class: object) -> str | None:
    if storage_class is None:
        return None
    if storage_class not in STORAGE_CLASSES:
        raise ValueError(
            f"storage_class {storage_class!r} is not an S3 storage class: one of "
            f"{', '.join(sorted(STORAGE_CLASSES))}"
        )
    if storage_class in _ARCHIVE_CLASSES:
        raise ValueError(
            f"storage_class {storage_class!r} archives objects: a GET cannot read them without "
            "a restore, so every entry would be a miss (GLACIER_IR reads directly)"
        )
    return str(storage_class)


def _check_request_payer(payer: object) -> RequestPayer | None:
    if payer is None:
        return None
    if payer != "requester":
        raise ValueError(f"request_payer must be None or 'requester', not {payer!r}")
    return "requester"


def _check_directory_bucket(options: BucketOptions) -> None:
    """What S3 Express One Zone directory buckets do not support, refused before any request."""
    if options.sse_customer_key is not None:
        raise ValueError("S3 Express directory buckets do not support SSE-C (sse_customer_key)")
    if options.sse == "aws:kms:dsse":
        raise ValueError("S3 Express directory buckets do not support sse='aws:kms:dsse'")
    if options.storage_class not in (None, "EXPRESS_ONEZONE"):
        raise ValueError(
            "S3 Express directory buckets store only storage_class='EXPRESS_ONEZONE', "
            f"not {options.storage_class!r}"
        )
    if options.request_payer is not None:
        raise ValueError("S3 Express directory buckets do not support request_payer")


# -- SSE-C and checksums -----------------------------------------------------------------------


def _sse_c_params(key: bytes) -> dict[str, str]:
    """The SSE-C parameters, key and MD5 already encoded as S3 wants them (so botocore sends
    them as they are, and the wire path maps them to the same headers)."""
    return {
        "SSECustomerAlgorithm": "AES256",
        "SSECustomerKey": base64.b64encode(key).decode(),
        "SSECustomerKeyMD5": base64.b64encode(hashlib.md5(key).digest()).decode(),  # noqa: S324
    }


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def _crt(name: str) -> Callable[[Body], int]:
    try:
        from awscrt import checksums
    except ImportError:
        raise ValueError(
            f"checksum={name!r} needs awscrt (pip install 's3cache-async[crt]'); "
            "'crc32' and 'sha256' need nothing"
        ) from None
    function: Callable[[Body], int] = getattr(checksums, name)
    return function


def _checksum_function(name: str) -> Callable[[Body], str]:
    """Body -> the base64 checksum S3 sends in ``x-amz-checksum-<name>``."""
    if name == "crc32":
        return lambda body: _b64(zlib.crc32(body).to_bytes(4, "big"))
    if name == "sha256":
        return lambda body: _b64(hashlib.sha256(body).digest())
    if name == "sha1":
        return lambda body: _b64(hashlib.sha1(body).digest())  # noqa: S324 - S3's checksum
    width = 8 if name == "crc64nvme" else 4
    crc = _crt(name)
    return lambda body: _b64(crc(body).to_bytes(width, "big"))


def checksum_mismatch(body: Body, headers: Mapping[str, str]) -> str | None:
    """What is wrong when ``body`` does not match the full-object checksum the server returned
    with it; None when it matches, or when there is none this process can compute (a checksum
    of parts, or ``crc32c``/``crc64nvme`` without awscrt)."""
    if headers.get("x-amz-checksum-type", "FULL_OBJECT").upper() == "COMPOSITE":
        return None
    for name in _VERIFIABLE:
        held = headers.get(f"x-amz-checksum-{name}")
        if held is None:
            continue
        if "-" in held:  # "<checksum>-<parts>": of the parts, not of the body
            return None
        try:
            got = _checksum_function(name)(body)
        except ValueError:  # awscrt missing: cannot tell
            return None
        if got == held:
            return None
        return f"the body's {name.upper()} is {got}, the server holds {held}"
    return None


def encryption_in_use(headers: Mapping[str, str]) -> str:
    """The encryption a response says its object is stored with, in words."""
    if headers.get("x-amz-server-side-encryption-customer-algorithm"):
        return "SSE-C (customer-provided key)"
    sse = headers.get("x-amz-server-side-encryption")
    if not sse:
        return "none reported by the server"
    key = headers.get("x-amz-server-side-encryption-aws-kms-key-id")
    bucket_key = headers.get("x-amz-server-side-encryption-bucket-key-enabled") == "true"
    text = {"AES256": "SSE-S3 (AES256)", "aws:kms": "SSE-KMS", "aws:kms:dsse": "DSSE-KMS"}
    parts = [text.get(sse, sse)]
    if key:
        parts.append(f"key {key}")
    if bucket_key:
        parts.append("bucket key on")
    return ", ".join(parts)
