"""The per-write nonce, pure and sans-IO: how a conditional write recognises itself.

A conditional PUT (``If-None-Match: *`` or ``If-Match``) that the server applied, but whose
response was lost, is retried, and the retry then meets its own write: 412. So every
conditional write carries a random nonce in user metadata (``x-amz-meta-s3cache-nonce``),
the same on every attempt of that write and different for every write. After a refusal, a HEAD
tells our own write (the nonce is ours: it succeeded) from someone else's (the refusal stands).
Readers ignore the field, so the format stays readable by every version.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Mapping

from s3cache._format import Payload
from s3cache._metadata import NONCE_HEADER, NONCE_METADATA

__all__ = ["NONCE_HEADER", "NONCE_METADATA", "is_own", "stamped"]


def stamped(payload: Payload) -> tuple[Payload, str]:
    """``payload`` with a fresh nonce in its metadata, and the nonce (16 hex digits)."""
    nonce = secrets.token_hex(8)
    metadata = {**payload.metadata, NONCE_METADATA: nonce}
    return dataclasses.replace(payload, metadata=metadata), nonce


def is_own(headers: Mapping[str, str] | None, nonce: str) -> bool:
    """Whether the object whose lower-cased HEAD ``headers`` these are is the write of ``nonce``."""
    return headers is not None and headers.get(NONCE_HEADER) == nonce
