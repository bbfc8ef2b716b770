"""Run the real litellm proxy (``litellm --config ...``) as a subprocess, offline, for tests.

The proxy needs litellm 1.110.2 and its runtime dependencies installed beside it (the nox
``litellm`` session installs them); it refuses to start without a master key, and starts in about
13 s on a quiet 2-core machine once its bytecode is cached.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from harness.process import free_port

MASTER_KEY = "sk-s3cache-test-master-key"
AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
#: Modules the proxy imports at startup that litellm's own dependencies do not bring.
PROXY_MODULES = (
    "apscheduler",
    "backoff",
    "boto3",
    "expression",
    "fastapi",
    "fastapi_sso",
    "jwt",
    "mcp",
    "multipart",
    "orjson",
    "redis",
    "semver",
    "soundfile",
    "uvicorn",
    "websockets",
    "yaml",
)
_REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Exited:
    """A proxy run that ended by itself: its exit status and everything it printed."""

    returncode: int
    output: str


def proxy_env(extra: Mapping[str, str] = {}) -> dict[str, str]:  # read only
    """The environment for a proxy: offline, the test master key, no ambient AWS configuration.

    Bytecode writing is switched on whatever the caller's environment says: litellm is thousands
    of modules, and compiling them on every start makes each start take minutes, not seconds.
    ``harness`` is importable, for callbacks such as :mod:`harness.litellm_probe`.
    """
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("AWS_") and name != "PYTHONDONTWRITEBYTECODE"
    }
    pythonpath = [str(_REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
    env.update(
        LITELLM_MASTER_KEY=MASTER_KEY,
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        PYTHONPATH=os.pathsep.join(pythonpath),
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        NO_PROXY="*",
    )
    env.update(extra)
    return env


def _command(config: Path, port: int, workers: int) -> list[str]:
    """The ``litellm`` console script of this interpreter's environment, serving ``config``."""
    script = Path(sys.executable).with_name("litellm")
    return [
        str(script),
        *("--config", str(config), "--host", "127.0.0.1", "--port", str(port)),
        *("--num_workers", str(workers)),
    ]


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health/liveliness", timeout=5) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the proxy's process group (its workers too), SIGKILL if it lingers."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextmanager
def running_proxy(
    config: Path, log: Path, env: Mapping[str, str], *, workers: int = 1, timeout: float = 300
) -> Iterator[str]:
    """Start the proxy on a free loopback port; yield its URL once it answers; stop it after.

    Raises RuntimeError with the proxy's output if it exits or is not ready within ``timeout``.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            _command(config, port, workers),
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=dict(env),
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + timeout
        while not _ready(url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"litellm proxy did not start:\n{_tail(log)}")
            time.sleep(0.2)
        yield url
    finally:
        _stop(process)


def run_to_exit(config: Path, log: Path, env: Mapping[str, str], *, timeout: float = 300) -> Exited:
    """Start the proxy and wait for it to exit by itself (a startup that must fail)."""
    with log.open("wb") as sink:
        process = subprocess.Popen(
            _command(config, free_port(), 1),
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=dict(env),
            start_new_session=True,
        )
    try:
        returncode = process.wait(timeout=timeout)
    finally:
        _stop(process)
    return Exited(returncode, log.read_text(errors="replace"))


def _tail(log: Path, lines: int = 60) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
