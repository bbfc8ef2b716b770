"""Fixtures shared by the framework-integration tests: adapters built every way a user may build
them, and a fresh Python process to prove that entries cross processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Protocol

import pytest

from s3cache import AsyncS3Cache, S3Cache
from tests.integrations._support import PREFIX

#: The repository, importable in a child process (its scripts import test modules).
ROOT = Path(__file__).resolve().parents[2]


class Closable(Protocol):
    async def aclose(self) -> None: ...


MakeAdapter = Callable[..., Any]


@pytest.fixture(params=["bucket", "cache=AsyncS3Cache", "cache=S3Cache"])
async def make_adapter(
    request: pytest.FixtureRequest, cache_kwargs: dict[str, Any]
) -> AsyncIterator[MakeAdapter]:
    """``make_adapter(cls, **own_options)``: an adapter on the test bucket under prefix ``it``,
    built from connection arguments or around an existing core or facade (errors raised).
    Everything it made is closed afterwards."""
    made: list[Closable] = []
    cores: list[AsyncS3Cache] = []

    def make(cls: type[Any], **own: Any) -> Any:
        options = {**cache_kwargs, "prefix": PREFIX, "on_error": "raise"}
        bucket = options.pop("bucket")
        if request.param == "bucket":
            adapter = cls(bucket, **options, **own)
        else:
            core = AsyncS3Cache(bucket, **options)
            cores.append(core)
            given = core if request.param == "cache=AsyncS3Cache" else S3Cache._from_core(core)
            adapter = cls(cache=given, **own)
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        await adapter.aclose()
    for core in cores:
        await core.close()


@pytest.fixture
def run_python(cache_kwargs: dict[str, Any]) -> Callable[[str], str]:
    """Run a script in a new interpreter and return its stdout; it gets ``BUCKET``, ``OPTIONS``
    (the connection keywords, prefix ``it``) and ``sys`` predefined."""

    def run(code: str) -> str:
        options = {**cache_kwargs, "prefix": PREFIX, "on_error": "raise"}
        bucket = options.pop("bucket")
        preamble = f"import sys\nBUCKET = {bucket!r}\nOPTIONS = {options!r}\n"
        done = subprocess.run(
            [sys.executable, "-c", preamble + textwrap.dedent(code)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    return run
