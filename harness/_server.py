"""What every real S3 server of the harness shares: installing it when missing, starting its
processes with their data in a temporary folder, waiting until it answers, stopping it by PID,
and a ``start|stop|status`` command line that keeps the PIDs in a state file between calls.
"""

from __future__ import annotations

import abc
import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any, ClassVar, Final

from harness.process import die_with_parent

__all__ = ["Endpoint", "S3Server", "ServerUnavailable", "main"]

#: The credentials a harness server accepts unless told otherwise (the test suite's own).
DEFAULT_ACCESS_KEY: Final = "testing-key-id"
DEFAULT_SECRET_KEY: Final = "testing-secret"
_STOP_TIMEOUT: Final = 10.0


class ServerUnavailable(RuntimeError):
    """The server is not installed and cannot be installed here; the message says why."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a started server listens and the credentials it accepts."""

    url: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"

    def client_kwargs(self) -> dict[str, str]:
        """Keyword arguments for ``boto3.client("s3", ...)`` and ``AsyncS3Cache``."""
        return {
            "endpoint_url": self.url,
            "aws_access_key_id": self.access_key,
            "aws_secret_access_key": self.secret_key,
            "region_name": self.region,
        }

    def environment(self) -> dict[str, str]:
        """The variables boto3, the AWS CLI and the ``s3cache`` command line read."""
        return {
            "AWS_ENDPOINT_URL_S3": self.url,
            "S3CACHE_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
        }


def _pid_runs(pid: int, executables: Sequence[str]) -> bool:
    """Whether ``pid`` is alive and runs one of ``executables`` (a reused PID is left alone)."""
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0].decode()
    except OSError:
        return False
    return os.path.basename(argv0) in executables


def stop_pids(pids: Sequence[int], executables: Sequence[str]) -> None:
    """SIGTERM each PID that still runs one of ``executables``, then SIGKILL what lingers."""
    live = [pid for pid in pids if _pid_runs(pid, executables)]
    for pid in live:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + _STOP_TIMEOUT
    while live and time.monotonic() < deadline:
        time.sleep(0.05)
        live = [pid for pid in live if _pid_runs(pid, executables) and not _zombie(pid)]
    for pid in live:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return False


def run_tool(args: Sequence[str], *, stdin: str | None = None, timeout: float = 120.0) -> str:
    """Run a one-shot command; its stdout, or RuntimeError with the tail of its output."""
    try:
        done = subprocess.run(
            list(args), input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"{' '.join(args[:3])} ...: no answer within {timeout:g} s") from exc
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip()[-800:]
        raise RuntimeError(f"{' '.join(args[:3])} ... exited {done.returncode}: {tail}")
    return done.stdout


