"""s3cache.integrations.litellm_proxy: ``type: s3`` in the litellm proxy's config builds ours.

Most tests run the real proxy (``litellm --config``, offline, a ``mock_response`` model) as a
subprocess against moto's server; a proxy takes 13 s or more to start, so tests share one per
configuration. The rest check the switch in this process, restoring litellm afterwards.
Run with ``nox -s litellm``; skipped where litellm or the proxy's dependencies are missing.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # litellm must not fetch at import
litellm = pytest.importorskip("litellm")
pytest.importorskip("httpx")  # a dependency of litellm

import httpx  # noqa: E402
import litellm.caching.caching as litellm_caching  # noqa: E402
from litellm.caching.caching import Cache  # noqa: E402
from litellm.caching.s3_cache import S3Cache as LiteLLMOwnS3Cache  # noqa: E402
from litellm.types.caching import LiteLLMCacheType  # noqa: E402

from harness.litellm_probe import BACKEND_HEADER, WORKER_HEADER  # noqa: E402
from harness.litellm_proxy import (  # noqa: E402
    AUTH,
    PROXY_MODULES,
    proxy_env,
    run_to_exit,
    running_proxy,
)
from s3cache import LocalTier  # noqa: E402
from s3cache.integrations.litellm import LiteLLMS3Cache  # noqa: E402
from tests.conftest import CREDENTIALS  # noqa: E402

pytestmark = [pytest.mark.litellm]

MISSING = [name for name in PROXY_MODULES if importlib.util.find_spec(name) is None]
needs_proxy = pytest.mark.skipif(
    bool(MISSING), reason=f"the litellm proxy needs {', '.join(MISSING)} (nox -s litellm)"
)
ENTRY = "s3cache.integrations.litellm_proxy.proxy_handler_instance"
ENABLE_LINE = f'callbacks: ["{ENTRY}"]'
PROBE = "harness.litellm_probe.probe"
CACHE_KEY = "x-litellm-cache-key"
CONFIG_TTL = 2  # cache_params ttl: short, so that a test can wait it out


# -- the real proxy ------------------------------------------------------------------------------


def write_config(
    path: Path, bucket: str, s3_path: str, *, callbacks: list[str], enable_after: bool = False
) -> Path:
    """A proxy config: a mock model, and ``cache: true`` with ``type: s3`` unchanged.

    The callbacks line comes before ``cache: true`` (the supported order), or last with
    ``enable_after``; then without s3cache's options, on which litellm's own S3Cache (built
    first in that order) would fail before our module could explain. Values from the
    environment exercise ``os.environ/``.
    """
    callbacks_line = "  callbacks: [" + ", ".join(f'"{name}"' for name in callbacks) + "]"
    cache_lines = [
        "  cache: true",
        "  cache_params:",
        "    type: s3",
        f"    s3_bucket_name: {bucket}",
        f"    s3_region_name: {CREDENTIALS['region_name']}",
        "    s3_endpoint_url: os.environ/TEST_S3_ENDPOINT",
        f"    s3_aws_access_key_id: {CREDENTIALS['aws_access_key_id']}",
        "    s3_aws_secret_access_key: os.environ/TEST_S3_SECRET",
        f"    s3_path: {s3_path}",
        f"    ttl: {CONFIG_TTL}",
    ]
    if enable_after:
        settings = [*cache_lines, callbacks_line]
    else:
        s3cache_lines = ["    max_concurrency: 16", "    timeout: os.environ/TEST_S3CACHE_TIMEOUT"]
        settings = [callbacks_line, *cache_lines, *s3cache_lines]
    model = [
        "model_list:",
        "  - model_name: mock",
        "    litellm_params:",
        "      model: openai/mock",
        "      api_key: sk-unused",
        '      mock_response: "a mocked answer"',
    ]
    path.write_text("\n".join([*model, "litellm_settings:", *settings, ""]))
    return path


@pytest.fixture(scope="module")
def env(s3_endpoint: str) -> dict[str, str]:
    return proxy_env(
        {
            "TEST_S3_ENDPOINT": s3_endpoint,
            "TEST_S3_SECRET": CREDENTIALS["aws_secret_access_key"],
            "TEST_S3CACHE_TIMEOUT": "10",
        }
    )


@pytest.fixture(scope="module")
def s3m(s3_endpoint: str) -> Iterator[Any]:
    """boto3 on the test server, for module-scoped fixtures (``s3`` is per test)."""
    client = boto3.client("s3", endpoint_url=s3_endpoint, **CREDENTIALS)
    yield client
    client.close()


@pytest.fixture(scope="module")
def proxy_bucket(s3m: Any) -> str:
    name = f"proxy-{uuid.uuid4().hex[:20]}"
    s3m.create_bucket(Bucket=name)
    return name


@dataclass(frozen=True)
class Proxy:
    """A running proxy: its URL, how many workers it has, and where its entries go."""

    url: str
    workers: int
    prefix: str


@pytest.fixture(scope="module", params=[1, 2], ids=["1-worker", "2-workers"])
def proxy(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    proxy_bucket: str,
    env: dict[str, str],
) -> Iterator[Proxy]:
    """The documented config, plus a probe naming the worker and its backend in each response.

    One proxy per worker count, shared by the tests (pytest runs every test on the first before
    it starts the second); each keeps its entries under its own ``s3_path``.
    """
    workers: int = request.param
    tmp = tmp_path_factory.mktemp(f"proxy{workers}")
    s3_path = f"workers{workers}"
    config = write_config(tmp / "config.yaml", proxy_bucket, s3_path, callbacks=[ENTRY, PROBE])
    with running_proxy(config, tmp / "proxy.log", env, workers=workers) as url:
        yield Proxy(url, workers, f"{s3_path}/")


def chat(url: str, prompt: str, **extra: Any) -> httpx.Response:
    """One /chat/completions call on a fresh connection (so that workers share the load)."""
    body = {"model": "mock", "messages": [{"role": "user", "content": prompt}], **extra}
    answer = httpx.post(f"{url}/chat/completions", headers=AUTH, json=body, timeout=120)
    assert answer.status_code == 200, answer.text
    return answer


def object_keys(s3: Any, bucket: str, prefix: str) -> set[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


def wait_for_objects(
    s3: Any, bucket: str, prefix: str, known: set[str], count: int = 1
) -> list[str]:
    """The ``count`` objects that appear under ``prefix`` besides ``known`` (the proxy writes
    in a background task, after it answered)."""
    deadline = time.monotonic() + 60
    while len(new := object_keys(s3, bucket, prefix) - known) < count:
        assert time.monotonic() < deadline, f"{count - len(new)} entries never written"
        time.sleep(0.05)
    assert len(new) == count, new
    return sorted(new)


def ttl_metadata(s3: Any, bucket: str, key: str) -> dict[str, str]:
    metadata: dict[str, str] = s3.head_object(Bucket=bucket, Key=key)["Metadata"]
    return metadata


@needs_proxy
def test_wrong_order_fails_at_startup_with_how_to_reorder(
    tmp_path: Path, proxy_bucket: str, env: dict[str, str]
) -> None:
    config = write_config(
        tmp_path / "config.yaml",
        proxy_bucket,
        "wrong",
        callbacks=[ENTRY],
        enable_after=True,
    )
    exited = run_to_exit(config, tmp_path / "proxy.log", env)
    assert exited.returncode != 0
    assert "RuntimeError: s3cache.integrations.litellm_proxy was loaded after litellm" in (
        exited.output
    )
    assert f"Move the line `{ENABLE_LINE}` above `cache: true`" in exited.output
    assert "Application startup complete" not in exited.output


@needs_proxy
def test_settings_reload_rebuilds_our_backend(cache_params: dict[str, Any], tmp_path: Path) -> None:
    """The proxy's own ``init_cache`` (what saving cache settings calls) after startup: ours."""
    code = textwrap.dedent(
        """
        import json, sys
        import litellm
        import s3cache.integrations.litellm_proxy
        from litellm.proxy.proxy_server import ProxyConfig

        params = json.loads(sys.argv[1])
        for s3_path in ("first", "reloaded"):
            ProxyConfig().init_cache(cache_params={**params, "s3_path": s3_path})
            backend = litellm.cache.cache
            print(type(backend).__name__, backend.core.prefix)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(cache_params)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=proxy_env(),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[-3:] == [
        "LiteLLMS3Cache first/",
        "LiteLLMS3Cache reloaded/",
        "",
    ]


@needs_proxy
def test_second_identical_request_is_a_hit_written_by_s3cache(
    proxy: Proxy, s3m: Any, proxy_bucket: str
) -> None:
    known = object_keys(s3m, proxy_bucket, proxy.prefix)
    prompt = f"hit {uuid.uuid4().hex}"
    first = chat(proxy.url, prompt, cache={"ttl": 60})
    [key] = wait_for_objects(s3m, proxy_bucket, proxy.prefix, known)
    second = chat(proxy.url, prompt, cache={"ttl": 60})
    assert CACHE_KEY not in first.headers
    assert second.headers[CACHE_KEY] == key.removeprefix(proxy.prefix)
    assert second.json()["id"] == first.json()["id"]
    # s3cache's own metadata: our backend wrote it; the per-request ttl beat cache_params' ttl
    assert ttl_metadata(s3m, proxy_bucket, key) == {"s3cache-ttl": "60"}


@needs_proxy
def test_cache_params_ttl_is_honoured(proxy: Proxy, s3m: Any, proxy_bucket: str) -> None:
    known = object_keys(s3m, proxy_bucket, proxy.prefix)
    short, long = f"short {uuid.uuid4().hex}", f"long {uuid.uuid4().hex}"
    first_short = chat(proxy.url, short)
    [short_key] = wait_for_objects(s3m, proxy_bucket, proxy.prefix, known)
    written = time.monotonic()
    chat(proxy.url, long, cache={"ttl": 60})  # the control: outlives the wait below
    wait_for_objects(s3m, proxy_bucket, proxy.prefix, known | {short_key})
    assert ttl_metadata(s3m, proxy_bucket, short_key) == {"s3cache-ttl": str(CONFIG_TTL)}
    # S3 dates have one-second resolution: CONFIG_TTL seconds after the write it has expired
    time.sleep(max(0.0, written + CONFIG_TTL + 0.2 - time.monotonic()))
    again_short = chat(proxy.url, short)
    again_long = chat(proxy.url, long, cache={"ttl": 60})
    assert CACHE_KEY not in again_short.headers
    assert again_short.json()["id"] != first_short.json()["id"]
    assert CACHE_KEY in again_long.headers


@needs_proxy
def test_cache_ping_is_healthy(proxy: Proxy) -> None:
    answer = httpx.get(f"{proxy.url}/cache/ping", headers=AUTH, timeout=60)
    assert answer.status_code == 200, answer.text
    assert (answer.json()["status"], answer.json()["cache_type"]) == ("healthy", "s3")


def answered_by(responses: list[httpx.Response]) -> dict[str, set[str]]:
    """For each worker pid in the probe's header, the backend classes it reported."""
    workers: dict[str, set[str]] = {}
    for response in responses:
        workers.setdefault(response.headers[WORKER_HEADER], set()).add(
            response.headers[BACKEND_HEADER]
        )
    return workers


def until_all_answered(
    count: int, send: Callable[[int], list[httpx.Response]]
) -> dict[str, set[str]]:
    """Send rounds of concurrent requests until ``count`` workers answered (at most 10 rounds)."""
    workers: dict[str, set[str]] = {}
    for round_ in range(10):
        for pid, backends in answered_by(send(round_)).items():
            workers.setdefault(pid, set()).update(backends)
        if len(workers) == count:
            break
    return workers


@needs_proxy
def test_every_worker_builds_s3cache(proxy: Proxy, s3m: Any, proxy_bucket: str) -> None:
    known = object_keys(s3m, proxy_bucket, proxy.prefix)
    tag = uuid.uuid4().hex
    sent: list[str] = []

    def misses(round_: int) -> list[httpx.Response]:
        prompts = [f"workers {tag} {round_}.{i}" for i in range(6)]
        sent.extend(prompts)
        with ThreadPoolExecutor(len(prompts)) as pool:
            return list(pool.map(lambda p: chat(proxy.url, p, cache={"ttl": 60}), prompts))

    writers = until_all_answered(proxy.workers, misses)
    assert len(writers) == proxy.workers, writers
    assert all(backends == {LiteLLMS3Cache.__name__} for backends in writers.values()), writers
    keys = wait_for_objects(s3m, proxy_bucket, proxy.prefix, known, count=len(sent))
    assert {ttl_metadata(s3m, proxy_bucket, key)["s3cache-ttl"] for key in keys} == {"60"}

    def hits(round_: int) -> list[httpx.Response]:
        with ThreadPoolExecutor(len(sent)) as pool:
            answers = list(pool.map(lambda p: chat(proxy.url, p, cache={"ttl": 60}), sent))
        assert all(CACHE_KEY in answer.headers for answer in answers)
        return answers

    readers = until_all_answered(proxy.workers, hits)
    assert readers.keys() == writers.keys()


# -- the switch, in this process -----------------------------------------------------------------


def switched_to() -> object:
    """What ``litellm.Cache(type="s3")`` calls now (litellm's S3Cache unless switched)."""
    found: object = vars(litellm_caching)["S3Cache"]
    return found


@pytest.fixture
def proxy_module(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The module, with litellm unswitched and no ``litellm.cache``; both restored afterwards."""
    monkeypatch.setattr(litellm, "cache", None)
    monkeypatch.setattr(litellm_caching, "S3Cache", LiteLLMOwnS3Cache)
    from s3cache.integrations import litellm_proxy  # switches on its first import

    monkeypatch.setattr(litellm_caching, "S3Cache", LiteLLMOwnS3Cache)
    yield litellm_proxy
    litellm.disable_cache()


@pytest.fixture
def cache_params(cache_kwargs: dict[str, Any]) -> dict[str, Any]:
    """What the proxy passes to ``litellm.Cache``: cache_params, ``os.environ/`` values resolved."""
    return {
        "type": "s3",
        "s3_bucket_name": cache_kwargs["bucket"],
        "s3_endpoint_url": cache_kwargs["endpoint_url"],
        "s3_aws_access_key_id": cache_kwargs["aws_access_key_id"],
        "s3_aws_secret_access_key": cache_kwargs["aws_secret_access_key"],
        "s3_region_name": cache_kwargs["region_name"],
        "s3_path": "in-process",
        "ttl": 60,
    }


async def test_type_s3_builds_our_backend_with_our_options(
    proxy_module: ModuleType, cache_params: dict[str, Any]
) -> None:
    proxy_module.install()
    proxy_module.install()  # idempotent
    cache = Cache(
        **cache_params,
        max_concurrency=8,
        timeout="2.5",  # os.environ/ values arrive as strings
        compression_threshold="2048",
        local={"max_items": 10, "ttl": 1},
        on_error="raise",
        stale_ttl="10m",  # a duration string, as a YAML config may give it
    )
    backend = cache.cache
    assert isinstance(backend, LiteLLMS3Cache)
    assert backend.core._settings.freshness.stale_ttl == 600
    assert backend._core_kwargs["max_concurrency"] == 8
    assert backend._core_kwargs["timeout"] == 2.5
    assert backend._core_kwargs["compression_threshold"] == 2048
    assert backend._core_kwargs["local"] == LocalTier(max_items=10, ttl=1)
    assert (cache.type, cache.ttl) == ("s3", 60)
    await backend.async_set_cache("k", {"v": 1}, ttl=60)
    assert await backend.async_get_cache("k") == {"v": 1}
    await backend.disconnect()


async def test_type_s3_takes_the_store_from_s3cache_url(
    proxy_module: ModuleType, cache_kwargs: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 26: cache_params may name no bucket when ``$S3CACHE_URL`` does (its options fill
    what cache_params leave out)."""
    proxy_module.install()
    bucket, endpoint = cache_kwargs["bucket"], cache_kwargs["endpoint_url"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", cache_kwargs["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", cache_kwargs["aws_secret_access_key"])
    monkeypatch.setenv("S3CACHE_URL", f"s3://{bucket}/u?endpoint_url={endpoint}&region=us-east-1")
    backend = Cache(type=LiteLLMCacheType.S3, on_error="raise").cache
    assert isinstance(backend, LiteLLMS3Cache)
    assert (backend.core.bucket, backend.core.prefix) == (bucket, "u/")
    await backend.async_set_cache("k", {"v": 1})
    assert await backend.async_get_cache("k") == {"v": 1}
    await backend.disconnect()
    monkeypatch.delenv("S3CACHE_URL")
    with pytest.raises(TypeError, match="s3_bucket_name"):
        Cache(type=LiteLLMCacheType.S3)


async def test_type_s3_takes_the_company_bucket_options(
    proxy_module: ModuleType, cache_params: dict[str, Any]
) -> None:
    """From YAML, or from ``os.environ/`` strings: the SSE-C key in base64, booleans as text."""
    proxy_module.install()
    key = bytes(range(32))
    sse_c = Cache(
        **cache_params,
        sse_customer_key=base64.b64encode(key).decode(),
        expected_bucket_owner="111122223333",
        checksum="crc32",
    ).cache
    assert isinstance(sse_c, LiteLLMS3Cache)
    options = sse_c.core.transport.options
    assert (options.sse_customer_key, options.checksum) == (key, "crc32")
    assert options.expected_bucket_owner == "111122223333"
    await sse_c.async_set_cache("k", {"v": 1})
    assert await sse_c.async_get_cache("k") == {"v": 1}
    await sse_c.disconnect()
    kms = Cache(**cache_params, sse="aws:kms", sse_bucket_key_enabled="true").cache
    assert isinstance(kms, LiteLLMS3Cache)
    assert kms.core.transport.options.sse_bucket_key_enabled is True
    with pytest.raises(ValueError, match="sse_customer_key must be base64"):
        Cache(**cache_params, sse_customer_key="not*base64")
    with pytest.raises(ValueError, match="sse_bucket_key_enabled must be true or false"):
        Cache(**cache_params, sse="aws:kms", sse_bucket_key_enabled="maybe")


async def test_type_s3_takes_signing_keys_in_base64(
    proxy_module: ModuleType, cache_params: dict[str, Any]
) -> None:
    """One key or several (a YAML list, or commas in one os.environ/ string): the first signs."""
    proxy_module.install()
    new, old = b"n" * 32, b"o" * 32
    encoded = [base64.b64encode(k).decode() for k in (new, old)]
    for given in (encoded, ",".join(encoded)):
        backend = Cache(**cache_params, signing_key=given).cache
        assert isinstance(backend, LiteLLMS3Cache)
        assert backend._core_kwargs["signing_key"] == [new, old]
        await backend.async_set_cache("k", {"v": 1})
        assert await backend.async_get_cache("k") == {"v": 1}
        await backend.disconnect()
    with pytest.raises(ValueError, match="signing_key must be base64") as caught:
        Cache(**cache_params, signing_key="not*base64")
    assert "not*base64" not in str(caught.value)
    with pytest.raises(ValueError, match="at least 16 bytes"):
        Cache(**cache_params, signing_key=base64.b64encode(b"short").decode())


def test_embedding_cache_still_sees_litellm_s3_class(proxy_module: ModuleType) -> None:
    """caching_handler's isinstance check (per-input embedding caching off for litellm's S3Cache)
    must keep naming litellm's class, or our backend would lose per-input embedding caching."""
    import litellm.caching.caching_handler as handler

    proxy_module.install()
    assert vars(handler)["S3Cache"] is LiteLLMOwnS3Cache
    assert switched_to() is not LiteLLMOwnS3Cache


def test_unknown_cache_params_are_refused(
    proxy_module: ModuleType, cache_params: dict[str, Any]
) -> None:
    proxy_module.install()
    with pytest.raises(TypeError, match=r"cache_params has unknown option\(s\) bogus, s3_bogus "):
        Cache(**cache_params, bogus=1, s3_bogus=2)
    with pytest.raises(ValueError, match=r"cache_params.timeout must be a number, not 'soon'"):
        Cache(**cache_params, timeout="soon")
    with pytest.raises(ValueError, match="max_concurrency must be at least 1"):
        Cache(**cache_params, max_concurrency=0)
    assert litellm.cache is None


def test_wrong_order_raises_and_changes_nothing(
    proxy_module: ModuleType, cache_params: dict[str, Any]
) -> None:
    litellm.cache = Cache(**cache_params)  # what `cache: true` before our line builds
    theirs = litellm.cache.cache
    assert isinstance(theirs, LiteLLMOwnS3Cache)
    with pytest.raises(
        RuntimeError, match=r"Move the line `callbacks: \[.*\]` above `cache: true`"
    ):
        proxy_module.install()
    assert switched_to() is LiteLLMOwnS3Cache
    assert litellm.cache.cache is theirs
    theirs.s3_client.close()


def test_something_else_in_litellms_place_is_not_replaced(
    proxy_module: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Other:
        pass

    monkeypatch.setattr(litellm_caching, "S3Cache", Other)
    with pytest.raises(RuntimeError, match="something else replaced it"):
        proxy_module.install()
    assert switched_to() is Other
