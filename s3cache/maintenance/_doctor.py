"""The doctor: checks a cache's bucket in ordered steps, one verdict per item, and names why.

Each step returns its items; the first required failure stops the run and the items of the
steps left are reported as skipped. Unlike :meth:`AsyncS3Cache.check`, which raises at the first
failure, the doctor never raises a store error.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Final, Literal

from s3cache import _expiry, _format
from s3cache._bucket_options import encryption_in_use
from s3cache._core import AsyncS3Cache
from s3cache.errors import (
    AccessDeniedError,
    BucketNotFoundError,
    CredentialsError,
    EndpointUnreachableError,
    S3CacheError,
    StoreTimeoutError,
)
from s3cache.maintenance._lifecycle import lifecycle_rules

__all__ = ["CLOCK_SKEW_WARN_S", "DoctorItem", "DoctorStatus", "doctor"]

#: Beyond this clock difference the doctor warns (TTLs use the server clock, signing does not).
CLOCK_SKEW_WARN_S: Final = 30.0

DoctorStatus = Literal["pass", "fail", "warn", "skip"]


@dataclass(frozen=True, slots=True)
class DoctorItem:
    """One line of :func:`doctor`: what was checked, the verdict, and why."""

    name: str
    status: DoctorStatus
    detail: str
    required: bool = True

    @property
    def failed(self) -> bool:
        """A required check that failed."""
        return self.required and self.status == "fail"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def _optional(name: str, status: DoctorStatus, detail: str) -> DoctorItem:
    return DoctorItem(name, status, detail, required=False)


@dataclass(slots=True)
class _Visit:
    """What the steps of one doctor run share: the cache, the probe written, the clock skew."""

    cache: AsyncS3Cache
    probe: str | None = None
    payload: _format.Payload | None = None
    skew: float | None = None
    encryption: str | None = None  # as the server says the probe is stored
    notes: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"s3://{self.cache.bucket}/{self.cache.prefix}"

    @property
    def endpoint(self) -> str:
        return self.cache.endpoint_url or "the default AWS endpoint"


Step = Callable[[_Visit], Awaitable[list[DoctorItem]]]

_REACH: Final = ("endpoint reachable", "credentials accepted", "bucket exists")


async def _reach(visit: _Visit) -> list[DoctorItem]:
    """HeadBucket: the endpoint answers, accepts the credentials, and has the bucket."""
    answered = f"{visit.endpoint} answered"
    accepted = DoctorItem("credentials accepted", "pass", "signed requests are accepted")
    started = time.perf_counter()
    try:
        await visit.cache.transport.admin.head_bucket()
    except (EndpointUnreachableError, StoreTimeoutError) as exc:
        return [DoctorItem("endpoint reachable", "fail", str(exc))]
    except CredentialsError as exc:
        return [
            DoctorItem("endpoint reachable", "pass", answered),
            DoctorItem("credentials accepted", "fail", str(exc)),
        ]
    except BucketNotFoundError as exc:
        reached = DoctorItem("endpoint reachable", "pass", answered)
        return [reached, accepted, DoctorItem("bucket exists", "fail", str(exc))]
    except AccessDeniedError as exc:  # HeadBucket needs s3:ListBucket; carry on to learn more
        reached = DoctorItem("endpoint reachable", "pass", answered)
        denied = _optional("bucket exists", "warn", f"HeadBucket denied, cannot tell: {exc}")
        return [reached, accepted, denied]
    except S3CacheError as exc:
        return [DoctorItem("endpoint reachable", "fail", str(exc))]
    ms = (time.perf_counter() - started) * 1000
    return [
        DoctorItem("endpoint reachable", "pass", f"{visit.endpoint} answered in {ms:.0f} ms"),
        accepted,
        DoctorItem("bucket exists", "pass", f"bucket {visit.cache.bucket!r}"),
    ]


async def _list(visit: _Visit) -> list[DoctorItem]:
    try:
        await visit.cache.transport.list_page(visit.cache.prefix, None)
    except S3CacheError as exc:
        return [DoctorItem("list", "fail", str(exc))]
    return [DoctorItem("list", "pass", f"ListObjectsV2 under {visit.where}")]


async def _put(visit: _Visit) -> list[DoctorItem]:
    probe, payload = _format.probe_entry(visit.cache.prefix, time.time())
    try:
        await visit.cache.transport.put_probe(probe, payload)
    except S3CacheError as exc:  # a refusal names what the bucket policy requires, if it says
        return [DoctorItem("put", "fail", str(exc))]
    visit.probe, visit.payload = probe, payload
    return [DoctorItem("put", "pass", f"PutObject {probe!r}")]


async def _get(visit: _Visit) -> list[DoctorItem]:
    assert visit.probe is not None
    assert visit.payload is not None
    try:
        found = await visit.cache.transport.get(visit.probe)
    except S3CacheError as exc:
        return [DoctorItem("get", "fail", str(exc))]
    if found is None or found[0] != visit.payload.body:
        detail = f"GetObject {visit.probe!r}: the probe just written did not read back"
        return [DoctorItem("get", "fail", detail)]
    date = found[1].get("date")
    visit.skew = time.time() - _expiry.parse_http_date(date) if date else None
    visit.encryption = encryption_in_use(found[1])
    return [DoctorItem("get", "pass", "GetObject read the probe back")]


async def _delete(visit: _Visit) -> list[DoctorItem]:
    assert visit.probe is not None
    try:
        await visit.cache.transport.delete(visit.probe)
    except S3CacheError as exc:
        detail = f"{exc} (the probe expires in 60 s; purge-expired removes it)"
        return [DoctorItem("delete", "fail", detail)]
    visit.probe = None
    return [DoctorItem("delete", "pass", "DeleteObject removed the probe")]


async def _encryption(visit: _Visit) -> list[DoctorItem]:
    """The encryption the probe was stored with, and the one this cache asks for."""
    asked = visit.cache.transport.options.describe()
    detail = f"entries are stored with {visit.encryption}; this cache asks for {asked}"
    return [_optional("encryption", "pass", detail)]


async def _conditional(visit: _Visit) -> list[DoctorItem]:
    try:
        honoured = await visit.cache.supports_conditional_writes()
    except S3CacheError as exc:
        return [_optional("conditional writes", "warn", str(exc))]
    if honoured:
        return [
            _optional(
                "conditional writes", "pass", "If-None-Match: * is refused on an existing key"
            )
        ]
    detail = (
        "the server ignored If-None-Match: * and overwrote the object: add(), "
        "get_or_set(lease=...) and lock() raise NotSupportedError here"
    )
    return [_optional("conditional writes", "warn", detail)]


async def _replace(visit: _Visit) -> list[DoctorItem]:
    """If-Match on PutObject, which add() over an expired entry, leases and locks need, and its
    ETag form."""
    name = "conditional replace"
    try:
        form = (await visit.cache.capabilities()).if_match_form
    except S3CacheError as exc:
        return [_optional(name, "warn", str(exc))]
    if form is None:
        detail = (
            "the server does not honour If-Match on PutObject: add() over an expired entry, "
            "get_or_set(lease=...) and lock() raise NotSupportedError here"
        )
        return [_optional(name, "warn", detail)]
    if form == "unquoted":
        detail = (
            "If-Match is honoured only with the ETag unquoted (the server refuses it quoted, as "
            "S3 returns it): s3cache sends it unquoted"
        )
        return [_optional(name, "pass", detail)]
    return [_optional(name, "pass", "If-Match on the ETag is honoured")]


async def _clock(visit: _Visit) -> list[DoctorItem]:
    if visit.skew is None:
        return [_optional("clock skew", "skip", "no Date header from the server")]
    status: DoctorStatus = "pass" if abs(visit.skew) <= CLOCK_SKEW_WARN_S else "warn"
    detail = (
        f"this machine is {visit.skew:+.1f} s from the server's Date (1 s resolution); "
        "TTLs are judged on the server's clock"
    )
    return [_optional("clock skew", status, detail)]


async def _lifecycle(visit: _Visit) -> list[DoctorItem]:
    try:
        rules = await lifecycle_rules(visit.cache)
    except S3CacheError as exc:
        return [_optional("lifecycle rule", "warn", str(exc))]
    expiring = [
        r for r in rules if r.days is not None and r.status == "Enabled" and r.covers == "all"
    ]
    if not expiring:
        detail = (
            f"no enabled expiration rule covers {visit.where}: expired entries stay until "
            "`s3cache purge-expired` (or `s3cache lifecycle set --days N`)"
        )
        return [_optional("lifecycle rule", "warn", detail)]
    best = min(expiring, key=lambda r: r.days or 0)
    detail = f"{best.id!r} expires objects after {best.days} days"
    return [_optional("lifecycle rule", "pass", detail)]


#: The steps in order, each with the names of the items it reports.
STEPS: Final[tuple[tuple[Step, tuple[str, ...]], ...]] = (
    (_reach, _REACH),
    (_list, ("list",)),
    (_put, ("put",)),
    (_get, ("get",)),
    (_encryption, ("encryption",)),
    (_delete, ("delete",)),
    (_conditional, ("conditional writes",)),
    (_replace, ("conditional replace",)),
    (_clock, ("clock skew",)),
    (_lifecycle, ("lifecycle rule",)),
)


async def doctor(cache: AsyncS3Cache) -> list[DoctorItem]:
    """Check the store step by step, one :class:`DoctorItem` each; never raises a store error.

    Required: endpoint reachable, credentials accepted, bucket exists, list, put, get, delete.
    Reported: the encryption entries are stored with (and, when the put is denied, the one the
    bucket policy requires). Warnings only: conditional create and replace honoured, clock skew,
    a lifecycle rule. The first required failure stops the run: the items after it are reported
    as skipped.
    """
    visit = _Visit(cache)
    items: list[DoctorItem] = []
    try:
        for index, (step, names) in enumerate(STEPS):
            found = await step(visit)
            items.extend(found)
            if any(item.failed for item in found):
                left = [*names[len(found) :], *(n for _, ns in STEPS[index + 1 :] for n in ns)]
                items.extend(
                    DoctorItem(n, "skip", "not checked: an earlier step failed") for n in left
                )
                break
    finally:
        if visit.probe is not None:  # a failed read left the probe behind: remove it quietly
            await _delete(visit)
    return items
