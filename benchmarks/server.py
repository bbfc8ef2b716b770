"""The S3 endpoint a run talks to: a given one, or an embedded server started in a subprocess.

The embedded server is the benchmark's own in-memory keep-alive server (``mini``, the default,
:mod:`harness.miniserver`) or moto's (``moto``); ``--server`` starts a real one (Ceph RGW,
SeaweedFS) through :mod:`harness` instead. Latency is emulated on the wire: by the mini server
itself, or by a delaying proxy process (:mod:`harness.delayproxy`) in front of any server. The
server runs in its own process so that it does not share the benchmark's GIL or CPU
accounting; it is stopped on every exit path (normal end, error, Ctrl-C, SIGTERM) and, on
Linux, dies with its parent even if the benchmark is killed outright (the mini server also
exits when its stdin pipe from us closes).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final
from urllib.parse import urlsplit

from harness.process import die_with_parent, free_port

__all__ = [
    "EMBEDDED_CREDENTIALS",
    "EMBEDDED_SERVERS",
    "REAL_SERVERS",
    "DelayProxy",
    "EmbeddedServer",
    "Target",
    "ensure_bucket",
    "remove_prefix",
    "request_counts",
]

#: The embedded servers ``--embedded`` can start, and how the output names them.
EMBEDDED_SERVERS: Final = {
    "mini": "harness/miniserver.py: in-memory, asyncio, HTTP/1.1 keep-alive",
    "moto": "moto.server: werkzeug, a new connection per request",
}
#: The real S3 servers ``--server`` starts through the harness package, for the whole run.
REAL_SERVERS: Final = {
    "ceph": "Ceph RGW 16.2 (harness/ceph.py): monitor, memstore OSD, beast gateway",
    "seaweedfs": "SeaweedFS 4.x weed mini (harness/seaweedfs.py): one process, disk in a temp dir",
}
_ROOT: Final = Path(__file__).resolve().parent.parent  # where ``-m harness.<module>`` imports
#: Both embedded servers accept any credentials; these are what the embedded run uses.
EMBEDDED_CREDENTIALS: Final = ("bench-access-key", "bench-secret-key")
_START_TIMEOUT: Final = 30.0
_STOP_TIMEOUT: Final = 5.0


@dataclass(frozen=True, slots=True)
class Target:
    """Where and as whom every contender connects."""

    endpoint_url: str
    region: str
    bucket: str
    access_key: str | None
    secret_key: str | None
    embedded: bool  # started for this run and discarded after it (embedded or --server)
    server: str = ""  # "moto", "mini" (embedded), "ceph", "seaweedfs" (--server), "" (external)
    stats_url: str | None = None  # where the server counts requests by method (the mini server)
    counter: Any = None  # or a harness FaultProxy in front of it that counts them (its .methods)

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``boto3.client``/``create_client`` (credentials may be None)."""
        return {
            "endpoint_url": self.endpoint_url,
            "region_name": self.region,
            "aws_access_key_id": self.access_key,
            "aws_secret_access_key": self.secret_key,
        }


