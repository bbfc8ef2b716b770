"""The clients under test, each behind the same tiny get/set interface.

Async contenders are awaited by N tasks on the benchmark's loop; threaded ones are called by N
caller threads. Every contender stores and reads the same kind of value in a cell: raw bytes
(the size sweeps and the lead cells), or a JSON document (the ``-json`` workloads), which the
raw S3 clients encode and decode with orjson, as their users would, and the caches themselves.
Every contender gets a connection pool of at least the cell's concurrency and says what else it
ran with. Latency is emulated on the wire (the embedded server or a delaying
proxy holds answers back), the same for every client; only ``--latency-via hook`` adds it
inside botocore clients instead, through the ``before-send`` event, which the wire path and
obstore never emit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar, Final

import orjson

from benchmarks.latency import RequestCounter, add_async_latency, add_sync_latency
from benchmarks.server import Target

__all__ = [
    "CONTENDERS",
    "DEFAULT_CONTENDERS",
    "AsyncContender",
    "Contender",
    "ContenderUnavailable",
    "Setup",
    "ThreadedContender",
    "make",
]

#: Generous per-request timeouts for every contender: a saturated embedded server queues
#: requests for seconds, and a benchmark should measure that, not time out on it.
TIMEOUT_S: Final = 60.0
_MISS: Final[Any] = object()
#: Where the JSON workloads' keys live (apart from the raw-bytes ones of the same size).
JSON_KEYS: Final = "json/"


class ContenderUnavailable(Exception):
    """The contender cannot run here (e.g. litellm is not installed); the reason is the text."""


@dataclass(frozen=True, slots=True)
class Setup:
    """What a contender needs to connect: the target, emulated latency, concurrency, key space.

    ``hook_latency`` is True only with ``--latency-via hook``: then botocore clients sleep in a
    ``before-send`` hook (and count their requests there) instead of the wire being slow.
    """

    target: Target
    latency_ms: float
    concurrency: int
    prefix: str  # ends with "/"; unique per run
    hook_latency: bool = False
    #: s3cache's ``max_concurrency`` (its bound on requests in flight); None: the concurrency.
    max_concurrency: int | None = None

    @property
    def bound(self) -> int:
        """The ``max_concurrency`` s3cache runs with in this cell."""
        return self.max_concurrency or self.concurrency

    @property
    def hook_ms(self) -> float:
        """Latency for a ``before-send`` hook: 0 unless latency is emulated by hooks."""
        return self.latency_ms if self.hook_latency else 0.0


def _is_missing(exc: BaseException) -> bool:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return False
    return response.get("Error", {}).get("Code") in {"NoSuchKey", "404", "NotFound"}


class Contender(ABC):
    """One client configuration; ``describe()`` is printed with the results."""

    name: ClassVar[str]
    threaded: ClassVar[bool] = False
    #: Takes JSON documents only (litellm's cache API reads dicts back): it stores the JSON
    #: document in the raw-bytes cells too.
    json_only: ClassVar[bool] = False

    def __init__(self, setup: Setup) -> None:
        self.setup = setup
        self.key_prefix = f"{setup.prefix}{self.name}/"
        self.requests = RequestCounter()

    @property
    def _hook_counter(self) -> RequestCounter | None:
        """The request counter for a ``before-send`` hook: only with hook latency (otherwise
        the server counts requests, and no hook adds work to the client)."""
        return self.requests if self.setup.hook_latency else None

    @classmethod
    def value(cls, size: int, kind: str = "bytes") -> Any:
        """A value whose stored body is about ``size`` bytes: raw ``bytes``, or with
        ``kind="json"`` (and always for a contender that takes JSON only) a JSON document."""
        if kind == "json" or cls.json_only:
            return {"v": "x" * max(0, size - 9)}  # JSON: {"v": "..."} is 9 bytes of framing
        return b"x" * size

    @staticmethod
    def encoded(value: Any) -> bytes:
        """The body a raw S3 client stores for ``value``: bytes as they are, else JSON."""
        if isinstance(value, bytes):
            return value
        return orjson.dumps(value)

    @staticmethod
    def decoded(key: str, body: Any) -> Any:
        """What a raw S3 client's user gets from ``body`` (bytes, or any buffer): JSON decoded
        under :data:`JSON_KEYS` (the JSON workloads), else the body as it is."""
        return orjson.loads(memoryview(body)) if key.startswith(JSON_KEYS) else body

    @abstractmethod
    def describe(self) -> str:
        """How this contender was configured, in a line."""

    @abstractmethod
    async def open(self) -> None:
        """Create clients (no request needs to be sent)."""

    @abstractmethod
    async def close(self) -> None:
        """Release clients and threads."""


class AsyncContender(Contender):
    """Awaited from tasks on the benchmark's event loop."""

    @abstractmethod
    async def get(self, key: str) -> bool:
        """Read ``key``; True on a hit."""

    @abstractmethod
    async def set(self, key: str, value: Any) -> None:
        """Write ``value`` under ``key``."""


