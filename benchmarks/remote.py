"""A contender measured in a process of its own: ``python -m benchmarks.remote NAME``.

litellm is about 3,000 modules, and importing it costs seconds of CPU. So the run starts this
process first thing: litellm is imported here while the main process runs the feature cells
(which measure counts and milliseconds, not CPU per operation), and when litellm's turn in
the grid comes, the main process asks for its cells and waits, so that nothing competes with
them. The child measures exactly as the main process does (:func:`benchmarks.workloads.run_cell`,
its own CPU clock, its own heartbeat cost subtracted) and sends each result back.

``python -m benchmarks.remote NAME uvloop`` runs it on uvloop (the main process's ``--loop``).
The protocol is JSON lines. Once its library is imported the child says ``{"ready": {...}}``
(or ``{"unavailable": reason}``), then answers each request read from stdin with one line:
``open`` (a :class:`Setup`) → ``{"opened": description}``; ``preload`` → ``{"ok": true}``;
``cell`` → ``{"result": CellResult}``; ``close`` → ``{"ok": true}``; a failure →
``{"error": text}`` or ``{"unavailable": reason}``. The end of stdin ends the child (so it never
outlives the run); on Linux it also dies with its parent.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any, Final

from benchmarks.contenders import (
    CONTENDERS,
    Contender,
    ContenderUnavailable,
    Setup,
    import_litellm,
    make,
)
from benchmarks.metrics import CellResult, heartbeat_cost
from benchmarks.options import loop_factory
from benchmarks.server import Target, log_tail, server_counts
from benchmarks.workloads import preload, run_cell
from harness.process import die_with_parent

__all__ = ["REMOTE", "RemoteContender"]

#: The contenders the run measures in a process of their own, and what that process imports
#: first (any contender can run remotely; these do by default).
REMOTE: Final[dict[str, Callable[[], Any]]] = {"litellm": import_litellm}
_ROOT: Final = Path(__file__).resolve().parent.parent
_READY_TIMEOUT_S: Final = 300.0  # a cold bytecode cache on a busy 2-core machine
_REPLY_TIMEOUT_S: Final = 300.0


def _setup_json(setup: Setup) -> dict[str, Any]:
    if setup.target.counter is not None:
        raise ValueError("a counting proxy cannot cross to another process")
    target = {k: v for k, v in asdict(setup.target).items() if k != "counter"}
    return {**asdict(setup), "target": target}


def _setup(data: dict[str, Any]) -> Setup:
    return Setup(**{**data, "target": Target(**data["target"])})


class RemoteContender:
    """The main process's handle on a contender in :mod:`benchmarks.remote`'s child process.

    :meth:`start` spawns the child at once (its import begins); :meth:`open` waits until it is
    ready; :meth:`preload` and :meth:`measure` stand in for :func:`benchmarks.workloads.preload`
    and :func:`benchmarks.workloads.run_cell`.
    """

    def __init__(self, name: str, loop: str = "asyncio") -> None:
        self.name = name
        self.loop = loop
        self.setup: Setup | None = None
        self.process: asyncio.subprocess.Process | None = None
        self.ready_info: dict[str, Any] = {}
        self._ready: asyncio.Task[dict[str, Any]] | None = None
        self._log: IO[bytes] | None = None
        self._described = ""
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Spawn the child: it starts importing its library now."""
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "benchmarks.remote",
            self.name,
            self.loop,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=self._log,
            cwd=_ROOT,
            preexec_fn=die_with_parent if sys.platform.startswith("linux") else None,
        )
        self._ready = asyncio.ensure_future(self._reply(_READY_TIMEOUT_S))

    async def ready(self) -> dict[str, Any]:
        """Wait until the child has imported its library; ContenderUnavailable if it cannot."""
        if self._ready is None:
            raise RuntimeError("start() first")
        reply = await self._ready
        if "unavailable" in reply:
            raise ContenderUnavailable(reply["unavailable"])
        self.ready_info = reply["ready"]
        return self.ready_info

    def bind(self, setup: Setup) -> RemoteContender:
        """Use ``setup`` for the next :meth:`open` (one concurrency of the grid)."""
        self.setup = setup
        return self

    def describe(self) -> str:
        """How the contender was configured, and where it was measured."""
        return (
            f"{self._described}; measured in a process of its own, where "
            f"{self.name} was imported ({self.ready_info.get('import_s', 0):.1f} s) "
            "while the main process ran the feature cells"
        )

    async def open(self) -> None:
        """Open the contender in the child, with the :meth:`bind` setup."""
        if self.setup is None:
            raise RuntimeError("bind() first")
        await self.ready()
        self._described = str(await self._ask({"op": "open", "setup": _setup_json(self.setup)}))

    async def preload(
        self, size: int, concurrency: int, kind: str = "bytes", first: int = 0
    ) -> None:
        """:func:`benchmarks.workloads.preload`, in the child."""
        request = {"op": "preload", "size": size, "concurrency": concurrency}
        await self._ask({**request, "kind": kind, "first": first})

    async def measure(self, workload: str, size: int, concurrency: int, **kw: Any) -> CellResult:
        """:func:`benchmarks.workloads.run_cell`, in the child (``kw``: its keyword options)."""
        request = {"op": "cell", "workload": workload, "size": size, "concurrency": concurrency}
        return CellResult.from_json(await self._ask({**request, **kw}))

    async def close(self) -> None:
        """Close the contender in the child (the child keeps running)."""
        if self.process is not None and self.process.returncode is None:
            await self._ask({"op": "close"})

    async def stop(self) -> None:
        """End the child (closing its stdin ends it) and release its log."""
        process, self.process = self.process, None
        if self._ready is not None and not self._ready.done():
            self._ready.cancel()
        if process is not None:
            if process.stdin is not None:
                process.stdin.close()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    async def _ask(self, request: dict[str, Any]) -> Any:
        async with self._lock:
            if self.process is None or self.process.stdin is None:
                raise ContenderUnavailable(f"the {self.name} process is not running")
            self.process.stdin.write(json.dumps(request).encode() + b"\n")
            await self.process.stdin.drain()
            reply = await self._reply(_REPLY_TIMEOUT_S)
        if "unavailable" in reply:
            raise ContenderUnavailable(reply["unavailable"])
        if "error" in reply:
            raise RuntimeError(f"{self.name} process: {reply['error']}")
        return next(iter(reply.values()))

    async def _reply(self, within_s: float) -> dict[str, Any]:
        assert self.process is not None
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), within_s)
        if not line:
            raise ContenderUnavailable(
                f"the {self.name} process ended: {log_tail(self._log) or 'no output'}"
            )
        reply: dict[str, Any] = json.loads(line)
        return reply


