"""Refusals the company-bucket options can cause reach the user as typed errors naming the likely
cause: a PUT denied by a bucket policy that requires encryption, a wrong SSE-C key, a bucket of
another owner, a KMS key that cannot be used, a checksum the server rejects.

moto 5.2 does not enforce SSE-C keys, the expected bucket owner or a bucket policy's conditions
(a Deny conditioned on the encryption header denies every PUT, encrypted or not). So the
refusals S3 would send are answered here by a server that sends exactly those S3 errors, and the
bucket-policy case runs on moto with signature verification, where a Deny is enforced.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from s3cache import (
    AccessDeniedError,
    AsyncS3Cache,
    BucketOwnerError,
    ChecksumMismatchError,
    CredentialsError,
    EncryptionError,
    NotSupportedError,
    maintenance,
)
from s3cache._bucket_options import BucketOptions
from s3cache._refusal import explain
from s3cache.cli import main
from tests.test_wire import AuthMoto, signed_kwargs

KEY = bytes(range(32))
OWNER = "111122223333"
BOTH_PATHS = pytest.mark.parametrize("fast_path", [True, False], ids=["wire", "aiobotocore"])
SSE_C = BucketOptions(sse_customer_key=KEY)


# -- the judgement, case by case ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "op", "code", "status", "message", "error", "words"),
    [
        (SSE_C, "GetObject", "AccessDenied", 403, "Access Denied", EncryptionError, "SSE-C key"),
        (SSE_C, "HeadObject", "403", 403, "", EncryptionError, "another SSE-C key"),
        (
            BucketOptions(),
            "GetObject",
            "InvalidRequest",
            400,
            "The object was stored using a form of Server Side Encryption. The correct "
            "parameters must be provided to retrieve the object.",
            EncryptionError,
            "needs the sse_customer_key",
        ),
        (
            SSE_C,
            "GetObject",
            "InvalidRequest",
            400,
            "The encryption parameters are not applicable to this object.",
            EncryptionError,
            "not stored with SSE-C",
        ),
        (BucketOptions(), "HeadObject", "400", 400, "", EncryptionError, "stored with SSE-C"),
        (
            BucketOptions(sse="aws:kms", sse_kms_key_id="alias/k"),
            "PutObject",
            "KMS.DisabledException",
            400,
            "arn:aws:kms:... is disabled.",
            EncryptionError,
            "the KMS key alias/k cannot be used: the credentials need kms:GenerateDataKey",
        ),
        (
            BucketOptions(),
            "GetObject",
            "AccessDenied",
            403,
            "User: x is not authorized to perform: kms:Decrypt",
            EncryptionError,
            "kms:Decrypt",
        ),
        (
            BucketOptions(expected_bucket_owner=OWNER),
            "ListObjectsV2",
            "AccessDenied",
            403,
            "Access Denied",
            BucketOwnerError,
            f"not be owned by account {OWNER}",
        ),
        (
            BucketOptions(),
            "PutObject",
            "AccessDenied",
            403,
            "User: arn:aws:iam::1:user/u is not authorized to perform: s3:PutObject on resource: "
            '"arn:aws:s3:::b/k" with an explicit deny in a resource-based policy',
            EncryptionError,
            "a bucket policy may require server-side encryption",
        ),
        (
            BucketOptions(),
            "PutObject",
            "AccessDenied",
            403,
            "Access Denied",
            AccessDeniedError,
            "(it sends: none requested (the bucket's default encryption applies)",
        ),
        (
            BucketOptions(checksum="crc32"),
            "PutObject",
            "BadDigest",
            400,
            "The CRC32 you specified did not match the calculated checksum.",
            ChecksumMismatchError,
            "damaged in transit, and nothing was stored",
        ),
        (
            BucketOptions(checksum="crc64nvme"),
            "PutObject",
            "InvalidArgument",
            400,
            "Unsupported checksum algorithm",
            NotSupportedError,
            "does not take checksum='crc64nvme'",
        ),
        (
            BucketOptions(storage_class="GLACIER_IR"),
            "PutObject",
            "InvalidStorageClass",
            400,
            "The storage class you specified is not valid",
            NotSupportedError,
            "storage_class='GLACIER_IR'",
        ),
        (BucketOptions(), "GetObject", "AccessDenied", 403, "", AccessDeniedError, "requester"),
        # Ceph RGW 16.2 without a KMS, or SSE-C over plain HTTP; and without the class.
        (
            BucketOptions(sse="AES256"),
            "PutObject",
            "InvalidRequest",
            400,
            "",
            EncryptionError,
            "refused the encryption asked for (SSE-S3 (AES256))",
        ),
        (
            BucketOptions(sse_customer_key=KEY),
            "PutObject",
            "InvalidRequest",
            400,
            "",
            EncryptionError,
            "take SSE-C over HTTPS only",
        ),
        (
            BucketOptions(storage_class="STANDARD_IA"),
            "PutObject",
            "InvalidArgument",
            400,
            "",
            NotSupportedError,
            "may not take storage_class='STANDARD_IA'",
        ),
    ],
)
def test_the_likely_cause_is_named(
    options: BucketOptions,
    op: str,
    code: str,
    status: int,
    message: str,
    error: type[Exception],
    words: str,
) -> None:
    found = explain(options, op, code, status, message)
    assert found is not None
    assert found[0] is error
    assert words in found[1]


def test_other_failures_keep_their_plain_translation() -> None:
    assert explain(BucketOptions(), "GetObject", "InternalError", 500, "") is None
    assert explain(BucketOptions(), "PutObject", "InvalidArgument", 400, "bad header") is None


# -- over HTTP, from a server that answers what S3 answers ----------------------------------------


def _kwargs(endpoint: str, **options: Any) -> dict[str, Any]:
    return {
        "bucket": "some-bucket",
        "endpoint_url": endpoint,
        "aws_access_key_id": "a",
        "aws_secret_access_key": "b",
        "region_name": "us-east-1",
        **options,
    }


@BOTH_PATHS
async def test_a_wrong_sse_c_key_is_an_encryption_error(
    canned_error_server: Callable[..., str], fast_path: bool
) -> None:
    """S3 answers a GET or HEAD with another SSE-C key than the object's with 403 AccessDenied."""
    endpoint = canned_error_server(403, "AccessDenied", "Access Denied")
    kwargs = _kwargs(endpoint, sse_customer_key=KEY, fast_path=fast_path, on_error="raise")
    async with AsyncS3Cache(**kwargs) as cache:
        with pytest.raises(EncryptionError, match="stored with another SSE-C key") as caught:
            await cache.get("k")
        assert isinstance(caught.value, AccessDeniedError)
        with pytest.raises(EncryptionError, match=r"HeadObject 'k'.*another SSE-C key"):
            await cache.exists("k")
    async with AsyncS3Cache(**{**kwargs, "on_error": "log"}) as cache:
        assert await cache.get("k", "miss") == "miss"
        assert cache.stats().errors["encryption"] == 1


