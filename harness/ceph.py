"""Ceph RADOS Gateway 16.2 as a single-node cluster started by hand: one monitor, one storage
daemon in memory (memstore), one gateway on a free loopback port; no systemd, no ceph-mgr.

``python -m harness.ceph start`` prints ``export`` lines for the endpoint and credentials;
``python -m harness.ceph stop`` stops it by PID. Installs ``radosgw ceph-mon ceph-osd`` with
apt-get when they are missing (root only).
"""

from __future__ import annotations

import json
import shutil
import sys
import uuid
from pathlib import Path
from typing import Final

from harness._server import S3Server, apt_install, main, run_tool
from harness.process import free_port

__all__ = ["CephServer"]

PACKAGES: Final = ("radosgw", "ceph-mon", "ceph-osd")
_TOOLS: Final = (
    "ceph",
    "ceph-authtool",
    "monmaptool",
    "ceph-mon",
    "ceph-osd",
    "radosgw",
    "radosgw-admin",
)
_GATEWAY: Final = "client.rgw.gw"
#: The pools the gateway creates on the first bucket and the first write (seconds each).
_BUCKET_POOLS: Final = ("default.rgw.buckets.index", "default.rgw.buckets.data")
#: RAM for the storage daemon's objects; the test suite stores a few MB at a time.
_MEMSTORE_BYTES: Final = 1 << 30

_CONF: Final = """\
[global]
fsid = {fsid}
mon host = v2:127.0.0.1:{mon_port}
mon initial members = a
public addr = 127.0.0.1
ms bind msgr1 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = {dir}/admin.keyring
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
osd objectstore = memstore
memstore device bytes = {memstore_bytes}
run dir = {dir}/run
admin socket = {dir}/run/$name.asok
pid file = {dir}/run/$name.pid
log file = {dir}/log/$name.log
mon data = {dir}/mon/$cluster-$id
osd data = {dir}/osd/$cluster-$id
log to stderr = false
err to stderr = true
debug ms = 0
debug mon = 0
debug osd = 0
debug rgw = 0
debug auth = 0
debug monc = 0
debug objecter = 0
debug rados = 0

[{gateway}]
keyring = {dir}/rgw.keyring
rgw frontends = beast endpoint=127.0.0.1:{rgw_port} tcp_nodelay=1
rgw dns name = 127.0.0.1
rgw user max buckets = 100000
"""


class CephServer(S3Server):
    """Ceph RGW 16.2 on loopback: monitor, memstore OSD and gateway, all stopped by PID."""

    name = "ceph"
    executables = ("ceph-mon", "ceph-osd", "radosgw")
    start_timeout = 120.0

    def missing(self) -> str | None:
        absent = [tool for tool in _TOOLS if shutil.which(tool) is None]
        return f"{', '.join(absent)} not installed" if absent else None

    def install_missing(self) -> None:
        apt_install(*PACKAGES)

    def launch(self, workdir: Path) -> str:
        for sub in ("run", "log", "mon", "osd"):
            (workdir / sub).mkdir()
        self._dir = workdir
        self._conf = ["-c", str(workdir / "ceph.conf")]
        fsid, mon_port, rgw_port = str(uuid.uuid4()), free_port(), free_port()
        (workdir / "ceph.conf").write_text(
            _CONF.format(
                fsid=fsid,
                mon_port=mon_port,
                rgw_port=rgw_port,
                dir=workdir,
                gateway=_GATEWAY,
                memstore_bytes=_MEMSTORE_BYTES,
            )
        )
        self._start_monitor(fsid, mon_port)
        self._start_osd()
        self._create_pools()
        url = self._start_gateway(rgw_port)
        self._create_user()
        return url

    def _start_monitor(self, fsid: str, port: int) -> None:
        mon_keyring, admin, monmap = (
            str(self._dir / name) for name in ("mon.keyring", "admin.keyring", "monmap")
        )
        create = ["ceph-authtool", "--create-keyring"]
        run_tool([*create, mon_keyring, "--gen-key", "-n", "mon.", "--cap", "mon", "allow *"])
        caps = [arg for kind in ("mon", "osd", "mds", "mgr") for arg in ("--cap", kind, "allow *")]
        run_tool([*create, admin, "--gen-key", "-n", "client.admin", *caps])
        run_tool(["ceph-authtool", mon_keyring, "--import-keyring", admin])
        address = f"[v2:127.0.0.1:{port}]"
        run_tool(["monmaptool", "--create", "--fsid", fsid, "--addv", "a", address, monmap])
        mkfs = ["--mkfs", "-i", "a", "--monmap", monmap, "--keyring", mon_keyring]
        run_tool(["ceph-mon", *self._conf, *mkfs])
        self.spawn(["ceph-mon", *self._conf, "-i", "a", "-f"], "ceph-mon.out")
        self._ceph("mon", "stat")  # answers once the monitor has quorum

    def _start_osd(self) -> None:
        secret = run_tool(["ceph-authtool", "--gen-print-key"]).strip()
        osd_uuid = str(uuid.uuid4())
        cephx = json.dumps({"cephx_secret": secret})
        osd_id = self._ceph("osd", "new", osd_uuid, "-i", "-", stdin=cephx).strip()
        data = self._dir / "osd" / f"ceph-{osd_id}"
        data.mkdir()
        keyring = str(data / "keyring")
        name = f"osd.{osd_id}"
        run_tool(
            ["ceph-authtool", "--create-keyring", keyring, "--name", name, "--add-key", secret]
        )
        osd = ["ceph-osd", *self._conf, "-i", osd_id, "--keyring", keyring]
        run_tool([*osd, "--mkfs", "--osd-uuid", osd_uuid])
        self.spawn([*osd, "-f"], "ceph-osd.out")

    def _create_pools(self) -> None:
        """Create the bucket pools now, while the gateway starts, not on the first write."""
        for pool in _BUCKET_POOLS:
            self._ceph("osd", "pool", "create", pool, "8")
            self._ceph("osd", "pool", "application", "enable", pool, "rgw")

    def _start_gateway(self, port: int) -> str:
        keyring = str(self._dir / "rgw.keyring")
        caps = ["mon", "allow rw", "osd", "allow rwx"]
        self._ceph("auth", "get-or-create", _GATEWAY, *caps, "-o", keyring)
        self.spawn(["radosgw", *self._conf, "-n", _GATEWAY, "-f"], "radosgw.out")
        url = f"http://127.0.0.1:{port}"
        logs = ["radosgw.out", f"log/{_GATEWAY}.log", "ceph-osd.out", "log/osd.0.log"]
        self.wait_until_answers(url + "/", (200,), logs)
        return url

    def _create_user(self) -> None:
        user = ["user", "create", "--uid=s3cache", "--display-name=s3cache"]
        keys = [f"--access-key={self.access_key}", f"--secret-key={self.secret_key}"]
        limits = ["--max-buckets=100000"]
        run_tool(["radosgw-admin", *self._conf, "-n", "client.admin", *user, *keys, *limits])

    def _ceph(self, *args: str, stdin: str | None = None, timeout: float = 60) -> str:
        """One ``ceph`` command against this cluster as client.admin."""
        connect = ["--connect-timeout", str(int(timeout))]
        return run_tool(["ceph", *self._conf, *connect, *args], stdin=stdin, timeout=timeout + 10)


if __name__ == "__main__":
    sys.exit(main(CephServer, "ceph"))
