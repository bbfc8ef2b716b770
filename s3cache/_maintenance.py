"""Storage hygiene on an :class:`AsyncS3Cache`: scan entries, stats, clear, purge expired entries,
manage a lifecycle rule, and a doctor that checks a bucket step by step.

S3 never deletes an expired entry by itself (``Expires`` is only a caching hint), so these are
the tools that reclaim storage. Expiry is judged exactly as reads judge it
(:func:`_format.remaining_ttl` on HEAD headers, on the server's clock), and no key outside the
cache's prefix is ever deleted.
The command line is one user of this module; library users can call the same functions.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping
from contextlib import aclosing
from dataclasses import asdict, dataclass
from typing import Any, Final, Literal, TypeVar

from s3cache import _format
from s3cache._core import AsyncS3Cache, _redact_url
from s3cache._transport import DELETE_BATCH, ListedObject
from s3cache.errors import (
    AccessDeniedError,
    BucketNotFoundError,
    CredentialsError,
    EndpointUnreachableError,
    S3CacheError,
    StoreTimeoutError,
)

__all__ = [
    "CheckItem",
    "ClearResult",
    "Entry",
    "LifecycleRule",
    "PurgeResult",
    "StorageStats",
    "clear",
    "doctor",
    "lifecycle_rule_id",
    "lifecycle_rules",
    "purge_expired",
    "remove_lifecycle",
    "scan",
    "set_lifecycle",
    "storage_stats",
]

T = TypeVar("T")
R = TypeVar("R")

#: Entries inspected (HEAD) concurrently per batch; the transport still bounds requests in flight.
DEFAULT_BATCH: Final = 250
#: ``storage_stats`` inspects at most this many entries to estimate the expired share.
DEFAULT_SAMPLE: Final = 1000
#: Beyond this clock difference ``doctor`` warns (TTLs use the server clock, signing does not).
CLOCK_SKEW_WARN_S: Final = 30.0
_RULE_ID_MAX: Final = 255

Status = Literal["pass", "fail", "warn", "skip"]


# -- entries -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entry:
    """One object under the prefix, with its expiry judged as a read would judge it."""

    key: str  #: the object key without the cache prefix
    object_key: str
    size: int
    age_s: float  #: seconds since it was written, on the server's clock
    ttl_s: float | None  #: the s3cache ttl it was written with (None: none, or a foreign entry)
    remaining_s: float | None  #: seconds left; None when it never expires
    expired: bool

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def _judge(headers: Mapping[str, str], now: float) -> tuple[float | None, bool]:
    """(remaining seconds, expired) exactly as a read decides; unreadable metadata is expired."""
    remaining = _format.safe_remaining_ttl(headers, now)
    return remaining, _format.is_expired(remaining)


def _entry(cache: AsyncS3Cache, okey: str, size: int, headers: Mapping[str, str]) -> Entry:
    now = time.time()
    remaining, expired = _judge(headers, now)
    date_raw = headers.get("date")
    modified_raw = headers.get("last-modified")
    try:
        server_now = _format.parse_http_date(date_raw) if date_raw else now
        age = server_now - _format.parse_http_date(modified_raw) if modified_raw else 0.0
    except ValueError:
        age = 0.0
    ttl_raw = headers.get(_format.TTL_HEADER)
    try:
        ttl = float(ttl_raw) if ttl_raw is not None else None
    except ValueError:
        ttl = None
    length = headers.get("content-length")
    return Entry(
        key=okey[len(cache.prefix) :],
        object_key=okey,
        size=int(length) if length and length.isdigit() else size,
        age_s=max(age, 0.0),
        ttl_s=ttl,
        remaining_s=remaining,
        expired=expired,
    )


def _scan_prefix(cache: AsyncS3Cache, prefix: str) -> str:
    """The full object-key prefix for ``prefix`` under the cache's (``:`` counts as ``/``)."""
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a str, not {type(prefix).__name__}")
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in prefix):
        raise ValueError("prefix contains a control character")
    return cache.prefix + prefix.replace(":", "/")


async def _pages(cache: AsyncS3Cache, full_prefix: str) -> AsyncGenerator[list[ListedObject], None]:
    """Listing pages under ``full_prefix``; the next page is fetched while this one is used.

    Every key is checked against the cache prefix: a listing is never trusted to stay inside.
    """
    transport = cache._transport
    pending = asyncio.ensure_future(transport.list_page(full_prefix, None))
    try:
        while True:
            page, token = await pending
            if token is not None:
                pending = asyncio.ensure_future(transport.list_page(full_prefix, token))
            yield [
                o for o in page if o.key.startswith(cache.prefix) and o.key.startswith(full_prefix)
            ]
            if token is None:
                return
    finally:
        if not pending.done():
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)


