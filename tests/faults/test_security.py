"""Security: secrets never leak, TLS is verified by default, no code is ever evaluated from a
body, and clearing never reaches outside the prefix."""

from __future__ import annotations

import ast
import asyncio
import datetime
import http.server
import ipaddress
import logging
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest
from botocore.config import Config
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import s3cache
from harness.faultproxy import Fault, FaultProxy
from s3cache import (
    AsyncS3Cache,
    CredentialsError,
    EndpointUnreachableError,
    S3Cache,
    S3CacheError,
    maintenance,
)
from s3cache._format import LITERAL_EVAL_MAX_BYTES, JsonSerializer

CANARY_SECRET = "CANARY-SECRET-7f3a9c1e-do-not-leak"
CANARY_TOKEN = "CANARY-TOKEN-52b8d0aa-do-not-leak"
CANARY_PASSWORD = "CANARY-PASSWORD-e41c"
CANARIES = (CANARY_SECRET, CANARY_TOKEN, CANARY_PASSWORD)


def leaked(text: str) -> list[str]:
    """The canaries found in ``text``."""
    return [c for c in CANARIES if c in text]


def exception_texts(exc: BaseException) -> str:
    """Everything an exception shows: str, repr and args, down its cause chain."""
    parts: list[str] = []
    seen: BaseException | None = exc
    while seen is not None:
        parts += [str(seen), repr(seen), repr(seen.args)]
        seen = seen.__cause__ or seen.__context__
    return "\n".join(parts)


def canary_kwargs(bucket: str, endpoint: str) -> dict[str, Any]:
    return {
        "bucket": bucket,
        "endpoint_url": endpoint,
        "region_name": "us-east-1",
        "aws_access_key_id": "AKIACANARYKEYID",
        "aws_secret_access_key": CANARY_SECRET,
        "aws_session_token": CANARY_TOKEN,
    }


