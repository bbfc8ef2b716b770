"""Company-bucket options: validation before any request, the parameters each operation carries
on both paths (and the exact headers sent), SSE-S3 and SSE-KMS on the object, checksums that
round-trip and catch a body damaged in flight, and an SSE-C key that never shows."""

from __future__ import annotations

import base64
import hashlib
import logging
import zlib
from collections.abc import Iterator
from typing import Any

import botocore.session
import pytest
from botocore.httpchecksum import CrtCrc32cChecksum, CrtCrc64NvmeChecksum

from harness.faultproxy import Fault, FaultProxy
from s3cache import AsyncS3Cache, ChecksumMismatchError, CorruptEntryError, S3Cache, S3CacheError
from s3cache._bucket_options import (
    STORAGE_CLASSES,
    bucket_options,
    checksum_mismatch,
    encryption_in_use,
)
from tests.test_wire import AuthMoto, on_the_wire, signed_kwargs

KEY = bytes(range(32))  # an SSE-C key
KEY_B64 = base64.b64encode(KEY).decode()
KEY_MD5 = base64.b64encode(hashlib.md5(KEY).digest()).decode()
OWNER = "123456789012"
BOTH_PATHS = pytest.mark.parametrize("fast_path", [True, False], ids=["wire", "aiobotocore"])


# -- validation, before any request ------------------------------------------------------------

BAD: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"sse": "aes256"}, ValueError, "sse must be"),
    ({"sse_kms_key_id": "alias/k"}, ValueError, "sse_kms_key_id goes with sse='aws:kms'"),
    ({"sse": "AES256", "sse_kms_key_id": "k"}, ValueError, "goes with"),
    ({"sse_bucket_key_enabled": True}, ValueError, "sse_bucket_key_enabled goes with"),
    ({"sse": "aws:kms", "sse_bucket_key_enabled": "yes"}, TypeError, "must be a bool"),
    ({"sse": "aws:kms", "sse_kms_key_id": 3}, TypeError, "non-empty str"),
    ({"sse_customer_key": KEY_B64}, TypeError, "32 bytes, not str"),
    ({"sse_customer_key": b"short"}, ValueError, "32 bytes, not 5"),
    ({"sse_customer_key": KEY, "sse": "AES256"}, ValueError, "cannot be combined"),
    ({"expected_bucket_owner": "12345"}, ValueError, "12-digit"),
    ({"expected_bucket_owner": 123456789012}, ValueError, "12-digit"),
    ({"checksum": "md5"}, ValueError, "checksum must be"),
    ({"checksum": "CRC32"}, ValueError, "checksum must be"),
    ({"storage_class": "standard"}, ValueError, "not an S3 storage class"),
    ({"storage_class": "GLACIER"}, ValueError, "archives objects"),
    ({"storage_class": "DEEP_ARCHIVE"}, ValueError, "archives objects"),
    ({"request_payer": "owner"}, ValueError, "request_payer must be"),
]


@pytest.mark.parametrize(("options", "error", "match"), BAD, ids=lambda v: str(v)[:40])
def test_bad_options_raise_before_any_request(
    options: dict[str, Any], error: type[Exception], match: str
) -> None:
    for cls in (AsyncS3Cache, S3Cache):
        with pytest.raises(error, match=match) as caught:
            cls("some-bucket", endpoint_url="http://127.0.0.1:1", **options)
        assert KEY_B64 not in str(caught.value)