async def _gather(aws: Iterable[Awaitable[T]]) -> list[T]:
    """Run concurrently (the transport bounds requests); the first failure raises."""
    results = await asyncio.gather(*aws, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results  # type: ignore[return-value]


async def _inspect(cache: AsyncS3Cache, objects: list[ListedObject]) -> list[Entry]:
    """HEAD ``objects`` concurrently; objects gone since the listing are left out."""
    heads = await _gather(cache._transport.head(o.key) for o in objects)
    return [
        _entry(cache, o.key, o.size, h)
        for o, h in zip(objects, heads, strict=True)
        if h is not None
    ]


async def scan(
    cache: AsyncS3Cache, prefix: str = "", *, batch: int = DEFAULT_BATCH
) -> AsyncGenerator[Entry, None]:
    """Every entry under the cache prefix (+ ``prefix``), with size, age, ttl and expiry.

    One HEAD per entry (a listing carries no metadata), ``batch`` entries at a time.
    """
    _check_positive("batch", batch)
    async with aclosing(_pages(cache, _scan_prefix(cache, prefix))) as pages:
        async for page in pages:
            for start in range(0, len(page), batch):
                for found in await _inspect(cache, page[start : start + batch]):
                    yield found


# -- stats ---------------------------------------------------------------------------------


@dataclass(slots=True)
class StorageStats:
    """Entries and bytes under the prefix, and the expired share of the entries inspected."""

    entries: int = 0
    bytes: int = 0
    inspected: int = 0  #: entries HEAD-ed to judge expiry (all, or a uniform sample)
    expired_inspected: int = 0

    @property
    def sampled(self) -> bool:
        """True when the expired share is an estimate from a sample."""
        return self.inspected < self.entries

    @property
    def expired_share(self) -> float | None:
        """Expired fraction of the inspected entries (None when there is none)."""
        return self.expired_inspected / self.inspected if self.inspected else None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "entries": self.entries,
            "bytes": self.bytes,
            "inspected": self.inspected,
            "expired_inspected": self.expired_inspected,
            "expired_share": self.expired_share,
            "sampled": self.sampled,
        }


async def storage_stats(
    cache: AsyncS3Cache,
    *,
    sample: int = DEFAULT_SAMPLE,
    rng: random.Random | None = None,
    on_progress: Callable[[StorageStats], None] | None = None,
) -> StorageStats:
    """Count entries and bytes (the whole listing) and estimate the expired share.

    Expiry needs one HEAD per entry, so at most ``sample`` entries, drawn uniformly
    (reservoir sampling over the listing), are inspected; all of them on small caches.
    """
    _check_positive("sample", sample)
    rng = rng or random.Random()
    result = StorageStats()
    reservoir: list[ListedObject] = []
    async with aclosing(_pages(cache, cache.prefix)) as pages:
        async for page in pages:
            for obj in page:
                result.entries += 1
                result.bytes += obj.size
                if len(reservoir) < sample:
                    reservoir.append(obj)
                else:
                    slot = rng.randrange(result.entries)
                    if slot < sample:
                        reservoir[slot] = obj
            if on_progress is not None:
                on_progress(result)
    entries = await _inspect(cache, reservoir)
    result.inspected = len(entries)
    result.expired_inspected = sum(1 for e in entries if e.expired)
    return result


# -- deleting ------------------------------------------------------------------------------


@dataclass(slots=True)
class ClearResult:
    """What :func:`clear` deleted (or, with ``dry_run``, would delete)."""

    matched: int = 0
    bytes: int = 0
    deleted: int = 0
    dry_run: bool = False

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass(slots=True)
class PurgeResult:
    """What :func:`purge_expired` found and deleted."""

    scanned: int = 0
    expired: int = 0
    bytes: int = 0  #: size of the expired entries
    deleted: int = 0
    dry_run: bool = False
    elapsed_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def _check_scope(cache: AsyncS3Cache, all_bucket: bool, what: str) -> None:
    if not cache.prefix and not all_bucket:
        raise ValueError(
            f"refusing to {what} with an empty prefix: that is the whole bucket "
            f"{cache.bucket!r}; set a prefix, or pass all_bucket=True (--all-bucket)"
        )