@BOTH_PATHS
async def test_reading_an_sse_c_entry_without_the_key_is_an_encryption_error(
    canned_error_server: Callable[..., str], fast_path: bool
) -> None:
    message = (
        "The object was stored using a form of Server Side Encryption. The correct parameters "
        "must be provided to retrieve the object."
    )
    endpoint = canned_error_server(400, "InvalidRequest", message)
    async with AsyncS3Cache(**_kwargs(endpoint, fast_path=fast_path, on_error="raise")) as cache:
        with pytest.raises(EncryptionError, match="needs the sse_customer_key"):
            await cache.get("k")


@BOTH_PATHS
async def test_a_bucket_of_another_owner_is_refused_and_logged_once(
    canned_error_server: Callable[..., str],
    fast_path: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """S3 answers every request to a bucket whose owner is not the expected one with 403."""
    endpoint = canned_error_server(403, "AccessDenied", "Access Denied")
    kwargs = _kwargs(endpoint, expected_bucket_owner=OWNER, fast_path=fast_path)
    async with AsyncS3Cache(**kwargs, on_error="raise") as cache:
        with pytest.raises(BucketOwnerError, match=f"not be owned by account {OWNER}"):
            await cache.set("k", 1)
        with pytest.raises(BucketOwnerError, match="deleted and re-created"):
            await cache.get("k")
    async with AsyncS3Cache(**kwargs) as cache:
        with caplog.at_level(logging.WARNING, logger="s3cache"):
            for _ in range(3):
                await cache.set("k", 1)
        assert cache.stats().errors["bucket_owner"] == 3
    logged = [r.getMessage() for r in caplog.records if "bucket_owner failure" in r.getMessage()]
    assert len(logged) == 1
    assert OWNER in logged[0]


async def test_credential_errors_stay_credential_errors(
    canned_error_server: Callable[..., str],
) -> None:
    endpoint = canned_error_server(403, "SignatureDoesNotMatch")
    kwargs = _kwargs(endpoint, expected_bucket_owner=OWNER, sse_customer_key=KEY)
    async with AsyncS3Cache(**kwargs, on_error="raise") as cache:
        with pytest.raises(CredentialsError):
            await cache.get("k")


# -- a bucket policy that requires encryption, on a server that enforces a Deny -------------------

POLICY_BUCKET = "policy-bucket"


@pytest.fixture(scope="module")
def auth_moto() -> Iterator[AuthMoto]:
    server = AuthMoto()
    yield server
    server.close()


@pytest.fixture(scope="module")
def kms_policy(auth_moto: AuthMoto) -> str:
    """A bucket whose policy denies every PutObject without SSE-KMS and a given key; returns
    the key's ARN. (moto denies every PUT under it, encrypted or not.)"""
    key_arn = auth_moto.client("kms").create_key()["KeyMetadata"]["Arn"]
    s3 = auth_moto.client("s3")
    s3.create_bucket(Bucket=POLICY_BUCKET)
    statement = {
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:PutObject",
        "Resource": f"arn:aws:s3:::{POLICY_BUCKET}/*",
    }
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {
                **statement,
                "Sid": "RequireKMS",
                "Condition": {"StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"}},
            },
            {
                **statement,
                "Sid": "RequireKey",
                "Condition": {
                    "StringNotEquals": {"s3:x-amz-server-side-encryption-aws-kms-key-id": key_arn}
                },
            },
        ],
    }
    s3.put_bucket_policy(Bucket=POLICY_BUCKET, Policy=json.dumps(document))
    return str(key_arn)


