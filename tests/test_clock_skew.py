"""A client clock an hour ahead or behind, against a server that enforces S3's 15-minute window.

In front of moto (which checks no clock) the fault proxy enforces the window as S3 does: a
request whose ``X-Amz-Date`` is more than 15 minutes from the proxy's clock gets S3's 403
RequestTimeTooSkewed, with ``ServerTime`` and a ``Date``. Against a real server
(``--server ceph``) the server itself does. The client's clock is shifted for the test only:
s3cache's signing clock (the wire path) and botocore's signer (the aiobotocore path). Every
operation, each from a fresh cache, must succeed after one refusal, re-signed on the server's
clock.
"""

from __future__ import annotations

import calendar
import contextlib
import importlib
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import botocore.auth
import botocore.compat
import pytest

import s3cache._client
from harness.faultproxy import FaultProxy
from s3cache import AsyncS3Cache, CredentialsError
from s3cache._clock import SigningClock

#: Where botocore's SigV4 signers read the time: its own, and awscrt's when that is installed.
SIGNER_MODULES: list[Any] = [botocore.auth]
with contextlib.suppress(ImportError):  # no awscrt
    SIGNER_MODULES.append(importlib.import_module("botocore.crt.auth"))
HOUR = 3600.0
#: How far a measured offset may be from the shift: the server's time has whole seconds.
SLACK = 2.0


def shift_clocks(monkeypatch: pytest.MonkeyPatch, cache: AsyncS3Cache, skew: float) -> None:
    """Move the client's clock by ``skew`` seconds for what ``cache`` signs, on both paths."""
    cache.transport.clock.source = lambda: time.time() + skew
    real = botocore.compat.get_current_datetime

    def shifted(remove_tzinfo: bool = True) -> Any:
        return real(remove_tzinfo) + timedelta(seconds=skew)

    for signers in SIGNER_MODULES:
        monkeypatch.setattr(signers, "get_current_datetime", shifted)


@pytest.fixture
def enforcing(s3_server: str, s3_endpoint: str, proxy: FaultProxy) -> str:
    """An endpoint that refuses requests signed more than 15 minutes off: the proxy in front
    of moto, a real server by itself."""
    if s3_server != "moto":
        return s3_endpoint
    proxy.enforce_clock(900.0)
    return proxy.endpoint


@pytest.fixture(params=[True, False], ids=["wire", "aiobotocore"])
def skew_kwargs(
    request: pytest.FixtureRequest, enforcing: str, cache_kwargs: dict[str, Any]
) -> dict[str, Any]:
    return {
        **cache_kwargs,
        "endpoint_url": enforcing,
        "fast_path": request.param,
        "prefix": "skew",
        "on_error": "raise",
    }


@pytest.fixture
async def plain(skew_kwargs: dict[str, Any]) -> AsyncIterator[AsyncS3Cache]:
    """A cache on this machine's clock, which sets up what the skewed one finds.

    :func:`shift_clocks` moves botocore's clock for the whole process, so a plain aiobotocore
    client would sign an hour off too (and learn its own offset, now and then logging it). A
    non-zero offset makes the client sign with s3cache's clock, which is not shifted.
    """
    async with AsyncS3Cache(**skew_kwargs) as cache:
        cache.transport.clock.offset = 1e-6
        yield cache


Act = Callable[[AsyncS3Cache, AsyncS3Cache], Awaitable[None]]


@dataclass(frozen=True)
class Op:
    name: str
    act: Act  # (plain, skewed): sets up with ``plain``, checks the operation on ``skewed``


async def _get(plain: AsyncS3Cache, skewed: AsyncS3Cache) -> None:
    await plain.set("k", {"v": 1})
    assert await skewed.get("k") == {"v": 1}


async def _set(plain: AsyncS3Cache, skewed: AsyncS3Cache) -> None:
    await skewed.set("k", {"v": 2}, ttl=60)
    assert await plain.get("k") == {"v": 2}


