"""Concurrency stress: the sync facade from 32 threads, after fork, across loops, under a loop.

The lead's ``tests/test_sync.py`` and ``tests/test_loops.py`` hold the basic versions; these
push harder and check what is left behind (sockets, exit status, warnings).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from harness.faultproxy import client_sockets
from s3cache import AsyncS3Cache, S3Cache

from .conftest import address

THREADS = 32
ROUNDS = 4


def test_stress_sync_facade_from_32_threads(cache_kwargs: dict[str, Any], s3_endpoint: str) -> None:
    """32 threads hammer one S3Cache (own and shared keys): every answer is right, no errors."""
    port = address(s3_endpoint)[1]
    barrier = threading.Barrier(THREADS)
    with S3Cache(**cache_kwargs, prefix="threads", on_error="raise", max_concurrency=32) as cache:
        cache.set("shared", {"v": 0})

        def work(n: int) -> int:
            barrier.wait()  # all threads start together
            done = 0
            for i in range(ROUNDS):
                cache.set(f"t{n}/{i}", [n, i])
                assert cache.get(f"t{n}/{i}") == [n, i]
                assert cache.get("shared") == {"v": 0}
                assert cache.get(f"t{n}/absent{i}", "dflt") == "dflt"
                done += 1
            assert cache.get_many([f"t{n}/{i}" for i in range(ROUNDS)]) == {
                f"t{n}/{i}": [n, i] for i in range(ROUNDS)
            }
            assert cache.delete(f"t{n}/0") is True
            return done

        with ThreadPoolExecutor(THREADS) as pool:
            results = list(pool.map(work, range(THREADS)))
        assert results == [ROUNDS] * THREADS
        stats = cache.stats()
        assert stats.error_count == 0
        assert stats.sets == 1 + THREADS * ROUNDS
        assert client_sockets(port, established=True) <= 32
    assert client_sockets(port, established=True) == 0


FORK_SCRIPT = textwrap.dedent(
    """
    import os, sys
    from s3cache import S3Cache

    cache = S3Cache(
        bucket=sys.argv[2], endpoint_url=sys.argv[1], prefix="fork", on_error="raise",
        aws_access_key_id="testing-key-id", aws_secret_access_key="testing-secret",
        region_name="us-east-1",
    )
    cache.set("parent", "p")                       # the loop thread and a client now exist
    assert cache.get("parent") == "p"
    children = []
    for n in range(3):
        pid = os.fork()
        if pid == 0:                               # the child: same object, its own loop
            cache.set(f"child{n}", n)
            assert cache.get(f"child{n}") == n
            assert cache.get("parent") == "p"
            sys.exit(0)                            # a normal exit: atexit hooks run
        children.append(pid)
    cache.set("after-fork", "still fine")          # the parent's loop and client still work
    assert cache.get("after-fork") == "still fine"
    codes = [os.waitpid(pid, 0)[1] for pid in children]
    assert codes == [0, 0, 0], codes
    assert [cache.get(f"child{n}") for n in range(3)] == [0, 1, 2]
    cache.close()
    print("ok")
    """
)


def test_stress_fork_children_use_the_facade_and_exit_cleanly(
    s3_endpoint: str, bucket: str
) -> None:
    """Three forked children use the parent's S3Cache, exit 0 through atexit, without noise.

    Known and deliberate: a child never touches the clients it inherited (their sockets and the
    loop's epoll instance are shared with the parent), so under ``-X dev`` their finalisers
    report them as unclosed ResourceWarnings when the child exits.
    """
    proc = subprocess.run(
        [sys.executable, "-c", FORK_SCRIPT, s3_endpoint, bucket],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "AWS_EC2_METADATA_DISABLED": "true"},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
    for noise in ("Traceback", "ResourceWarning", "Unclosed", "Exception ignored", "Error"):
        assert noise not in proc.stderr, proc.stderr


def test_stress_successive_asyncio_run_loops(
    cache_kwargs: dict[str, Any], s3_endpoint: str
) -> None:
    """One AsyncS3Cache through 6 successive asyncio.run loops: each leaves no socket behind."""
    port = address(s3_endpoint)[1]
    cache = AsyncS3Cache(**cache_kwargs, prefix="loops", on_error="raise")

    async def round_trip(n: int) -> None:
        await cache.set_many({f"r{n}/{i}": i for i in range(20)})
        found = await cache.get_many([f"r{n}/{i}" for i in range(20)])
        assert found == {f"r{n}/{i}": i for i in range(20)}
        if n:
            assert await cache.get(f"r{n - 1}/0") == 0  # written on the previous loop

    for n in range(6):
        asyncio.run(round_trip(n))
        # asyncio.run finalised the loop's async generators, which closed its client.
        assert client_sockets(port) == 0
    assert cache.stats().error_count == 0
    assert cache.stats().sets == 6 * 20
    asyncio.run(cache.close())


async def test_stress_sync_facade_under_a_running_loop(cache_kwargs: dict[str, Any]) -> None:
    """Blocking calls from a coroutine (and from worker threads of that loop) all work."""
    with S3Cache(**cache_kwargs, prefix="under-loop", on_error="raise") as cache:
        for i in range(20):  # straight from the loop's thread, blocking it each time
            cache.set(f"k{i}", i)
            assert cache.get(f"k{i}") == i

        def from_worker(i: int) -> Any:
            return cache.get(f"k{i % 20}")

        values = await asyncio.gather(*(asyncio.to_thread(from_worker, i) for i in range(64)))
        assert values == [i % 20 for i in range(64)]
        # And the async core on this very loop, alongside the facade.
        async with AsyncS3Cache(**cache_kwargs, prefix="under-loop") as core:
            assert await core.get_many([f"k{i}" for i in range(20)]) == {
                f"k{i}": i for i in range(20)
            }
        assert cache.stats().error_count == 0