class ThreadedContender(Contender):
    """Blocking calls made by a pool of caller threads (one per unit of concurrency)."""

    threaded = True

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        self.pool = ThreadPoolExecutor(setup.concurrency, thread_name_prefix=f"bench-{self.name}")

    @abstractmethod
    def get(self, key: str) -> bool:
        """Read ``key``; True on a hit."""

    @abstractmethod
    def set(self, key: str, value: Any) -> None:
        """Write ``value`` under ``key``."""

    async def close(self) -> None:
        await asyncio.to_thread(self.pool.shutdown, True)


def _s3cache_session(setup: Setup, counter: RequestCounter) -> Any:
    """With hook latency: the session s3cache makes for itself (same tuning), plus the hooks
    (which send every request through aiobotocore: the wire path never emits them). Else
    None: s3cache makes its own."""
    if not setup.hook_latency:
        return None
    from aiobotocore.session import AioSession

    from s3cache._client import tune_session

    session = tune_session(AioSession())
    add_async_latency(session, setup.latency_ms, counter)
    return session


def _s3cache_kwargs(
    setup: Setup, prefix: str, counter: RequestCounter, fast_path: bool = True
) -> dict[str, Any]:
    from botocore.config import Config

    target = setup.target
    return {
        "bucket": target.bucket,
        "prefix": prefix,
        "endpoint_url": target.endpoint_url,
        "region_name": target.region,
        "aws_access_key_id": target.access_key,
        "aws_secret_access_key": target.secret_key,
        "session": _s3cache_session(setup, counter),
        "max_concurrency": setup.bound,
        "timeout": TIMEOUT_S * 2,
        "config": Config(read_timeout=TIMEOUT_S, connect_timeout=TIMEOUT_S),
        "on_error": "raise",
        "fast_path": fast_path,
    }


def _s3cache_note(setup: Setup) -> str:
    bound = "c" if setup.max_concurrency is None else str(setup.max_concurrency)
    return f"its own defaults, max_concurrency={bound}, timeouts 60 s"


class S3CacheAsync(AsyncContender):
    """s3cache's AsyncS3Cache, awaited directly."""

    name = "s3cache"

    def describe(self) -> str:
        return f"AsyncS3Cache.get/set; {_s3cache_note(self.setup)}"

    fast_path: ClassVar[bool] = True

    async def open(self) -> None:
        from s3cache import AsyncS3Cache

        kwargs = _s3cache_kwargs(self.setup, self.key_prefix, self.requests, self.fast_path)
        self.cache = AsyncS3Cache(**kwargs)

    async def get(self, key: str) -> bool:
        return await self.cache.get(key, _MISS) is not _MISS

    async def set(self, key: str, value: Any) -> None:
        await self.cache.set(key, value)

    async def close(self) -> None:
        await self.cache.close()


class S3CacheNoFastPath(S3CacheAsync):
    """AsyncS3Cache with ``fast_path=False``: every request through aiobotocore."""

    name = "s3cache-no-fast-path"
    fast_path = False

    def describe(self) -> str:
        note = _s3cache_note(self.setup)
        return f"AsyncS3Cache(fast_path=False).get/set (all through aiobotocore); {note}"


