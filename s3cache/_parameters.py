"""The constructor's parameters, documented once: the docstring of :class:`AsyncS3Cache` (and so
``help()`` of both surfaces) is built from :data:`PARAMETERS`, keeping the core's module about
its operations."""

from __future__ import annotations

from typing import Final

__all__ = ["PARAMETERS", "document"]

#: Every parameter of ``AsyncS3Cache(...)`` (and ``S3Cache(...)``), in signature order.
PARAMETERS: Final = """\
    Parameters:
        bucket: The bucket that holds the entries.
        prefix: Folder for the entries inside the bucket (``""``: the whole bucket). Keys map
            ``:`` to ``/`` under it.
        region_name: The bucket's region (botocore's default chain when None).
        endpoint_url: An S3-compatible server (``http://localhost:9000``); None for AWS.
        use_ssl: False for plain HTTP where the endpoint is not given as a URL.
        verify: TLS verification: True, False, or a CA bundle path.
        aws_access_key_id: Static credentials, with ``aws_secret_access_key`` (and optionally
            ``aws_session_token``); None: botocore's credential chain (env, profile, IMDS...).
        aws_secret_access_key: See ``aws_access_key_id``.
        aws_session_token: See ``aws_access_key_id``.
        session: An aiobotocore ``AioSession`` or aioboto3 ``Session`` to take credentials,
            profiles and event hooks from (default: a session of its own).
        api_version: Passed to ``create_client``.
        config: A botocore ``Config`` merged over s3cache's defaults (standard retries, three
            attempts; checksums only when required; a pool of ``max_concurrency``).
        default_ttl: Seconds (or a ``timedelta``) for writes without a ttl; None: no expiry.
        max_concurrency: Requests in flight at most, per event loop (also the pool size).
        timeout: Each operation's deadline in seconds, waiting for a slot included.
        serializer: Encodes values to bodies and back: ``"json"`` (the default,
            :class:`JsonSerializer`), ``"pickle"`` (only with a ``signing_key``), ``"msgpack"``
            (the ``msgpack`` extra) or an object with ``content_type``, ``dumps`` and ``loads``;
            each entry records it, and a cache with another refuses it (``corrupt``). ``bytes``
            are always stored raw.
        on_error: ``"log"`` (store failures are misses, logged and counted) or ``"raise"``.
        local: A :class:`LocalTier` to keep recent entries in process (None: off).
        observer: A :class:`CacheObserver` told of every finished operation.
        compression: ``"zstd"`` or ``"gzip"`` for bodies of at least ``compression_threshold``
            bytes (None: off); recorded in ``Content-Encoding``.
        compression_threshold: The smallest body, in bytes, that is compressed.
        fast_path: True (the default) sends object gets, heads, puts and deletes over
            s3cache's own HTTP/1.1 client and SigV4 signer where that is equivalent to
            aiobotocore; False sends every request through aiobotocore (botocore event hooks,
            Stubber, tracing).
        sse: Server-side encryption of PUTs: None (the bucket's default), ``"AES256"``
            (SSE-S3), ``"aws:kms"`` (SSE-KMS) or ``"aws:kms:dsse"`` (DSSE-KMS).
        sse_kms_key_id: The KMS key (id, ARN or alias) of a KMS mode; None: AWS's ``aws/s3``
            key. A key id without a KMS mode is a ValueError.
        sse_bucket_key_enabled: True or False turns S3 Bucket Keys on or off for KMS PUTs
            (fewer KMS calls); None leaves the bucket's setting. Only with a KMS mode.
        sse_customer_key: 32 bytes for SSE-C; the key and its MD5 go on every PUT, GET and
            HEAD. Never shown in ``repr``, logs, errors or stats. Not with ``sse``.
        expected_bucket_owner: A 12-digit account id, sent as ``x-amz-expected-bucket-owner``
            on every request: a bucket of another account is refused (``BucketOwnerError``).
        checksum: None (checksums only where S3 requires them), ``"crc32"``, ``"crc32c"``,
            ``"sha256"`` or ``"crc64nvme"`` (the last two with ``awscrt``): each PUT carries
            the body's checksum for the server to verify; each GET verifies the one it gets
            back (``ChecksumMismatchError``, a ``CorruptEntryError``: a miss when logging).
        storage_class: The S3 storage class of PUTs (``"STANDARD_IA"``...; the archive classes
            GLACIER and DEEP_ARCHIVE are refused: entries there could not be read).
        request_payer: ``"requester"`` for requester-pays buckets, on every request.
        signing_key: bytes (at least 16), or a list of them for rotation: every entry written
            carries an HMAC-SHA256 by the first key, and an entry read is served only when it
            verifies with one of them; unsigned, unknown-key or altered entries are misses,
            counted in ``stats().unverified``. Never shown in ``repr``, logs or errors.
        stale_ttl: ``get_or_set``'s default ``stale_ttl``, recorded on each write (see Freshness).
        pacing: True: adaptive pacing on SlowDown, per bucket and process (README "Pacing");
            off by default.
        create_bucket: True: a missing bucket is created (idempotently) and the request resent.
        tag_check_interval: Seconds a reader trusts what it learned of a tag record (one GET
            per tag per interval per process; 0: check on every read); see "Invalidation".
        breaker: The circuit breaker of the endpoint: True (the default: :class:`Breaker`'s
            defaults), a :class:`Breaker` with other thresholds, or False/None (off). Open,
            it fails operations at once with ``CircuitOpenError`` (README "Circuit breaker").
        stale_if_error: ``get`` and ``get_or_set``'s default ``stale_if_error`` window (see
            Freshness): while the store fails, serve the newest value seen that long past its
            ttl.
        negative_ttl: The default ttl of a tombstone stored when a factory returns
            ``ABSENT`` (None: the entry's ttl).
        telemetry: True: OpenTelemetry metrics through the global meter provider, as
            ``s3cache.telemetry.instrument(cache)`` (needs ``s3cache-async[otel]``).
        pricing: The price table ``stats().spend`` is computed at: None (S3 Standard,
            us-east-1), a preset name (``"s3-standard"``, ``"s3-express"``, ``"r2"``,
            ``"self-hosted"``) or a ``PriceTable``.
"""


def document(doc: str | None) -> str:
    """``doc`` with its ``{parameters}`` line replaced by :data:`PARAMETERS`."""
    if doc is None or "{parameters}" not in doc:
        raise ValueError("the docstring has no {parameters} line")
    return doc.replace("    {parameters}\n", PARAMETERS + "\n", 1)
