"""The private loop thread (s3cache._loop): sync factories in their caller's thread,
interrupts, and interpreter exit."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from typing import Any

import pytest

from s3cache import CacheEvent, S3Cache

MISSING = object()


class CountMisses:
    """An observer that sets ``both`` once two gets have missed (runs on the private loop)."""

    def __init__(self) -> None:
        self.misses = 0
        self.both = threading.Event()

    def on_event(self, event: CacheEvent) -> None:
        if event.op == "get" and event.outcome == "miss":
            self.misses += 1
            if self.misses >= 2:
                self.both.set()


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit])
def test_an_interrupted_sync_factory_settles_every_waiter(
    cache_kwargs: dict[str, Any], interrupt: type[BaseException]
) -> None:
    """Thread A runs the shared factory, thread B waits on the same key; the factory raises a
    BaseException. A gets it, B gets an error instead of hanging, later callers run afresh."""
    misses = CountMisses()
    entered = threading.Event()
    outcomes: dict[str, Any] = {}

    def factory() -> str:
        entered.set()
        # B missed and joined the shared fill in the same loop step as its miss was observed.
        assert misses.both.wait(10)
        raise interrupt

    def run(name: str, make: Any) -> None:
        try:
            outcomes[name] = cache.get_or_set("k", make)
        except BaseException as exc:
            outcomes[name] = exc

    with S3Cache(**cache_kwargs, on_error="raise", observer=misses, timeout=5) as cache:
        first = threading.Thread(target=run, args=("a", factory), daemon=True)
        first.start()
        assert entered.wait(10)
        second = threading.Thread(target=run, args=("b", lambda: "b's"), daemon=True)
        second.start()
        first.join(10)
        second.join(10)
        assert not second.is_alive(), "the waiter hangs"
        assert isinstance(outcomes["a"], interrupt)
        assert isinstance(outcomes["b"], RuntimeError)
        assert "interrupted" in str(outcomes["b"])
        assert cache.get_or_set("k", lambda: "later") == "later"


SIGINT_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, threading, time
    from s3cache import S3Cache

    both = threading.Event()
    misses = 0

    class Observer:
        def on_event(self, event):
            global misses
            if event.op == "get" and event.outcome == "miss":
                misses += 1
                if misses == 2:
                    both.set()

    cache = S3Cache(sys.argv[1], endpoint_url=sys.argv[2], aws_access_key_id="id",
                    aws_secret_access_key="secret", region_name="us-east-1",
                    on_error="raise", timeout=5, observer=Observer())
    entered = threading.Event()
    waiter = {}

    def factory():
        entered.set()
        time.sleep(60)  # Ctrl-C arrives here, in the main thread
        return "main's"

    def other():
        entered.wait()
        try:
            waiter["result"] = repr(cache.get_or_set("k", lambda: "other's"))
        except Exception as exc:
            waiter["result"] = type(exc).__name__

    def interrupt():
        both.wait()  # the other thread has joined the main thread's factory
        os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=other, daemon=True)
    thread.start()
    threading.Thread(target=interrupt, daemon=True).start()
    try:
        cache.get_or_set("k", factory)
    except KeyboardInterrupt:
        print("main: KeyboardInterrupt")
    thread.join(10)
    print("other:", waiter.get("result", "hung"))
    if thread.is_alive():
        os._exit(3)
    print("later:", cache.get_or_set("k", lambda: "later"))
    cache.close()
    """
)


def test_ctrl_c_in_a_sync_factory_reaches_its_waiters(bucket: str, s3_endpoint: str) -> None:
    """A real SIGINT while the main thread runs the shared factory: the main thread gets
    KeyboardInterrupt, the other thread an error within its deadline, later callers a value."""
    result = subprocess.run(
        [sys.executable, "-c", SIGINT_SCRIPT, bucket, s3_endpoint],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.stdout.splitlines() == [
        "main: KeyboardInterrupt",
        "other: RuntimeError",
        "later: later",
    ], result.stderr
    assert result.returncode == 0, result.stderr


EXIT_IN_FLIGHT_SCRIPT = textwrap.dedent(
    """
    import socket, threading
    from s3cache import S3Cache

    server = socket.socket()  # accepts a request and never answers it
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    cache = S3Cache("bucket", endpoint_url=f"http://127.0.0.1:{server.getsockname()[1]}",
                    aws_access_key_id="id", aws_secret_access_key="secret",
                    region_name="us-east-1")
    for call in (lambda: cache.get("k"), lambda: cache.get_or_set("j", lambda: 1)):
        threading.Thread(target=call, daemon=True).start()
        connection, _ = server.accept()
        request = b""
        while b"\\r\\n\\r\\n" not in request:
            request += connection.recv(65536)
        connection.detach()  # left open until the process ends
    server.detach()
    print("in flight", flush=True)
    # exit now, with both sync calls waiting for their answers
    """
)


def test_interpreter_exit_with_sync_calls_in_flight_is_quiet() -> None:
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", EXIT_IN_FLIGHT_SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.stdout == "in flight\n"
    assert result.stderr == ""
    assert result.returncode == 0


def test_calls_handed_over_while_the_loop_is_busy_wake_it_once() -> None:
    """Ten threads hand calls over while the private loop is held busy: the loop is woken once
    for all ten (not once per call), and each caller gets its own result."""
    from s3cache import _loop

    busy, free = threading.Event(), threading.Event()

    async def hold_the_loop() -> None:
        busy.set()
        assert free.wait(10)  # blocks the loop's thread itself: nothing else runs meanwhile

    async def echo(i: int) -> int:
        return i

    thread = _loop._get()
    wakes: list[Any] = []
    real = thread.loop.call_soon_threadsafe

    def counted(callback: Any, *args: Any, **kwargs: Any) -> Any:
        wakes.append(callback)
        return real(callback, *args, **kwargs)

    holder = threading.Thread(target=_loop.run, args=(hold_the_loop(),), daemon=True)
    results: dict[int, int] = {}
    callers = [
        threading.Thread(target=lambda i=i: results.__setitem__(i, _loop.run(echo(i))))
        for i in range(10)
    ]
    thread.loop.call_soon_threadsafe = counted  # type: ignore[method-assign,assignment]
    try:
        holder.start()
        assert busy.wait(10)
        wakes.clear()
        for caller in callers:
            caller.start()
        while len(thread._incoming) < len(callers):  # every call queued behind the busy loop
            threading.Event().wait(0.01)
        free.set()
        for caller in callers:
            caller.join(10)
        holder.join(10)
    finally:
        del thread.loop.call_soon_threadsafe
    assert results == {i: i for i in range(10)}
    assert len(wakes) == 1