async def _delete(cache: AsyncS3Cache, okeys: list[str]) -> int:
    """Delete objects in batches of 1,000, after checking each key is under the prefix."""
    outside = [k for k in okeys if not k.startswith(cache.prefix)]
    if outside:  # unreachable through this module; a guard against future callers
        raise ValueError(f"refusing to delete {outside[0]!r}: outside prefix {cache.prefix!r}")
    if len(okeys) == 1:  # DeleteObject needs no body and no checksum
        await cache._transport.delete(okeys[0])
        return 1
    batches = [okeys[i : i + DELETE_BATCH] for i in range(0, len(okeys), DELETE_BATCH)]
    return sum(await _gather(cache._transport.delete_batch(b) for b in batches))


async def clear(
    cache: AsyncS3Cache,
    *,
    dry_run: bool = False,
    all_bucket: bool = False,
    on_progress: Callable[[ClearResult], None] | None = None,
) -> ClearResult:
    """Delete every object under the prefix, page by page; errors raise.

    Unlike :meth:`AsyncS3Cache.clear` it reports progress, can dry-run, and refuses an empty
    prefix (the whole bucket) unless ``all_bucket`` is true.
    """
    _check_scope(cache, all_bucket, "clear")
    result = ClearResult(dry_run=dry_run)
    async with aclosing(_pages(cache, cache.prefix)) as pages:
        async for page in pages:
            result.matched += len(page)
            result.bytes += sum(o.size for o in page)
            if page and not dry_run:
                result.deleted += await _delete(cache, [o.key for o in page])
            if on_progress is not None:
                on_progress(result)
    return result


async def purge_expired(
    cache: AsyncS3Cache,
    *,
    dry_run: bool = False,
    all_bucket: bool = False,
    batch: int = DEFAULT_BATCH,
    on_progress: Callable[[PurgeResult], None] | None = None,
) -> PurgeResult:
    """Delete the entries under the prefix that a read would treat as expired.

    Each entry is HEAD-ed (``batch`` at a time, concurrently) and judged by
    :func:`_format.remaining_ttl` on the server's clock; expired ones are deleted in batches.
    An entry rewritten between its HEAD and the delete is lost: for a cache, one extra miss.
    An empty prefix needs ``all_bucket``: other objects in a shared bucket may carry ``Expires``.
    """
    _check_scope(cache, all_bucket, "purge")
    _check_positive("batch", batch)
    started = time.perf_counter()
    result = PurgeResult(dry_run=dry_run)
    async with aclosing(_pages(cache, cache.prefix)) as pages:
        async for page in pages:
            for start in range(0, len(page), batch):
                entries = await _inspect(cache, page[start : start + batch])
                expired = [e for e in entries if e.expired]
                result.scanned += len(entries)
                result.expired += len(expired)
                result.bytes += sum(e.size for e in expired)
                if expired and not dry_run:
                    result.deleted += await _delete(cache, [e.object_key for e in expired])
                result.elapsed_s = time.perf_counter() - started
                if on_progress is not None:
                    on_progress(result)
    result.elapsed_s = time.perf_counter() - started
    return result


# -- lifecycle -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LifecycleRule:
    """A bucket lifecycle rule that reaches objects under the cache prefix."""

    id: str
    prefix: str
    status: str
    days: int | None  #: ``Expiration.Days``; None for other kinds of rule
    covers: Literal["all", "some"]  #: all entries under the prefix, or only some
    ours: bool  #: the rule ``set_lifecycle`` manages for this prefix
    filtered: bool  #: the rule also filters on tags or sizes

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def lifecycle_rule_id(prefix: str) -> str:
    """The ID of the rule :func:`set_lifecycle` manages for ``prefix`` (at most 255 chars)."""
    rule_id = f"s3cache:{prefix}"
    if len(rule_id) <= _RULE_ID_MAX:
        return rule_id
    return "s3cache:" + hashlib.sha256(prefix.encode()).hexdigest()


def _rule_prefix(rule: Mapping[str, Any]) -> tuple[str, bool]:
    """A rule's key prefix and whether it filters on anything more (tags, sizes)."""
    if "Filter" not in rule:
        return str(rule.get("Prefix") or ""), False
    flt: Mapping[str, Any] = rule.get("Filter") or {}
    if "And" in flt:
        both: Mapping[str, Any] = flt["And"] or {}
        return str(both.get("Prefix") or ""), set(both) != {"Prefix"}
    return str(flt.get("Prefix") or ""), bool(set(flt) - {"Prefix"})


