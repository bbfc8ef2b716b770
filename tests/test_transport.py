"""The transport (s3cache._transport): error translation against servers that answer with S3
errors over HTTP, and its lifetime: close() with requests in flight lets them finish within their
deadline, and refuses everything else with CacheClosedError."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from benchmarks.faultproxy import Fault, FaultProxy
from s3cache import (
    AccessDeniedError,
    AsyncS3Cache,
    BatchError,
    CacheClosedError,
    CredentialsError,
    S3CacheError,
    StoreTimeoutError,
)
from s3cache.maintenance import doctor
from tests.faults.conftest import address

CREDS: dict[str, Any] = {"aws_access_key_id": "id", "aws_secret_access_key": "secret"}


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("SignatureDoesNotMatch", CredentialsError),
        ("InvalidAccessKeyId", CredentialsError),
        ("AccessDenied", AccessDeniedError),
    ],
)
async def test_a_bodyless_403_to_a_head_is_explained_by_a_get(
    canned_error_server: Callable[[int, str], str], code: str, error: type[S3CacheError]
) -> None:
    """A 403 to HEAD carries no error code; the same request as a GET names it, so bad
    credentials are never reported as a permissions problem (exists, delete, HeadBucket)."""
    url = canned_error_server(403, code)
    async with AsyncS3Cache("bucket", endpoint_url=url, on_error="raise", **CREDS) as cache:
        for call in (cache.exists("k"), cache.delete("k"), cache.transport.head_bucket()):
            with pytest.raises(error, match=code):
                await call


@pytest.mark.parametrize("code", ["SignatureDoesNotMatch", "InvalidAccessKeyId"])
async def test_the_doctor_never_passes_rejected_credentials(
    canned_error_server: Callable[[int, str], str], code: str
) -> None:
    url = canned_error_server(403, code)
    async with AsyncS3Cache("bucket", endpoint_url=url, **CREDS) as cache:
        items = {item.name: item for item in await doctor(cache)}
    assert items["endpoint reachable"].status == "pass"
    assert items["credentials accepted"].status == "fail"
    assert code in items["credentials accepted"].detail
    assert {items[n].status for n in ("bucket exists", "list", "put", "get", "delete")} == {"skip"}


# -- close() with requests in flight --------------------------------------------------------

MISSING = object()


@pytest.fixture
def proxy(s3_endpoint: str) -> Iterator[FaultProxy]:
    with FaultProxy(address(s3_endpoint)) as p:
        yield p


@pytest.fixture(params=["raise", "log"])
async def proxied(
    request: pytest.FixtureRequest, cache_kwargs: dict[str, Any], proxy: FaultProxy
) -> AsyncIterator[AsyncS3Cache]:
    """A cache through the proxy, its client open, with either ``on_error``."""
    cache = AsyncS3Cache(
        **dict(cache_kwargs, endpoint_url=proxy.endpoint), prefix="close", on_error=request.param
    )
    await cache.exists("warm-up")
    yield cache
    await cache.close()


async def _hold(proxy: FaultProxy, method: str, start: Any) -> asyncio.Task[Any]:
    """Run ``start()`` as a task and return once the server has answered its ``method`` request
    (the answer is held at the proxy)."""
    held = proxy.held
    proxy.set_fault(Fault.HOLD, times=1, methods={method})
    task = asyncio.create_task(start())
    assert await asyncio.to_thread(proxy.wait_held, held + 1)
    return task


async def test_close_lets_requests_in_flight_finish(
    proxied: AsyncS3Cache, proxy: FaultProxy, s3: Any
) -> None:
    await proxied.set("old", "value")
    setting = await _hold(proxy, "PUT", lambda: proxied.set("k", "stored"))
    getting = await _hold(proxy, "GET", lambda: proxied.get("old", MISSING))
    closing = asyncio.create_task(proxied.close())
    await asyncio.sleep(0.05)
    assert not closing.done(), "close() waits for the requests in flight"
    with pytest.raises(CacheClosedError):
        await proxied.get("old")  # a new operation
    await asyncio.to_thread(proxy.release)
    await setting  # neither an error nor (under on_error="log") a dropped write
    assert await getting == "value"
    await closing
    assert proxied.stats().errors.get("connection", 0) == 0
    body = s3.get_object(Bucket=proxied.bucket, Key="close/k")["Body"].read()
    assert body == b'"stored"'


async def test_an_operation_that_needs_a_request_after_close_raises_closed(
    proxied: AsyncS3Cache, proxy: FaultProxy
) -> None:
    """delete() sends a HEAD, then a DELETE: the HEAD was in flight when close() began, so it
    finishes; the DELETE is refused with CacheClosedError, whatever on_error says."""
    await proxied.set("k", "v")
    deleting = await _hold(proxy, "HEAD", lambda: proxied.delete("k"))
    closing = asyncio.create_task(proxied.close())
    await asyncio.sleep(0)
    await asyncio.to_thread(proxy.release)
    with pytest.raises(CacheClosedError):
        await deleting
    await closing
    assert proxied.stats().errors.get("connection", 0) == 0


async def test_close_waits_no_longer_than_the_deadline(
    proxied: AsyncS3Cache, proxy: FaultProxy
) -> None:
    """A request the server never answers ends at its own deadline (a timeout, not a closed
    connection), and close() returns then."""
    proxied._transport.timeout = 1.0
    proxy.set_fault(Fault.BLACKHOLE, times=1, methods={"GET"})
    before = proxy.requests
    getting = asyncio.create_task(proxied.get("k"))
    assert await asyncio.to_thread(proxy.wait_requests, before + 1)
    started = time.monotonic()
    await proxied.close()
    assert time.monotonic() - started < 3.0
    if proxied._raise:
        with pytest.raises(StoreTimeoutError):
            await getting
    else:
        assert await getting is None
    assert dict(proxied.stats().errors) == {"timeout": 1}


async def test_a_batch_cut_short_by_close_raises_even_when_logging(
    cache_kwargs: dict[str, Any], proxy: FaultProxy
) -> None:
    """set_many's first write is in flight when close() begins: it is stored, and the write not
    yet sent is refused and reported, not logged and dropped."""
    cache = AsyncS3Cache(
        **dict(cache_kwargs, endpoint_url=proxy.endpoint),
        prefix="close",
        on_error="log",
        max_concurrency=1,  # one write at a time
    )
    await cache.exists("warm-up")
    setting = await _hold(proxy, "PUT", lambda: cache.set_many({"a": 1, "b": 2}))
    closing = asyncio.create_task(cache.close())
    await asyncio.sleep(0)
    await asyncio.to_thread(proxy.release)
    with pytest.raises(BatchError) as raised:
        await setting
    assert list(raised.value.failed) == ["b"]
    assert isinstance(raised.value.failed["b"], CacheClosedError)
    await closing
    assert cache.stats().sets == 1