async def _add(plain: AsyncS3Cache, skewed: AsyncS3Cache) -> None:
    assert await skewed.add("k", 3, ttl=60) is True
    assert await plain.get("k") == 3


async def _delete(plain: AsyncS3Cache, skewed: AsyncS3Cache) -> None:
    await plain.set("k", 1)
    assert await skewed.delete("k") is True
    assert not await plain.exists("k")


async def _exists(plain: AsyncS3Cache, skewed: AsyncS3Cache) -> None:
    await plain.set("k", 1)
    assert await skewed.exists("k")


async def _get_many(plain: AsyncS3Cache, skewed: AsyncS3Cache) -> None:
    await plain.set_many({"a": 1, "b": 2})
    assert await skewed.get_many(["a", "b", "c"]) == {"a": 1, "b": 2}


async def _set_many(plain: AsyncS3Cache, skewed: AsyncS3Cache) -> None:
    assert await skewed.set_many({"a": 1, "b": 2}) == {}
    assert await plain.get_many(["a", "b"]) == {"a": 1, "b": 2}


async def _delete_many(plain: AsyncS3Cache, skewed: AsyncS3Cache) -> None:
    await plain.set_many({"a": 1, "b": 2})
    assert await skewed.delete_many(["a", "b", "c"]) == 2
    assert await plain.get_many(["a", "b"]) == {}


async def _clear(plain: AsyncS3Cache, skewed: AsyncS3Cache) -> None:
    await plain.set_many({"a": 1, "b": 2})
    assert await skewed.clear() == 2


async def _iter_keys(plain: AsyncS3Cache, skewed: AsyncS3Cache) -> None:
    await plain.set_many({"a": 1, "b:c": 2})
    assert sorted([key async for key in skewed.iter_keys()]) == ["a", "b/c"]


async def _lease(plain: AsyncS3Cache, skewed: AsyncS3Cache) -> None:
    assert await skewed.get_or_set("k", lambda: "made", ttl=60, lease=5) == "made"
    assert await plain.get("k") == "made"


async def _lock(plain: AsyncS3Cache, skewed: AsyncS3Cache) -> None:
    async with skewed.lock("job", ttl=5) as held:
        assert held.token > 0
    assert not held.lost
    async with plain.lock("job", ttl=5) as again:  # released: free at once
        assert again.token > held.token


async def _check(plain: AsyncS3Cache, skewed: AsyncS3Cache) -> None:
    report = await skewed.check()
    assert report.clock_skew_s is not None
    # The two are measured by different requests: each is off by up to its round trip.
    slack = SLACK + report.latency_ms / 1000
    assert abs(report.clock_skew_s + report.clock_offset_s) <= slack
    assert abs(report.clock_offset_s) >= HOUR - slack


OPS = [
    Op("get", _get),
    Op("set", _set),
    Op("add", _add),
    Op("delete", _delete),
    Op("exists", _exists),
    Op("get_many", _get_many),
    Op("set_many", _set_many),
    Op("delete_many", _delete_many),
    Op("clear", _clear),
    Op("iter_keys", _iter_keys),
    Op("get_or_set-lease", _lease),
    Op("lock", _lock),
    Op("check", _check),
]


