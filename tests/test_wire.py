"""The wire path end to end: signatures a verifying server accepts, credentials that refresh,
requests equal to aiobotocore's, and the pitfalls of sending S3 requests with aiohttp."""

from __future__ import annotations

import asyncio
import gzip
import http.server
import json
import os
import re
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import boto3
import pytest
from aiobotocore.credentials import AioRefreshableCredentials
from aiobotocore.session import AioSession

from harness import miniserver
from harness.faultproxy import FaultProxy
from harness.process import free_port
from s3cache import AsyncS3Cache, CredentialsError
from s3cache._sigv4 import quote_key
from tests.faults.test_security import self_signed

# -- moto's server with signature verification on ---------------------------------------------

ALLOW_ALL = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
)
AUTH_BUCKET = "signed-bucket"


class AuthMoto:
    """moto's server in a process with ``INITIAL_NO_AUTH_ACTION_COUNT=4``: after four set-up
    calls (IAM user, its access key, an allow-all policy, the bucket) it verifies every
    signature with botocore, from the bytes it receives."""

    def __init__(self) -> None:
        port = free_port()
        self.endpoint = f"http://127.0.0.1:{port}"
        self.clients: list[Any] = []
        env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "4"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1):
                    break
            except urllib.error.HTTPError:
                break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.close()
                    raise RuntimeError("moto did not start") from None
                time.sleep(0.1)
        anyone = self.client("iam", "set-up", "set-up")
        anyone.create_user(UserName="cache")
        key = anyone.create_access_key(UserName="cache")["AccessKey"]
        anyone.put_user_policy(UserName="cache", PolicyName="all", PolicyDocument=ALLOW_ALL)
        self.client("s3", "set-up", "set-up").create_bucket(Bucket=AUTH_BUCKET)
        self.key_id, self.secret = key["AccessKeyId"], key["SecretAccessKey"]

    def client(self, service: str, key_id: str | None = None, secret: str | None = None) -> Any:
        """A boto3 client on this server, closed with it (an unclosed one leaks its sockets to
        whichever later test the garbage collector runs in)."""
        client = boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=key_id or self.key_id,
            aws_secret_access_key=secret or self.secret,
        )
        self.clients.append(client)
        return client

    def close(self) -> None:
        for client in self.clients:
            client.close()
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture(scope="module")
def auth_moto() -> Iterator[AuthMoto]:
    server = AuthMoto()
    yield server
    server.close()


def signed_kwargs(server: AuthMoto, **credentials: Any) -> dict[str, Any]:
    credentials = credentials or {
        "aws_access_key_id": server.key_id,
        "aws_secret_access_key": server.secret,
    }
    return {
        "bucket": AUTH_BUCKET,
        "endpoint_url": server.endpoint,
        "region_name": "us-east-1",
        "on_error": "raise",
        **credentials,
    }


def on_the_wire(cache: AsyncS3Cache) -> bool:
    return cache._transport._loops[asyncio.get_running_loop()].route is not None


async def test_a_verifying_server_accepts_the_wire_path(auth_moto: AuthMoto) -> None:
    async with AsyncS3Cache(**signed_kwargs(auth_moto), prefix="sig") as cache:
        await cache.set("plain", {"v": 1}, ttl=60)
        await cache.set("spaces and ünïcode/+~=&*'()%", [1, 2])
        assert await cache.add("once", 1) is True
        assert await cache.add("once", 2) is False
        assert await cache.get("plain") == {"v": 1}
        assert await cache.get("spaces and ünïcode/+~=&*'()%") == [1, 2]
        assert await cache.exists("plain")
        assert await cache.delete("plain") is True
        assert await cache.get("plain", "gone") == "gone"
        assert on_the_wire(cache)


async def test_a_verifying_server_rejects_a_wrong_secret(auth_moto: AuthMoto) -> None:
    kwargs = signed_kwargs(
        auth_moto, aws_access_key_id=auth_moto.key_id, aws_secret_access_key="wrong"
    )
    async with AsyncS3Cache(**kwargs) as cache:
        with pytest.raises(CredentialsError, match="SignatureDoesNotMatch"):
            await cache.get("k")
        with pytest.raises(CredentialsError, match="SignatureDoesNotMatch"):
            await cache.set("k", 1)
        assert on_the_wire(cache)


