"""``python -m benchmarks.knobs``: client CPU per GET for each transport knob, one at a time.

Raw aiobotocore clients differing only in one botocore knob (and s3cache itself) read the same
1 KiB object in interleaved rounds against one server; the median CPU per GET of each is printed
next to the default's. No emulated latency: this measures CPU, not throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from benchmarks.server import EMBEDDED_CREDENTIALS, EmbeddedServer, Target, ensure_bucket

__all__ = ["main"]

BODY = b"x" * 1024
_LANES = 8


def _variants() -> dict[str, tuple[bool, dict[str, Any]]]:
    """name -> (identity timestamp parser on the session?, AioConfig options)."""
    from s3cache._client import _fixed_user_agent

    ours = {
        "request_checksum_calculation": "when_required",
        "response_checksum_validation": "when_required",
        "parameter_validation": False,
        "retries": {"mode": "standard", "total_max_attempts": 3},
    }
    return {
        "default": (False, {}),
        "+ timestamps left as text": (True, {}),
        "+ fixed User-Agent": (False, {"user_agent": _fixed_user_agent()}),
        "+ checksums/validation/retries as s3cache": (False, ours),
        "all knobs (s3cache's client)": (True, {**ours, "user_agent": _fixed_user_agent()}),
    }


async def _clients(target: Target, stack: contextlib.AsyncExitStack) -> dict[str, Any]:
    from aiobotocore.config import AioConfig
    from aiobotocore.session import AioSession

    from s3cache._client import tune_session

    clients = {}
    for name, (text_timestamps, options) in _variants().items():
        session = tune_session(AioSession()) if text_timestamps else AioSession()
        config = AioConfig(max_pool_connections=16, **options)
        clients[name] = await stack.enter_async_context(
            session.create_client("s3", **target.client_kwargs(), config=config)
        )
    return clients


async def _cpu_per_op(op: Callable[[int], Awaitable[Any]], ops: int, width: int) -> float:
    async def lane(index: int, n: int) -> None:
        for _ in range(n):
            await op(index)

    cpu0 = time.process_time()
    await asyncio.gather(*(lane(i, ops // width) for i in range(width)))
    return (time.process_time() - cpu0) / (ops // width * width) * 1e6


async def measure(target: Target, rounds: int, ops: int) -> dict[str, list[float]]:
    """CPU microseconds per GET, per variant and round."""
    from s3cache import AsyncS3Cache

    samples: dict[str, list[float]] = {}
    async with contextlib.AsyncExitStack() as stack:
        clients = await _clients(target, stack)
        first = next(iter(clients.values()))
        await first.put_object(Bucket=target.bucket, Key="knobs/raw", Body=BODY)
        cache = AsyncS3Cache(
            target.bucket,
            prefix="knobs",
            endpoint_url=target.endpoint_url,
            region_name=target.region,
            aws_access_key_id=target.access_key,
            aws_secret_access_key=target.secret_key,
            max_concurrency=16,
            on_error="raise",
        )
        stack.push_async_callback(cache.close)
        # One key per lane: s3cache coalesces concurrent reads of one key, which would hide
        # its per-request cost.
        for lane in range(_LANES):
            await cache.set(f"value{lane}", "x" * 1020)

        def raw(client: Any) -> Callable[[int], Awaitable[Any]]:
            async def get(lane: int) -> None:
                resp = await client.get_object(Bucket=target.bucket, Key="knobs/raw")
                async with resp["Body"] as stream:
                    await stream.read()

            return get

        ops_by_name: dict[str, Callable[[int], Awaitable[Any]]] = {
            name: raw(c) for name, c in clients.items()
        }
        ops_by_name["AsyncS3Cache.get"] = lambda lane: cache.get(f"value{lane}")
        for op in ops_by_name.values():  # warm up: connections, loaders, caches
            await _cpu_per_op(op, 32, _LANES)
        for _ in range(rounds):
            for name, op in ops_by_name.items():
                samples.setdefault(name, []).append(await _cpu_per_op(op, ops, _LANES))
    return samples


def main(argv: Sequence[str] | None = None) -> int:
    """Run against --endpoint-url, or moto's server in a subprocess; print medians."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.knobs", description=__doc__)
    p.add_argument("--endpoint-url")
    p.add_argument("--access-key")
    p.add_argument("--secret-key")
    p.add_argument("--bucket", default="s3cache-bench")
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--ops", type=int, default=200)
    ns = p.parse_args(argv)
    with contextlib.ExitStack() as stack:
        if ns.endpoint_url:
            target = Target(
                ns.endpoint_url, ns.region, ns.bucket, ns.access_key, ns.secret_key, False
            )
        else:
            server = stack.enter_context(EmbeddedServer())
            target = Target(server.url, ns.region, ns.bucket, *EMBEDDED_CREDENTIALS, True)
        ensure_bucket(target)
        samples = asyncio.run(measure(target, ns.rounds, ns.ops))
    base = statistics.median(samples["default"])
    print(f"client CPU per 1 KiB GET, median of {ns.rounds} interleaved rounds of {ns.ops}:")
    for name, values in samples.items():
        med = statistics.median(values)
        print(f"  {name:<44} {med:7.0f} us  {med / base:5.2f}x default")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