@pytest.mark.parametrize("skew", [HOUR, -HOUR], ids=["ahead", "behind"])
@pytest.mark.parametrize("op", OPS, ids=[op.name for op in OPS])
async def test_every_operation_survives_a_clock_an_hour_off(
    op: Op,
    skew: float,
    plain: AsyncS3Cache,
    skew_kwargs: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await plain.exists("warm-up")  # its client opens on this machine's clock
    with monkeypatch.context() as patch:  # undone before the bucket's teardown
        async with AsyncS3Cache(**skew_kwargs) as skewed:
            shift_clocks(patch, skewed, skew)
            await op.act(plain, skewed)
            stats = skewed.stats()
    assert abs(stats.clock_offset_s + skew) <= SLACK  # the server's clock minus ours
    assert stats.error_count == 0
    ahead = "ahead of" if skew > 0 else "behind"
    assert re.search(rf"the client clock is 3,(599|600|601) s {ahead} the server", caplog.text)
    assert caplog.text.count("signing with the server's clock") == 1


async def test_a_client_that_cannot_be_corrected_names_the_offset(
    skew_kwargs: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where botocore's signer cannot be given the corrected clock (emulated: the client is
    left as it is), its requests raise a CredentialsError naming the offset and the fix; the
    wire path signs on the corrected clock regardless."""
    monkeypatch.setattr(s3cache._client, "correct_signing", lambda client, clock: False)
    pattern = r"RequestTimeTooSkewed.*the client clock is 3,(599|600|601) s ahead of the serv"
    with monkeypatch.context() as patch:  # undone before the bucket's teardown
        async with AsyncS3Cache(**skew_kwargs) as skewed:
            shift_clocks(patch, skewed, HOUR)
            if skew_kwargs["fast_path"]:
                await skewed.set("k", 1)
                assert await skewed.get("k") == 1
            else:
                with pytest.raises(CredentialsError, match=pattern):
                    await skewed.get("k")
            with pytest.raises(CredentialsError, match=pattern):
                await skewed.check()  # through aiobotocore on both paths


# -- the refusal, read (no server) -------------------------------------------------------------

SERVER_T = float(calendar.timegm((2027, 1, 15, 8, 0, 0)))
SKEWED_XML = {"Code": "RequestTimeTooSkewed", "ServerTime": "2027-01-15T08:00:00Z"}
DATE = {"date": "Fri, 15 Jan 2027 08:00:00 GMT"}


def _clock_at(now: float) -> SigningClock:
    return SigningClock(lambda: now)


def test_the_offset_comes_from_server_time_or_date() -> None:
    ahead = _clock_at(SERVER_T + HOUR)
    assert ahead.refusal_offset("RequestTimeTooSkewed", 403, SKEWED_XML, {}) == -HOUR
    assert ahead.refusal_offset("RequestTimeTooSkewed", 403, {}, DATE) == -HOUR
    assert ahead.refusal_offset("RequestExpired", 400, {}, DATE) == -HOUR
    # A 403 without a code (a HEAD), or AccessDenied, whose Date is over 5 minutes off.
    assert ahead.refusal_offset("403", 403, {}, DATE) == -HOUR
    behind = _clock_at(SERVER_T - 400)
    assert behind.refusal_offset("AccessDenied", 403, {}, DATE) == 400


def test_other_refusals_are_not_the_clock() -> None:
    near = _clock_at(SERVER_T + 60)
    assert near.refusal_offset("AccessDenied", 403, {}, DATE) is None  # a minute is not skew
    assert near.refusal_offset("NoSuchKey", 404, {}, DATE) is None
    far = _clock_at(SERVER_T + HOUR)
    assert far.refusal_offset("NoSuchKey", 404, {}, DATE) is None
    assert far.refusal_offset("RequestTimeTooSkewed", 403, {}, {}) is None  # no server time
    corrected = _clock_at(SERVER_T + HOUR)
    corrected.offset = -HOUR  # already signing on the server's clock: a 403 is a 403
    assert corrected.refusal_offset("AccessDenied", 403, {}, DATE) is None


def test_a_403_signed_before_a_concurrent_correction_is_still_the_clock() -> None:
    """Requests sent together from a skewed clock: one refusal corrects the clock while the
    others are on the wire. Their bodyless 403s were signed on the old clock, so they are
    refusals for the time too (uvloop's timing made this race show in delete_many's HEADs)."""
    corrected = _clock_at(SERVER_T + HOUR)
    corrected.offset = -HOUR
    assert corrected.refusal_offset("403", 403, {}, DATE, signed_offset=0.0) == -HOUR
    assert corrected.refusal_offset("403", 403, {}, DATE, signed_offset=-HOUR) is None
