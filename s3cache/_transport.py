"""The transport's object operations: get, head, put, conditional put, delete, batch delete and
list, each written once over :class:`~s3cache._reply.Reply` and :mod:`s3cache._rules`.

Requests are sent by :mod:`s3cache._send` (slots, deadlines, retries, the wire path or
aiobotocore) on the clients of :mod:`s3cache._client`; bucket administration is
:mod:`s3cache._admin`. It knows object keys and payloads, not cache semantics: expiry and
decoding belong to the format layer and the core above it.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from s3cache import _nonce
from s3cache._admin import Admin
from s3cache._breaker import CircuitBreaker
from s3cache._bucket_options import checksum_mismatch
from s3cache._concurrency import paced
from s3cache._format import Body, Payload
from s3cache._rules import RULES, class_for_code
from s3cache._send import Request, Sender
from s3cache._settings import Settings
from s3cache.errors import (
    AccessDeniedError,
    ChecksumMismatchError,
    EncryptionError,
    S3CacheError,
)

__all__ = ["DELETE_BATCH", "ListedObject", "Transport", "Written"]

logger = logging.getLogger("s3cache")

#: DeleteObjects takes at most this many keys per request.
DELETE_BATCH: Final = 1000
#: The operations the transport sends, each with its parameters from the options.
_OPERATIONS: Final = (
    "GetObject",
    "HeadObject",
    "PutObject",
    "DeleteObject",
    "DeleteObjects",
    "ListObjectsV2",
    "HeadBucket",
    "GetBucketLifecycleConfiguration",
    "PutBucketLifecycleConfiguration",
    "DeleteBucketLifecycle",
    "GetBucketPolicy",
)
#: An entry's optional PutObject parameters, sent when set: (payload attribute, parameter).
_ENTRY_FIELDS: Final = (
    ("metadata", "Metadata"),
    ("expires", "Expires"),
    ("cache_control", "CacheControl"),
    ("content_encoding", "ContentEncoding"),
)
#: Error kinds of a DeleteObjects refused as a whole that single deletes may get past: 400s about
#: the request (``other``: Ceph's answer to an XML body it cannot parse) and 5xx (moto's).
_REFUSED_BATCH: Final = frozenset({"other", "server"})
#: A one-byte range: the cheapest GET that still carries an error body.
_BYTE: Final = "bytes=0-0"
_GET, _HEAD, _PUT = RULES["GetObject"], RULES["HeadObject"], RULES["PutObject"]
_PUT_IF_ABSENT, _PUT_IF_MATCH = RULES["PutObject If-None-Match"], RULES["PutObject If-Match"]
_DELETE, _DELETE_BATCH, _LIST = (
    RULES["DeleteObject"],
    RULES["DeleteObjects"],
    RULES["ListObjectsV2"],
)


@dataclass(frozen=True, slots=True)
class ListedObject:
    """One object from a listing."""

    key: str
    size: int
    last_modified: Any  # ISO 8601 text or a datetime, depending on the session's parser


@dataclass(frozen=True, slots=True)
class Written:
    """What a conditional PutObject came to (see :meth:`Transport.put_if`).

    ``stored``: the write is on the server. ``found``: the object's lower-cased HEAD headers
    after a refusal (None when there is none, or nothing was refused). Both set: the write was
    refused by its own earlier attempt (a lost response), and ``found`` describes it.
    """

    stored: bool
    found: Mapping[str, str] | None = None


class Transport(Sender):
    """S3 operations on one bucket, each bounded by a semaphore slot and a deadline.

    GetObject, HeadObject, PutObject and DeleteObject take the wire path (s3cache's own HTTP
    client and the signer in :mod:`s3cache._sigv4`) when ``fast_path`` is on and the client is
    eligible; every other request, and every request of an ineligible client, goes through
    aiobotocore. Both paths share the semaphore, the deadline, the retry policy and the error
    translation. ``admin`` holds the bucket-level operations.
    """

    def __init__(
        self, settings: Settings, watch: Callable[[CircuitBreaker], None] | None = None
    ) -> None:
        """The transport of a cache with these (validated) ``settings``; no client yet
        (``watch``: see :class:`~s3cache._send.Sender`)."""
        super().__init__(settings, watch)
        options = self.options
        self._params = {op: options.params(op) for op in _OPERATIONS}
        self._checksum = options.checksummer()  # body -> checksum parameters of a PUT
        self._verify = options.checksum is not None  # GETs ask for the checksum: check it
        self._head_probe = {**self._params["HeadObject"], "Range": _BYTE}
        #: Writes whose response was lost and that proved done, by S3 request: ``PutObject``
        #: (a conditional write refused by its own earlier attempt), ``DeleteObject`` (404).
        self.recovered: Counter[str] = Counter()
        #: Bucket administration (maintenance, check and the doctor).
        self.admin = Admin(self, self._params)

    def object_params(self, op: str) -> dict[str, Any]:
        """Parameters every request of ``op`` carries beyond bucket and key (encryption, bucket
        owner, requester pays, checksum mode: see :mod:`s3cache._options`), computed once: the
        one place both paths take them from, so options that add headers apply to both."""
        return dict(self._params[op])

    def put_params(self, payload: Payload, if_absent: bool, if_match: str | None) -> dict[str, Any]:
        """The PutObject parameters of an entry, besides Bucket, Key and Body."""
        params = self.object_params("PutObject")
        params["ContentType"] = payload.content_type
        params.update((name, v) for field, name in _ENTRY_FIELDS if (v := getattr(payload, field)))
        if if_absent:
            params["IfNoneMatch"] = "*"
        if if_match is not None:
            params["IfMatch"] = if_match
        if self._checksum is not None:
            params.update(self._checksum(payload.body))
        return params

    async def get(
        self, key: str, *, botocore: bool = False
    ) -> tuple[Body, Mapping[str, str]] | None:
        """Body and lower-cased headers of an object, or None when there is none.

        ``botocore=True`` sends it through aiobotocore whatever the route (``check()``).
        With ``checksum=``, a body that does not match the checksum the server returned with
        it raises :class:`ChecksumMismatchError`.
        """
        request = Request("GetObject", key, self._params["GetObject"], _GET)
        outcome, reply = await self.call(request, botocore=botocore)
        if outcome == "missing":
            return None
        if self._verify:
            wrong = checksum_mismatch(reply.body, reply.headers)
            if wrong is not None:
                raise ChecksumMismatchError(
                    f"GetObject {key!r}: checksum mismatch: {wrong}; the body was damaged in "
                    "transit or at rest"
                )
        return reply.body, reply.headers

    async def head(self, key: str, *, botocore: bool = False) -> Mapping[str, str] | None:
        """Lower-cased headers of an object, or None when there is none.

        ``botocore=True`` sends it through aiobotocore whatever the route (``check()``). A 403
        (which has no body, so no code) is explained by a one-byte GET, whose refusal says
        whether it is the credentials.
        """
        probe = Request("GetObject", key, self._head_probe, _GET)
        request = Request("HeadObject", key, self._params["HeadObject"], _HEAD, probe=probe)
        outcome, reply = await self.call(request, botocore=botocore)
        return None if outcome == "missing" else reply.headers

    async def put(self, key: str, payload: Payload, *, botocore: bool = False) -> Mapping[str, str]:
        """Write an object, unconditionally (conditional writes: :meth:`put_if`); the reply's
        lower-cased headers (its ``date``: when the server answered)."""
        params = self.put_params(payload, False, None)
        request = Request("PutObject", key, params, _PUT, payload.body)
        _, reply = await self.call(request, botocore=botocore)
        return reply.headers

    async def put_probe(self, key: str, payload: Payload, *, botocore: bool = False) -> None:
        """PUT a probe (for ``check()`` and the doctor); when it is refused, name the encryption
        the bucket policy requires, if the policy says (:class:`EncryptionError`)."""
        try:
            await self.put(key, payload, botocore=botocore)
        except AccessDeniedError as exc:
            required = await self.admin.required_encryption()
            if required is None:
                raise
            raise EncryptionError(f"{exc}; {required}") from exc

    async def put_if(
        self,
        key: str,
        payload: Payload,
        *,
        if_absent: bool = False,
        if_match: str | None = None,
        botocore: bool = False,
    ) -> Written:
        """A conditional write that learns its own outcome, even when its response is lost.

        ``if_absent`` sends ``If-None-Match: *``; ``if_match`` an ETag, sent as given: in the
        form the server honours (see :mod:`s3cache._capabilities`). The write carries a fresh
        nonce (:mod:`s3cache._nonce`).
        A refusal (412, 409 ConditionalRequestConflict, or 404 to ``If-Match``) is checked with
        a HEAD: when the object there carries our nonce, an earlier attempt of this very write
        landed and its response was lost (botocore retries inside one call, so that attempt is
        not always seen): the write succeeded, and :attr:`recovered` counts it. Otherwise the
        refusal stands, with what the HEAD found.
        """
        if not if_absent and if_match is None:
            raise ValueError("put_if needs if_absent=True or an if_match ETag")
        sent, nonce = _nonce.stamped(payload)
        params = self.put_params(sent, if_absent, if_match)
        rules = _PUT_IF_MATCH if if_match is not None else _PUT_IF_ABSENT
        request = Request("PutObject", key, params, rules, sent.body)
        outcome, _ = await self.call(request, botocore=botocore)
        if outcome == "ok":
            return Written(True)
        found = await self.head(key, botocore=botocore)
        if not _nonce.is_own(found, nonce):
            return Written(False, found)
        self.recovered["PutObject"] += 1
        logger.info(
            "s3cache: PutObject %r was refused by its own earlier attempt, whose response was "
            "lost: it is stored",
            key,
        )
        return Written(True, found)

    async def delete(self, key: str, *, botocore: bool = False) -> None:
        """Delete one object. A 404 NoSuchKey counts as deleted: S3 answers 204 for a missing
        key, but servers that answer 404 make a retry after a lost response meet one."""
        request = Request("DeleteObject", key, self._params["DeleteObject"], _DELETE)
        outcome, _ = await self.call(request, botocore=botocore)
        if outcome == "gone":
            self.recovered["DeleteObject"] += 1
            logger.debug("s3cache: DeleteObject %r: already gone (404 NoSuchKey)", key)

    async def delete_batch(self, keys: Sequence[str]) -> dict[str, S3CacheError]:
        """Delete up to :data:`DELETE_BATCH` objects in one request; returns the keys the server
        reported as not deleted, each with its error ({} when all went)."""
        if not keys:
            return {}
        if len(keys) > DELETE_BATCH:
            raise ValueError(f"DeleteObjects takes at most {DELETE_BATCH} keys, not {len(keys)}")
        params = {
            "Delete": {"Objects": [{"Key": k} for k in keys], "Quiet": True},
            **self._params["DeleteObjects"],
        }
        request = Request("DeleteObjects", keys[0], params, _DELETE_BATCH, has_key=False)
        _, reply = await self.call(request, botocore=True)
        failed: dict[str, S3CacheError] = {}
        for error in reply.data.get("Errors") or []:
            key, code = str(error.get("Key")), str(error.get("Code") or "?")
            failed[key] = class_for_code(code, 0)(f"DeleteObjects {key!r}: {code}")
        return failed

    async def delete_many(self, keys: Sequence[str]) -> dict[str, S3CacheError]:
        """Delete objects; returns those that could not be deleted, with why ({} when all went).

        The one home of batch deletes. One key is a DeleteObject; more go in DeleteObjects
        batches of up to 1,000, paced through the concurrency bound. A batch the server refuses
        as a whole (a 4xx about the request, or a 5xx: what one key its XML body cannot carry
        causes) is retried key by key, so such a key fails alone. A batch that timed out or
        could not connect is reported for all its keys: one by one would fare no better.
        """
        width = self.max_concurrency
        if len(keys) == 1:
            return _failures(keys, await paced(self.delete, keys, width))
        batches = [keys[i : i + DELETE_BATCH] for i in range(0, len(keys), DELETE_BATCH)]
        failed: dict[str, S3CacheError] = {}
        one_by_one: list[str] = []
        for batch, outcome in zip(
            batches, await paced(self.delete_batch, batches, width), strict=True
        ):
            if not isinstance(outcome, S3CacheError):
                failed.update(outcome)  # keys the server listed under Errors
            elif outcome.kind in _REFUSED_BATCH:
                one_by_one += batch
            else:
                failed.update(dict.fromkeys(batch, outcome))
        failed.update(_failures(one_by_one, await paced(self.delete, one_by_one, width)))
        return failed

    async def list_page(
        self, prefix: str, token: str | None
    ) -> tuple[list[ListedObject], str | None]:
        """One page (up to 1,000 objects) under ``prefix``, and the token of the next."""
        params: dict[str, Any] = {"Prefix": prefix, **self._params["ListObjectsV2"]}
        if token is not None:
            params["ContinuationToken"] = token
        request = Request("ListObjectsV2", prefix, params, _LIST, has_key=False)
        _, reply = await self.call(request, botocore=True)
        resp = reply.data
        objects = [
            ListedObject(o["Key"], int(o.get("Size", 0)), o.get("LastModified"))
            for o in resp.get("Contents") or []
        ]
        return objects, resp.get("NextContinuationToken") if resp.get("IsTruncated") else None


def _failures(keys: Sequence[str], outcomes: Sequence[object]) -> dict[str, S3CacheError]:
    return {k: r for k, r in zip(keys, outcomes, strict=True) if isinstance(r, S3CacheError)}