async def test_secrets_never_in_repr_str_logs_or_errors(
    proxy: FaultProxy, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Canary credentials, with a server that rejects them: nowhere to be seen."""
    caplog.set_level(logging.DEBUG, logger="s3cache")
    caplog.set_level(logging.WARNING)
    kwargs = canary_kwargs(bucket, proxy.endpoint)
    proxy.set_fault(Fault.DENY_403)
    shown: list[str] = []
    async with (
        AsyncS3Cache(**kwargs, on_error="log") as soft,
        AsyncS3Cache(**kwargs, on_error="raise") as hard,
    ):
        shown += [repr(soft), str(soft), repr(hard), repr(soft.stats())]
        assert await soft.get("k", "dflt") == "dflt"
        await soft.set("k", {"v": 1})
        assert soft.stats().errors == {"credentials": 2}
        for call in (hard.get("k"), hard.set("k", 1), hard.check(), hard.clear()):
            with pytest.raises(S3CacheError) as info:
                await call
            assert isinstance(info.value, CredentialsError)
            shown.append(exception_texts(info.value))
        assert proxy.count(Fault.DENY_403) >= 6  # the server really rejected them
    shown += [r.getMessage() for r in caplog.records]
    shown += [str(r.exc_info) for r in caplog.records if r.exc_info]
    assert any("credentials" in text for text in shown)
    assert leaked("\n".join(shown)) == []


async def test_secrets_never_in_unreachable_errors(
    closed_endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Connection failures (and an endpoint URL holding a password) show no secret either."""
    caplog.set_level(logging.DEBUG, logger="s3cache")
    host_port = closed_endpoint.removeprefix("http://")
    with_password = f"http://user:{CANARY_PASSWORD}@{host_port}"
    for make in (AsyncS3Cache, S3Cache):
        with pytest.raises(ValueError, match="user info") as rejected:
            make(**canary_kwargs("bucket", with_password))
        assert leaked(exception_texts(rejected.value)) == []
    async with AsyncS3Cache(
        **canary_kwargs("bucket", closed_endpoint), on_error="raise", timeout=1.0
    ) as cache:
        with pytest.raises(S3CacheError) as info:
            await cache.get("k")
        assert isinstance(info.value, (EndpointUnreachableError, s3cache.StoreTimeoutError))
    texts = exception_texts(info.value) + "\n".join(r.getMessage() for r in caplog.records)
    assert leaked(texts) == []


# -- TLS ---------------------------------------------------------------------------------------


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1 that no trust store knows."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class _NotFound(http.server.BaseHTTPRequestHandler):
    """Answers every request 404 NoSuchKey (a miss), over TLS."""

    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        body = b"<Error><Code>NoSuchKey</Code><Message>none</Message></Error>"
        self.send_response(404)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def tls_endpoint(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTPS S3-ish server with a self-signed certificate: (endpoint, its certificate)."""
    cert, key = self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}", cert
    server.shutdown()
    server.server_close()
    thread.join()


async def test_tls_is_verified_by_default(tls_endpoint: tuple[str, Path]) -> None:
    """verify=None: the self-signed server is refused; a CA bundle or verify=False gets through."""
    endpoint, cert = tls_endpoint
    base: dict[str, Any] = {"bucket": "bucket", "endpoint_url": endpoint}
    base |= {"region_name": "us-east-1"}
    base |= {"aws_access_key_id": "k", "aws_secret_access_key": "s", "on_error": "raise"}
    # botocore retries a failed handshake like any connection error: no retries keeps it quick.
    no_retry = Config(retries={"mode": "standard", "max_attempts": 0})
    async with AsyncS3Cache(**base, config=no_retry) as default:
        with pytest.raises(EndpointUnreachableError) as info:
            await default.get("k")
        assert "CERTIFICATE_VERIFY_FAILED" in exception_texts(info.value)
        client = default._transport._loops[asyncio.get_running_loop()].client
        assert client._endpoint.http_session._verify not in (False, None, "")  # a CA bundle
    async with AsyncS3Cache(**base, verify=str(cert)) as trusting:
        assert await trusting.get("k", "miss") == "miss"  # handshake and request went through
    async with AsyncS3Cache(**base, verify=False) as unverified:
        assert await unverified.get("k", "miss") == "miss"


# -- no code evaluation ------------------------------------------------------------------------

FORBIDDEN_MODULES = {"pickle", "cPickle", "_pickle", "marshal", "shelve", "dill", "cloudpickle"}
FORBIDDEN_MODULES |= {"jsonpickle", "yaml"}
FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__", "execfile"}


def package_sources() -> list[Path]:
    root = Path(s3cache.__file__).parent
    files = sorted(root.rglob("*.py"))
    assert len(files) >= 8
    return files


#: The one opt-in exception: ``serializer="pickle"`` (``_serializers.py``), which the cache
#: refuses without a signing key, so that only entries signed by a key it holds are unpickled
#: (tests/test_habits.py checks the refusal and the signed round trip).
PICKLE_HOME: Final = "_serializers.py"


def test_package_never_unpickles_or_evaluates() -> None:
    """No pickle-family import (but the opt-in pickle serializer's), no eval/exec/compile,
    anywhere in the package source."""
    problems: list[str] = []
    for path in package_sources():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module.split(".")[0]]
            problems += [
                f"{path.name} imports {n}"
                for n in names
                if n in FORBIDDEN_MODULES and (n, path.name) != ("pickle", PICKLE_HOME)
            ]
            if isinstance(node, ast.Attribute) and node.attr in {"eval", "exec", "execfile"}:
                problems.append(f"{path.name}:{node.lineno} uses .{node.attr}")
            if isinstance(node, ast.Name) and node.id in FORBIDDEN_CALLS:
                problems.append(f"{path.name}:{node.lineno} names {node.id}")
    assert problems == []


def test_literal_eval_only_behind_the_size_cap() -> None:
    """ast.literal_eval has one call site, in a function that checks the size cap first."""
    sites: list[str] = []
    for path in package_sources():
        tree = ast.parse(path.read_text(), filename=str(path))
        for func in ast.walk(tree):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            calls = [
                n
                for n in ast.walk(func)
                if isinstance(n, ast.Call)
                and isinstance(n.func, ast.Attribute)
                and n.func.attr == "literal_eval"
            ]
            if not calls:
                continue
            sites.append(f"{path.name}:{func.name}")
            cap_checks = [
                n
                for n in ast.walk(func)
                if isinstance(n, ast.Compare)
                and any(
                    isinstance(c, ast.Name) and c.id == "LITERAL_EVAL_MAX_BYTES"
                    for c in ast.walk(n)
                )
            ]
            assert cap_checks, f"{path.name}:{func.name} calls literal_eval without the cap"
            assert min(c.lineno for c in cap_checks) < min(c.lineno for c in calls)
    assert sites == ["_format.py:loads"]


def test_literal_eval_fallback_is_bounded() -> None:
    """A Python literal under the cap is read; one byte over, it is refused unread."""
    serializer = JsonSerializer()
    assert serializer.loads(b"{'a': (1, 2), 'b': None}") == {"a": (1, 2), "b": None}
    filler = b"x" * (LITERAL_EVAL_MAX_BYTES - len(b"{'a': ''}"))
    assert serializer.loads(b"{'a': '" + filler + b"'}") == {"a": filler.decode()}
    with pytest.raises(ValueError, match="cap"):
        serializer.loads(b"{'a': '" + filler + b"x'}")
    with pytest.raises(ValueError, match="neither JSON nor a Python literal"):
        serializer.loads(b"__import__('os').getcwd()")


# -- clearing stays under the prefix ----------------------------------------------------------

OUTSIDE = ["cache2/x", "cache2/deep/y", "cachex", "cache", "cach/e", "other/cache/z", "ca/che"]


async def test_clear_never_touches_keys_outside_the_prefix(
    cache_kwargs: dict[str, Any], s3: Any, bucket: str
) -> None:
    """Siblings (``cache2/``), look-alikes (``cachex``) and raw objects all survive a clear."""
    for key in OUTSIDE:
        s3.put_object(Bucket=bucket, Key=key, Body=b'"outside"')
    async with (
        AsyncS3Cache(**cache_kwargs, prefix="cache", on_error="raise") as cache,
        AsyncS3Cache(**cache_kwargs, prefix="cache2", on_error="raise") as sibling,
    ):
        await cache.set_many({f"k{i}": i for i in range(5)})
        await cache.set("nested:deep:key", 1)
        await sibling.set("mine", "sibling")
        for escape in ("../cache2/x", "..:cache2:x", "a/../../cache2/x", "./x"):
            with pytest.raises(ValueError, match="segment"):
                await cache.set(escape, "escape")
            with pytest.raises(ValueError, match="segment"):
                await cache.delete(escape)
        with pytest.raises(ValueError, match="segment"):
            AsyncS3Cache(**cache_kwargs, prefix="cache/../cache2")

        assert await cache.clear() == 6
        assert await cache.clear() == 0
        result = await maintenance.clear_prefix(cache)
        assert result.deleted == 0
        purged = await maintenance.purge_expired(cache)
        assert purged.deleted == 0
        assert await sibling.get("mine") == "sibling"

    listed = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}
    assert listed == {*OUTSIDE, "cache2/mine"}