@BOTH_PATHS
async def test_a_put_denied_by_a_bucket_policy_names_the_likely_cause(
    auth_moto: AuthMoto, kms_policy: str, fast_path: bool, caplog: pytest.LogCaptureFixture
) -> None:
    kwargs = {**signed_kwargs(auth_moto), "bucket": POLICY_BUCKET, "fast_path": fast_path}
    async with AsyncS3Cache(**kwargs) as cache:
        with pytest.raises(AccessDeniedError) as caught:
            await cache.set("k", 1)
        text = str(caught.value)
        assert text.startswith("PutObject 'k': 403 (HTTP 403): a bucket policy may require")
        assert "(it sends: none requested (the bucket's default encryption applies)" in text
        assert "or the credentials lack s3:PutObject" in text
    async with AsyncS3Cache(**{**kwargs, "on_error": "log"}) as cache:
        with caplog.at_level(logging.WARNING, logger="s3cache"):
            await cache.set("k", 1)
            await cache.set("k", 2)
        assert cache.stats().errors["access_denied"] == 2
    logged = [r.getMessage() for r in caplog.records if "PutObject" in r.getMessage()]
    assert len(logged) == 1
    assert "bucket policy may require server-side encryption" in logged[0]


async def test_check_names_the_encryption_the_policy_requires(
    auth_moto: AuthMoto, kms_policy: str
) -> None:
    kwargs = {**signed_kwargs(auth_moto), "bucket": POLICY_BUCKET}
    async with AsyncS3Cache(**kwargs) as cache:
        with pytest.raises(EncryptionError) as caught:
            await cache.check()
    text = str(caught.value)
    assert "'RequireKMS', 'RequireKey'" in text
    assert f"x-amz-server-side-encryption: aws:kms with the KMS key {kms_policy}" in text
    assert f"pass sse='aws:kms', sse_kms_key_id='{kms_policy}'" in text
    async with AsyncS3Cache(**kwargs) as cache:
        items = {item.name: item for item in await maintenance.doctor(cache)}
    assert items["put"].status == "fail"
    assert f"--sse aws:kms --sse-kms-key-id {kms_policy}" in items["put"].detail
    assert items["encryption"].status == "skip"


def test_the_command_line_check_names_it_too(
    auth_moto: AuthMoto,
    kms_policy: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", auth_moto.key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", auth_moto.secret)
    argv = ["--bucket", POLICY_BUCKET, "--endpoint-url", auth_moto.endpoint, "--region"]
    assert main([*argv, "us-east-1", "check", "--plain"]) == 1
    out = capsys.readouterr().out
    (line,) = [line for line in out.splitlines() if line.startswith("FAIL  put")]
    assert f"pass sse='aws:kms', sse_kms_key_id='{kms_policy}'" in line
