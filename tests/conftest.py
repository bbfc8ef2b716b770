"""Test harness: a real S3 server over HTTP and caches pointed at it.

The server is moto's (the default), or with ``--server ceph|seaweedfs`` (or the environment
variable ``S3CACHE_TEST_SERVER``) a real one started by :mod:`harness` for the session: the
same tests, run against each server by ``nox -s conformance``. There, tests that never reach
the S3 server are deselected (the moto run covers them), ``@pytest.mark.moto_only(reason)``
tests are skipped with their reason, and ``@pytest.mark.server_limit(server, reason)`` marks
a documented limit of one server as an expected failure.

With ``--loop uvloop`` every asyncio test (and its async fixtures) runs on a uvloop event loop
instead of asyncio's own (``nox -s uvloop``); uvloop is a test dependency only.
"""

from __future__ import annotations

import asyncio
import http.server
import logging
import os
import re
import socket
import threading
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from aiobotocore.session import AioSession
from moto.server import ThreadedMotoServer

from harness import servers as harness_servers
from harness.faultproxy import Fault, FaultProxy
from harness.servers import ServerUnavailable
from s3cache import AsyncS3Cache

CREDENTIALS: dict[str, Any] = {
    "aws_access_key_id": "testing-key-id",
    "aws_secret_access_key": "testing-secret",
    "region_name": "us-east-1",
}


