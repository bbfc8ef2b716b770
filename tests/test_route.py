"""Eligibility: the wire path is planned only where it is equivalent; anything else falls back."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from aiohttp.resolver import ThreadedResolver
from botocore import UNSIGNED
from botocore.config import Config

from harness.faultproxy import FaultProxy
from s3cache import AsyncS3Cache, S3Cache
from s3cache._client import client_config
from s3cache._route import Ineligible, Route, plan_route
from tests.conftest import CREDENTIALS


@contextlib.asynccontextmanager
async def client(
    config: Config | None = None, session: AioSession | None = None, **kwargs: Any
) -> AsyncIterator[Any]:
    """An aiobotocore client configured as s3cache configures its own (no request is sent)."""
    options = {**CREDENTIALS, **kwargs}
    session = session or AioSession()
    async with session.create_client("s3", config=client_config(64, config), **options) as c:
        yield c


async def planned(bucket: str = "my-bucket", **kwargs: Any) -> Route:
    async with client(**kwargs) as c:
        return await plan_route(c, bucket, 64)


async def refused(bucket: str = "my-bucket", **kwargs: Any) -> str:
    with pytest.raises(Ineligible) as caught:
        await planned(bucket, **kwargs)
    return str(caught.value)


# -- endpoints and addressing, resolved by botocore's own rules ---------------------------------


async def test_custom_endpoint_is_path_style() -> None:
    route = await planned(endpoint_url="http://127.0.0.1:9000")
    assert (route.base, route.path, route.host) == (
        "http://127.0.0.1:9000",
        "/my-bucket",
        "127.0.0.1:9000",
    )
    assert route.signer.region == "us-east-1"
    assert route.url("a b/c")[0] == "/my-bucket/a%20b/c"


async def test_aws_is_virtual_host_style_in_the_bucket_region() -> None:
    route = await planned(region_name="eu-west-1")
    assert route.base == "https://my-bucket.s3.eu-west-1.amazonaws.com"
    assert (route.path, route.host) == ("", "my-bucket.s3.eu-west-1.amazonaws.com")
    assert route.signer.region == "eu-west-1"
    assert route.verify not in (False, None, "")  # TLS verified (a CA bundle, as botocore's)


async def test_dotted_bucket_over_https_is_path_style() -> None:
    route = await planned("my.dotted.bucket", region_name="ap-southeast-2")
    assert route.base == "https://s3.ap-southeast-2.amazonaws.com"
    assert route.path == "/my.dotted.bucket"


async def test_addressing_style_from_config() -> None:
    route = await planned(config=Config(s3={"addressing_style": "path"}), region_name="us-west-2")
    assert (route.base, route.path) == ("https://s3.us-west-2.amazonaws.com", "/my-bucket")


async def test_endpoint_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9100")
    route = await planned()
    assert (route.base, route.path) == ("http://127.0.0.1:9100", "/my-bucket")


async def test_payload_signing_follows_config() -> None:
    assert (await planned()).sign_body is True  # botocore signs the body unless told not to
    unsigned = Config(s3={"payload_signing_enabled": False})
    assert (await planned(config=unsigned)).sign_body is False


# -- configurations that fall back to aiobotocore -----------------------------------------------

FALLBACKS = [
    pytest.param({"config": Config(retries={"mode": "legacy"})}, "retry mode", id="legacy-retries"),
    pytest.param(
        {"config": Config(retries={"mode": "adaptive"})}, "retry mode", id="adaptive-retries"
    ),
    pytest.param(
        {"config": Config(request_checksum_calculation="when_supported")},
        "checksums",
        id="request-checksums",
    ),
    pytest.param(
        {"config": Config(response_checksum_validation="when_supported")},
        "checksums",
        id="response-checksums",
    ),
    pytest.param(
        {"config": Config(s3={"use_accelerate_endpoint": True})},
        "use_accelerate_endpoint",
        id="accelerate",
    ),
    pytest.param(
        {"config": Config(s3={"use_dualstack_endpoint": True})},
        "use_dualstack_endpoint",
        id="dualstack-s3-option",
    ),
    pytest.param(
        {"config": Config(use_dualstack_endpoint=True)},
        "use_dualstack_endpoint",
        id="dualstack",
    ),
    pytest.param({"config": Config(use_fips_endpoint=True)}, "use_fips_endpoint", id="fips"),
    pytest.param({"config": Config(signature_version="s3")}, "signature version", id="sigv2"),
    pytest.param(
        {"config": Config(signature_version=UNSIGNED)}, "signature version", id="unsigned"
    ),
    pytest.param(
        {"config": Config(proxies={"https": "http://127.0.0.1:3128"})}, "proxy", id="proxy"
    ),
    pytest.param(
        {"bucket": "my-bucket--usw2-az1--x-s3", "region_name": "us-west-2"},
        "directory bucket",
        id="directory-bucket",
    ),
]


@pytest.mark.parametrize(("options", "reason"), FALLBACKS)
async def test_ineligible_configurations_fall_back(options: dict[str, Any], reason: str) -> None:
    assert reason in await refused(**options)


async def test_unknown_connector_args_fall_back() -> None:
    config = AioConfig(connector_args={"resolver": ThreadedResolver()})
    assert "connector_args" in await refused(config=config)


async def test_a_proxy_from_the_environment_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    assert "proxy" in await refused()


async def test_fips_from_the_environment_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_USE_FIPS_ENDPOINT", "true")
    assert "fips" in (await refused(region_name="us-east-1")).lower()


async def test_a_hook_on_the_session_falls_back() -> None:
    """A handler on any event the wire path would bypass keeps every request on aiobotocore."""
    for event in ("before-send.s3", "before-sign.s3.PutObject", "after-call.s3", "needs-retry"):
        session = AioSession()
        session.register(event, lambda **_: None)
        assert "hook" in await refused(session=session), event


async def test_moto_mock_aws_bypasses_the_wire_path_while_it_is_on() -> None:
    moto = pytest.importorskip("moto")
    route = await planned()
    assert route.moto is not None  # moto is imported (the test server), its stubber registered
    assert not route.bypassed()
    with moto.mock_aws():
        assert route.bypassed()
    assert not route.bypassed()


# -- end to end: the same results either way --------------------------------------------------


async def test_an_ineligible_cache_works_through_aiobotocore(
    cache_kwargs: dict[str, Any], proxy: FaultProxy
) -> None:
    kwargs = {**cache_kwargs, "endpoint_url": proxy.endpoint}
    legacy = Config(retries={"mode": "legacy", "max_attempts": 2})
    async with AsyncS3Cache(**kwargs, config=legacy, on_error="raise") as cache:
        await cache.set("k", {"v": 1}, ttl=60)
        assert await cache.get("k") == {"v": 1}
        assert await cache.delete("k") is True
        loop_client = cache._transport._loops[asyncio.get_running_loop()]
        assert loop_client.route is None
        assert loop_client.wire_refused is not None
        assert "retry mode" in loop_client.wire_refused
    assert all("amz-sdk-invocation-id" in h.headers for h in proxy.heads)  # botocore sent all


@pytest.mark.parametrize("fast_path", [True, False])
async def test_fast_path_false_sends_everything_through_aiobotocore(
    fast_path: bool, cache_kwargs: dict[str, Any], proxy: FaultProxy
) -> None:
    kwargs = {**cache_kwargs, "endpoint_url": proxy.endpoint, "fast_path": fast_path}
    async with AsyncS3Cache(**kwargs, on_error="raise") as cache:
        await cache.set("k", "v")
        assert await cache.get("k") == "v"
        assert await cache.exists("k")
        assert await cache.delete("k") is True
        loop_client = cache._transport._loops[asyncio.get_running_loop()]
        assert (loop_client.route is not None) is fast_path
        assert loop_client.wire_refused is None  # off by choice, not refused
    assert [h.method for h in proxy.heads] == ["PUT", "GET", "HEAD", "HEAD", "DELETE"]
    by_botocore = ["amz-sdk-invocation-id" in h.headers for h in proxy.heads]
    assert by_botocore == [not fast_path] * 5


def test_the_sync_facade_takes_fast_path(cache_kwargs: dict[str, Any]) -> None:
    with S3Cache(**cache_kwargs, fast_path=False, on_error="raise") as cache:
        cache.set("k", 1)
        assert cache.get("k") == 1
    with pytest.raises(TypeError, match="fast_path"):
        AsyncS3Cache(**cache_kwargs, fast_path="yes")  # type: ignore[arg-type]


async def test_check_goes_through_aiobotocore(
    cache_kwargs: dict[str, Any], proxy: FaultProxy
) -> None:
    kwargs = {**cache_kwargs, "endpoint_url": proxy.endpoint}
    async with AsyncS3Cache(**kwargs, on_error="raise") as cache:
        report = await cache.check()
        assert report.conditional_writes is True
        assert cache._transport._loops[asyncio.get_running_loop()].route is not None
    # HeadBucket, the probe's put and get, conditional create (refused, then a HEAD: was it
    # our own write?), then conditional replace learnt (HEAD for the ETag, If-Match matching,
    # If-Match wrong and its HEAD), the delete, and the LIST that counts tag records.
    methods = ["HEAD", "PUT", "GET", "PUT", "HEAD", "HEAD", "PUT", "PUT", "HEAD", "DELETE", "GET"]
    assert [h.method for h in proxy.heads] == methods
    assert all("amz-sdk-invocation-id" in h.headers for h in proxy.heads)


# -- the options' parameters, serialised as botocore serialises them --------------------------

OPTION_SETS: list[dict[str, Any]] = [
    {
        "sse": "aws:kms",
        "sse_kms_key_id": "arn:aws:kms:us-east-1:111122223333:key/1",
        "sse_bucket_key_enabled": False,
        "expected_bucket_owner": "111122223333",
        "request_payer": "requester",
        "storage_class": "INTELLIGENT_TIERING",
        "checksum": "crc32c",
    },
    {"sse": "aws:kms:dsse", "sse_bucket_key_enabled": True, "checksum": "crc64nvme"},
    {"sse_customer_key": bytes(range(32)), "checksum": "sha256", "sse": None},
]


@pytest.mark.parametrize("options", OPTION_SETS, ids=["kms", "dsse", "sse-c"])
async def test_option_headers_are_botocores(options: dict[str, Any]) -> None:
    """For every object operation: the headers the wire path sends for the options'
    parameters are those botocore's serialiser and handlers produce, name for name."""
    transport = AsyncS3Cache("my-bucket", **options)._transport
    async with client(endpoint_url="http://127.0.0.1:9000") as c:
        route = await plan_route(c, "my-bucket", 64)
        for op in ("GetObject", "HeadObject", "PutObject", "DeleteObject"):
            params = transport.object_params(op)
            if op == "PutObject":
                params.update(transport._checksum(b"body") if transport._checksum else {})
            ours = route.headers(route.operations[op], params)
            assert ours is not None, op
            model = c.meta.service_model.operation_model(op)
            request = c._serializer.serialize_to_request(
                {"Bucket": "my-bucket", "Key": "k", **params}, model
            )
            theirs = {k.lower(): v for k, v in request["headers"].items()}
            assert {k: v for k, v in ours.items() if k != "host"} == theirs, op
            if params:
                assert theirs, op


# -- access points --------------------------------------------------------------------------


def test_an_access_point_arn_is_refused_before_any_request() -> None:
    """An ARN is no bucket name: refused at construction (neither path would address it)."""
    arn = "arn:aws:s3:us-east-1:123456789012:accesspoint/cache"
    with pytest.raises(ValueError, match="not a valid bucket name"):
        AsyncS3Cache(arn, **CREDENTIALS)


async def test_an_access_point_alias_is_addressed_as_botocore_addresses_it() -> None:
    """An access-point alias is a bucket name to S3: the wire path's URL is botocore's."""
    alias = "cache-ap-abcdefghijklmnopqrstuvwxyz12-s3alias"
    route = await planned(alias, region_name="eu-west-1")
    session = AioSession()
    session.register("before-send.s3.GetObject", _stop_with_url)
    async with client(region_name="eu-west-1", session=session) as c:
        with pytest.raises(_Sent) as sent:
            await c.get_object(Bucket=alias, Key="a/b")
    assert str(route.url("a/b")[1]) == sent.value.url


class _Sent(Exception):
    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url


def _stop_with_url(request: Any, **_: Any) -> None:
    """A ``before-send`` handler: the request goes nowhere; its URL is the exception's."""
    raise _Sent(request.url)
