"""Configuration errors (issue 26, item 1): loud once, with the fix; ``create_bucket=True`` and
``s3cache create-bucket``; transient failures stay fail-soft."""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.faultproxy import Fault, FaultProxy
from s3cache import AsyncS3Cache, S3Cache
from s3cache._config_errors import ConfigAlarm
from s3cache.errors import (
    AccessDeniedError,
    BucketNotFoundError,
    CredentialsError,
    EndpointUnreachableError,
    ServerError,
)
from tests import test_cli, test_readme
from tests.conftest import CREDENTIALS
from tests.test_cli import Run
from tests.test_readme import README, readme_blocks

env, run = test_cli.env, test_cli.run
#: The environment the README tells readers to set (test_readme's fixtures).
reader_env, readme_buckets = test_readme.reader_env, test_readme.readme_buckets


@pytest.fixture
def new_bucket(s3: Any) -> Iterator[str]:
    """The name of a bucket that does not exist yet (removed afterwards if a test made it)."""
    name = f"new-{uuid.uuid4().hex[:20]}"
    yield name
    with contextlib.suppress(s3.exceptions.ClientError):
        s3.delete_bucket(Bucket=name)


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]


async def test_a_missing_bucket_is_logged_once_at_error_with_the_fix(
    s3_endpoint: str, new_bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with AsyncS3Cache(new_bucket, endpoint_url=s3_endpoint, **CREDENTIALS) as cache:
        await cache.set("a", 1)
        assert await cache.get("a") is None  # still fail-soft: a miss
        await cache.set("b", 2)
        errors = _errors(caplog)
        assert len(errors) == 1, errors
        assert f"bucket {new_bucket!r} does not exist at {s3_endpoint}" in errors[0]
        assert "region us-east-1" in errors[0]
        assert f"s3cache create-bucket {new_bucket}" in errors[0]
        assert "create_bucket=True" in errors[0]
        assert cache.stats().errors["no_such_bucket"] == 3


@pytest.mark.parametrize("fast_path", [True, False])
async def test_on_error_raise_raises_the_typed_error_with_the_fix(
    s3_endpoint: str, new_bucket: str, fast_path: bool
) -> None:
    kwargs: dict[str, Any] = {
        "endpoint_url": s3_endpoint,
        "on_error": "raise",
        "fast_path": fast_path,
    }
    async with AsyncS3Cache(new_bucket, **kwargs, **CREDENTIALS) as cache:
        with pytest.raises(BucketNotFoundError, match="s3cache create-bucket") as raised:
            await cache.set("a", 1)
        assert s3_endpoint in str(raised.value)
        assert raised.value.kind == "no_such_bucket"


async def test_check_at_startup_raises_the_fix(s3_endpoint: str, new_bucket: str) -> None:
    async with AsyncS3Cache(new_bucket, endpoint_url=s3_endpoint, **CREDENTIALS) as cache:
        with pytest.raises(BucketNotFoundError, match="create_bucket=True"):
            await cache.check()


@pytest.mark.parametrize(
    ("code", "cls", "fix"),
    [
        ("InvalidAccessKeyId", CredentialsError, "AWS_ACCESS_KEY_ID"),
        ("SignatureDoesNotMatch", CredentialsError, "region_name="),
        ("AccessDenied", AccessDeniedError, "s3:PutObject"),
    ],
)
async def test_refused_credentials_and_access_name_the_fix(
    canned_error_server: Any,
    caplog: pytest.LogCaptureFixture,
    code: str,
    cls: type[Exception],
    fix: str,
) -> None:
    endpoint = canned_error_server(403, code)
    async with AsyncS3Cache("bkt", endpoint_url=endpoint, **CREDENTIALS) as cache:
        await cache.set("a", 1)
        await cache.set("a", 2)
        errors = _errors(caplog)
        assert len(errors) == 1, errors
        assert fix in errors[0]
        assert f"at {endpoint}" in errors[0]
    async with AsyncS3Cache("bkt", endpoint_url=endpoint, on_error="raise", **CREDENTIALS) as c:
        with pytest.raises(cls, match=fix):
            await c.set("a", 1)


async def test_no_credentials_found_names_the_variables(
    s3_endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    async with AsyncS3Cache(bucket, endpoint_url=s3_endpoint, on_error="raise") as cache:
        with pytest.raises(CredentialsError, match="AWS_ACCESS_KEY_ID"):
            await cache.get("a")


async def test_an_endpoint_refusing_the_first_request_is_a_configuration_error(
    closed_port_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with AsyncS3Cache("bkt", endpoint_url=closed_port_url, **CREDENTIALS) as cache:
        assert await cache.get("a") is None
        errors = _errors(caplog)
        assert len(errors) == 1
        assert f"nothing answers at {closed_port_url}" in errors[0]
        assert cache.stats().errors["connection"] == 1


async def test_an_outage_after_the_endpoint_answered_stays_transient(
    proxy: FaultProxy, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with AsyncS3Cache(bucket, endpoint_url=proxy.endpoint, **CREDENTIALS) as cache:
        await cache.set("a", 1)
        proxy.set_fault(Fault.REFUSE)
        assert await cache.get("a") is None
        proxy.set_fault(Fault.HTTP_500)
        assert await cache.get("a") is None
        assert _errors(caplog) == []
        assert cache.stats().errors["connection"] >= 1


def test_the_alarm_judges_only_configuration_errors() -> None:
    alarm = ConfigAlarm("bkt", "http://h:1", "eu-west-1")
    refused = EndpointUnreachableError("GetObject 'k': ConnectionRefusedError")
    explained, first = alarm.explain(refused)
    assert first
    assert "nothing answers at http://h:1" in str(explained)
    assert type(explained) is EndpointUnreachableError
    assert alarm.explain(refused)[1] is False  # told once per kind
    alarm.answered = True
    assert not alarm.is_config(refused)
    server = ServerError("PutObject 'k': InternalError (HTTP 500)")
    assert alarm.explain(server) == (server, False)
    twice = alarm.explain(alarm.explain(BucketNotFoundError("x"))[0])[0]
    assert str(twice).count("Fix:") == 1


def test_create_bucket_must_be_a_bool() -> None:
    with pytest.raises(TypeError, match="create_bucket"):
        AsyncS3Cache("bkt", create_bucket="yes")  # type: ignore[arg-type]


@pytest.mark.parametrize("fast_path", [True, False])
async def test_create_bucket_creates_a_missing_bucket_and_the_write_lands(
    s3_endpoint: str, s3: Any, new_bucket: str, fast_path: bool
) -> None:
    kwargs: dict[str, Any] = {
        "endpoint_url": s3_endpoint,
        "fast_path": fast_path,
        "on_error": "raise",
    }
    async with AsyncS3Cache(new_bucket, create_bucket=True, **kwargs, **CREDENTIALS) as cache:
        await cache.set("a", {"x": 1})
        assert await cache.get("a") == {"x": 1}
        assert cache.stats().errors == {}
    s3.head_bucket(Bucket=new_bucket)


def test_create_bucket_in_its_region_from_the_facade(
    s3_endpoint: str, s3: Any, new_bucket: str
) -> None:
    credentials = {**CREDENTIALS, "region_name": "eu-west-1"}
    with S3Cache(new_bucket, endpoint_url=s3_endpoint, create_bucket=True, **credentials) as c:
        assert c.get("missing") is None  # a read creates it too
        c.set("a", 1)
        assert c.get("a") == 1
    assert s3.get_bucket_location(Bucket=new_bucket)["LocationConstraint"] == "eu-west-1"


async def test_create_bucket_with_the_response_lost(
    proxy: FaultProxy, s3: Any, new_bucket: str
) -> None:
    """The CreateBucket's response is lost after the server made the bucket: the retry finds
    it ours (BucketAlreadyOwnedByYou, or S3's 200) and the write still lands, once."""
    kwargs: dict[str, Any] = {
        "endpoint_url": proxy.endpoint,
        "on_error": "raise",
        "create_bucket": True,
    }
    async with AsyncS3Cache(new_bucket, **kwargs, **CREDENTIALS) as cache:
        proxy.set_fault(Fault.RESET_BODY, times=1, methods={"PUT"})
        assert await cache.get("a") is None  # the GET finds no bucket: the first PUT creates it
        assert [(r.method, r.path) for r in proxy.records] == [("PUT", f"/{new_bucket}")]
        await cache.set("a", 1)
        assert await cache.get("a") == 1
    s3.head_bucket(Bucket=new_bucket)


def test_cli_create_bucket_is_idempotent(run: Run, s3: Any, new_bucket: str) -> None:
    status, out, err = run("create-bucket", new_bucket)
    assert (status, err) == (0, "")
    assert out.startswith(f"created bucket {new_bucket!r}")
    s3.head_bucket(Bucket=new_bucket)
    status, out, _ = run("create-bucket", new_bucket)
    assert status == 0
    assert out.startswith(f"already exists: bucket {new_bucket!r}")
    assert run("--json", "create-bucket", new_bucket)[0] == 0


def test_the_readme_asyncio_example_fails_loudly_without_its_bucket(
    s3_endpoint: str, new_bucket: str, tmp_path: Path, reader_env: dict[str, str]
) -> None:
    """The README's asyncio program, run as a reader would against a server without its
    bucket: it still exits (fail-soft), but stderr carries one ERROR line with the fix."""
    (block,) = [
        b for b in readme_blocks(README.read_text(encoding="utf-8")) if b.section == "asyncio"
    ]
    program = tmp_path / "example.py"
    program.write_text(block.code.replace("my-cache-bucket", new_bucket), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(program)],
        env=reader_env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    stderr = done.stderr.decode()
    fix = f"create it with `s3cache create-bucket {new_bucket}` or pass `create_bucket=True`"
    assert stderr.count("s3cache configuration error (no_such_bucket)") == 1, stderr
    assert fix in stderr
    assert s3_endpoint in stderr