async def lifecycle_rules(cache: AsyncS3Cache) -> list[LifecycleRule]:
    """The bucket's lifecycle rules that reach objects under the cache prefix."""
    found = []
    ours = lifecycle_rule_id(cache.prefix)
    for rule in await cache._transport.get_lifecycle_rules():
        prefix, filtered = _rule_prefix(rule)
        if cache.prefix.startswith(prefix):
            covers: Literal["all", "some"] = "some" if filtered else "all"
        elif prefix.startswith(cache.prefix):
            covers = "some"
        else:
            continue
        days = (rule.get("Expiration") or {}).get("Days")
        found.append(
            LifecycleRule(
                id=str(rule.get("ID") or ""),
                prefix=prefix,
                status=str(rule.get("Status") or ""),
                days=int(days) if days is not None else None,
                covers=covers,
                ours=rule.get("ID") == ours,
                filtered=filtered,
            )
        )
    return found


async def set_lifecycle(cache: AsyncS3Cache, days: int, *, all_bucket: bool = False) -> str:
    """Add or replace the rule expiring objects under the prefix ``days`` days after writing.

    Other rules of the bucket are kept (S3 replaces the whole configuration on every put, so
    this reads, edits and writes it back). Returns the rule's ID.
    """
    if isinstance(days, bool) or not isinstance(days, int):
        raise TypeError(f"days must be an int, not {type(days).__name__}")
    if days < 1:
        raise ValueError(f"days must be at least 1 (lifecycle rules act in whole days), not {days}")
    _check_scope(cache, all_bucket, "set a lifecycle rule")
    rule_id = lifecycle_rule_id(cache.prefix)
    rules = [r for r in await cache._transport.get_lifecycle_rules() if r.get("ID") != rule_id]
    rules.append(
        {
            "ID": rule_id,
            "Filter": {"Prefix": cache.prefix},
            "Status": "Enabled",
            "Expiration": {"Days": days},
        }
    )
    await cache._transport.put_lifecycle_rules(rules)
    return rule_id


async def remove_lifecycle(cache: AsyncS3Cache) -> bool:
    """Remove the rule :func:`set_lifecycle` manages for this prefix; False when there is none."""
    rule_id = lifecycle_rule_id(cache.prefix)
    rules = await cache._transport.get_lifecycle_rules()
    kept = [r for r in rules if r.get("ID") != rule_id]
    if len(kept) == len(rules):
        return False
    if kept:
        await cache._transport.put_lifecycle_rules(kept)
    else:
        await cache._transport.delete_lifecycle()
    return True


# -- doctor --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckItem:
    """One line of :func:`doctor`: what was checked, the verdict, and why."""

    name: str
    status: Status
    detail: str
    required: bool = True

    @property
    def failed(self) -> bool:
        """A required check that failed."""
        return self.required and self.status == "fail"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "name": self.name,
            "status": self.status,
            "detail": self.detail,
            "required": self.required,
        }


async def _timed(aw: Awaitable[R]) -> tuple[R, float]:
    started = time.perf_counter()
    value = await aw
    return value, (time.perf_counter() - started) * 1000