class S3Server(abc.ABC):
    """One real S3 server: ``start()`` returns its :class:`Endpoint`, ``stop()`` ends it.

    ``install``: install the server when it is missing (else :class:`ServerUnavailable`).
    ``detach``: let the processes outlive this one (the command line); otherwise they get
    SIGTERM when this process dies. Data lives in a fresh temporary folder, removed on stop.
    """

    #: The name the command line, the test suite and the benchmark use.
    name: ClassVar[str]
    #: The executables the server runs: a PID is only signalled while it runs one of these.
    executables: ClassVar[tuple[str, ...]]
    #: Seconds from launch until the server must answer.
    start_timeout: ClassVar[float] = 90.0

    def __init__(
        self,
        *,
        access_key: str = DEFAULT_ACCESS_KEY,
        secret_key: str = DEFAULT_SECRET_KEY,
        install: bool = True,
        detach: bool = False,
    ) -> None:
        self.access_key = access_key
        self.secret_key = secret_key
        self.install = install
        self.detach = detach
        self.workdir: Path | None = None
        self.pids: list[int] = []
        self.endpoint: Endpoint | None = None
        self._processes: list[subprocess.Popen[bytes]] = []
        self._logs: list[IO[bytes]] = []

    @abc.abstractmethod
    def missing(self) -> str | None:
        """What is not installed, in words, or None when everything is there."""

    @abc.abstractmethod
    def install_missing(self) -> None:
        """Install the server; :class:`ServerUnavailable` when this machine cannot."""

    @abc.abstractmethod
    def launch(self, workdir: Path) -> str:
        """Start the server's processes with their data in ``workdir``; its URL once ready."""

    def ensure_installed(self) -> None:
        """Install what is missing (when allowed), or raise :class:`ServerUnavailable`."""
        what = self.missing()
        if what is None:
            return
        if not self.install:
            raise ServerUnavailable(f"{self.name}: {what}, and installing was not allowed")
        self.install_missing()
        still = self.missing()
        if still is not None:
            raise ServerUnavailable(f"{self.name}: installed, but still {still}")

    def start(self) -> Endpoint:
        """Install if needed, launch, wait until the server answers; returns its endpoint."""
        if self.endpoint is not None:
            return self.endpoint
        self.ensure_installed()
        self.workdir = Path(tempfile.mkdtemp(prefix=f"s3cache-{self.name}-"))
        try:
            url = self.launch(self.workdir)
        except BaseException:
            self.stop()
            raise
        self.endpoint = Endpoint(url, self.access_key, self.secret_key)
        return self.endpoint

    def stop(self) -> None:
        """Stop every process by PID (last started first) and remove the data; idempotent."""
        stop_pids(list(reversed(self.pids)), self.executables)
        for process in self._processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(1.0)  # reap our own children
        for log in self._logs:
            log.close()
        self._processes, self._logs, self.pids = [], [], []
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
        self.endpoint = None

    def spawn(self, args: Sequence[str], log_name: str) -> subprocess.Popen[bytes]:
        """Start one long-running process of the server, its output to ``log_name``."""
        assert self.workdir is not None
        log = (self.workdir / log_name).open("ab")
        self._logs.append(log)
        process = subprocess.Popen(
            list(args),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            start_new_session=True,  # Ctrl-C in a terminal reaches us, and we stop it
            preexec_fn=None if self.detach or sys.platform != "linux" else die_with_parent,
        )
        self._processes.append(process)
        self.pids.append(process.pid)
        return process

    def log_tail(self, log_name: str, limit: int = 1500) -> str:
        """The end of one of the server's logs (for error messages)."""
        if self.workdir is None:
            return ""
        try:
            text = (self.workdir / log_name).read_text(errors="replace")
        except OSError:
            return ""
        return text.strip()[-limit:]

    def wait_until_answers(
        self, url: str, statuses: Sequence[int], logs: Sequence[str], timeout: float | None = None
    ) -> None:
        """Poll ``url`` until it answers with one of ``statuses``; RuntimeError when a process
        exits or time runs out, with the end of its logs."""
        deadline = time.monotonic() + (timeout or self.start_timeout)
        while time.monotonic() < deadline:
            for process in self._processes:
                if process.poll() is not None:
                    raise RuntimeError(
                        f"{self.name}: {Path(str(process.args[0])).name} exited with "  # type: ignore[index]
                        f"{process.returncode}: {self._tails(logs)}"
                    )
            if _http_status(url) in statuses:
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name}: {url} did not answer in time: {self._tails(logs)}")

    def _tails(self, logs: Sequence[str]) -> str:
        return " | ".join(f"{name}: {self.log_tail(name, 600)}" for name in logs) or "no logs"

    def state(self) -> dict[str, Any]:
        """What ``stop`` from another process needs: PIDs, data folder, endpoint."""
        return {
            "name": self.name,
            "pids": self.pids,
            "workdir": str(self.workdir) if self.workdir else None,
            "endpoint": asdict(self.endpoint) if self.endpoint else None,
        }

    def __enter__(self) -> Endpoint:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2.0) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return None


