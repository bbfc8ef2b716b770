"""The transport (s3cache._transport) on both paths: error translation against servers that
answer with S3 errors over HTTP; its lifetime: close() with requests in flight lets them finish
within their deadline, and refuses everything else with CacheClosedError; retries, region
redirects, and each loop's wire session; how If-Match is quoted, and which form each server
honours."""

from __future__ import annotations

import asyncio
import gc
import http.server
import random
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiobotocore.session import AioSession
from botocore.config import Config
from botocore.exceptions import HTTPClientError

import s3cache._client
import s3cache._http_pool
import s3cache._rules
import s3cache._wire
from harness import miniserver
from harness.faultproxy import Fault, FaultProxy
from s3cache import (
    AccessDeniedError,
    AsyncS3Cache,
    BatchError,
    CacheClosedError,
    CredentialsError,
    S3CacheError,
    ServerError,
    StoreTimeoutError,
    _format,
)
from s3cache._capabilities import IfMatchForm
from s3cache._wire import WireSession
from s3cache.maintenance import doctor
from tests.conftest import CREDENTIALS
from tests.faults.conftest import address
from tests.test_wire import MiniHandler, on_the_wire

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
        for call in (cache.exists("k"), cache.delete("k"), cache.transport.admin.head_bucket()):
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
    if proxied._settings.raise_errors:
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


# -- region redirects ------------------------------------------------------------------------

BUCKET_REGION = "eu-west-1"
SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/s3/aws4_request")


class _Regional(MiniHandler):
    """The mini server's S3, for a bucket in eu-west-1: a request signed for another region
    gets S3's answer, 301 PermanentRedirect naming the bucket's region."""

    seen: list[tuple[str, str, int]]

    def respond(self, headers: dict[str, str], body: bytes) -> miniserver.Response:
        scope = SCOPE.search(headers.get("authorization", ""))
        region = scope.group(1) if scope else "?"
        if region != BUCKET_REGION:
            answer: miniserver.Response = (
                301,
                [("x-amz-bucket-region", BUCKET_REGION)],
                b"<Error><Code>PermanentRedirect</Code><Message>The bucket you are attempting "
                b"to access must be addressed using the specified endpoint.</Message></Error>",
            )
        else:
            answer = super().respond(headers, body)
        self.seen.append((self.command, region, answer[0]))
        return answer


