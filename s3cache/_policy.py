"""What encryption a bucket policy requires of a PutObject, read from the policy's Deny
statements (pure: the policy's JSON text in, words and the matching s3cache options out).

The usual forms are recognised: a Deny of ``s3:PutObject`` with ``StringNotEquals`` (or
``StringNotEqualsIgnoreCase``, ``ForAnyValue:``/``ForAllValues:`` variants) on
``s3:x-amz-server-side-encryption`` or ``s3:x-amz-server-side-encryption-aws-kms-key-id``, or
with ``Null`` on one of those or on ``s3:x-amz-server-side-encryption-customer-algorithm``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Final

__all__ = ["required_encryption"]

_SSE: Final = "s3:x-amz-server-side-encryption"
_KMS_KEY: Final = "s3:x-amz-server-side-encryption-aws-kms-key-id"
_SSE_C: Final = "s3:x-amz-server-side-encryption-customer-algorithm"
_PUT_ACTIONS: Final = frozenset({"s3:putobject", "s3:*", "*", "s3:put*"})


def required_encryption(policy: str) -> str | None:
    """The encryption ``policy`` requires of PutObject, in words with the options to set, or
    None when no Deny statement of it conditions on encryption (or it is not JSON)."""
    try:
        document = json.loads(policy)
    except ValueError:
        return None
    sse: set[str] = set()
    keys: set[str] = set()
    header = sse_c = False
    names: list[str] = []
    for statement in _put_denials(document):
        found = False
        for operator, conditions in (statement.get("Condition") or {}).items():
            if not isinstance(conditions, dict):
                continue
            base = operator.split(":")[-1].lower()
            for name, values in conditions.items():
                name = name.lower()
                listed = {str(v) for v in (values if isinstance(values, list) else [values])}
                if base == "null" and "true" in {v.lower() for v in listed}:
                    header |= name in (_SSE, _KMS_KEY)
                    sse_c |= name == _SSE_C
                    found |= name in (_SSE, _KMS_KEY, _SSE_C)
                elif base.startswith("stringnot") and name == _SSE:
                    sse |= listed
                    found = True
                elif base.startswith("stringnot") and name == _KMS_KEY:
                    keys |= listed
                    found = True
        if found:
            names.append(str(statement.get("Sid") or "without a Sid"))
    if not names:
        return None
    return _describe(sse, keys, header, sse_c, names)


def _put_denials(document: Any) -> Iterator[dict[str, Any]]:
    """The policy's Deny statements that apply to PutObject."""
    statements = document.get("Statement") if isinstance(document, dict) else None
    if isinstance(statements, dict):
        statements = [statements]
    for statement in statements or []:
        if not isinstance(statement, dict) or statement.get("Effect") != "Deny":
            continue
        actions = statement.get("Action") or []
        actions = [actions] if isinstance(actions, str) else actions
        if any(str(a).lower() in _PUT_ACTIONS for a in actions):
            yield statement


def _describe(sse: set[str], keys: set[str], header: bool, sse_c: bool, names: list[str]) -> str:
    """Words for the requirement and the options that meet it."""
    which = f"statement(s) {', '.join(repr(n) for n in names)}"
    if sse_c and not sse and not keys:
        return (
            f"the bucket policy ({which}) denies PutObject without SSE-C: pass "
            "sse_customer_key (--sse-customer-key)"
        )
    mode = sorted(sse)[0] if sse else ("aws:kms" if keys else None)
    if mode is None:  # only "the header must be present"
        return (
            f"the bucket policy ({which}) denies PutObject without an "
            "x-amz-server-side-encryption header: pass sse='AES256' or sse='aws:kms' "
            "(--sse AES256 or --sse aws:kms)"
        )
    wanted = f"x-amz-server-side-encryption: {' or '.join(sorted(sse)) if sse else mode}"
    option = f"sse={mode!r}"
    flag = f"--sse {mode}"
    if keys:
        key = sorted(keys)[0]
        wanted += f" with the KMS key {' or '.join(sorted(keys))}"
        option += f", sse_kms_key_id={key!r}"
        flag += f" --sse-kms-key-id {key}"
    return f"the bucket policy ({which}) denies PutObject without {wanted}: pass {option} ({flag})"
