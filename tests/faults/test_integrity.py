"""Nothing lost, nothing corrupt: acknowledged writes read back, broken bodies read as misses.

Writes run through the fault proxy with faults sprinkled at random; afterwards every write the
cache acknowledged must read back exactly, and nothing may ever read back damaged. Bodies put
behind the cache's back (with boto3) that cannot be decoded must be a logged, counted miss.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
from botocore.config import Config

from harness.faultproxy import Fault, FaultProxy
from s3cache import AsyncS3Cache, CorruptEntryError, S3CacheError
from s3cache._format import LITERAL_EVAL_MAX_BYTES

from .conftest import warm_with_deadline

MISSING = object()
ONE_RETRY = Config(retries={"mode": "standard", "max_attempts": 1})


def value_for(i: int) -> dict[str, Any]:
    """A value whose every byte matters (a truncation or a mix-up would change it)."""
    return {"i": i, "payload": f"{i:06d}-" * 50, "nested": [i, str(i), {"k": i}]}


async def test_acknowledged_writes_survive_random_faults(
    proxy: FaultProxy, proxied_kwargs: dict[str, Any]
) -> None:
    """200 concurrent sets under 30 % random faults: acknowledged ones all read back exactly."""
    count = 200
    # breaker=False: this test is about data, and with one attempt per operation 30 % of them
    # fail, so a run of five in a row (the breaker's default) is likely and would (rightly)
    # open it: the read-back would then fail fast. The breaker is tests/test_circuit.py's.
    async with AsyncS3Cache(
        **proxied_kwargs,
        prefix="ack",
        on_error="raise",
        config=ONE_RETRY,
        max_concurrency=16,
        breaker=False,
    ) as cache:
        await warm_with_deadline(cache, 2.0)  # roomy: this test is about data, not time
        faults = (
            Fault.RESET_BODY,
            Fault.TRUNCATE,
            Fault.HTTP_500,
            Fault.SLOWDOWN_503,
            Fault.CUT_UPLOAD,
            Fault.DELAY,
        )
        proxy.set_chaos(faults, 0.3, delay=2.5, seed=7)

        async def write(i: int) -> bool:
            try:
                await cache.set(f"k{i}", value_for(i))
            except S3CacheError:
                return False
            return True

        acknowledged = await asyncio.gather(*(write(i) for i in range(count)))
        proxy.clear()
        cache._transport.timeout = 10.0
        assert sum(proxy.faults.values()) > 20  # the faults really happened
        assert 0 < sum(acknowledged) < count

        read = await cache.get_many(f"k{i}" for i in range(count))
        for i, ok in enumerate(acknowledged):
            if ok:
                assert read[f"k{i}"] == value_for(i)  # nothing lost
            elif f"k{i}" in read:
                # A failed write may still have landed whole (its answer was lost); never damaged.
                assert read[f"k{i}"] == value_for(i)
        assert cache.stats().errors.get("corrupt", 0) == 0


async def test_interrupted_upload_never_becomes_a_hit(
    proxy: FaultProxy, proxied_kwargs: dict[str, Any], s3: Any, bucket: str
) -> None:
    """Every upload cut in half: the write fails, and the old entry stays (never half a new one)."""
    async with AsyncS3Cache(**proxied_kwargs, prefix="cut", on_error="raise") as cache:
        await warm_with_deadline(cache, 3.0)
        await cache.set("k", {"version": "old"})
        await cache.set_many({"fresh": "x"})
        await cache.delete("fresh")
        proxy.set_fault(Fault.CUT_UPLOAD, methods={"PUT"})
        big = {"version": "new", "blob": "x" * 200_000}
        with pytest.raises(S3CacheError) as info:
            await cache.set("k", big)
        assert info.value.__cause__ is not None
        with pytest.raises(S3CacheError):
            await cache.set("fresh", big)
        assert proxy.count(Fault.CUT_UPLOAD) >= 2
        proxy.clear()
        assert await cache.get("k") == {"version": "old"}
        assert await cache.get("fresh", MISSING) is MISSING
        head = s3.head_object(Bucket=bucket, Key="cut/k")
        assert head["ContentLength"] == len(b'{"version":"old"}')


async def test_upload_cancelled_by_deadline_never_becomes_a_hit(
    proxy: FaultProxy, proxied_kwargs: dict[str, Any]
) -> None:
    """A write whose answer is held back past the deadline: a timeout, and no damaged entry."""
    async with AsyncS3Cache(**proxied_kwargs, prefix="late", on_error="log") as cache:
        await warm_with_deadline(cache, 0.5)
        proxy.set_fault(Fault.DELAY, methods={"PUT"}, delay=4.0)
        start = time.monotonic()
        await cache.set("k", {"n": 1})
        # Ended by the 0.5 s deadline, not by the 4 s answer (room for a loaded machine).
        assert time.monotonic() - start < 0.5 + 1.5
        assert cache.stats().errors == {"timeout": 1}
        proxy.clear()
        cache._transport.timeout = 5.0
        # The server may have stored the (whole) body before its answer was held back.
        assert await cache.get("k", MISSING) in (MISSING, {"n": 1})


CORRUPT_BODIES = {
    "not-json": (b"\xff\xfe\x00garbage\x80", "application/json"),
    "truncated-json": (b'{"response": "abc", "timestamp": 17', "application/json"),
    "mislabelled-text": (b"<html>502 Bad Gateway</html>", "text/html"),
    "unlabelled-binary": (bytes(range(256)), "binary/octet-stream"),
    "python-but-not-literal": (b"__import__('os').system('true')", "application/json"),
    "deep-json-array": (b"[" * 100_000, "application/json"),
    "deep-literal": (b"(" * 100_000, "application/json"),
    "huge-int-literal": (b"9" * 100_000 + b"+", "application/json"),
    "nul-bytes": (b"{'a': 1}\x00", "application/json"),
    "over-literal-cap": (
        b"{'big': '" + b"x" * (LITERAL_EVAL_MAX_BYTES + 1) + b"'}",
        "application/json",
    ),
}


@pytest.mark.parametrize("name", list(CORRUPT_BODIES))
async def test_corrupt_body_is_a_logged_miss(
    name: str,
    cache_kwargs: dict[str, Any],
    s3: Any,
    bucket: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A body that cannot be decoded: default returned, CorruptEntryError counted and logged."""
    body, content_type = CORRUPT_BODIES[name]
    s3.put_object(Bucket=bucket, Key=f"c/{name}", Body=body, ContentType=content_type)
    caplog.set_level(logging.WARNING, logger="s3cache")
    async with AsyncS3Cache(**cache_kwargs, prefix="c", on_error="log") as soft:
        assert await soft.get(name, MISSING) is MISSING
        # Counted as corrupt, not as a timeout: decoding failed fast instead of hanging.
        assert soft.stats().errors == {"corrupt": 1}
        assert soft.stats().misses == 1
        assert soft.stats().hits == 0
        assert await soft.get_many([name]) == {}
    assert any("s3cache corrupt failure" in r.getMessage() for r in caplog.records)
    async with AsyncS3Cache(**cache_kwargs, prefix="c", on_error="raise") as hard:
        with pytest.raises(CorruptEntryError) as info:
            await hard.get(name)
        assert info.value.__cause__ is not None
        assert info.value.kind == "corrupt"


async def test_corrupt_expiry_metadata_is_never_served(
    cache_kwargs: dict[str, Any], s3: Any, bucket: str
) -> None:
    """Unreadable ttl metadata: never served, never a crash (moto drops a bad ``Expires``)."""
    cases: dict[str, dict[str, Any]] = {
        "bad-ttl": {"Metadata": {"s3cache-ttl": "soon"}},
        "nan-ttl": {"Metadata": {"s3cache-ttl": "nan"}},
        "inf-ttl": {"Metadata": {"s3cache-ttl": "-inf"}},
    }
    for key, extra in cases.items():
        s3.put_object(Bucket=bucket, Key=f"m/{key}", Body=b'"v"', **extra)
    async with AsyncS3Cache(**cache_kwargs, prefix="m", on_error="log") as cache:
        for key in cases:
            assert await cache.get(key, MISSING) is MISSING
            assert await cache.exists(key) is False
        assert cache.stats().hits == 0
        assert set(cache.stats().errors) <= {"corrupt"}
