"""What the cache's requests cost and what its hits save, in dollars; pure.

Price tables and their presets, request classes by S3 operation, and the ledger for ``cost=``.

**Spend** is priced per request class, as the stores bill it:

- class A: S3's "PUT, COPY, POST, LIST requests" tier (R2 calls it Class A): PutObject,
  CopyObject, ListObjectsV2, CreateBucket, PutBucketLifecycleConfiguration...;
- class B: S3's "GET, SELECT, and all other requests" tier (R2's Class B): GetObject,
  HeadObject, HeadBucket, GetBucketLifecycleConfiguration, CreateSession (a GET)...;
- free: DELETE requests (DeleteObject, DeleteBucketLifecycle, AbortMultipartUpload).

An operation goes by the verb its name starts with, as S3 bills by HTTP method
(:func:`request_class`); a table can override single operations (R2 bills the batch
DeleteObjects, a POST, as Class A). Every request sent counts, retries included (each attempt
is billed); stores that do not bill some failures (R2 and, since 2024, S3 skip failed
authentication) are then counted high, never low. Free tiers (R2's monthly allowance, AWS's
first-year credits) and volume discounts are not modelled. A GB is 2**30 bytes, as AWS bills.

**Savings** (``get_or_set(..., cost=...)`` and ``cached(cost=...)``): each call that returned a
value without running its factory saved one factory call, priced at ``cost`` (dollars, or a
callable of the value returned, such as litellm's ``response_cost``). Counted, by how the call
avoided its factory (:data:`AVOIDED`): ``hit`` (the value was in the local tier or on S3),
``joined`` (another caller in this process was computing it: single flight), ``waited`` (another
process held the lease and stored it). Not counted: factory runs (misses), factories that
raised, ``get()`` hits (no factory, no price), calls without ``cost``, and values whose cost
callable raised or returned no finite non-negative number (counted as ``unpriced`` instead).
Nothing is subtracted: the saving is gross; the cache's own spend is reported beside it, and
the difference is the reader's to take (:meth:`Savings.net`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal, cast

__all__ = [
    "AVOIDED",
    "PRESETS",
    "R2",
    "S3_EXPRESS",
    "S3_STANDARD",
    "SELF_HOSTED",
    "Avoided",
    "Cost",
    "PriceTable",
    "RequestClass",
    "Savings",
    "SavingsLedger",
    "Spend",
    "check_cost",
    "price_of",
    "price_table",
    "request_class",
    "spend",
]

RequestClass = Literal["class_a", "class_b", "free"]
Avoided = Literal["hit", "joined", "waited"]
AVOIDED: Final = ("hit", "joined", "waited")
#: Dollars per factory call, or a function of the value returned giving them.
Cost = float | Callable[[Any], float]
GIB: Final = 2**30

#: Operation-name verbs of class A (S3: PUT, COPY, POST, LIST) and of free requests (DELETE).
_CLASS_A_VERBS: Final = ("Put", "Copy", "Post", "List", "Create", "Upload", "Complete", "Restore")
_FREE_VERBS: Final = ("Delete", "Abort")
#: Exceptions to the verb rule on S3: CreateSession (S3 Express) is ``GET /?session``. The batch
#: DeleteObjects is a POST on the wire; it is taken as the DELETE requests it makes, which S3
#: does not charge ("DELETE and CANCEL requests are free"): believed, not confirmed from a bill;
#: a custom table's ``classes`` can say otherwise.
_S3_CLASSES: Final[Mapping[str, RequestClass]] = {"CreateSession": "class_b"}


@dataclass(frozen=True)
class PriceTable:
    """Prices of one store: dollars per 1,000 requests of each class, and optionally per GB.

    ``storage_gb_month``: storage, per GB-month (None: not priced). ``egress_per_gb``: bytes
    read out of the store, per GB (None: not counted, as within an AWS region). ``upload_per_gb``
    and ``retrieval_per_gb``: per-GB charges on bytes written and read (S3 Express One Zone's).
    ``classes``: operations billed against the verb rule, e.g. ``{"DeleteObjects": "class_a"}``.
    """

    name: str
    class_a_per_1k: float
    class_b_per_1k: float
    storage_gb_month: float | None = None
    egress_per_gb: float | None = None
    upload_per_gb: float | None = None
    retrieval_per_gb: float | None = None
    classes: Mapping[str, RequestClass] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError("a price table needs a name (a non-empty str)")
        for price in ("class_a_per_1k", "class_b_per_1k"):
            _check_price(price, getattr(self, price))
        for price in ("storage_gb_month", "egress_per_gb", "upload_per_gb", "retrieval_per_gb"):
            if getattr(self, price) is not None:
                _check_price(price, getattr(self, price))
        for operation, klass in self.classes.items():
            if klass not in ("class_a", "class_b", "free"):
                raise ValueError(
                    f"price table {self.name!r}: {operation} must be billed as 'class_a', "
                    f"'class_b' or 'free', not {klass!r}"
                )
        object.__setattr__(self, "classes", MappingProxyType({**_S3_CLASSES, **self.classes}))

    def per_request(self, klass: RequestClass) -> float:
        """Dollars for one request of ``klass``."""
        if klass == "free":
            return 0.0
        return (self.class_a_per_1k if klass == "class_a" else self.class_b_per_1k) / 1000


def _check_price(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be dollars (int or float), not {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number of dollars >= 0, not {value}")


#: S3 Standard, us-east-1 (aws.amazon.com/s3/pricing): PUT/COPY/POST/LIST $0.005 and
#: GET/SELECT/other $0.0004 per 1,000 requests, storage $0.023 per GB-month (first 50 TB).
#: Egress is not counted: free to compute in the region; set ``egress_per_gb`` (0.09 to the
#: internet, first 10 TB) with ``dataclasses.replace`` when the cache is read from outside.
S3_STANDARD: Final = PriceTable("s3-standard", 0.005, 0.0004, storage_gb_month=0.023)
#: S3 Express One Zone, us-east-1, as the S3 FAQ's worked example prices it after AWS's April
#: 2025 cuts (aws.amazon.com/s3/faqs/, "S3 Express One Zone" billing example): PUT $0.00113 and
#: GET $0.00003 per 1,000 requests, storage $0.11 per GB-month, data upload $0.0032 and
#: retrieval $0.0006 per GB (charged on every request's bytes in that example), DELETE free.
S3_EXPRESS: Final = PriceTable(
    "s3-express",
    0.00113,
    0.00003,
    storage_gb_month=0.11,
    upload_per_gb=0.0032,
    retrieval_per_gb=0.0006,
)
#: Cloudflare R2, Standard storage (developers.cloudflare.com/r2/pricing/): Class A $4.50 and
#: Class B $0.36 per million, storage $0.015 per GB-month, no egress charge; DeleteObject is
#: free, the batch DeleteObjects is not on the free list, so it is counted as Class A.
R2: Final = PriceTable(
    "r2", 0.0045, 0.00036, storage_gb_month=0.015, classes={"DeleteObjects": "class_a"}
)
#: A server of your own (MinIO, Ceph RGW, SeaweedFS...): no per-request or per-GB price.
SELF_HOSTED: Final = PriceTable("self-hosted", 0.0, 0.0, storage_gb_month=0.0, egress_per_gb=0.0)
PRESETS: Final[Mapping[str, PriceTable]] = MappingProxyType(
    {t.name: t for t in (S3_STANDARD, S3_EXPRESS, R2, SELF_HOSTED)}
)


def price_table(pricing: object) -> PriceTable:
    """The ``pricing=`` argument as a table: None (S3 Standard), a preset name or a table."""
    if pricing is None:
        return S3_STANDARD
    if isinstance(pricing, PriceTable):
        return pricing
    if isinstance(pricing, str):
        table = PRESETS.get(pricing)
        if table is None:
            raise ValueError(
                f"pricing must be one of {', '.join(map(repr, PRESETS))} or a PriceTable, "
                f"not {pricing[:40]!r}"
            )
        return table
    raise TypeError(f"pricing must be a preset name or a PriceTable, not {type(pricing).__name__}")


def request_class(operation: str, table: PriceTable = S3_STANDARD) -> RequestClass:
    """How ``table``'s store bills one ``operation`` (an S3 API name such as ``GetObject``):
    the table's own exceptions first, then the verb the name starts with."""
    if not isinstance(operation, str) or not operation[:1].isupper() or not operation.isalnum():
        raise ValueError(f"not an S3 operation name: {str(operation)[:40]!r} (e.g. 'GetObject')")
    klass = table.classes.get(operation)
    if klass is not None:
        return klass
    if operation.startswith(_FREE_VERBS):
        return "free"
    return "class_a" if operation.startswith(_CLASS_A_VERBS) else "class_b"


@dataclass(frozen=True, slots=True)
class Spend:
    """What a set of requests (and the bytes they moved) cost at one table's prices."""

    table: str
    requests: Mapping[RequestClass, int]
    requests_usd: float
    transfer_usd: float

    @property
    def total_usd(self) -> float:
        """Requests plus per-GB transfer charges (storage is priced apart: :func:`price_of`)."""
        return self.requests_usd + self.transfer_usd


def spend(
    requests: Mapping[str, int],
    table: PriceTable = S3_STANDARD,
    *,
    bytes_read: int = 0,
    bytes_written: int = 0,
) -> Spend:
    """The cost of ``requests`` (counts by S3 operation, retries included) at ``table``'s
    prices, plus its per-GB charges on ``bytes_read`` (egress, retrieval) and
    ``bytes_written`` (upload)."""
    counts: dict[RequestClass, int] = {"class_a": 0, "class_b": 0, "free": 0}
    for operation, count in requests.items():
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"request count of {operation} must be an int >= 0, not {count!r}")
        counts[request_class(operation, table)] += count
    dollars = sum(table.per_request(k) * n for k, n in counts.items())
    read_gb, written_gb = bytes_read / GIB, bytes_written / GIB
    transfer = read_gb * ((table.egress_per_gb or 0.0) + (table.retrieval_per_gb or 0.0))
    transfer += written_gb * (table.upload_per_gb or 0.0)
    return Spend(table.name, MappingProxyType(counts), dollars, transfer)


