"""``check()``: prove a cache's bucket answers and takes a round trip, and report what the
server does not support (:class:`CheckReport`)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from s3cache import _expiry, _format
from s3cache._bucket_options import encryption_in_use
from s3cache._capabilities import Capabilities, Learner
from s3cache._send import unguarded
from s3cache._tags import tag_record_scopes
from s3cache._transport import Transport
from s3cache.errors import AccessDeniedError, S3CacheError

__all__ = ["CheckReport", "check"]


@dataclass(frozen=True, slots=True)
class CheckReport:
    """What :meth:`AsyncS3Cache.check` found: the bucket answered and took a round trip.

    ``encryption``: how the server says the probe entry was stored (``SSE-KMS, key ...``).
    ``conditional_writes``: ``If-None-Match: *`` is honoured (``add()`` needs it).
    ``conditional_replace``: ``If-Match`` is honoured on PutObject (``add()`` over an expired
    entry needs it), with the ETag ``if_match_etag`` ("quoted", the S3 form, or "unquoted").
    ``unsupported``: what this server does not do as S3 does, each with its consequence.
    ``clock_skew_s``: this machine's clock minus the server's ``Date`` (whole seconds;
    positive: ahead), None without a ``Date``; ``clock_offset_s``: the correction requests are
    signed with (the server's clock minus this machine's; 0.0 when the server never refused
    a request for its time). TTLs never depend on either: they are judged on the server's clock.
    ``tag_records``: how many tag records (``invalidate``) lie under the prefix, counted by one
    LIST (so at most 1,000: "at least" when there are more); None where listing is denied.
    """

    bucket: str
    prefix: str
    endpoint_url: str | None
    latency_ms: float
    clock_skew_s: float | None
    conditional_writes: bool
    conditional_replace: bool = True
    if_match_etag: str | None = "quoted"
    unsupported: tuple[str, ...] = ()
    encryption: str | None = None
    clock_offset_s: float = 0.0
    tag_records: int | None = None


async def check(
    transport: Transport,
    learner: Learner,
    prefix: str,
    endpoint_url: str | None,
    explain: Callable[[S3CacheError], tuple[S3CacheError, bool]],
) -> CheckReport:
    """:func:`round_trip`; a configuration error it raises is ``explain``-ed with its fix
    (:meth:`~s3cache._recorder.Recorder.explain`)."""
    try:
        with unguarded():  # it must say what the store does now: no circuit breaker
            return await round_trip(transport, learner, prefix, endpoint_url)
    except S3CacheError as exc:
        explained, _ = explain(exc)
        if explained is exc:
            raise
        raise explained from exc.__cause__


async def round_trip(
    transport: Transport, learner: Learner, prefix: str, endpoint_url: str | None
) -> CheckReport:
    """HeadBucket, then put and get a probe, learn the server's conditional writes on it afresh
    (published to the cache's ``learner``) and delete it, all through aiobotocore (whatever
    ``fast_path`` says); any failure raises its :class:`S3CacheError`."""
    # HeadBucket first (SeaweedFS creates a missing bucket on the first PutObject); it needs
    # s3:ListBucket, which a cache does not: when denied, the put will tell.
    with contextlib.suppress(AccessDeniedError):
        await transport.admin.head_bucket()
    probe, payload = _format.probe_entry(prefix, time.time())
    started = time.perf_counter()
    await transport.put_probe(probe, payload, botocore=True)
    try:
        found = await transport.get(probe, botocore=True)
        latency_ms = (time.perf_counter() - started) * 1000 / 2
        if found is None or found[0] != payload.body:
            raise S3CacheError(f"GetObject {probe!r}: the probe just written did not read back")
        date = found[1].get("date")
        skew = transport.clock.source() - _expiry.parse_http_date(date) if date else None
        capabilities = await learner.relearn(probe, payload)
    finally:
        await transport.delete(probe, botocore=True)
    records = await tag_records(transport, prefix)
    return CheckReport(
        bucket=transport.bucket,
        prefix=prefix,
        endpoint_url=endpoint_url,
        latency_ms=latency_ms,
        clock_skew_s=skew,
        conditional_writes=capabilities.conditional_create,
        encryption=encryption_in_use(found[1]),
        conditional_replace=capabilities.conditional_replace,
        if_match_etag=capabilities.if_match_form,
        unsupported=unsupported(capabilities),
        clock_offset_s=transport.clock.offset,
        tag_records=records,
    )


async def tag_records(transport: Transport, prefix: str) -> int | None:
    """The tag records under ``prefix``, counted by one LIST of both their scopes (plain and
    hashed keys share ``<prefix>.s3cache/tags``); None when listing is denied (a cache needs
    no s3:ListBucket)."""
    plain, _ = tag_record_scopes(prefix)
    try:
        objects, _ = await transport.list_page(plain.removesuffix("/"), None)
    except AccessDeniedError:
        return None
    return len(objects)


def unsupported(capabilities: Capabilities) -> tuple[str, ...]:
    """What the server does not do as S3 does, in words, with what s3cache does about it."""
    found: list[str] = []
    if not capabilities.conditional_create:
        found.append(
            "If-None-Match: * on PutObject is ignored: add(), get_or_set(lease=...) and lock() "
            "raise NotSupportedError"
        )
    if capabilities.if_match_form == "unquoted":
        found.append(
            "If-Match on PutObject refuses the quoted ETag (as S3 returns it): s3cache sends it "
            "unquoted"
        )
    elif capabilities.if_match_form is None:
        found.append(
            "If-Match on PutObject is not honoured: add() over an expired entry, "
            "get_or_set(lease=...) and lock() raise NotSupportedError"
        )
    return tuple(found)