async def doctor(cache: AsyncS3Cache) -> list[CheckItem]:
    """Check the store step by step, one :class:`CheckItem` each; never raises a store error.

    Required: endpoint reachable, credentials accepted, bucket exists, list, put, get, delete.
    Warnings only: conditional writes honoured, clock skew, a lifecycle rule present.
    Unlike :meth:`AsyncS3Cache.check`, which stops at the first failure, this names each step.
    """
    items: list[CheckItem] = []
    transport = cache._transport
    where = f"s3://{cache.bucket}/{cache.prefix}"
    endpoint = _redact_url(cache._endpoint_url) or "the default AWS endpoint"

    def add(name: str, status: Status, detail: str, required: bool = True) -> None:
        items.append(CheckItem(name, status, detail, required))

    def skip_rest(names: Iterable[str]) -> list[CheckItem]:
        for name in names:
            add(name, "skip", "not checked: an earlier step failed")
        return items

    later = ["list", "put", "get", "delete"]
    try:
        _, ms = await _timed(transport.head_bucket())
        add("endpoint reachable", "pass", f"{endpoint} answered in {ms:.0f} ms")
        add("credentials accepted", "pass", "signed requests are accepted")
        add("bucket exists", "pass", f"bucket {cache.bucket!r}")
    except (EndpointUnreachableError, StoreTimeoutError) as exc:
        add("endpoint reachable", "fail", str(exc))
        return skip_rest(["credentials accepted", "bucket exists", *later])
    except CredentialsError as exc:
        add("endpoint reachable", "pass", f"{endpoint} answered")
        add("credentials accepted", "fail", str(exc))
        return skip_rest(["bucket exists", *later])
    except BucketNotFoundError as exc:
        add("endpoint reachable", "pass", f"{endpoint} answered")
        add("credentials accepted", "pass", "signed requests are accepted")
        add("bucket exists", "fail", str(exc))
        return skip_rest(later)
    except AccessDeniedError as exc:  # HeadBucket needs s3:ListBucket; carry on to learn more
        add("endpoint reachable", "pass", f"{endpoint} answered")
        add("credentials accepted", "pass", "signed requests are accepted")
        add("bucket exists", "warn", f"HeadBucket denied, cannot tell: {exc}", required=False)
    except S3CacheError as exc:
        add("endpoint reachable", "fail", str(exc))
        return skip_rest(["credentials accepted", "bucket exists", *later])

    try:
        await transport.list_page(cache.prefix, None)
        add("list", "pass", f"ListObjectsV2 under {where}")
    except S3CacheError as exc:
        add("list", "fail", str(exc))

    probe = f"{cache.prefix}s3cache-check/{uuid.uuid4().hex}"
    payload = _format.encode({"probe": probe}, 60.0, _format.JsonSerializer(), time.time())
    try:
        await transport.put(probe, payload)
        add("put", "pass", f"PutObject {probe!r}")
    except S3CacheError as exc:
        add("put", "fail", str(exc))
        for name in ("get", "delete"):
            add(name, "skip", "not checked: the probe could not be written")
        return items
    skew: float | None = None
    conditional: CheckItem | None = None
    try:
        found = await transport.get(probe)
        if found is None or found[0] != payload.body:
            add("get", "fail", f"GetObject {probe!r}: the probe just written did not read back")
        else:
            add("get", "pass", "GetObject read the probe back")
            date = found[1].get("date")
            skew = time.time() - _format.parse_http_date(date) if date else None
        try:
            honoured = not await transport.put(probe, payload, if_absent=True)
            conditional = CheckItem(
                "conditional writes",
                "pass" if honoured else "warn",
                "If-None-Match: * is refused on an existing key"
                if honoured
                else "the server ignored If-None-Match: * and overwrote the object",
                required=False,
            )
        except S3CacheError as exc:
            conditional = CheckItem("conditional writes", "warn", str(exc), required=False)
    except S3CacheError as exc:
        add("get", "fail", str(exc))
    finally:
        try:
            await transport.delete(probe)
            add("delete", "pass", "DeleteObject removed the probe")
        except S3CacheError as exc:
            add("delete", "fail", f"{exc} (the probe expires in 60 s; purge-expired removes it)")
    if conditional is not None:
        items.append(conditional)

    if skew is None:
        add("clock skew", "skip", "no Date header from the server", required=False)
    else:
        status: Status = "pass" if abs(skew) <= CLOCK_SKEW_WARN_S else "warn"
        add(
            "clock skew",
            status,
            f"this machine is {skew:+.1f} s from the server's Date (1 s resolution); "
            "TTLs are judged on the server's clock",
            required=False,
        )

    try:
        rules = await lifecycle_rules(cache)
        expiring = [
            r for r in rules if r.days is not None and r.status == "Enabled" and r.covers == "all"
        ]
        if expiring:
            best = min(expiring, key=lambda r: r.days or 0)
            add(
                "lifecycle rule",
                "pass",
                f"{best.id!r} expires objects after {best.days} days",
                required=False,
            )
        else:
            add(
                "lifecycle rule",
                "warn",
                f"no enabled expiration rule covers {where}: expired entries stay until "
                "`s3cache purge-expired` (or `s3cache lifecycle set --days N`)",
                required=False,
            )
    except S3CacheError as exc:
        add("lifecycle rule", "warn", str(exc), required=False)
    return items


def _check_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, not {value}")