DIRECTORY = "cache--usw2-az1--x-s3"


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"sse_customer_key": KEY}, "SSE-C"),
        ({"sse": "aws:kms:dsse"}, "aws:kms:dsse"),
        ({"storage_class": "STANDARD"}, "EXPRESS_ONEZONE"),
        ({"request_payer": "requester"}, "request_payer"),
    ],
)
def test_directory_buckets_refuse_what_s3_express_does_not_support(
    options: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        AsyncS3Cache(DIRECTORY, region_name="us-west-2", **options)
    AsyncS3Cache(DIRECTORY, region_name="us-west-2", sse="aws:kms", checksum="crc32")


def test_storage_classes_are_s3s() -> None:
    model = botocore.session.get_session().get_service_model("s3")
    assert set(model.shape_for("StorageClass").enum) == STORAGE_CLASSES


def test_the_customer_key_is_never_in_a_repr() -> None:
    options = bucket_options("b-1", sse_customer_key=KEY, expected_bucket_owner=OWNER)
    cache = AsyncS3Cache("b-1", sse_customer_key=KEY)
    for text in (repr(options), str(options), repr(cache), options.describe()):
        assert KEY_B64 not in text
        assert repr(KEY) not in text
    assert "sse_customer_key=<hidden>" in repr(options)


def test_options_off_add_no_parameters() -> None:
    """The hot path is unchanged without options: no parameter, no checksum, no check."""
    transport = AsyncS3Cache("b-1")._transport
    for op in ("GetObject", "HeadObject", "PutObject", "DeleteObject", "ListObjectsV2"):
        assert transport.object_params(op) == {}
    assert transport._checksum is None
    assert transport._verify is False


def test_each_operation_carries_what_s3_takes() -> None:
    options = bucket_options(
        "b-1",
        sse="aws:kms",
        sse_kms_key_id="alias/cache",
        sse_bucket_key_enabled=False,
        expected_bucket_owner=OWNER,
        checksum="sha256",
        storage_class="STANDARD_IA",
        request_payer="requester",
    )
    shared = {"ExpectedBucketOwner": OWNER, "RequestPayer": "requester"}
    assert options.params("PutObject") == {
        "ServerSideEncryption": "aws:kms",
        "SSEKMSKeyId": "alias/cache",
        "BucketKeyEnabled": False,
        "StorageClass": "STANDARD_IA",
        **shared,
    }
    assert options.params("GetObject") == {"ChecksumMode": "ENABLED", **shared}
    assert options.params("HeadObject") == shared
    assert options.params("DeleteObjects") == shared
    assert options.params("HeadBucket") == {"ExpectedBucketOwner": OWNER}
    sse_c = bucket_options("b-1", sse_customer_key=KEY).params("HeadObject")
    assert sse_c == {
        "SSECustomerAlgorithm": "AES256",
        "SSECustomerKey": KEY_B64,
        "SSECustomerKeyMD5": KEY_MD5,
    }
    assert bucket_options("b-1", sse_customer_key=KEY).params("DeleteObject") == {}


BODIES = [b"", b"x", b"hello world", bytes(range(256)) * 17]


def test_checksums_are_the_ones_botocore_computes() -> None:
    for body in BODIES:
        want = {
            "crc32": base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode(),
            "sha256": base64.b64encode(hashlib.sha256(body).digest()).decode(),
        }
        for name, cls in (("crc32c", CrtCrc32cChecksum), ("crc64nvme", CrtCrc64NvmeChecksum)):
            checksum = cls()
            checksum.update(body)
            want[name] = base64.b64encode(checksum.digest()).decode()
        for name, value in want.items():
            params = bucket_options("b-1", checksum=name).checksummer()
            assert params is not None
            assert params(body) == {
                "ChecksumAlgorithm": name.upper(),
                f"Checksum{name.upper()}": value,
            }
            assert checksum_mismatch(body, {f"x-amz-checksum-{name}": value}) is None
            assert checksum_mismatch(body + b"!", {f"x-amz-checksum-{name}": value})


def test_checksums_of_parts_are_not_judged_on_the_whole_body() -> None:
    assert checksum_mismatch(b"x", {"x-amz-checksum-crc32": "AAAAAA==-3"}) is None
    headers = {"x-amz-checksum-crc32": "AAAAAA==", "x-amz-checksum-type": "COMPOSITE"}
    assert checksum_mismatch(b"x", headers) is None
    assert checksum_mismatch(b"x", {}) is None


# -- on moto's server ----------------------------------------------------------------------------


@pytest.mark.moto_only("its KMS key is created through moto's KMS")
@BOTH_PATHS
async def test_sse_s3_and_sse_kms_are_visible_on_the_object(
    cache_kwargs: dict[str, Any], s3_endpoint: str, s3: Any, bucket: str, fast_path: bool
) -> None:
    """moto implements both; the KMS key is created through moto's KMS on the same endpoint."""
    import boto3

    kms = boto3.client("kms", endpoint_url=s3_endpoint, **_credentials(cache_kwargs))
    try:
        key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    finally:
        kms.close()
    settings: list[dict[str, Any]] = [
        {"sse": "AES256"},
        {"sse": "aws:kms", "sse_kms_key_id": key_id, "sse_bucket_key_enabled": True},
    ]
    for options in settings:
        prefix = options["sse"].replace(":", "-")
        async with AsyncS3Cache(
            **cache_kwargs, prefix=prefix, fast_path=fast_path, on_error="raise", **options
        ) as cache:
            await cache.set("k", {"v": 1})
            assert await cache.get("k") == {"v": 1}
            assert on_the_wire(cache) is fast_path
            report = await cache.check()
        head = s3.head_object(Bucket=bucket, Key=f"{prefix}/k")
        assert head["ServerSideEncryption"] == options["sse"]
        if options["sse"] == "aws:kms":
            assert head["SSEKMSKeyId"] == key_id
            assert head["BucketKeyEnabled"] is True
            assert report.encryption == f"SSE-KMS, key {key_id}, bucket key on"
        else:
            assert report.encryption == "SSE-S3 (AES256)"


def _credentials(cache_kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in cache_kwargs.items() if k.startswith("aws_") or k == "region_name"}


CHECKSUMS = ["crc32", "crc32c", "sha256", "crc64nvme"]


@pytest.mark.server_limit("ceph", "Ceph RGW 16.2 ignores checksum headers: none stored or returned")
@BOTH_PATHS
@pytest.mark.parametrize("checksum", CHECKSUMS)
async def test_every_checksum_round_trips(
    cache_kwargs: dict[str, Any], s3: Any, bucket: str, checksum: Any, fast_path: bool
) -> None:
    """moto stores the checksum sent and returns it (it does not verify it: the GET does)."""
    value = {"text": "checksummed " * 50}
    async with AsyncS3Cache(
        **cache_kwargs,
        checksum=checksum,
        fast_path=fast_path,
        on_error="raise",
    ) as cache:
        await cache.set("k", value)
        assert await cache.get("k") == value
        body, headers = await cache.transport.get("k") or (b"", {})
        assert on_the_wire(cache) is fast_path
    sent = bucket_options("b-1", checksum=checksum).checksummer()
    assert sent is not None
    expected = sent(bytes(body))[f"Checksum{checksum.upper()}"]
    assert headers[f"x-amz-checksum-{checksum}"] == expected
    head = s3.head_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert head[f"Checksum{checksum.upper()}"] == expected


@pytest.mark.server_limit("ceph", "Ceph RGW 16.2 ignores checksum headers: none stored or returned")
@BOTH_PATHS
@pytest.mark.parametrize("checksum", ["crc32", "crc64nvme"])
async def test_a_body_corrupted_in_flight_is_detected(
    cache_kwargs: dict[str, Any],
    proxy: FaultProxy,
    checksum: Any,
    fast_path: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The proxy flips one bit of the GET's body; the server's checksum header is intact."""
    kwargs = {**cache_kwargs, "endpoint_url": proxy.endpoint, "fast_path": fast_path}
    async with AsyncS3Cache(**kwargs, checksum=checksum, on_error="raise") as cache:
        await cache.set("k", "x" * 100)
        proxy.set_fault(Fault.CORRUPT_BODY, methods={"GET"})
        with pytest.raises(ChecksumMismatchError, match="checksum mismatch") as caught:
            await cache.get("k")
        assert isinstance(caught.value, CorruptEntryError)
        assert on_the_wire(cache) is fast_path
    async with AsyncS3Cache(**kwargs, checksum=checksum, on_error="log") as cache:
        with caplog.at_level(logging.WARNING, logger="s3cache"):
            assert await cache.get("k", "miss") == "miss"
            assert await cache.get("k", "miss") == "miss"
        stats = cache.stats()
        assert stats.errors["checksum"] == 2
        assert stats.misses == 2
    assert len([r for r in caplog.records if "checksum mismatch" in r.getMessage()]) == 1
    assert proxy.count(Fault.CORRUPT_BODY) == 3
    proxy.clear()
    async with AsyncS3Cache(**kwargs, checksum=checksum, on_error="raise") as cache:
        assert await cache.get("k") == "x" * 100  # the stored entry was never damaged


@pytest.mark.moto_only("it stores a wrong checksum, which only moto keeps unverified")
@BOTH_PATHS
async def test_a_stored_checksum_that_does_not_match_is_detected(
    cache_kwargs: dict[str, Any], s3: Any, bucket: str, fast_path: bool
) -> None:
    """moto stores a checksum without verifying it: a wrong one stands for damage at rest."""
    s3.put_object(
        Bucket=bucket, Key="k", Body=b'"value"', ChecksumAlgorithm="CRC32", ChecksumCRC32="AAAAAA=="
    )
    async with AsyncS3Cache(
        **cache_kwargs, checksum="crc32", fast_path=fast_path, on_error="raise"
    ) as cache:
        with pytest.raises(ChecksumMismatchError):
            await cache.get("k")
    async with AsyncS3Cache(**cache_kwargs, fast_path=fast_path, on_error="raise") as cache:
        assert await cache.get("k") == "value"  # without checksum=, nothing is asked or checked


# -- the exact headers sent, on both paths --------------------------------------------------------


def _sent(proxy: FaultProxy, method: str, listing: bool = False) -> list[dict[str, str]]:
    """Headers of the requests of ``method``: object requests, or listings with ``listing``."""
    return [
        h.headers
        for h in proxy.heads
        if h.method == method and ("list-type=2" in h.path) is listing
    ]


@pytest.mark.server_limit("ceph", "Ceph RGW 16.2 takes SSE-C over HTTPS only (400 here)")
@BOTH_PATHS
async def test_sse_c_owner_and_payer_headers_on_every_request(
    cache_kwargs: dict[str, Any], proxy: FaultProxy, fast_path: bool
) -> None:
    """moto does not enforce SSE-C keys (a GET without the key succeeds), the expected bucket
    owner, or requester pays: so this asserts what is sent, at a proxy in front of it."""
    kwargs = {**cache_kwargs, "endpoint_url": proxy.endpoint, "fast_path": fast_path}
    async with AsyncS3Cache(
        **kwargs,
        prefix="c",
        on_error="raise",
        sse_customer_key=KEY,
        expected_bucket_owner=OWNER,
        request_payer="requester",
    ) as cache:
        await cache.set("k", 1)
        assert await cache.get("k") == 1
        assert await cache.exists("k")
        assert await cache.delete("k")
        await cache.set_many({"j": 2, "i": 3})
        assert await cache.clear() == 2  # one DeleteObjects
        assert on_the_wire(cache) is fast_path
    sse_c = {
        "x-amz-server-side-encryption-customer-algorithm": "AES256",
        "x-amz-server-side-encryption-customer-key": KEY_B64,
        "x-amz-server-side-encryption-customer-key-md5": KEY_MD5,
    }
    every = {"x-amz-expected-bucket-owner": OWNER, "x-amz-request-payer": "requester"}
    for method in ("PUT", "GET", "HEAD"):
        for headers in _sent(proxy, method):
            assert sse_c.items() <= headers.items(), method
            assert every.items() <= headers.items(), method
            assert _signed(headers) >= set(sse_c) | set(every), method
            assert _took_the_wire(headers) is fast_path, method
    others = [*_sent(proxy, "DELETE"), *_sent(proxy, "POST"), *_sent(proxy, "GET", True)]
    for headers in others:  # DeleteObject, DeleteObjects and ListObjectsV2 (clear)
        assert every.items() <= headers.items()
        assert not set(sse_c) & set(headers)
    assert len(_sent(proxy, "GET", listing=True)) == 1
    assert len(_sent(proxy, "GET")) >= 1
    assert len(_sent(proxy, "HEAD")) >= 2  # exists(), delete()'s look-up
    assert proxy.methods["DELETE"] >= 1
    assert proxy.methods["POST"] == 1


def _took_the_wire(headers: dict[str, str]) -> bool:
    """botocore adds its invocation id to every request; the wire path has none."""
    return "amz-sdk-invocation-id" not in headers


def _signed(headers: dict[str, str]) -> set[str]:
    return set(headers["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";"))


@pytest.mark.moto_only("it asks for a KMS key and STANDARD_IA, which moto takes without a KMS")
@BOTH_PATHS
async def test_encryption_storage_class_and_checksum_headers_on_puts(
    cache_kwargs: dict[str, Any], proxy: FaultProxy, fast_path: bool
) -> None:
    kwargs = {**cache_kwargs, "endpoint_url": proxy.endpoint, "fast_path": fast_path}
    async with AsyncS3Cache(
        **kwargs,
        on_error="raise",
        sse="aws:kms",
        sse_kms_key_id="alias/aws/s3",
        sse_bucket_key_enabled=False,
        storage_class="STANDARD_IA",
        checksum="sha256",
    ) as cache:
        await cache.set("k", "v")
        assert await cache.get("k") == "v"
        assert await cache.exists("k")
    (put,) = _sent(proxy, "PUT")
    body = b'"v"'
    assert {
        "x-amz-server-side-encryption": "aws:kms",
        "x-amz-server-side-encryption-aws-kms-key-id": "alias/aws/s3",
        "x-amz-server-side-encryption-bucket-key-enabled": "false",
        "x-amz-storage-class": "STANDARD_IA",
        "x-amz-sdk-checksum-algorithm": "SHA256",
        "x-amz-checksum-sha256": base64.b64encode(hashlib.sha256(body).digest()).decode(),
    }.items() <= put.items()
    (get,) = _sent(proxy, "GET")
    assert get["x-amz-checksum-mode"] == "ENABLED"
    assert "x-amz-server-side-encryption" not in get
    (head,) = _sent(proxy, "HEAD")
    assert "x-amz-checksum-mode" not in head
    assert all(_took_the_wire(h) is fast_path for h in (put, get, head))


# -- a server that verifies signatures -------------------------------------------------------------


@pytest.fixture(scope="module")
def auth_moto() -> Iterator[AuthMoto]:
    server = AuthMoto()
    yield server
    server.close()


async def test_a_verifying_server_accepts_the_options_headers(auth_moto: AuthMoto) -> None:
    """Every new header is signed on the wire path as botocore signs it: moto recomputes each
    signature from the bytes it receives."""
    key_id = auth_moto.client("kms").create_key()["KeyMetadata"]["KeyId"]
    settings: list[dict[str, Any]] = [
        {
            "sse": "aws:kms",
            "sse_kms_key_id": key_id,
            "sse_bucket_key_enabled": True,
            "expected_bucket_owner": OWNER,
            "request_payer": "requester",
            "storage_class": "STANDARD_IA",
            "checksum": "crc32c",
        },
        {"sse_customer_key": KEY, "checksum": "crc64nvme", "expected_bucket_owner": OWNER},
    ]
    port = int(auth_moto.endpoint.rsplit(":", 1)[1])
    with FaultProxy(("127.0.0.1", port)) as proxy:
        for number, options in enumerate(settings):
            kwargs = {**signed_kwargs(auth_moto), "endpoint_url": proxy.endpoint}
            async with AsyncS3Cache(**kwargs, prefix=f"opt{number}", **options) as c:
                await c.set("k", {"n": number})
                assert await c.get("k") == {"n": number}
                assert await c.exists("k")
                assert await c.delete("k")
                assert on_the_wire(c)
        sent = [h.headers for h in proxy.heads]
    assert len(sent) == 2 * 5  # put, get, head, head and delete, each on the wire path
    assert all(_took_the_wire(headers) for headers in sent)
    listing = auth_moto.client("s3").list_objects_v2(Bucket="signed-bucket", Prefix="opt")
    assert listing["KeyCount"] == 0


# -- the SSE-C key never shows -------------------------------------------------------------------


async def test_the_customer_key_never_shows_in_logs_errors_or_stats(
    canned_error_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint = canned_error_server(403, "AccessDenied")
    kwargs: dict[str, Any] = {
        "endpoint_url": endpoint,
        "aws_access_key_id": "a",
        "aws_secret_access_key": "b",
        "region_name": "us-east-1",
        "sse_customer_key": KEY,
    }
    texts: list[str] = []
    with caplog.at_level(logging.DEBUG, logger="s3cache"):
        for fast in (True, False):
            async with AsyncS3Cache("some-bucket", **kwargs, fast_path=fast) as cache:
                assert await cache.get("k", "miss") == "miss"
                await cache.set("k", 1)
                texts += [repr(cache), repr(cache.stats()), repr(cache.transport.options)]
            async with AsyncS3Cache("some-bucket", **kwargs, on_error="raise") as cache:
                for call in (cache.get("k"), cache.set("k", 1), cache.exists("k"), cache.check()):
                    with pytest.raises(S3CacheError) as caught:
                        await call
                    texts += [str(caught.value), repr(caught.value)]
    texts += [r.getMessage() for r in caplog.records]
    assert len(texts) > 10
    for text in texts:
        assert KEY_B64 not in text
        assert KEY_MD5 not in text
        assert repr(KEY) not in text


def test_encryption_in_use_reads_the_response_headers() -> None:
    assert encryption_in_use({}) == "none reported by the server"
    assert encryption_in_use({"x-amz-server-side-encryption": "AES256"}) == "SSE-S3 (AES256)"
    sse_c = {"x-amz-server-side-encryption-customer-algorithm": "AES256"}
    assert encryption_in_use(sse_c) == "SSE-C (customer-provided key)"