def price_of(
    stored_bytes: int, table: PriceTable = S3_STANDARD, months: float = 1.0
) -> float | None:
    """Dollars to keep ``stored_bytes`` for ``months`` (None when ``table`` prices no storage)."""
    if table.storage_gb_month is None:
        return None
    return stored_bytes / GIB * months * table.storage_gb_month


# -- savings ------------------------------------------------------------------------------


def check_cost(cost: object) -> Cost | None:
    """The ``cost=`` argument, checked before any call: None, dollars per factory call (a
    finite number >= 0), or a callable of the value returned."""
    if cost is None:
        return None
    if callable(cost):
        return cast("Callable[[Any], float]", cost)  # its signature is its caller's word
    if isinstance(cost, bool) or not isinstance(cost, (int, float)):
        raise TypeError(
            "cost must be dollars per factory call (int or float) or a function of the result, "
            f"not {type(cost).__name__}"
        )
    if not math.isfinite(cost) or cost < 0:
        raise ValueError(f"cost must be a finite number of dollars >= 0, not {cost}")
    return float(cost)


@dataclass(frozen=True, slots=True)
class Savings:
    """Factory calls avoided and the dollars they would have cost (see the module docstring)."""

    usd: float = 0.0
    avoided: Mapping[Avoided, int] = field(default_factory=dict)
    unpriced: int = 0

    @property
    def calls(self) -> int:
        """Factory calls avoided, however avoided, priced or not."""
        return sum(self.avoided.values())

    def net(self, spend: Spend) -> float:
        """The saving less the cache's own ``spend``: what the cache earned, in dollars."""
        return self.usd - spend.total_usd


