"""A cache's settings: the constructor's arguments validated once into one frozen object.

Pure and sans-IO. :meth:`Settings.build` runs every check (each names its argument, never a
secret) before any client exists; the core, the transport and the bucket options then read
their parts from it, so no argument travels by name through ``locals()``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final, Literal, TypedDict, Unpack

from botocore.config import Config

from s3cache import (
    _compression,
    _expiry,
    _freshness,
    _keys,
    _options,
    _pricing,
    _serializers,
    _signing,
    _tags,
)
from s3cache._breaker import Breaker, breaker_config
from s3cache._bucket_options import (
    BucketOptions,
    Checksum,
    RequestPayer,
    ServerSideEncryption,
    bucket_options,
)
from s3cache._compression import Compression, Compressor
from s3cache._format import Serializer
from s3cache._local import LocalTier
from s3cache._serializers import SerializerName
from s3cache._stats import CacheObserver

__all__ = ["DEFAULT_TIMEOUT", "Arguments", "OnError", "Settings"]

OnError = Literal["log", "raise"]
#: Each operation's deadline in seconds, by default.
DEFAULT_TIMEOUT: Final = 10.0


class Arguments(TypedDict):
    """The arguments of :class:`~s3cache.AsyncS3Cache`, as given (documented there)."""

    bucket: str
    prefix: str
    region_name: str | None
    endpoint_url: str | None
    use_ssl: bool
    verify: bool | str | None
    aws_access_key_id: str | None
    aws_secret_access_key: str | None
    aws_session_token: str | None
    session: Any
    api_version: str | None
    config: Config | None
    default_ttl: float | timedelta | str | None
    max_concurrency: int
    timeout: float
    serializer: Serializer | SerializerName | None
    on_error: OnError
    local: LocalTier | None
    observer: CacheObserver | None
    compression: Compression | None
    compression_threshold: int
    fast_path: bool
    sse: ServerSideEncryption | None
    sse_kms_key_id: str | None
    sse_bucket_key_enabled: bool | None
    sse_customer_key: bytes | None
    expected_bucket_owner: str | None
    checksum: Checksum | None
    storage_class: str | None
    request_payer: RequestPayer | None
    signing_key: bytes | Sequence[bytes] | None
    stale_ttl: float | timedelta | str | None  # issue 23: freshness
    pacing: bool
    create_bucket: bool
    tag_check_interval: float  # issue 24: invalidation by tag
    breaker: Breaker | bool | None  # issue 23: the circuit breaker
    stale_if_error: float | timedelta | str | None
    negative_ttl: float | timedelta | str | None
    telemetry: bool  # issue 27: OpenTelemetry metrics (s3cache.telemetry)
    pricing: str | _pricing.PriceTable | None  # issue 27: spend in stats()


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """What :class:`~s3cache.AsyncS3Cache` was built with, validated and normalised.

    ``client_kwargs`` go to aiobotocore's ``create_client`` as given (credentials among them:
    never shown); ``config`` is the user's botocore ``Config``, merged over s3cache's defaults
    by the transport. ``prefix`` is normalised (empty, or ending in ``/``), ``default_ttl`` is
    in seconds, ``raise_errors`` is ``on_error == "raise"``, ``options`` the validated
    company-bucket options and ``signing_keys`` the keys of ``signing_key=`` (the first signs).
    ``freshness`` is the default read :class:`~s3cache._freshness.Policy` (``stale_ttl=``,
    ``stale_if_error=``); ``breaker`` the circuit breaker's settings (None: off);
    ``negative_ttl`` the default ttl of a tombstone, in seconds (None: the entry's ttl).
    """

    bucket: str
    prefix: str
    endpoint_url: str | None
    client_kwargs: Mapping[str, Any] = field(repr=False)
    session: Any = field(repr=False)
    config: Config | None
    default_ttl: float | None
    max_concurrency: int
    timeout: float
    serializer: Serializer
    raise_errors: bool
    local: LocalTier | None
    observer: CacheObserver | None
    compressor: Compressor | None
    fast_path: bool
    options: BucketOptions
    signing_keys: tuple[bytes, ...] = field(repr=False)
    freshness: _freshness.Policy
    pacing: bool = False
    create_bucket: bool = False
    #: Seconds a check of a tag record stays good (``tag_check_interval=``; 0: every read).
    tag_check_interval: float = 1.0
    breaker: Breaker | None = None
    negative_ttl: float | None = None
    telemetry: bool = False
    pricing: _pricing.PriceTable = _pricing.S3_STANDARD

    @classmethod
    def build(cls, **given: Unpack[Arguments]) -> Settings:
        """Validate every argument: ``TypeError`` or ``ValueError`` naming the first one that
        is wrong, before any client exists."""
        _options.check_bucket(given["bucket"])
        _options.check_limits(given["max_concurrency"], given["timeout"])
        _options.check_on_error(given["on_error"])
        _options.check_endpoint(given["endpoint_url"], given["use_ssl"])
        _options.check_credentials(
            given["aws_access_key_id"],
            given["aws_secret_access_key"],
            given["aws_session_token"],
            given["session"],
        )
        _options.check_extensions(
            given["serializer"], given["local"], given["observer"], given["fast_path"]
        )
        options = _bucket_options(given)
        keys = _signing.signing_keys(given["signing_key"])
        flags = {n: given[n] for n in ("create_bucket", "pacing", "telemetry")}
        for flag, value in flags.items():
            if not isinstance(value, bool):
                raise TypeError(f"{flag} must be True or False, not {value!r}")
        serializer = given["serializer"]
        return cls(
            bucket=given["bucket"],
            prefix=_keys.normalize_prefix(given["prefix"]),
            endpoint_url=given["endpoint_url"],
            client_kwargs={
                "region_name": given["region_name"],
                "endpoint_url": given["endpoint_url"],
                "aws_access_key_id": given["aws_access_key_id"],
                "aws_secret_access_key": given["aws_secret_access_key"],
                "aws_session_token": given["aws_session_token"],
                "api_version": given["api_version"],
                "use_ssl": given["use_ssl"],
                "verify": given["verify"],
            },
            session=given["session"],
            config=given["config"],
            default_ttl=_expiry.normalize_ttl(given["default_ttl"], "default_ttl"),
            max_concurrency=given["max_concurrency"],
            timeout=float(given["timeout"]),
            serializer=_serializers.resolve(serializer, signed=bool(keys)),
            raise_errors=given["on_error"] == "raise",
            local=given["local"],
            observer=given["observer"],
            compressor=_compression.make_compressor(
                given["compression"], given["compression_threshold"]
            ),
            fast_path=given["fast_path"],
            options=options,
            signing_keys=keys,
            freshness=_freshness.policy(given["stale_ttl"], given["stale_if_error"]),
            pacing=given["pacing"],
            create_bucket=given["create_bucket"],
            tag_check_interval=_tags.tag_check_interval(given["tag_check_interval"]),
            breaker=breaker_config(given["breaker"]),
            negative_ttl=_expiry.normalize_ttl(given["negative_ttl"], "negative_ttl"),
            telemetry=given["telemetry"],
            pricing=_pricing.price_table(given["pricing"]),
        )

    @property
    def shown_endpoint(self) -> str | None:
        """The endpoint URL for messages and ``repr``: any user:password part removed."""
        return _options.redact_url(self.endpoint_url)

    @property
    def where(self) -> tuple[str, str | None, str | None]:
        """The bucket, the shown endpoint and the region given (None: botocore's chain), for
        the messages of configuration errors."""
        return self.bucket, self.shown_endpoint, self.client_kwargs["region_name"]

    @property
    def secrets(self) -> list[bytes | None]:
        """What no log line may show while the cache is open: signing and SSE-C keys."""
        return [*self.signing_keys, self.options.sse_customer_key]


def _bucket_options(given: Arguments) -> BucketOptions:
    """The company-bucket options of ``given``, validated (see :mod:`s3cache._bucket_options`)."""
    return bucket_options(
        given["bucket"],
        sse=given["sse"],
        sse_kms_key_id=given["sse_kms_key_id"],
        sse_bucket_key_enabled=given["sse_bucket_key_enabled"],
        sse_customer_key=given["sse_customer_key"],
        expected_bucket_owner=given["expected_bucket_owner"],
        checksum=given["checksum"],
        storage_class=given["storage_class"],
        request_payer=given["request_payer"],
    )