#: The servers ``--server`` accepts: moto's, and every real one the harness can start.
SERVER_NAMES = ("moto", *harness_servers.SERVERS)
#: The event loops ``--loop`` accepts.
LOOP_NAMES = ("asyncio", "uvloop")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--server",
        choices=SERVER_NAMES,
        default=os.environ.get("S3CACHE_TEST_SERVER") or "moto",
        help="the S3 server the tests talk to (default: $S3CACHE_TEST_SERVER or moto)",
    )
    parser.addoption(
        "--loop",
        choices=LOOP_NAMES,
        default="asyncio",
        help="the event loop asyncio tests run on (uvloop: needs uvloop installed)",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--server") not in SERVER_NAMES:  # from the environment variable
        raise pytest.UsageError(f"S3CACHE_TEST_SERVER must be one of {', '.join(SERVER_NAMES)}")
    if config.getoption("--loop") == "uvloop":
        config.pluginmanager.register(_UvloopTests(), "s3cache-uvloop")


class _UvloopTests:
    """pytest-asyncio's loop-factory hook, registered only for ``--loop uvloop``: every asyncio
    test and its async fixtures get a fresh uvloop loop (the test ids stay the same)."""

    def __init__(self) -> None:
        try:
            import uvloop
        except ImportError as exc:
            raise pytest.UsageError(f"--loop uvloop needs uvloop installed ({exc})") from exc
        self.new_loop = uvloop.new_event_loop

    def pytest_asyncio_loop_factories(
        self, config: pytest.Config, item: pytest.Item
    ) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
        return {"uvloop": self.new_loop}


@pytest.fixture(autouse=True)
def _on_the_chosen_loop(request: pytest.FixtureRequest) -> None:
    """Under ``--loop uvloop``, an asyncio test that is not on uvloop is a harness bug."""
    if request.config.getoption("--loop") != "uvloop" or "_asyncio_loop_factory" not in getattr(
        request, "fixturenames", ()
    ):
        return
    loop = request.getfixturevalue("_function_scoped_runner").get_loop()
    assert type(loop).__module__.startswith("uvloop"), f"{request.node.nodeid} ran on {loop!r}"


def pytest_report_header(config: pytest.Config) -> str:
    return f"S3 server: {config.getoption('--server')}; event loop: {config.getoption('--loop')}"


#: A memory address in a test id: ids must be the same in every process (pytest-xdist's
#: workers each collect the suite and refuse to run when their collections differ).
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Refuse test ids that differ between processes; on a real server, deselect tests that
    never reach it and apply the per-server marks."""
    unstable = [item.nodeid for item in items if _ADDRESS.search(item.nodeid)]
    if unstable:
        raise pytest.UsageError(
            "test ids with a memory address (give them ids=): " + ", ".join(unstable[:5])
        )
    name = config.getoption("--server")
    if name == "moto":
        return
    kept: list[pytest.Item] = []
    offline: list[pytest.Item] = []
    for item in items:
        if "s3_endpoint" not in getattr(item, "fixturenames", ()):
            offline.append(item)
            continue
        kept.append(item)
        moto_only = item.get_closest_marker("moto_only")
        if moto_only is not None:
            item.add_marker(pytest.mark.skip(reason=f"moto only: {_reason(moto_only)}"))
        for limit in item.iter_markers("server_limit"):
            if limit.args and limit.args[0] == name:
                reason = f"{name} limit: {_reason(limit, 1)}"
                item.add_marker(pytest.mark.xfail(reason=reason, strict=True))
    if offline:
        config.hook.pytest_deselected(items=offline)
        items[:] = kept


def _reason(mark: pytest.Mark, index: int = 0) -> str:
    reason = mark.kwargs.get("reason") or (mark.args[index] if len(mark.args) > index else "")
    if not reason:
        raise pytest.UsageError(f"@pytest.mark.{mark.name} needs a reason")
    return str(reason)


@pytest.fixture(scope="session")
def s3_server(pytestconfig: pytest.Config) -> str:
    """The name of the server the session's tests talk to."""
    return pytestconfig.getoption("--server")  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def s3_endpoint(s3_server: str) -> Iterator[str]:
    """The session's S3 server on a free loopback port: moto's, or a real one (``--server``)."""
    if s3_server != "moto":
        yield from _real_server(s3_server)
        return
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def _real_server(name: str) -> Iterator[str]:
    """Start a harness server with the suite's credentials; unavailable: skip, or fail in CI."""
    server = harness_servers.server(
        name,
        access_key=CREDENTIALS["aws_access_key_id"],
        secret_key=CREDENTIALS["aws_secret_access_key"],
    )
    try:
        endpoint = server.start()
    except ServerUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{name} cannot run in CI: {exc}", pytrace=False)
        pytest.skip(f"{name} cannot run on this machine: {exc}")
    try:
        yield endpoint.url
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _no_ambient_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """Tests never pick up a developer's real AWS configuration."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def proxy(s3_endpoint: str) -> Iterator[FaultProxy]:
    """A fault proxy in front of the session's moto server, faithful until told otherwise.

    It also counts what clients send (by method, in flight at once, the latest heads), where
    neither the wire path nor botocore's hooks can hide a request.
    """
    parts = urlsplit(s3_endpoint)
    assert parts.hostname is not None
    assert parts.port is not None
    with FaultProxy((parts.hostname, parts.port)) as p:
        yield p


@pytest.fixture
def s3(s3_endpoint: str) -> Iterator[Any]:
    """A plain boto3 client on the test server, to look behind the cache's back."""
    client = boto3.client("s3", endpoint_url=s3_endpoint, **CREDENTIALS)
    yield client
    client.close()


@pytest.fixture
def bucket(s3: Any, s3_server: str) -> Iterator[str]:
    """A fresh, empty bucket for one test (removed afterwards on a real server)."""
    name = f"test-{uuid.uuid4().hex[:20]}"
    s3.create_bucket(Bucket=name)
    yield name
    if s3_server != "moto":  # a real server keeps data for the session: keep it small
        _remove_bucket(s3, name)


def _remove_bucket(s3: Any, name: str) -> None:
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
            objects = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if objects:
                s3.delete_objects(Bucket=name, Delete={"Objects": objects, "Quiet": True})
        s3.delete_bucket(Bucket=name)
    except s3.exceptions.ClientError as exc:  # e.g. a key DeleteObjects cannot carry
        logging.getLogger(__name__).warning("left bucket %s behind: %s", name, exc)


@pytest.fixture
def cache_kwargs(s3_endpoint: str, bucket: str) -> dict[str, Any]:
    """Constructor arguments for a cache on the test bucket."""
    return {"bucket": bucket, "endpoint_url": s3_endpoint, **CREDENTIALS}


@pytest.fixture
async def cache(cache_kwargs: dict[str, Any]) -> AsyncIterator[AsyncS3Cache]:
    """An AsyncS3Cache on the test bucket, prefix ``cache``, errors raised."""
    async with AsyncS3Cache(**cache_kwargs, prefix="cache", on_error="raise") as c:
        yield c


@pytest.fixture
def two_per_page(monkeypatch: pytest.MonkeyPatch) -> Callable[[AsyncS3Cache], list[str | None]]:
    """Make a cache's listings two objects a page; returns the page tokens it is asked for."""

    def install(cache: AsyncS3Cache) -> list[str | None]:
        asked: list[str | None] = []
        real = cache.transport.list_page

        async def list_page(prefix: str, token: str | None) -> Any:
            asked.append(token)
            found, _ = await real(prefix, None)
            page = int(token or 0)
            more = len(found) > 2 * (page + 1)
            return found[2 * page : 2 * page + 2], (str(page + 1) if more else None)

        monkeypatch.setattr(cache.transport, "list_page", list_page)
        return asked

    return install


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> Callable[[AsyncS3Cache, int], None]:
    """Make a cache's listings real pages of ``size`` objects (``MaxKeys``): the server pages
    them, with continuation tokens, however the objects change between pages."""

    def install(cache: AsyncS3Cache, size: int) -> None:
        monkeypatch.setitem(cache.transport._params["ListObjectsV2"], "MaxKeys", size)

    return install


def fail_later_pages(proxy: FaultProxy) -> None:
    """Answer 503 SlowDown to every listing past the first page (they carry a continuation
    token), retries included, until the proxy is cleared."""
    proxy.set_fault(Fault.SLOWDOWN_503, methods={"GET"}, path_contains="continuation-token")


class _CannedS3Handler(http.server.BaseHTTPRequestHandler):
    """Answers every request with one canned S3 error (status, code)."""

    status = 403
    code = "AccessDenied"
    message = "canned"
    requests = 0

    def _answer(self) -> None:
        type(self).requests += 1
        self.close_connection = True  # like S3, answer without reading (or awaiting) a body
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            f"<Error><Code>{self.code}</Code><Message>{self.message}</Message></Error>"
        ).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body) if self.command != "HEAD" else 0))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def canned_error_server() -> Iterator[Callable[..., str]]:
    """Start HTTP servers that answer every request with one S3 error; returns their URLs."""
    servers: list[http.server.ThreadingHTTPServer] = []
    threads: list[threading.Thread] = []

    def start(status: int, code: str, message: str = "canned") -> str:
        attributes = {"status": status, "code": code, "message": message}
        handler = type("Handler", (_CannedS3Handler,), attributes)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        servers.append(server)
        threads.append(thread)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
    for thread in threads:
        thread.join()


