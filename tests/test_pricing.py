"""Prices and savings (``s3cache._pricing``), sans-IO: request classes by S3 operation, the
presets against their providers' own worked examples, custom tables, and the savings ledger."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest

from s3cache._pricing import (
    GIB,
    PRESETS,
    R2,
    S3_EXPRESS,
    S3_STANDARD,
    SELF_HOSTED,
    PriceTable,
    SavingsLedger,
    check_cost,
    price_of,
    price_table,
    request_class,
    spend,
)

# -- request classes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "klass"),
    [
        ("GetObject", "class_b"),
        ("HeadObject", "class_b"),
        ("HeadBucket", "class_b"),
        ("GetBucketLifecycleConfiguration", "class_b"),
        ("GetBucketPolicy", "class_b"),
        ("GetBucketEncryption", "class_b"),
        ("CreateSession", "class_b"),  # GET /?session, whatever its verb says
        ("PutObject", "class_a"),
        ("CopyObject", "class_a"),
        ("ListObjectsV2", "class_a"),
        ("CreateBucket", "class_a"),
        ("PutBucketLifecycleConfiguration", "class_a"),
        ("DeleteObject", "free"),
        ("DeleteObjects", "free"),
        ("DeleteBucketLifecycle", "free"),
        ("AbortMultipartUpload", "free"),
    ],
)
def test_s3_bills_each_operation_s3cache_sends_by_its_verb(operation: str, klass: str) -> None:
    assert request_class(operation) == klass


def test_r2_bills_the_batch_delete_as_class_a_and_the_single_delete_free() -> None:
    assert request_class("DeleteObjects", R2) == "class_a"
    assert request_class("DeleteObject", R2) == "free"
    assert request_class("ListObjectsV2", R2) == "class_a"
    assert request_class("HeadObject", R2) == "class_b"


@pytest.mark.parametrize("operation", ["", "getObject", "Get Object", "GetObject\n", 42])
def test_what_is_no_operation_name_is_refused(operation: Any) -> None:
    with pytest.raises(ValueError, match="not an S3 operation name"):
        request_class(operation)


# -- spend -----------------------------------------------------------------------------------


def test_s3_standard_prices_a_put_at_twelve_and_a_half_gets() -> None:
    assert S3_STANDARD.class_a_per_1k == 0.005
    assert S3_STANDARD.class_b_per_1k == 0.0004
    puts = spend({"PutObject": 1000})
    gets = spend({"GetObject": 12_500})
    assert puts.requests_usd == pytest.approx(0.005)
    assert gets.requests_usd == pytest.approx(puts.requests_usd)
    assert puts.transfer_usd == 0.0  # egress within the region is not counted


def test_spend_counts_requests_by_class() -> None:
    result = spend(
        {"GetObject": 700, "HeadObject": 300, "PutObject": 200, "ListObjectsV2": 50,
         "DeleteObjects": 4, "DeleteObject": 10},
    )  # fmt: skip
    assert dict(result.requests) == {"class_a": 250, "class_b": 1000, "free": 14}
    assert result.requests_usd == pytest.approx(250 * 0.005 / 1000 + 1000 * 0.0004 / 1000)
    assert result.table == "s3-standard"
    assert result.total_usd == result.requests_usd


def test_s3_express_reproduces_the_s3_faq_worked_example() -> None:
    """aws.amazon.com/s3/faqs/, S3 Express One Zone, example 1: 10 GB for a month, 1,000,000
    PUTs and 9,000,000 GETs of 10 KB, 1,000,000 DELETEs: $2.58 in all."""
    kib10 = 10 * 1024
    result = spend(
        {"PutObject": 1_000_000, "GetObject": 9_000_000, "DeleteObject": 1_000_000},
        S3_EXPRESS,
        bytes_written=1_000_000 * kib10,
        bytes_read=9_000_000 * kib10,
    )
    storage = price_of(10 * GIB, S3_EXPRESS)
    assert storage is not None
    assert result.requests_usd == pytest.approx(1.13 + 0.27)
    # The FAQ's own formula, "10 KB / 1,048,576 x requests x price", before its rounding.
    faq_transfer = 10 / 1_048_576 * (1_000_000 * 0.0032 + 9_000_000 * 0.0006)
    assert result.transfer_usd == pytest.approx(faq_transfer)
    assert storage == pytest.approx(1.10)
    assert round(result.total_usd + storage, 2) == 2.58


def test_r2_reproduces_the_r2_docs_asset_hosting_example() -> None:
    """developers.cloudflare.com/r2/pricing/: 290,000,000 billable Class B reads, $104.40 (the
    free tier is not modelled, so the example's billable quantity is given), no egress."""
    result = spend({"GetObject": 290_000_000}, R2, bytes_read=290_000_000 * 100_000)
    assert result.requests_usd == pytest.approx(104.40)
    assert result.transfer_usd == 0.0


def test_self_hosted_costs_nothing() -> None:
    result = spend({"PutObject": 10**9, "GetObject": 10**9}, SELF_HOSTED, bytes_read=10**15)
    assert result.total_usd == 0.0
    assert price_of(10**15, SELF_HOSTED) == 0.0


def test_a_custom_table_adds_egress_for_a_cache_read_from_outside_the_region() -> None:
    outside = dataclasses.replace(S3_STANDARD, name="s3-internet", egress_per_gb=0.09)
    result = spend({"GetObject": 1000}, outside, bytes_read=2 * GIB)
    assert result.transfer_usd == pytest.approx(0.18)
    assert result.total_usd == pytest.approx(0.18 + 0.0004)
    assert outside.classes["CreateSession"] == "class_b"  # the S3 exceptions stay


def test_storage_is_priced_per_gib_month_or_not_at_all() -> None:
    assert price_of(GIB, S3_STANDARD) == pytest.approx(0.023)
    assert price_of(GIB // 2, S3_STANDARD, months=2.0) == pytest.approx(0.023)
    assert price_of(GIB, PriceTable("no-storage", 0.0, 0.0)) is None


@pytest.mark.parametrize("count", [-1, True, 1.5, "3"])
def test_a_request_count_must_be_a_whole_number(count: Any) -> None:
    with pytest.raises(ValueError, match="request count of GetObject must be an int >= 0"):
        spend({"GetObject": count})


# -- tables ----------------------------------------------------------------------------------


def test_pricing_takes_a_preset_name_a_table_or_none() -> None:
    assert set(PRESETS) == {"s3-standard", "s3-express", "r2", "self-hosted"}
    assert price_table(None) is S3_STANDARD
    assert price_table("r2") is R2
    custom = PriceTable("mine", 0.001, 0.0001)
    assert price_table(custom) is custom


def test_an_unknown_preset_names_the_presets() -> None:
    with pytest.raises(ValueError, match="'s3-standard', 's3-express', 'r2', 'self-hosted'"):
        price_table("s3-glacier")
    with pytest.raises(TypeError, match="preset name or a PriceTable"):
        price_table(0.005)


@pytest.mark.parametrize(
    ("fields", "error", "match"),
    [
        ({"class_a_per_1k": -0.1}, ValueError, "class_a_per_1k must be a finite number"),
        ({"class_b_per_1k": math.nan}, ValueError, "class_b_per_1k must be a finite number"),
        ({"egress_per_gb": math.inf}, ValueError, "egress_per_gb must be a finite number"),
        ({"storage_gb_month": True}, TypeError, "storage_gb_month must be dollars"),
        ({"classes": {"GetObject": "cheap"}}, ValueError, "GetObject must be billed as"),
        ({"name": ""}, ValueError, "needs a name"),
    ],
)
def test_a_table_refuses_prices_no_store_charges(
    fields: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        PriceTable(**{"name": "t", "class_a_per_1k": 0.0, "class_b_per_1k": 0.0, **fields})


def test_a_tables_classes_cannot_be_changed_after_the_fact() -> None:
    with pytest.raises(TypeError):
        R2.classes["DeleteObjects"] = "free"  # type: ignore[index]


# -- savings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("cost", "checked"), [(None, None), (0, 0.0), (0.02, 0.02), (3, 3.0)])
def test_cost_takes_dollars(cost: Any, checked: Any) -> None:
    assert check_cost(cost) == checked


def test_cost_takes_a_function_of_the_result() -> None:
    def price(result: Any) -> float:
        return 0.0

    assert check_cost(price) is price


@pytest.mark.parametrize(
    ("cost", "error"),
    [(-0.01, ValueError), (math.nan, ValueError), (math.inf, ValueError), (True, TypeError),
     ("0.01", TypeError)],
)  # fmt: skip
def test_cost_refuses_what_is_no_price(cost: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="cost must be"):
        check_cost(cost)


def test_the_ledger_counts_each_avoided_call_at_its_cost() -> None:
    ledger = SavingsLedger()
    assert ledger.record("hit", 0.02, "value") == 0.02
    ledger.record("hit", 0.02, "value")
    ledger.record("joined", 0.02, "value")
    ledger.record("waited", 0.5, "value")
    savings = ledger.snapshot()
    assert savings.usd == pytest.approx(0.56)
    assert dict(savings.avoided) == {"hit": 2, "joined": 1, "waited": 1}
    assert savings.calls == 4
    assert savings.unpriced == 0
    assert savings.net(spend({"GetObject": 1000})) == pytest.approx(0.56 - 0.0004)


def test_a_cost_function_prices_the_value_returned() -> None:
    ledger = SavingsLedger()
    assert ledger.record("hit", lambda response: response["cost"], {"cost": 0.25}) == 0.25
    ledger.record("hit", len, "abc")  # an int is a number of dollars too
    assert ledger.snapshot().usd == pytest.approx(3.25)


@pytest.mark.parametrize(
    "price", [lambda value: 1 / 0, lambda value: math.nan, lambda value: -1.0,
              lambda value: "0.5", lambda value: True, lambda value: None],
)  # fmt: skip
def test_a_cost_function_that_fails_leaves_the_call_unpriced_and_raises_nothing(
    price: Any,
) -> None:
    ledger = SavingsLedger()
    assert ledger.record("hit", price, "value") is None
    savings = ledger.snapshot()
    assert (savings.usd, savings.calls, savings.unpriced) == (0.0, 1, 1)


def test_a_snapshot_does_not_move_with_the_ledger() -> None:
    ledger = SavingsLedger()
    ledger.record("hit", 1.0, None)
    before = ledger.snapshot()
    ledger.record("hit", 1.0, None)
    assert (before.usd, before.avoided["hit"]) == (1.0, 1)
    assert ledger.snapshot().avoided["hit"] == 2