async def test_a_session_token_is_signed(auth_moto: AuthMoto) -> None:
    iam = auth_moto.client("iam")
    trust = ALLOW_ALL.replace('"Action": "*"', '"Action": "sts:AssumeRole"')
    trust = trust.replace('"Resource": "*"', '"Principal": {"AWS": "*"}')
    iam.create_role(RoleName="cache-role", AssumeRolePolicyDocument=trust)
    iam.put_role_policy(RoleName="cache-role", PolicyName="all", PolicyDocument=ALLOW_ALL)
    role = "arn:aws:iam::123456789012:role/cache-role"
    temporary = auth_moto.client("sts").assume_role(RoleArn=role, RoleSessionName="cache")
    creds = temporary["Credentials"]
    token = {
        "aws_access_key_id": creds["AccessKeyId"],
        "aws_secret_access_key": creds["SecretAccessKey"],
        "aws_session_token": creds["SessionToken"],
    }
    async with AsyncS3Cache(**signed_kwargs(auth_moto, **token), prefix="token") as cache:
        await cache.set("k", "with a token")
        assert await cache.get("k") == "with a token"
        assert on_the_wire(cache)
    forged = {**token, "aws_session_token": "forged"}
    async with AsyncS3Cache(**signed_kwargs(auth_moto, **forged), prefix="token") as cache:
        with pytest.raises(CredentialsError):
            await cache.get("k")


async def test_the_signed_host_is_the_host_sent(auth_moto: AuthMoto) -> None:
    """An endpoint spelt in capitals: botocore signs the lower-cased host, and so must we send."""
    upper = auth_moto.endpoint.replace("127.0.0.1", "LOCALHOST")
    async with AsyncS3Cache(**{**signed_kwargs(auth_moto), "endpoint_url": upper}) as cache:
        await cache.set("host", "ok")
        assert await cache.get("host") == "ok"
        assert on_the_wire(cache)


async def test_expiring_credentials_are_refreshed_as_botocore_refreshes_them(
    auth_moto: AuthMoto,
) -> None:
    """The session's refreshable credentials expire within botocore's mandatory refresh window:
    the first request refreshes them. The old key is deleted on the server, so only a request
    signed with the refreshed key can succeed."""
    iam = auth_moto.client("iam")
    old = iam.create_access_key(UserName="cache")["AccessKey"]
    new = None
    refreshes = 0

    async def refresh() -> dict[str, str]:
        nonlocal refreshes, new
        refreshes += 1
        new = iam.create_access_key(UserName="cache")["AccessKey"]
        expiry = datetime.now(UTC) + timedelta(hours=1)
        return metadata(new, expiry)

    def metadata(key: dict[str, Any], expiry: datetime) -> dict[str, str]:
        return {
            "access_key": key["AccessKeyId"],
            "secret_key": key["SecretAccessKey"],
            "token": "",
            "expiry_time": expiry.isoformat(),
        }

    soon = datetime.now(UTC) + timedelta(minutes=5)  # inside the 10-minute mandatory window
    credentials = AioRefreshableCredentials.create_from_metadata(
        metadata(old, soon), refresh, "custom-test"
    )
    session = AioSession()
    session._credentials = credentials  # what a credential provider would have resolved
    iam.delete_access_key(UserName="cache", AccessKeyId=old["AccessKeyId"])
    kwargs = {k: v for k, v in signed_kwargs(auth_moto).items() if not k.startswith("aws_")}
    try:
        async with AsyncS3Cache(**kwargs, session=session, prefix="refresh") as cache:
            await cache.set("k", "refreshed")
            assert await cache.get("k") == "refreshed"
            assert on_the_wire(cache)
        assert refreshes == 1
    finally:
        if new is not None:
            iam.delete_access_key(UserName="cache", AccessKeyId=new["AccessKeyId"])


# -- the same requests as aiobotocore ------------------------------------------------------------

