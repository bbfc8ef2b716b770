"""``python -m benchmarks.allocations``: memory allocations and large copies per 1 MiB GET and SET.

The wire path against the embedded mini server (no latency): each operation runs
``--ops`` times under memray's tracker (``pip install memray``; a measurement tool, not a
dependency), and what one operation allocates is printed: all allocations (Python's
small-object allocator included), and those of 64 KiB or more (a body's buffer, or a copy of
one), each with the line that made it. The one-time cost of the first request is outside the
measured window.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Final

from benchmarks.server import EMBEDDED_CREDENTIALS, EmbeddedServer

__all__ = ["main"]

_LARGE: Final = 64 * 1024
_MIB: Final = 1024 * 1024


def _where(record: Any) -> str:
    """The innermost Python frame of an allocation."""
    for function, filename, line in record.stack_trace():
        return f"{Path(filename).name}:{line} {function}"
    return "?"


def _profile(run: Callable[[], Awaitable[None]], ops: int) -> tuple[float, Counter[str]]:
    """(allocations per op, large allocations per op by where) of ``ops`` calls of ``run``."""
    import memray

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trace.bin"
        loop = asyncio.get_event_loop()
        with memray.Tracker(path, trace_python_allocators=True):
            for _ in range(ops):
                loop.run_until_complete(run())
        reader = memray.FileReader(path)
        count = 0
        large: Counter[str] = Counter()
        for record in reader.get_allocation_records():
            kind = memray.AllocatorType(record.allocator).name
            if kind in ("FREE", "PYMALLOC_FREE", "MMAP", "MUNMAP"):  # mmap: pymalloc's arenas
                continue
            count += record.n_allocations
            if record.size >= _LARGE:
                large[f"{record.size / _MIB:.2f} MiB at {_where(record)}"] += 1
        reader.close()
    return count / ops, large


def main(argv: Sequence[str] | None = None) -> int:
    """Start the mini server, store the values, profile each operation, print the counts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--ops", type=int, default=20)
    ns = parser.parse_args(argv)
    from s3cache import AsyncS3Cache

    raw = os.urandom(_MIB)
    text = "x" * (_MIB - 2)  # a JSON string of 1 MiB
    key, secret = EMBEDDED_CREDENTIALS
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    with EmbeddedServer("mini") as server:
        urllib.request.urlopen(urllib.request.Request(f"{server.url}/allocations", method="PUT"))
        cache = AsyncS3Cache(
            "allocations",
            endpoint_url=server.url,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            region_name="us-east-1",
            on_error="raise",
        )
        loop.run_until_complete(cache.set("raw", raw))
        loop.run_until_complete(cache.set("json", text))

        async def get_raw() -> None:
            assert await cache.get("raw") == raw

        async def get_json() -> None:
            assert await cache.get("json") == text

        async def set_raw() -> None:
            await cache.set("raw", raw)

        cases: dict[str, Callable[[], Awaitable[None]]] = {
            "GET 1 MiB bytes": get_raw,
            "GET 1 MiB JSON": get_json,
            "SET 1 MiB bytes": set_raw,
        }
        for run in cases.values():
            loop.run_until_complete(run())  # warm: connections, caches
        for name, run in cases.items():
            per_op, large = _profile(run, ns.ops)
            print(f"{name}: {per_op:,.0f} allocations per op; of 64 KiB or more:")
            for where, times in large.most_common():
                print(f"  {times / ns.ops:.2f} x {where}")
        loop.run_until_complete(cache.close())
    loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