# -- the child ------------------------------------------------------------------------------


class _Child:
    """The child's side: one contender at a time, driven by requests on stdin."""

    def __init__(self, name: str, channel: IO[str], beat_cpu_s: float) -> None:
        self.name = name
        self.channel = channel
        self.beat_cpu_s = beat_cpu_s
        self.contender: Contender | None = None

    def send(self, reply: dict[str, Any]) -> None:
        self.channel.write(json.dumps(reply) + "\n")
        self.channel.flush()

    async def serve(self) -> None:
        try:
            while line := await asyncio.to_thread(sys.stdin.readline):
                request = json.loads(line)
                try:
                    reply = await self.answer(request)
                except ContenderUnavailable as exc:
                    reply = {"unavailable": str(exc)}
                except Exception as exc:
                    reply = {"error": f"{type(exc).__name__}: {exc}"[:500]}
                self.send(reply)
        finally:
            if self.contender is not None:
                await self.contender.close()

    async def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.pop("op")
        if op == "open":
            opened = make(self.name, _setup(request["setup"]))
            await opened.open()
            self.contender = opened
            return {"opened": opened.describe()}
        contender = self.contender
        if contender is None:
            raise RuntimeError(f"{op} before open")
        if op == "preload":
            await preload(
                contender,
                request["size"],
                request["concurrency"],
                request["kind"],
                request["first"],
            )
        elif op == "cell":
            result = await run_cell(
                contender,
                request.pop("workload"),
                request.pop("size"),
                request.pop("concurrency"),
                beat_cpu_s=self.beat_cpu_s,
                server_counts=server_counts(contender.setup.target),
                **request,
            )
            return {"result": result.to_json()}
        elif op == "close":
            self.contender = None
            await contender.close()
        else:
            raise ValueError(f"unknown request {op!r}")
        return {"ok": True}


def main(argv: Sequence[str]) -> int:
    """The child: import, say ready (with the import time), then serve requests."""
    name, loop = (*argv, "asyncio")[:2]
    channel = os.fdopen(os.dup(1), "w", buffering=1)  # replies; fd 1 itself goes to the log
    os.dup2(2, 1)
    started = time.perf_counter()
    try:
        if name not in CONTENDERS:
            raise ContenderUnavailable(f"unknown contender {name!r}")
        REMOTE.get(name, lambda: None)()
    except ContenderUnavailable as exc:
        channel.write(json.dumps({"unavailable": str(exc)}) + "\n")
        return 0
    import_s = time.perf_counter() - started
    factory = loop_factory(loop)
    gc.collect()
    gc.freeze()  # as the main process does: what the import made is out of the collector's way

    async def serve() -> None:
        beat = await heartbeat_cost()
        child = _Child(name, channel, beat)
        child.send({"ready": {"import_s": import_s, "heartbeat_cpu_s": beat}})
        await child.serve()

    with contextlib.suppress(KeyboardInterrupt), asyncio.Runner(loop_factory=factory) as runner:
        runner.run(serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