PROBE = re.compile(r"\.s3cache/check/[0-9a-f]{32}")
#: Headers that differ between two requests of the same operation (time, ids), or between the
#: paths without meaning to S3 (aiohttp's default ``Accept: */*``; ``Expect``, which botocore
#: adds to every PUT and the wire path only to large ones).
VARYING = {
    "x-amz-content-sha256",  # compared below
    "authorization",
    "x-amz-date",
    "expires",
    "amz-sdk-invocation-id",
    "amz-sdk-request",
    "accept",
    "expect",
    "x-amz-meta-s3cache-nonce",  # random per conditional write
}
HTTP_DATE = re.compile(r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT")


class MiniHandler(http.server.BaseHTTPRequestHandler):
    """The mini server's S3 over ``http.server`` (plain or TLS), one thread per connection;
    subclasses see or answer a request first by overriding :meth:`respond`."""

    protocol_version = "HTTP/1.1"
    store: miniserver.S3Store

    def _answer(self) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        body = self.rfile.read(int(headers.get("content-length", "0")))
        status, reply_headers, reply = self.respond(headers, body)
        self.send_response(status)
        for name, value in reply_headers:
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(0 if self.command == "HEAD" else len(reply)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply)

    def respond(self, headers: dict[str, str], body: bytes) -> miniserver.Response:
        """The mini server's answer (status, headers, body) to this request."""
        bucket, _, key = self.path.partition("?")[0].lstrip("/").partition("/")
        request = miniserver.Request(self.command, unquote(bucket), unquote(key), {}, headers, body)
        try:
            return miniserver.handle(self.store, request, time.time())
        except miniserver.HTTPError as exc:
            return exc.status, [], exc.code.encode()

    do_GET = do_PUT = do_HEAD = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Recorder(MiniHandler):
    """:class:`MiniHandler`, recording every request."""

    seen: list[tuple[str, str, dict[str, str]]]

    def respond(self, headers: dict[str, str], body: bytes) -> miniserver.Response:
        self.seen.append((self.command, self.path, headers))
        return super().respond(headers, body)


Seen = list[tuple[str, str, dict[str, str]]]


@pytest.fixture(params=["http", "https"])
def recorder(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[str, Path | None, Seen, dict[str, Any]]]:
    """(endpoint, CA certificate or None, requests seen, the bucket's objects) of a recording
    S3 server."""
    store = miniserver.S3Store()
    store.buckets["rec-bucket"] = {}
    seen: list[tuple[str, str, dict[str, str]]] = []
    handler = type("Handler", (_Recorder,), {"store": store, "seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    cert: Path | None = None
    if request.param == "https":
        cert, key = self_signed(tmp_path)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint = f"{request.param}://127.0.0.1:{server.server_address[1]}"
    yield endpoint, cert, seen, store.buckets["rec-bucket"]
    server.shutdown()
    server.server_close()
    thread.join()


async def exercise(cache: AsyncS3Cache) -> None:
    await cache.set("a/k ey+~%", {"v": "x" * 2000}, ttl=60)  # compressed (gzip), with a ttl
    await cache.set("plain", b"raw bytes")
    assert await cache.add("added", 1, ttl=30) is True
    assert await cache.get("a/k ey+~%") == {"v": "x" * 2000}
    assert await cache.get("plain") == b"raw bytes"
    assert await cache.get("absent", "miss") == "miss"
    assert await cache.exists("plain")
    assert await cache.delete("plain") is True


async def _on_both_paths(
    recorder: tuple[str, Path | None, Seen, dict[str, Any]], **options: Any
) -> dict[bool, Seen]:
    """What :func:`exercise` sends through aiobotocore (False) and the wire path (True), probe
    keys made alike."""
    endpoint, cert, seen, objects = recorder
    sent: dict[bool, Seen] = {}
    for fast in (False, True):
        seen.clear()
        objects.clear()
        async with AsyncS3Cache(
            "rec-bucket",
            endpoint_url=endpoint,
            verify=str(cert) if cert else None,
            fast_path=fast,
            on_error="raise",
            region_name="eu-west-1",
            aws_access_key_id="AKID",
            aws_secret_access_key="secret",
            **options,
        ) as cache:
            await exercise(cache)
            assert on_the_wire(cache) is fast
        sent[fast] = [(m, PROBE.sub("probe", p), h) for m, p, h in seen]
    return sent


async def test_the_wire_path_sends_what_aiobotocore_sends(
    recorder: tuple[str, Path | None, Seen, dict[str, Any]],
) -> None:
    """Method, path and every header but the per-request ones; the same headers signed."""
    sent = await _on_both_paths(recorder, compression="gzip", aws_session_token="token")
    botocore_requests, wire_requests = sent[False], sent[True]
    assert [(m, p) for m, p, _ in wire_requests] == [(m, p) for m, p, _ in botocore_requests]
    for (method, path, ours), (_, _, theirs) in zip(wire_requests, botocore_requests, strict=True):
        assert _fixed(ours) == _fixed(theirs), (method, path)
        assert _signed(ours) == _signed(theirs), (method, path)
        assert ours["accept-encoding"] == "identity"
        assert ("expires" in ours) is ("expires" in theirs)
        assert all(
            HTTP_DATE.fullmatch(h.get("expires", "")) for h in (ours, theirs) if "expires" in h
        )
        # Both paths signed the body's SHA-256 (no checksum header is ever sent), or the
        # empty body's; never UNSIGNED-PAYLOAD, over http and https alike. (The probes of
        # add() carry their own random key in their body.)
        if "probe" not in path:
            assert ours["x-amz-content-sha256"] == theirs["x-amz-content-sha256"]
        assert re.fullmatch("[0-9a-f]{64}", ours["x-amz-content-sha256"])


def _fixed(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k not in VARYING}


def _signed(headers: dict[str, str]) -> str:
    return headers["authorization"].split("SignedHeaders=")[1].split(",")[0]


# -- pitfalls ---------------------------------------------------------------------------------


async def test_compressed_entries_come_back_exactly_as_stored(
    cache_kwargs: dict[str, Any], s3: Any, bucket: str, proxy: FaultProxy
) -> None:
    """aiohttp's automatic decompression is off: a gzip body is handed up as stored, and the
    storage format (not the HTTP layer) decodes it; ``Accept-Encoding: identity`` is sent."""
    stored = gzip.compress(b'{"zipped": true}')
    s3.put_object(
        Bucket=bucket,
        Key="z",
        Body=stored,
        ContentEncoding="gzip",
        ContentType="application/json",
    )
    async with AsyncS3Cache(**{**cache_kwargs, "endpoint_url": proxy.endpoint}) as cache:
        found = await cache._transport.get("z")
        assert found is not None
        assert found[0] == stored
        assert found[1]["content-encoding"] == "gzip"
        assert await cache.get("z") == {"zipped": True}
        assert on_the_wire(cache)
    assert {h.headers.get("accept-encoding") for h in proxy.heads} == {"identity"}


KEYS = ["a b", "plus+sign", "percent%2Fliteral", "tilde~", "eq=amp&", "star*'()", "ключ/日本"]


async def test_keys_are_sent_quoted_once(
    cache_kwargs: dict[str, Any], s3: Any, bucket: str, proxy: FaultProxy
) -> None:
    async with AsyncS3Cache(**{**cache_kwargs, "endpoint_url": proxy.endpoint}) as cache:
        for key in KEYS:
            await cache.set(key, key)
        for key in KEYS:
            assert await cache.get(key) == key
        assert on_the_wire(cache)
    listed = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert listed == set(KEYS)
    paths = {h.path for h in proxy.heads if h.method == "PUT"}
    assert paths == {f"/{bucket}/{quote_key(k)}" for k in KEYS}


async def test_entries_written_by_litellm_read_the_same_on_both_paths(
    cache_kwargs: dict[str, Any], s3: Any, bucket: str
) -> None:
    """What litellm's S3Cache writes (json.dumps, Expires, Cache-Control), read either way."""
    value = {"timestamp": 1.5, "response": '{"id": "x"}'}
    expires = datetime.now(UTC) + timedelta(hours=1)
    s3.put_object(
        Bucket=bucket,
        Key="llm/abc",
        Body=json.dumps(value),
        ContentType="application/json",
        Expires=expires,
        CacheControl="immutable, max-age=3600, s-maxage=3600",
    )
    s3.put_object(
        Bucket=bucket, Key="llm/old", Body=json.dumps(value), Expires=datetime(2001, 1, 1)
    )
    results = []
    for fast in (True, False):
        async with AsyncS3Cache(**cache_kwargs, fast_path=fast, on_error="raise") as cache:
            results.append((await cache.get("llm:abc"), await cache.get("llm:old", "expired")))
            assert on_the_wire(cache) is fast
    assert results == [(value, "expired")] * 2


@pytest.mark.parametrize(
    "options",
    [
        {
            "sse": "aws:kms",
            "sse_kms_key_id": "alias/cache",
            "sse_bucket_key_enabled": True,
            "expected_bucket_owner": "111122223333",
            "request_payer": "requester",
            "storage_class": "STANDARD_IA",
            "checksum": "crc32",
        },
        {"sse_customer_key": bytes(range(32)), "checksum": "sha256"},
    ],
    ids=["kms-owner-payer-class-crc32", "sse-c-sha256"],
)
async def test_with_company_options_the_wire_path_sends_what_aiobotocore_sends(
    recorder: tuple[str, Path | None, Seen, dict[str, Any]], options: dict[str, Any]
) -> None:
    """The options' headers (encryption, SSE-C key, owner, payer, storage class, checksums)
    are sent and signed alike on both paths, over http and https."""
    sent = await _on_both_paths(recorder, **options)
    assert [(m, p) for m, p, _ in sent[True]] == [(m, p) for m, p, _ in sent[False]]
    for (method, path, ours), (_, _, theirs) in zip(sent[True], sent[False], strict=True):
        # add()'s probes carry a random body of their own, so their checksums differ.
        vary = {f"x-amz-checksum-{options['checksum']}"} if "probe" in path else set()
        kept = [{k: v for k, v in _fixed(h).items() if k not in vary} for h in (ours, theirs)]
        assert kept[0] == kept[1], (method, path)
        assert _signed(ours) == _signed(theirs), (method, path)
        assert "amz-sdk-invocation-id" not in ours
        assert "amz-sdk-invocation-id" in theirs
        if method == "PUT":
            assert "x-amz-checksum-" + options["checksum"] in ours
