"""The wire path's SigV4 signer against botocore's ``S3SigV4Auth``, byte for byte."""

from __future__ import annotations

import datetime
import hashlib
import itertools
from typing import Any

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import ReadOnlyCredentials

from s3cache._sigv4 import (
    EMPTY_SHA256,
    UNSIGNED_PAYLOAD,
    AmzDate,
    Signer,
    quote_key,
    signed_host,
)

FIXED = datetime.datetime(2024, 1, 31, 23, 59, 58)  # botocore signs with a naive UTC datetime
AMZ_DATE = "20240131T235958Z"

KEYS = [
    "plain/key.json",
    "with space/and  two",
    "unicode/ключ/日本語/émoji-😀",
    "plus+sign",
    "tilde~x",
    "percent%20literal%2F",
    "equals=and&amp",
    "star*quote'paren(x)",
    "repeated//slash///x",
    "/leading-slash",
    "trailing/",
    "mixed:colon;semi,comma!bang$dollar@at",
]
ENDPOINTS = [
    # (endpoint as botocore's ruleset resolves it, region) -- path and virtual-host style
    ("http://127.0.0.1:9000/bucket", "us-east-1"),
    ("https://bucket.s3.eu-west-1.amazonaws.com", "eu-west-1"),
    ("https://s3.ap-southeast-2.amazonaws.com/my.dotted.bucket", "ap-southeast-2"),
    ("https://MinIO.Example.COM:443/bucket", "us-west-2"),
    ("http://[::1]:8080/bucket", "us-east-1"),
]
CREDENTIALS = [
    ReadOnlyCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", None),
    ReadOnlyCredentials("ASIATEMP", "secret/with+chars=", "FwoGZXIvYXdzE//session+token=="),
]
PUT_HEADERS = {
    "Content-Type": "application/json",
    "Cache-Control": "max-age=60",
    "Expires": "Thu, 01 Feb 2024 00:00:58 GMT",
    "Content-Encoding": "zstd",
    "x-amz-meta-s3cache-ttl": "60",
    "x-amz-meta-spaced": "  two   spaces\there ",
}
CONDITIONS: list[dict[str, str]] = [{}, {"If-None-Match": "*"}, {"If-Match": '"0123abcd"'}]
#: The headers of the company-bucket options, spelt as botocore's model spells them.
OWNER_AND_PAYER = {
    "x-amz-expected-bucket-owner": "111122223333",
    "x-amz-request-payer": "requester",
}
SSE_C = {
    "x-amz-server-side-encryption-customer-algorithm": "AES256",
    "x-amz-server-side-encryption-customer-key": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    "x-amz-server-side-encryption-customer-key-MD5": "tP/LI3N87DFaSk0aoqYgzg==",
}
PUT_OPTIONS: list[dict[str, str]] = [
    {
        "x-amz-server-side-encryption": "aws:kms",
        "x-amz-server-side-encryption-aws-kms-key-id": "arn:aws:kms:eu-west-1:111122223333:key/1",
        "x-amz-server-side-encryption-bucket-key-enabled": "true",
        "x-amz-storage-class": "STANDARD_IA",
        "x-amz-sdk-checksum-algorithm": "CRC32C",
        "x-amz-checksum-crc32c": "yZRlqg==",
        **OWNER_AND_PAYER,
    },
    {"x-amz-server-side-encryption": "AES256", "x-amz-checksum-crc64nvme": "jSnVw/bqjr4="},
    {**SSE_C, "x-amz-checksum-sha256": "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek="},
]
READ_OPTIONS: list[dict[str, str]] = [
    {**SSE_C, **OWNER_AND_PAYER, "x-amz-checksum-mode": "ENABLED"},
    OWNER_AND_PAYER,
]


Case = tuple[str, str, str, ReadOnlyCredentials, dict[str, str], bytes, bool]