class SavingsLedger:
    """Mutable savings of one cache: plain numbers, touched from event-loop threads."""

    __slots__ = ("avoided", "unpriced", "usd")

    def __init__(self) -> None:
        self.usd = 0.0
        self.avoided: dict[Avoided, int] = dict.fromkeys(AVOIDED, 0)
        self.unpriced = 0

    def record(self, how: Avoided, cost: Cost, value: Any) -> float | None:
        """One factory call avoided (``how``), priced at ``cost`` for the ``value`` returned.
        Returns the dollars counted, or None when a cost callable raised or gave no finite
        number >= 0 (counted as unpriced; the caller decides whether to log it)."""
        self.avoided[how] += 1
        if not callable(cost):
            self.usd += cost
            return cost
        try:
            dollars = cost(value)
        except Exception:  # noqa: BLE001 - a user's pricing function must never fail a hit
            dollars = math.nan
        if (
            isinstance(dollars, bool)
            or not isinstance(dollars, (int, float))
            or not math.isfinite(dollars)
            or dollars < 0
        ):
            self.unpriced += 1
            return None
        self.usd += dollars
        return float(dollars)

    def snapshot(self) -> Savings:
        """The savings so far, frozen."""
        return Savings(self.usd, MappingProxyType(dict(self.avoided)), self.unpriced)
