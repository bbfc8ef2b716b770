"""Reading what encryption a bucket policy requires of PutObject."""

from __future__ import annotations

import json
from typing import Any

import pytest

from s3cache._policy import required_encryption

KEY_ARN = "arn:aws:kms:eu-west-1:111122223333:key/0b1c"


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def deny(condition: dict[str, Any], action: Any = "s3:PutObject", sid: str = "S") -> dict[str, Any]:
    return {
        "Sid": sid,
        "Effect": "Deny",
        "Principal": "*",
        "Action": action,
        "Resource": "arn:aws:s3:::bucket/*",
        "Condition": condition,
    }


SSE = "s3:x-amz-server-side-encryption"


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (
            policy(deny({"StringNotEquals": {SSE: "aws:kms"}}, sid="RequireKMS")),
            "the bucket policy (statement(s) 'RequireKMS') denies PutObject without "
            "x-amz-server-side-encryption: aws:kms: pass sse='aws:kms' (--sse aws:kms)",
        ),
        (
            policy(
                deny({"StringNotEquals": {SSE: "aws:kms"}}, sid="Mode"),
                deny(
                    {"StringNotEquals": {f"{SSE}-aws-kms-key-id": KEY_ARN}},
                    action=["s3:PutObject"],
                    sid="Key",
                ),
            ),
            "the bucket policy (statement(s) 'Mode', 'Key') denies PutObject without "
            f"x-amz-server-side-encryption: aws:kms with the KMS key {KEY_ARN}: pass "
            f"sse='aws:kms', sse_kms_key_id='{KEY_ARN}' (--sse aws:kms --sse-kms-key-id "
            f"{KEY_ARN})",
        ),
        (
            policy(deny({"StringNotEqualsIgnoreCase": {SSE: "AES256"}}, action="s3:*")),
            "the bucket policy (statement(s) 'S') denies PutObject without "
            "x-amz-server-side-encryption: AES256: pass sse='AES256' (--sse AES256)",
        ),
        (
            policy(deny({"Null": {SSE: "true"}})),
            "the bucket policy (statement(s) 'S') denies PutObject without an "
            "x-amz-server-side-encryption header: pass sse='AES256' or sse='aws:kms' "
            "(--sse AES256 or --sse aws:kms)",
        ),
        (
            policy(deny({"Null": {f"{SSE}-customer-algorithm": "true"}})),
            "the bucket policy (statement(s) 'S') denies PutObject without SSE-C: pass "
            "sse_customer_key (--sse-customer-key)",
        ),
    ],
    ids=["kms", "kms-key", "aes256-any-action", "header-present", "sse-c"],
)
def test_the_requirement_is_named_with_the_options_that_meet_it(
    document: str, expected: str
) -> None:
    assert required_encryption(document) == expected


@pytest.mark.parametrize(
    "document",
    [
        "not json",
        "[]",
        policy(),
        policy({"Effect": "Allow", "Action": "s3:PutObject", "Principal": "*"}),
        policy(deny({"StringNotEquals": {SSE: "aws:kms"}}, action="s3:GetObject")),
        policy(deny({"Bool": {"aws:SecureTransport": "false"}})),
        policy(deny({"Null": {SSE: "false"}})),
    ],
)
def test_policies_without_an_encryption_requirement(document: str) -> None:
    assert required_encryption(document) is None