class EmbeddedServer:
    """An S3 server on a free loopback port, in a subprocess: ``kind`` is "moto" or "mini"."""

    def __init__(self, kind: str = "mini", delay_ms: float = 0.0) -> None:
        """``delay_ms`` holds back every answer of the mini server (emulated latency)."""
        if kind not in EMBEDDED_SERVERS:
            raise ValueError(
                f"unknown embedded server {kind!r}; choose from {list(EMBEDDED_SERVERS)}"
            )
        if delay_ms and kind != "mini":
            raise ValueError("only the mini server delays its answers; use a DelayProxy")
        self.kind = kind
        self.delay_ms = delay_ms
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""
        # moto logs every request to stderr: a file, never a pipe nobody reads (a full pipe
        # blocks the server mid-response).
        self._log: IO[bytes] | None = None

    def start(self, attempts: int = 3) -> str:
        """Start the server and wait until it answers; returns its URL."""
        last = ""
        for _ in range(attempts):
            self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
            try:
                ready = self._start_mini() if self.kind == "mini" else self._start_moto()
            except BaseException:
                self.stop()
                raise
            if ready:
                return self.url
            last = self._stderr_tail()
            self.stop()
        raise RuntimeError(f"the embedded {self.kind} server did not start: {last or 'no output'}")

    def _popen(self, args: list[str], stdin: int, stdout: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, *args],
            stdin=stdin,
            stdout=stdout,
            stderr=self._log,
            cwd=_ROOT,
            preexec_fn=die_with_parent if sys.platform.startswith("linux") else None,
        )

    def _start_moto(self) -> bool:
        port = free_port()
        args = ["-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
        self.process = self._popen(args, subprocess.DEVNULL, subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{port}"
        return self._wait_ready()

    def _start_mini(self) -> bool:
        """The mini server binds port 0 itself and prints ``READY <port>``: no port race.

        Its stdin is a pipe we hold: when this process goes away, however it dies, the pipe
        closes and the server exits.
        """
        args = ["-m", "harness.miniserver", "--host", "127.0.0.1", "--port", "0"]
        args += ["--delay-ms", str(self.delay_ms)]
        self.process = process = self._popen(args, subprocess.PIPE, subprocess.PIPE)
        port = _ready_port(process)
        if port is None:
            return False
        self.url = f"http://127.0.0.1:{port}"
        return True

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(self.url + "/moto-api/", timeout=1.0):
                    return True
            except urllib.error.HTTPError:
                return True  # it answered
            except OSError:
                time.sleep(0.05)
        return False

    def _stderr_tail(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace").strip()[-500:]

    def stop(self) -> None:
        """Terminate the server (kill it if it lingers); idempotent."""
        process, self.process = self.process, None
        log, self._log = self._log, None
        if process is not None:
            _end(process)
        if log is not None:
            log.close()

    def __enter__(self) -> EmbeddedServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _end(process: subprocess.Popen[bytes]) -> None:
    """Terminate a child (kill it if it lingers) and close our ends of its pipes."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for pipe in (process.stdin, process.stdout):
        if pipe is not None:
            pipe.close()


def _ready_port(process: subprocess.Popen[bytes]) -> int | None:
    """The port a child announced with ``READY <port>`` on stdout, or None."""
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], _START_TIMEOUT)
    line = process.stdout.readline().decode(errors="replace") if ready else ""
    return int(line.split()[1]) if line.startswith("READY ") else None


class DelayProxy:
    """:mod:`harness.delayproxy` in a subprocess in front of ``upstream``: every answer
    reaches the client ``delay_ms`` late. Stopped like the embedded server."""

    def __init__(self, upstream: str, delay_ms: float) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the delaying proxy forwards plain http:// endpoints, not {upstream}")
        port = parts.port or 80
        self.upstream = f"{parts.hostname}:{port}"
        self.path = parts.path
        self.delay_ms = delay_ms
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def __enter__(self) -> DelayProxy:
        args = ["-m", "harness.delayproxy", "--upstream", self.upstream]
        args += ["--delay-ms", str(self.delay_ms)]
        self.process = subprocess.Popen(
            [sys.executable, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=_ROOT,
            preexec_fn=die_with_parent if sys.platform.startswith("linux") else None,
        )
        port = _ready_port(self.process)
        if port is None:
            self.__exit__()
            raise RuntimeError("the delaying proxy did not start")
        self.url = f"http://127.0.0.1:{port}{self.path}"
        return self

    def __exit__(self, *exc_info: object) -> None:
        process, self.process = self.process, None
        if process is not None:
            _end(process)


def request_counts(target: Target) -> Counter[str] | None:
    """Requests the server (or the counting proxy in front of it) has answered so far, by
    method (None: nobody counts them)."""
    if target.counter is not None:
        return Counter(target.counter.methods)
    if target.stats_url is None:
        return None
    with urllib.request.urlopen(target.stats_url, timeout=10) as reply:
        stats = json.load(reply)
    return Counter({str(k): int(v) for k, v in stats["methods"].items()})


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt while the run lasts, so cleanup code runs."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _boto3_client(target: Target) -> Any:
    import boto3

    return boto3.client("s3", **target.client_kwargs())


def ensure_bucket(target: Target) -> bool:
    """Create the bucket unless it exists; True when it was created."""
    from botocore.exceptions import ClientError

    client = _boto3_client(target)
    try:
        try:
            client.head_bucket(Bucket=target.bucket)
            return False
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status != 404:
                raise
        params: dict[str, Any] = {"Bucket": target.bucket}
        if target.region != "us-east-1":
            params["CreateBucketConfiguration"] = {"LocationConstraint": target.region}
        client.create_bucket(**params)
        return True
    finally:
        client.close()


def remove_prefix(target: Target, prefix: str) -> int:
    """Delete every object under ``prefix`` (what a run wrote); returns how many."""
    client = _boto3_client(target)
    removed = 0
    try:
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=target.bucket, Prefix=prefix
        ):
            keys = [{"Key": o["Key"]} for o in page.get("Contents") or []]
            if keys:
                client.delete_objects(Bucket=target.bucket, Delete={"Objects": keys, "Quiet": True})
                removed += len(keys)
    finally:
        client.close()
    return removed


def default_credentials() -> tuple[str | None, str | None]:
    """The standard AWS environment variables, if set."""
    return os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