def pip_install(*requirements: str) -> None:
    """Install into this interpreter's environment: pip, else uv (uv-made venvs lack pip)."""
    if _has_module("pip"):
        command = [sys.executable, "-m", "pip", "install", "-q", *requirements]
    elif shutil.which("uv"):
        command = ["uv", "pip", "install", "-q", "--python", sys.executable, *requirements]
    else:
        raise ServerUnavailable(
            f"cannot install {', '.join(requirements)}: this environment has neither pip nor uv"
        )
    try:
        run_tool(command, timeout=600)
    except RuntimeError as exc:
        raise ServerUnavailable(f"installing {', '.join(requirements)} failed: {exc}") from exc


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def apt_install(*packages: str) -> None:
    """``apt-get install`` as root; :class:`ServerUnavailable` without root or apt."""
    wanted = " ".join(packages)
    if shutil.which("apt-get") is None:
        raise ServerUnavailable(f"needs the Debian packages {wanted}, and there is no apt-get")
    if os.geteuid() != 0:
        raise ServerUnavailable(
            f"needs the Debian packages {wanted}; installing them needs root "
            f"(run: sudo apt-get install -y --no-install-recommends {wanted})"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        for command in (
            ["apt-get", "update", "-q"],
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages],
        ):
            done = subprocess.run(
                command, capture_output=True, text=True, env=env, timeout=900, check=False
            )
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip()[-800:]
                raise ServerUnavailable(f"{' '.join(command[:2])} failed: {tail}")
    except subprocess.TimeoutExpired as exc:
        raise ServerUnavailable(f"apt-get did not finish installing {wanted}") from exc


# -- command line ----------------------------------------------------------------------------


def state_file(name: str) -> Path:
    """Where ``start`` keeps what ``stop`` needs, by default."""
    return Path(tempfile.gettempdir()) / f"s3cache-harness-{name}.json"


def main(factory: Callable[..., S3Server], name: str, argv: Sequence[str] | None = None) -> int:
    """``python -m harness.<server> start|stop|status``; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog=f"python -m harness.{name}",
        description=f"Start or stop a local {name} S3 server (data in a temporary folder).",
    )
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("--access-key", default=DEFAULT_ACCESS_KEY)
    parser.add_argument("--secret-key", default=DEFAULT_SECRET_KEY)
    parser.add_argument("--no-install", action="store_true", help="fail rather than install")
    parser.add_argument("--state", type=Path, default=state_file(name), help="PIDs kept here")
    args = parser.parse_args(argv)
    if args.action == "start":
        return _start(factory, args)
    return _stop(args.state, factory) if args.action == "stop" else _status(args.state, factory)


def _load(path: Path) -> dict[str, Any] | None:
    try:
        loaded: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return loaded


def _alive(state: Mapping[str, Any], factory: Callable[..., S3Server]) -> list[int]:
    executables = factory().executables
    return [pid for pid in state.get("pids", []) if _pid_runs(int(pid), executables)]


def _start(factory: Callable[..., S3Server], args: argparse.Namespace) -> int:
    previous = _load(args.state)
    if previous is not None and _alive(previous, factory):
        print(f"already running (see {args.state}); stop it first", file=sys.stderr)
        return 1
    server = factory(
        access_key=args.access_key,
        secret_key=args.secret_key,
        install=not args.no_install,
        detach=True,
    )
    try:
        started = time.monotonic()
        endpoint = server.start()
    except ServerUnavailable as exc:
        print(f"cannot run here: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        print(f"failed to start: {exc}", file=sys.stderr)
        return 1
    args.state.write_text(json.dumps(server.state()))
    print(f"# {server.name} ready in {time.monotonic() - started:.1f} s; PIDs {server.pids}")
    for key, value in endpoint.environment().items():
        print(f"export {key}={value}")
    return 0


def _stop(path: Path, factory: Callable[..., S3Server]) -> int:
    state = _load(path)
    if state is None:
        print(f"nothing to stop ({path} not found)", file=sys.stderr)
        return 0
    stop_pids([int(p) for p in reversed(state.get("pids", []))], factory().executables)
    if state.get("workdir"):
        shutil.rmtree(state["workdir"], ignore_errors=True)
    path.unlink(missing_ok=True)
    print(f"stopped PIDs {state.get('pids')}")
    return 0


def _status(path: Path, factory: Callable[..., S3Server]) -> int:
    state = _load(path)
    if state is None or not _alive(state, factory):
        print("not running")
        return 1
    print(json.dumps(state.get("endpoint")))
    return 0