class S3CacheSync(ThreadedContender):
    """s3cache's blocking facade S3Cache, called from caller threads."""

    name = "s3cache-sync"

    def describe(self) -> str:
        note = _s3cache_note(self.setup)
        return f"S3Cache (sync facade on its private loop) from c caller threads; {note}"

    async def open(self) -> None:
        from s3cache import S3Cache

        self.cache = S3Cache(**_s3cache_kwargs(self.setup, self.key_prefix, self.requests))

    def get(self, key: str) -> bool:
        return self.cache.get(key, _MISS) is not _MISS

    def set(self, key: str, value: Any) -> None:
        self.cache.set(key, value)

    async def close(self) -> None:
        await asyncio.to_thread(self.cache.close)
        await super().close()


class RawAiobotocore(AsyncContender):
    """aiobotocore as most code uses it: ``get_session()``, default config, read the body."""

    name = "aiobotocore"

    def describe(self) -> str:
        return (
            "get_session().create_client, default AioConfig except max_pool_connections=c; "
            "get_object + read body, put_object of bytes"
        )

    async def open(self) -> None:
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session

        session = get_session()
        add_async_latency(session, self.setup.hook_ms, self._hook_counter)
        self._stack = contextlib.AsyncExitStack()
        self.client = await self._stack.enter_async_context(
            session.create_client(
                "s3",
                **self.setup.target.client_kwargs(),
                config=AioConfig(max_pool_connections=self.setup.concurrency),
            )
        )
        self.bucket = self.setup.target.bucket

    async def get(self, key: str) -> bool:
        try:
            resp = await self.client.get_object(Bucket=self.bucket, Key=self.key_prefix + key)
        except Exception as exc:
            if _is_missing(exc):
                return False
            raise
        async with resp["Body"] as stream:
            self.decoded(key, await stream.read())
        return True

    async def set(self, key: str, value: Any) -> None:
        body = self.encoded(value)
        await self.client.put_object(Bucket=self.bucket, Key=self.key_prefix + key, Body=body)

    async def close(self) -> None:
        await self._stack.aclose()


class Boto3Threads(ThreadedContender):
    """One boto3 client (thread-safe) shared by c caller threads."""

    name = "boto3"

    def describe(self) -> str:
        return "boto3.client, default Config except max_pool_connections=c, from c caller threads"

    async def open(self) -> None:
        import boto3
        from botocore.config import Config

        self.client = boto3.session.Session().client(
            "s3",
            **self.setup.target.client_kwargs(),
            config=Config(max_pool_connections=self.setup.concurrency),
        )
        add_sync_latency(self.client, self.setup.hook_ms, self._hook_counter)
        self.bucket = self.setup.target.bucket

    def get(self, key: str) -> bool:
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=self.key_prefix + key)
        except Exception as exc:
            if _is_missing(exc):
                return False
            raise
        with contextlib.closing(resp["Body"]) as body:
            self.decoded(key, body.read())
        return True

    def set(self, key: str, value: Any) -> None:
        body = self.encoded(value)
        self.client.put_object(Bucket=self.bucket, Key=self.key_prefix + key, Body=body)

    async def close(self) -> None:
        self.client.close()
        await super().close()


def import_litellm() -> Any:
    """litellm, imported offline and quiet; ContenderUnavailable when it cannot be imported."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        import litellm
    except Exception as exc:  # ImportError, or a broken optional dependency
        raise ContenderUnavailable(
            f"litellm is not importable ({exc}); pip install '.[bench]'"
        ) from exc
    litellm.suppress_debug_info = True
    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return litellm


class LitellmS3Cache(AsyncContender):
    """litellm's own S3Cache, through the async methods litellm calls."""

    name = "litellm"
    json_only = True

    def describe(self) -> str:
        workers = min(32, (os.cpu_count() or 1) + 4)
        return (
            "litellm.caching.s3_cache.S3Cache as shipped: async_get_cache/async_set_cache run "
            f"boto3 in the loop's default executor ({workers} threads here), boto3 pool 10"
        )

    async def open(self) -> None:
        import_litellm()
        from litellm.caching.s3_cache import S3Cache

        target = self.setup.target
        self.cache: Any = S3Cache(
            s3_bucket_name=target.bucket,
            s3_region_name=target.region,
            s3_endpoint_url=target.endpoint_url,
            s3_aws_access_key_id=target.access_key,
            s3_aws_secret_access_key=target.secret_key,
            s3_path=self.key_prefix,
        )
        add_sync_latency(self.cache.s3_client, self.setup.hook_ms, self._hook_counter)

    async def get(self, key: str) -> bool:
        return await self.cache.async_get_cache(key) is not None

    async def set(self, key: str, value: Any) -> None:
        await self.cache.async_set_cache(key, value)

    async def close(self) -> None:
        self.cache.s3_client.close()