@pytest.fixture
def regional() -> Iterator[tuple[str, list[tuple[str, str, int]]]]:
    store = miniserver.S3Store()
    store.buckets["far-bucket"] = {}
    seen: list[tuple[str, str, int]] = []
    handler = type("Handler", (_Regional,), {"store": store, "seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.mark.parametrize("fast_path", [True, False])
async def test_region_redirects_are_followed_as_botocore_follows_them(
    fast_path: bool, regional: tuple[str, list[tuple[str, str, int]]]
) -> None:
    """The first request, signed for the client's region, is redirected and re-sent signed for
    the bucket's; every later request goes there directly, on either path."""
    endpoint, seen = regional
    kwargs = {**CREDENTIALS, "endpoint_url": endpoint, "fast_path": fast_path}
    async with AsyncS3Cache("far-bucket", **kwargs, on_error="raise") as cache:
        await cache.set("k", {"v": 1})
        assert await cache.get("k") == {"v": 1}
        assert await cache.exists("k")
        assert await cache.delete("k") is True
        loop_client = cache._transport._loops[asyncio.get_running_loop()]
        if fast_path:
            assert loop_client.route is not None
            assert loop_client.route.signer.region == BUCKET_REGION
    assert seen[:2] == [("PUT", "us-east-1", 301), ("PUT", BUCKET_REGION, 200)]
    assert {region for _, region, _ in seen[2:]} == {BUCKET_REGION}
    assert [status for _, _, status in seen[2:]] == [200, 200, 200, 204]


# -- retries ------------------------------------------------------------------------------------


class _Ticking:
    """An ``X-Amz-Date`` clock that moves a second on every reading, from now (real servers
    refuse a request signed more than 15 minutes off as RequestTimeTooSkewed)."""

    def __init__(self) -> None:
        self.start = datetime.now(UTC).replace(microsecond=0)
        self.readings = 0

    def __call__(self) -> str:
        self.readings += 1
        return self.at(self.readings)

    def at(self, reading: int) -> str:
        return (self.start + timedelta(seconds=reading)).strftime("%Y%m%dT%H%M%SZ")


async def test_each_attempt_is_signed_afresh(
    cache_kwargs: dict[str, Any], proxy: FaultProxy
) -> None:
    """Two 500s, then success: three PUTs, each signed at its own time (a retry re-signs)."""
    kwargs = {**cache_kwargs, "endpoint_url": proxy.endpoint}
    async with AsyncS3Cache(**kwargs, timeout=9.0, on_error="raise") as cache:
        await cache.exists("warm-up")
        route = cache._transport._loops[asyncio.get_running_loop()].route
        assert route is not None
        ticking = route.amz_date = _Ticking()  # type: ignore[assignment]
        proxy.reset_counts()
        proxy.set_fault(Fault.HTTP_500, times=2, methods={"PUT"})
        await cache.set("k", "v")
        assert proxy.count(Fault.HTTP_500) == 2
    puts = [h.headers for h in proxy.heads if h.method == "PUT"]
    assert [h["x-amz-date"] for h in puts] == [ticking.at(i) for i in (1, 2, 3)]
    assert len({h["authorization"] for h in puts}) == 3


async def test_retries_stop_at_the_configured_attempts_within_the_deadline(
    cache_kwargs: dict[str, Any], proxy: FaultProxy
) -> None:
    config = Config(retries={"mode": "standard", "total_max_attempts": 2})
    kwargs = {**cache_kwargs, "endpoint_url": proxy.endpoint, "config": config}
    async with AsyncS3Cache(**kwargs, timeout=5.0, on_error="raise") as c:
        await c.exists("warm-up")
        proxy.set_fault(Fault.SLOWDOWN_503, methods={"GET"})
        started = time.monotonic()
        with pytest.raises(ServerError, match="SlowDown"):
            await c.get("k")
        assert time.monotonic() - started < 5.0
    assert proxy.count(Fault.SLOWDOWN_503) == 2


# -- lifetimes -------------------------------------------------------------------------------


def test_each_loop_closes_its_wire_session(cache_kwargs: dict[str, Any]) -> None:
    """asyncio.run ends: that loop's connection pool is closed on it, every connection ended
    (no unclosed-transport warning, which the test configuration turns into an error), and
    forgotten."""
    cache = AsyncS3Cache(**cache_kwargs, on_error="raise")
    sessions = []

    async def use() -> None:
        await cache.set("k", 1)
        loop_client = cache._transport._loops[asyncio.get_running_loop()]
        assert loop_client.wire is not None
        sessions.append(loop_client.wire._pool)

    asyncio.run(use())
    asyncio.run(use())
    assert sessions[0] is not sessions[1]
    assert all(s is not None and s.closed and not s.connections for s in sessions)
    assert cache._transport._loops == {}
    asyncio.run(cache.close())
    gc.collect()


async def test_a_deadline_during_the_first_request_leaves_no_session_open(
    cache_kwargs: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first request opens the clients under its deadline; cut short there, the wire path's
    connection pool must be closed, not left to the garbage collector."""
    started: list[WireSession] = []
    real_start = WireSession.start

    async def tracked_start(self: WireSession) -> None:
        started.append(self)
        await real_start(self)

    async def never(client: Any) -> None:
        await asyncio.Event().wait()

    monkeypatch.setattr(WireSession, "start", tracked_start)
    monkeypatch.setattr(s3cache._client, "_open_http_session", never)
    # 2 s: time enough to create the aiobotocore client first, even on a loaded machine.
    async with AsyncS3Cache(**cache_kwargs, timeout=2.0, on_error="raise") as cache:
        with pytest.raises(StoreTimeoutError):
            await cache.get("k")
    assert len(started) == 1
    assert started[0]._pool is None


# -- If-Match ---------------------------------------------------------------------------------

#: The If-Match form each server honours on PutObject (Ceph RGW refuses the quoted ETag).
EXPECTED_FORM: dict[str, IfMatchForm] = {
    "moto": "quoted",
    "seaweedfs": "quoted",
    "ceph": "unquoted",
}


async def test_the_if_match_form_is_learned_by_a_probe(
    cache_kwargs: dict[str, Any], s3: Any, s3_server: str
) -> None:
    payload = _format.encode("probe", 60.0, _format.JsonSerializer(), 0.0)
    async with AsyncS3Cache(**cache_kwargs) as cache:
        capabilities = await cache.capabilities()
        assert capabilities.if_match_form == EXPECTED_FORM[s3_server]
        assert (capabilities.conditional_create, capabilities.conditional_replace) == (True, True)
        transport = cache.transport
        await transport.put("probe", payload)
        etag = s3.head_object(Bucket=cache.bucket, Key="probe")["ETag"]
        put_if = transport.put_if
        matching, wrong = capabilities.if_match(etag), capabilities.if_match("0" * 32)
        assert (await put_if("probe", payload, if_match=matching)).stored, "the learned form works"
        assert not (await put_if("probe", payload, if_match=wrong)).stored
        assert not (await put_if("absent", payload, if_match=matching)).stored, "404 or 412: False"
    assert s3.get_object(Bucket=cache.bucket, Key="probe")["Body"].read() == payload.body


# -- large bodies ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", [4 << 20, 50 << 20], ids=["4MiB", "50MiB"])
@pytest.mark.parametrize("fast_path", [True, False], ids=["wire", "aiobotocore"])
async def test_a_large_body_round_trips_without_a_resource_warning(
    cache_kwargs: dict[str, Any], size: int, fast_path: bool
) -> None:
    """aiohttp warns (ResourceWarning, an error in this suite) when handed more than 1 MiB of
    raw bytes: both paths hand it a stream instead, and the value comes back intact."""
    body = random.Random(size).randbytes(4096) * (size // 4096)
    kwargs = {**cache_kwargs, "fast_path": fast_path, "on_error": "raise", "timeout": 60.0}
    async with AsyncS3Cache(**kwargs) as cache:
        await cache.set("big", body)
        assert await cache.get("big") == body
        stats = cache.stats()
    assert (stats.sets, stats.hits, stats.bytes_out, stats.bytes_in) == (1, 1, size, size)
    assert stats.error_count == 0


def _warn(**_: Any) -> None:
    raise ResourceWarning("raised as an error inside the HTTP layer")


async def test_a_warning_raised_as_an_error_propagates_and_is_not_counted(
    cache_kwargs: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Warning turned error (``-W error``) inside the HTTP layer is a bug of s3cache's, never
    a store failure: it reaches the caller as is, uncounted, with ``on_error="log"`` too."""

    async def warn(*args: Any, **kwargs: Any) -> Any:
        raise ResourceWarning("a warning inside the HTTP layer, raised as an error")

    async with AsyncS3Cache(**cache_kwargs, on_error="log") as cache:
        await cache.set("warm", "up")  # the loop's client and pool are open
        monkeypatch.setattr(s3cache._http_pool.Pool, "request", warn)
        with pytest.raises(ResourceWarning, match="HTTP layer"):
            await cache.set("big", bytes(2 << 20))
        assert on_the_wire(cache)
        assert cache.stats().errors == {}
    session = AioSession()
    session.register("before-send.s3.PutObject", _warn)  # on the aiobotocore path
    async with AsyncS3Cache(**cache_kwargs, session=session, on_error="log") as cache:
        with pytest.raises(ResourceWarning, match="HTTP layer"):
            await cache.set("k", "v")
        assert cache.stats().errors == {}
    wrapped = HTTPClientError(error=ResourceWarning("inside aiohttp"))  # as aiobotocore wraps it
    assert s3cache._rules.warning_in(wrapped) is wrapped.kwargs["error"]
    assert s3cache._rules.warning_in(HTTPClientError(error=OSError("reset"))) is None