def cases() -> list[Case]:
    """(method, endpoint, key, credentials, headers, body, sign the body?) for every row."""
    out: list[Case] = []
    for (endpoint, _region), key, creds in itertools.product(ENDPOINTS, KEYS, CREDENTIALS):
        out.append(("GET", endpoint, key, creds, {}, b"", True))
        out.append(("HEAD", endpoint, key, creds, {}, b"", True))
        out.append(("DELETE", endpoint, key, creds, {}, b"", True))
        for condition in CONDITIONS:
            body = f"body of {key}".encode()
            out.append(("PUT", endpoint, key, creds, {**PUT_HEADERS, **condition}, body, True))
        out.append(("PUT", endpoint, key, creds, dict(PUT_HEADERS), b"unsigned", False))
        for options in PUT_OPTIONS:
            body = f"body of {key}".encode()
            out.append(("PUT", endpoint, key, creds, {**PUT_HEADERS, **options}, body, True))
        for options in READ_OPTIONS:
            out.append(("GET", endpoint, key, creds, dict(options), b"", True))
            out.append(("HEAD", endpoint, key, creds, dict(options), b"", True))
        out.append(("DELETE", endpoint, key, creds, dict(OWNER_AND_PAYER), b"", True))
    return out


def botocore_signed(
    method: str,
    url: str,
    region: str,
    creds: ReadOnlyCredentials,
    headers: dict[str, str],
    body: bytes,
    sign_body: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> AWSRequest:
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda *_, **__: FIXED)
    request = AWSRequest(method=method, url=url, headers=dict(headers), data=body)
    s3_config = {} if sign_body else {"payload_signing_enabled": False}
    request.context["client_config"] = Config(s3=s3_config)
    S3SigV4Auth(creds, "s3", region).add_auth(request)
    return request


def test_authorization_matches_botocore(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every method, key, endpoint style, region and credential kind of the table."""
    table = cases()
    assert len(table) > 1000
    mismatches = []
    for method, endpoint, key, creds, headers, body, sign_body in table:
        region = next(r for e, r in ENDPOINTS if e == endpoint)
        url = endpoint + "/" + quote_key(key)
        expected = botocore_signed(
            method, url, region, creds, headers, body, sign_body, monkeypatch
        ).headers
        ours: dict[str, Any] = {name.lower(): value for name, value in headers.items()}
        ours["host"] = signed_host(url)
        if not sign_body:
            payload_hash = UNSIGNED_PAYLOAD
        else:
            payload_hash = hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256
        path = "/" + url.split("/", 3)[3]
        Signer(region).sign(method, path, ours, payload_hash, creds, AMZ_DATE)
        got = (
            ours["authorization"],
            ours["x-amz-date"],
            ours["x-amz-content-sha256"],
            ours.get("x-amz-security-token"),
        )
        want = (
            expected["Authorization"],
            expected["X-Amz-Date"],
            expected["X-Amz-Content-SHA256"],
            expected.get("X-Amz-Security-Token"),
        )
        if got != want:
            mismatches.append((method, url, got, want))
    assert mismatches == []


def test_key_quoting_matches_botocore_serializer() -> None:
    from botocore.utils import percent_encode

    for key in KEYS:
        assert quote_key(key) == percent_encode(key, safe="/~")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9000/b/k",
        "http://Example.COM:80/b",
        "https://example.com:443/b",
        "https://example.com:8443/b",
        "http://[::1]:80/b",
        "http://[::1]:9000/b",
    ],
)
def test_signed_host_matches_botocore(url: str) -> None:
    from botocore.auth import _host_from_url

    assert signed_host(url) == _host_from_url(url)


def test_the_derived_key_is_cached_per_day_and_secret() -> None:
    signer = Signer("eu-west-1")
    first = signer.signing_key("AKID", "secret", "20240131")
    assert signer.signing_key("AKID", "secret", "20240131") is first
    assert signer.signing_key("AKID", "secret", "20240201") != first
    assert signer.signing_key("AKID", "rotated", "20240131") != first  # never a stale secret


def test_amz_date_formats_utc_seconds() -> None:
    clock = AmzDate()
    assert clock(1706745598.9) == AMZ_DATE
    assert clock(1706745599.0) == "20240131T235959Z"
