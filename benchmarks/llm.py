"""LLM cells: ``litellm.acompletion`` cache hits per second, our backend against litellm's.

Each prompt is answered once by ``mock_response`` (offline, no provider), litellm writes the
answer to the backend in the background, and the measured calls are all cache hits served from
S3. The same request, the same litellm, only ``litellm.cache.cache`` differs.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, ClassVar, Final

from benchmarks.contenders import (
    AsyncContender,
    LitellmS3Cache,
    S3CacheLitellmBackend,
    import_litellm,
)

__all__ = ["LLM_CONTENDERS", "LLM_WORKLOAD", "wait_until_cached"]

LLM_WORKLOAD: Final = "acompletion-hit"
MODEL: Final = "gpt-4o-mini"
REPLY: Final = "x" * 900  # a ~1 KiB cached entry
_WRITE_WAIT_S: Final = 20.0


class _Acompletion(AsyncContender):
    """``acompletion(..., caching=True)`` with ``litellm.cache.cache`` set to a backend."""

    backend_cls: ClassVar[type[LitellmS3Cache | S3CacheLitellmBackend]]

    def describe(self) -> str:
        return (
            f"litellm.acompletion(model={MODEL!r}, mock_response=..., caching=True) with "
            f"litellm.cache = Cache() and Cache.cache = {self.backend_cls.name} backend "
            f"({self.backend.describe()})"
        )

    def __init__(self, setup: Any) -> None:
        super().__init__(setup)
        self.backend = self.backend_cls(setup)
        self.requests = self.backend.requests

    async def open(self) -> None:
        self.litellm = import_litellm()
        await self.backend.open()
        cache = self.litellm.Cache()
        cache.cache = self.backend.cache
        self._previous = self.litellm.cache
        self.litellm.cache = cache

    async def get(self, key: str) -> bool:
        response = await self.litellm.acompletion(
            model=MODEL,
            messages=[{"role": "user", "content": f"benchmark prompt {key}"}],
            mock_response=REPLY,
            caching=True,
        )
        return bool(response._hidden_params.get("cache_hit"))

    async def set(self, key: str, value: Any) -> None:
        """A first call: a miss answered by the mock, written to the cache in the background."""
        await self.get(key)

    async def close(self) -> None:
        self.litellm.cache = self._previous
        await self.backend.close()


class AcompletionS3Cache(_Acompletion):
    name = "llm+s3cache"
    backend_cls = S3CacheLitellmBackend


class AcompletionLitellm(_Acompletion):
    name = "llm+litellm"
    backend_cls = LitellmS3Cache


LLM_CONTENDERS: Final = (AcompletionS3Cache, AcompletionLitellm)


async def wait_until_cached(contender: AsyncContender, keys: list[str]) -> None:
    """Call until every key hits: litellm writes cache entries from a background task."""
    deadline = time.monotonic() + _WRITE_WAIT_S
    pending = list(keys)
    while pending:
        hits = await asyncio.gather(*(contender.get(k) for k in pending))
        pending = [k for k, hit in zip(pending, hits, strict=True) if not hit]
        if pending and time.monotonic() > deadline:
            raise TimeoutError(f"{len(pending)} acompletion results never became cache hits")
        if pending:
            await asyncio.sleep(0.05)