@pytest.fixture
def closed_port_url() -> str:
    """A loopback URL on which nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# -- counting requests where no client can hide them ------------------------------------------


#: What each HTTP method of an object request is, as botocore names the operation.
_OPERATIONS = {
    "GET": "GetObject",
    "PUT": "PutObject",
    "HEAD": "HeadObject",
    "DELETE": "DeleteObject",
}


class Requests:
    """Counts a cache's requests by operation at a proxy in front of the server, where neither
    the wire path nor botocore's hooks can hide one; can hold GETs there until released."""

    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy
        self._before_hold = 0

    @property
    def sent(self) -> Counter[str]:
        return Counter({_OPERATIONS.get(m, m): n for m, n in self.proxy.methods.items()})

    def clear(self) -> None:
        self.proxy.reset_counts()

    def hold_gets(self) -> None:
        self._before_hold = self.proxy.held
        self.proxy.set_fault(Fault.HOLD, methods={"GET"})

    async def arrived(self) -> None:
        """Return once a GET since :meth:`hold_gets` was answered (its answer held back)."""
        assert await asyncio.to_thread(self.proxy.wait_held, self._before_hold + 1)

    def release(self) -> None:
        self.proxy.clear()
        self.proxy.release()


@pytest.fixture(
    params=[
        "hook",
        pytest.param(
            "proxy",
            marks=pytest.mark.moto_only("the proxy drops signed headers: only moto accepts that"),
        ),
    ]
)
def ignoring_conditions(
    request: pytest.FixtureRequest, cache_kwargs: dict[str, Any]
) -> dict[str, Any]:
    """Constructor arguments for a cache whose server ignores conditional writes: a session
    hook drops the headers before signing (every request then goes through aiobotocore), or
    the proxy drops them on the wire (the wire path, too, is then what is tested)."""
    if request.param == "proxy":
        proxy: FaultProxy = request.getfixturevalue("proxy")
        proxy.set_fault(Fault.IGNORE_CONDITIONS)
        return {**cache_kwargs, "endpoint_url": proxy.endpoint}
    session = AioSession()

    def drop_condition(request: Any, **_: Any) -> None:
        if "If-None-Match" in request.headers:
            del request.headers["If-None-Match"]

    session.register("before-sign.s3.PutObject", drop_condition)
    return {**cache_kwargs, "session": session}


@pytest.fixture
def requests(proxy: FaultProxy) -> Requests:
    return Requests(proxy)


@pytest.fixture
async def counted(cache_kwargs: dict[str, Any], requests: Requests) -> Any:
    kwargs = {**cache_kwargs, "endpoint_url": requests.proxy.endpoint}
    async with AsyncS3Cache(**kwargs, on_error="raise", prefix="f") as cache:
        yield cache