class S3CacheLitellmBackend(AsyncContender):
    """s3cache's drop-in litellm backend, through the same async methods as ``litellm``."""

    name = "s3cache-litellm"
    json_only = True

    def describe(self) -> str:
        return (
            "s3cache.integrations.litellm.LiteLLMS3Cache through "
            "async_get_cache/async_set_cache; s3cache defaults as above"
        )

    async def open(self) -> None:
        from botocore.config import Config

        try:
            from s3cache.integrations.litellm import LiteLLMS3Cache
        except ImportError as exc:
            raise ContenderUnavailable(
                f"s3cache.integrations.litellm is not there yet ({exc})"
            ) from exc
        target = self.setup.target
        self.cache = LiteLLMS3Cache(
            s3_bucket_name=target.bucket,
            s3_region_name=target.region,
            s3_endpoint_url=target.endpoint_url,
            s3_aws_access_key_id=target.access_key,
            s3_aws_secret_access_key=target.secret_key,
            s3_path=self.key_prefix,
            session=_s3cache_session(self.setup, self.requests),
            max_concurrency=self.setup.bound,
            timeout=TIMEOUT_S * 2,
            s3_config=Config(read_timeout=TIMEOUT_S, connect_timeout=TIMEOUT_S),
        )

    async def get(self, key: str) -> bool:
        return await self.cache.async_get_cache(key) is not None

    async def set(self, key: str, value: Any) -> None:
        await self.cache.async_set_cache(key, value)

    async def close(self) -> None:
        await self.cache.disconnect()


class Obstore(AsyncContender):
    """obstore (Rust ``object_store`` bindings): what a native client costs."""

    name = "obstore"

    def describe(self) -> str:
        return (
            "obstore.store.S3Store (path style, allow_http), get_async + bytes_async, "
            "put_async of bytes; its own pool and retries"
        )

    async def open(self) -> None:
        try:
            import obstore
            from obstore.store import S3Store
        except ImportError as exc:
            raise ContenderUnavailable(f"obstore is not installed ({exc})") from exc
        target = self.setup.target
        self._obstore = obstore
        self.store = S3Store(
            target.bucket,
            endpoint=target.endpoint_url,
            region=target.region,
            access_key_id=target.access_key,
            secret_access_key=target.secret_key,
            virtual_hosted_style_request=False,
            client_options={"allow_http": True, "timeout": f"{int(TIMEOUT_S)}s"},
        )

    async def get(self, key: str) -> bool:
        try:
            result = await self._obstore.get_async(self.store, self.key_prefix + key)
        except FileNotFoundError:
            return False
        self.decoded(key, await result.bytes_async())  # obstore's own buffer: no copy
        return True

    async def set(self, key: str, value: Any) -> None:
        await self._obstore.put_async(self.store, self.key_prefix + key, self.encoded(value))

    async def close(self) -> None:
        del self.store  # obstore closes its connections when the store is dropped


CONTENDERS: Final[dict[str, type[Contender]]] = {
    c.name: c
    for c in (
        S3CacheAsync,
        S3CacheSync,
        S3CacheNoFastPath,
        RawAiobotocore,
        Obstore,
        LitellmS3Cache,
        Boto3Threads,
        S3CacheLitellmBackend,
    )
}
DEFAULT_CONTENDERS: Final = (
    "s3cache",
    "s3cache-sync",
    "s3cache-no-fast-path",
    "aiobotocore",
    "obstore",
    "litellm",
    "boto3",
)


def make(name: str, setup: Setup) -> Contender:
    """A contender by name (see :data:`CONTENDERS`)."""
    try:
        return CONTENDERS[name](setup)
    except KeyError:
        raise ValueError(
            f"unknown contender {name!r}; choose from {', '.join(CONTENDERS)}"
        ) from None
