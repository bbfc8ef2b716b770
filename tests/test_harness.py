"""harness: installing, refusing and stopping real servers, without starting one."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import _server
from harness.ceph import CephServer
from harness.seaweedfs import SeaweedFSServer
from harness.servers import SERVERS, ServerUnavailable, server


def test_servers_by_name() -> None:
    assert set(SERVERS) == {"ceph", "seaweedfs"}
    assert isinstance(server("ceph"), CephServer)
    with pytest.raises(ValueError, match="unknown server 'minio'"):
        server("minio")


def test_without_root_ceph_says_why_it_cannot_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        "shutil.which", lambda name: "/usr/bin/apt-get" if name == "apt-get" else None
    )
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    with pytest.raises(ServerUnavailable, match="needs root"):
        CephServer().ensure_installed()
    with pytest.raises(ServerUnavailable, match="installing was not allowed"):
        CephServer(install=False).ensure_installed()


def test_stop_signals_only_pids_that_run_the_servers_executables() -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=-1)
    cmdline = Path(f"/proc/{sleeper.pid}/cmdline")
    try:
        while b"stdin.read" not in cmdline.read_bytes():  # until exec: a signal before it is lost
            time.sleep(0.01)
        _server.stop_pids([sleeper.pid], ("weed",))  # not a weed process: left alone
        assert sleeper.poll() is None
        _server.stop_pids([sleeper.pid], (Path(sys.executable).name,))
        assert sleeper.wait(10) is not None
    finally:
        sleeper.kill()
        sleeper.wait()
        assert sleeper.stdin is not None
        sleeper.stdin.close()


def test_the_command_line_without_a_running_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state.json"
    assert _server.main(SeaweedFSServer, "seaweedfs", ["status", "--state", str(state)]) == 1
    assert "not running" in capsys.readouterr().out
    assert _server.main(SeaweedFSServer, "seaweedfs", ["stop", "--state", str(state)]) == 0
    state.write_text(json.dumps({"name": "seaweedfs", "pids": [], "workdir": None}))
    assert _server.main(SeaweedFSServer, "seaweedfs", ["stop", "--state", str(state)]) == 0
    assert not state.exists()
