"""litellm stays optional: ``import s3cache`` never loads it, and the backend works without it.

These run in every session (no litellm marker): in the plain ``tests`` session litellm is not
installed at all; elsewhere a subprocess hides it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from harness.expiry import until_expired

#: Makes every ``import litellm`` fail in a subprocess, as if it were not installed.
HIDE_LITELLM = "import sys; sys.modules['litellm'] = None\n"


def run_python(code: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_importing_s3cache_never_imports_litellm() -> None:
    out = run_python(
        "import sys, s3cache, s3cache.integrations; print('litellm' in sys.modules)",
    )
    assert out.strip() == "False"


def test_backend_works_without_litellm(cache_kwargs: dict[str, Any]) -> None:
    code = HIDE_LITELLM + textwrap.dedent(
        """
        import asyncio
        from s3cache.integrations.litellm import LiteLLMS3Cache, enable

        assert LiteLLMS3Cache.__mro__[1:] == (object,), LiteLLMS3Cache.__mro__
        bucket, endpoint, key_id, secret = sys.argv[1:5]
        backend = LiteLLMS3Cache(
            bucket,
            s3_region_name="us-east-1",
            s3_endpoint_url=endpoint,
            s3_aws_access_key_id=key_id,
            s3_aws_secret_access_key=secret,
            s3_path="standalone",
            on_error="raise",
        )
        backend.set_cache("sync:key", {"timestamp": 1.0, "response": "{}"}, ttl=60)
        assert backend.get_cache("sync:key") == {"timestamp": 1.0, "response": "{}"}

        async def main():
            await backend.async_set_cache_pipeline([("a", 1), ("b", 2)])
            assert await backend.async_batch_get_cache(["a", "b", "c"]) == {
                "a": 1, "b": 2, "c": None
            }
            assert (await backend.test_connection())["status"] == "success"
            await backend.disconnect()

        asyncio.run(main())
        try:
            enable(bucket)
        except ImportError:
            print("ok")
        """
    )
    kw = cache_kwargs
    out = run_python(
        code, kw["bucket"], kw["endpoint_url"], kw["aws_access_key_id"], kw["aws_secret_access_key"]
    )
    assert out.strip() == "ok"


def test_unknown_constructor_kwargs_are_rejected_in_process() -> None:
    from s3cache.integrations.litellm import LiteLLMS3Cache

    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) aws_account_id"):
        LiteLLMS3Cache("some-bucket", aws_account_id="123")


def test_the_backend_takes_fast_path() -> None:
    from s3cache.integrations.litellm import LiteLLMS3Cache

    assert LiteLLMS3Cache("some-bucket").core._transport.fast_path is True
    assert LiteLLMS3Cache("some-bucket", fast_path=False).core._transport.fast_path is False


def test_the_backend_takes_the_company_bucket_options() -> None:
    from s3cache.integrations.litellm import LiteLLMS3Cache

    backend = LiteLLMS3Cache(
        "some-bucket",
        sse="aws:kms",
        sse_kms_key_id="alias/cache",
        sse_bucket_key_enabled=True,
        expected_bucket_owner="111122223333",
        checksum="sha256",
        storage_class="STANDARD_IA",
        request_payer="requester",
    )
    options = backend.core.transport.options
    assert options.params("PutObject") == {
        "ServerSideEncryption": "aws:kms",
        "SSEKMSKeyId": "alias/cache",
        "BucketKeyEnabled": True,
        "StorageClass": "STANDARD_IA",
        "RequestPayer": "requester",
        "ExpectedBucketOwner": "111122223333",
    }
    assert options.checksum == "sha256"
    key = bytes(range(32))
    assert (
        LiteLLMS3Cache("some-bucket", sse_customer_key=key).core.transport.options.sse_customer_key
        == key
    )
    with pytest.raises(ValueError, match="sse_kms_key_id goes with"):
        LiteLLMS3Cache("some-bucket", sse_kms_key_id="alias/cache")


def _stale_backend(cache_kwargs: dict[str, Any], path: str, **options: Any) -> Any:
    from s3cache.integrations.litellm import LiteLLMS3Cache

    return LiteLLMS3Cache(
        cache_kwargs["bucket"],
        s3_region_name="us-east-1",
        s3_endpoint_url=cache_kwargs["endpoint_url"],
        s3_aws_access_key_id=cache_kwargs["aws_access_key_id"],
        s3_aws_secret_access_key=cache_kwargs["aws_secret_access_key"],
        s3_path=path,
        on_error="raise",
        **options,
    )


async def test_stale_ttl_hands_one_caller_the_miss_and_the_others_the_stale_value(
    cache_kwargs: dict[str, Any],
) -> None:
    """stale_ttl on the litellm backend: past its ttl, an entry is a miss for the first reader
    (litellm recomputes it) and the old value, at once, for the readers after it, sync ones
    too, until the recomputed value is written; then the next expiry hands out a miss again."""
    backend = _stale_backend(cache_kwargs, "stale-one", stale_ttl=30)
    old, new = {"response": "old"}, {"response": "new"}
    await backend.async_set_cache("k", old, ttl=1)
    await until_expired(backend.core, "k")
    assert await backend.async_get_cache("k") is None  # this caller recomputes
    assert await backend.async_get_cache("k") == old
    assert await asyncio.to_thread(backend.get_cache, "k") == old
    assert backend.stats().stale_served["revalidating"] == 3
    await backend.async_set_cache("k", new, ttl=1)  # the recomputed value
    assert await backend.async_get_cache("k") == new
    await until_expired(backend.core, "k")
    assert await asyncio.to_thread(backend.get_cache, "k") is None  # claimed again, sync
    assert await backend.async_get_cache("k") == new
    await backend.disconnect()


async def test_stale_ttl_claim_runs_out_and_no_stale_ttl_means_a_miss(
    cache_kwargs: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A claim whose caller never writes runs out (CLAIM_S; 0 here): the next reader is handed
    the miss. Without stale_ttl an expired entry is a miss for every reader, as before."""
    from s3cache.integrations import litellm as backend_module

    monkeypatch.setattr(backend_module, "CLAIM_S", 0.0)
    backend = _stale_backend(cache_kwargs, "stale-out", stale_ttl="30s")
    plain = _stale_backend(cache_kwargs, "stale-out")
    await backend.async_set_cache("k", "v", ttl=1)
    await until_expired(backend.core, "k")
    assert [await backend.async_get_cache("k") for _ in range(2)] == [None, None]
    assert [await plain.async_get_cache("k") for _ in range(2)] == [None, None]
    assert plain.stats().stale_served == {}
    await backend.disconnect()
    await plain.disconnect()


def test_a_bad_stale_ttl_is_refused_by_the_constructor() -> None:
    from s3cache.integrations.litellm import LiteLLMS3Cache

    with pytest.raises(ValueError, match="stale_ttl"):
        LiteLLMS3Cache("some-bucket", stale_ttl=-1)
