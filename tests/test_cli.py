"""The ``s3cache`` command line against moto's S3 server: in-process through ``main(argv)`` and
as a real ``python -m s3cache`` subprocess."""

from __future__ import annotations

import base64
import http.server
import io
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.faultproxy import Fault, FaultProxy
from s3cache import AsyncS3Cache, S3Cache, cli
from s3cache.cli import main
from tests.conftest import CREDENTIALS, fail_later_pages

ROOT = Path(__file__).resolve().parent.parent
#: With one-second server dates, a ttl of 1 s is over after at most a second.
TTL_WAIT = 1.5


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, s3_endpoint: str, bucket: str) -> str:
    """The CLI configured through its environment variables: the test bucket, prefix ``cache``."""
    monkeypatch.setenv("S3CACHE_BUCKET", bucket)
    monkeypatch.setenv("S3CACHE_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("S3CACHE_PREFIX", "cache")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CREDENTIALS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CREDENTIALS["aws_secret_access_key"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", CREDENTIALS["region_name"])
    monkeypatch.delenv("S3CACHE_PLAIN", raising=False)
    return bucket


class Run:
    """Calls ``main(argv)`` and returns (exit status, stdout, stderr)."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        status = main(list(argv))
        captured = self.capsys.readouterr()
        return status, captured.out, captured.err


@pytest.fixture
def run(env: str, capsys: pytest.CaptureFixture[str]) -> Run:
    return Run(capsys)


def keys(s3: Any, bucket: str) -> set[str]:
    """Every object key in the bucket, read behind the CLI's back."""
    found: set[str] = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        found.update(o["Key"] for o in page.get("Contents", []))
    return found


class FakeTty(io.StringIO):
    """A stdin that says it is a terminal, with the user's answer already typed."""

    def isatty(self) -> bool:
        return True


def one_line(err: str) -> str:
    """The single line of a failure's stderr (asserting there is exactly one, no traceback)."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# -- set / get / delete -----------------------------------------------------------------------


def test_set_get_delete_round_trip(run: Run, s3: Any, env: str) -> None:
    value = {"answer": [1, 2.5, None], "text": "ünï"}
    status, out, _ = run("set", "user:1", json.dumps(value), "--ttl", "60", "--json")
    assert status == 0
    assert "cache/user/1" in out
    head = s3.head_object(Bucket=env, Key="cache/user/1")
    assert head["Metadata"] == {"s3cache-ttl": "60"}

    status, out, _ = run("get", "user:1")
    assert status == 0
    assert json.loads(out) == value
    assert '\n  "answer"' in out  # pretty-printed

    status, out, _ = run("get", "user:1", "--json")
    assert json.loads(out) == {"key": "user:1", "value": value}

    status, out, _ = run("delete", "user:1", "--json")
    assert (status, json.loads(out)) == (0, {"key": "user:1", "deleted": True})
    status, out, _ = run("delete", "user:1")
    assert status == 1  # missing
    assert "no live entry" in out
    status, _, err = run("get", "user:1")
    assert status == 1
    assert "no live entry" in one_line(err)


def test_get_shows_bytes_safely_on_a_terminal(
    run: Run, s3: Any, env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    blob = b"\x1b[31m\x00\x07" + bytes(range(256))
    s3.put_object(Bucket=env, Key="cache/blob", Body=blob, ContentType="application/octet-stream")
    terminal = FakeTty()
    with monkeypatch.context() as patched:
        patched.setattr(sys, "stdout", terminal)
        status, _, err = run("get", "blob", "--plain")
    out = terminal.getvalue()
    assert status == 0
    assert "\x1b" not in out
    assert "\x00" not in out
    assert f"<{len(blob)} bytes, first 64 shown>" in out
    assert "1b 5b 33 31 6d 00 07" in out
    assert "redirect stdout, or --json for base64" in err
    status, out, _ = run("get", "blob", "--json")
    doc = json.loads(out)
    assert doc["bytes"] == len(blob)
    assert base64.b64decode(doc["base64"]) == blob


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["set", "k", "not json", "--json"], "VALUE is not JSON"),
        (["set", "k", "1", "--ttl", "0.5"], "ttl must be at least 1 second"),
        (["set", "k", "1", "--ttl", "-3"], "ttl must be positive"),
        (["set", "k", "--file", "/no/such/file.json"], "cannot read '/no/such/file.json'"),
        (["set", "k", "12345678901234567890123", "--json"], "VALUE cannot be stored"),
        (["get", "a::b"], "empty, '.' or '..' path segment"),
        (["ls", "bad\x01prefix"], "control character"),
        (["clear", "--prefix", "", "--yes"], "refusing to clear with an empty prefix"),
        (["lifecycle", "set", "--days", "1", "--prefix", ""], "refusing to set a lifecycle"),
        (["delete", "bad\x01key"], "control character"),
        (["--bucket", "Not_A..Bucket", "ls"], "not a valid bucket name"),
        (["--endpoint-url", "ftp://x", "ls"], "http:// or https://"),
        (["--profile", "nope", "ls"], "no AWS profile named 'nope'"),
    ],
)
def test_bad_values_exit_2_with_a_clear_message(
    run: Run, s3: Any, env: str, argv: list[str], message: str
) -> None:
    status, out, err = run(*argv)
    assert status == 2
    assert out == ""
    line = one_line(err)
    assert line.startswith("s3cache: error: ")
    assert message in line
    assert keys(s3, env) == set()


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["set", "k"],
        ["set", "k", "v", "--file", "f"],
        ["set", "k", "1", "--ttl", "soon"],
        ["ls", "--limit", "-1"],
        ["lifecycle"],
        ["lifecycle", "set"],
        ["lifecycle", "set", "--days", "0"],
    ],
)
def test_argparse_usage_errors_exit_2(run: Run, argv: list[str]) -> None:
    status, out, err = run(*argv)
    assert status == 2
    assert out == ""
    assert "usage: s3cache" in err


def test_no_bucket_is_bad_usage(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("S3CACHE_BUCKET")
    status, _, err = run("ls")
    assert status == 2
    assert "no bucket" in one_line(err)


def test_help_exits_0_and_explains_lifecycle_days(run: Run) -> None:
    status, out, _ = run("--help")
    assert status == 0
    assert "S3CACHE_BUCKET" in out
    assert "exit status" in out
    status, out, _ = run("lifecycle", "set", "--help")
    assert status == 0
    assert "whole" in out
    assert "days" in out
    assert "TTL" in out


def test_options_after_the_command_override(run: Run, s3: Any, env: str) -> None:
    assert run("set", "k", "1", "--prefix", "other")[0] == 0
    assert keys(s3, env) == {"other/k"}


def test_profile_supplies_credentials(
    run: Run, s3: Any, env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    Path(os.environ["AWS_CONFIG_FILE"]).write_text(
        "[profile cli-test]\n"
        f"aws_access_key_id = {CREDENTIALS['aws_access_key_id']}\n"
        f"aws_secret_access_key = {CREDENTIALS['aws_secret_access_key']}\n"
        "region = us-east-1\n",
        encoding="utf-8",
    )
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    status, _, err = run("--profile", "cli-test", "set", "k", "1")
    assert (status, err) == (0, "")
    assert keys(s3, env) == {"cache/k"}


# -- ls and stats -----------------------------------------------------------------------------


def test_ls_json_with_prefix_isolation(run: Run) -> None:
    run("set", "user:1", "a", "--ttl", "1")
    run("set", "user:2", "bb", "--ttl", "3600")
    run("set", "team:1", "3")
    run("--prefix", "cache2", "set", "intruder", "1")  # a sibling prefix: never listed
    time.sleep(TTL_WAIT)
    status, out, _ = run("ls", "--json")
    assert status == 0
    entries = {e["key"]: e for e in json.loads(out)}
    assert set(entries) == {"user/1", "user/2", "team/1"}
    assert entries["user/1"]["expired"] is True
    assert entries["user/2"]["expired"] is False
    assert entries["user/2"]["ttl_s"] == 3600
    assert entries["user/2"]["size"] == 4  # "bb", a JSON string
    assert entries["team/1"]["remaining_s"] is None

    status, out, _ = run("ls", "user:", "--json")
    assert sorted(e["key"] for e in json.loads(out)) == ["user/1", "user/2"]

    status, out, err = run("ls", "--json", "--limit", "2", "--page-size", "1")
    assert status == 0
    assert len(json.loads(out)) == 2
    assert "--limit" in err


def test_ls_table_with_rich(run: Run) -> None:
    run("set", "k1", "1", "--ttl", "3600")
    status, out, _ = run("ls")
    assert status == 0
    assert "KEY" in out
    assert "k1" in out
    assert "─" in out  # rich's table rule


def test_ls_plain_by_flag_and_by_environment(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    run("set", "k1", "1", "--ttl", "3600")
    status, out, _ = run("ls", "--plain")
    assert status == 0
    header, row = out.splitlines()
    assert header.split() == ["SIZE", "AGE", "TTL", "LEFT", "EXPIRED", "KEY"]
    assert row.split()[-1] == "k1"
    assert "─" not in out
    monkeypatch.setenv("S3CACHE_PLAIN", "1")
    status, out, _ = run("ls")
    assert out.splitlines()[0] == header
    assert "─" not in out


def test_plain_output_when_rich_is_absent(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "rich" or m.startswith("rich.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "rich", None)  # import rich -> ImportError
    assert cli._ui.load_rich() is None
    run("set", "k1", "1", "--ttl", "1")
    time.sleep(TTL_WAIT)
    status, out, _ = run("ls")
    assert status == 0
    assert out.splitlines()[0].split()[0] == "SIZE"
    assert "─" not in out
    status, out, _ = run("purge-expired", "--yes")
    assert status == 0
    assert "1 expired" in out
    status, out, _ = run("stats")
    assert status == 0
    assert out.splitlines()[1].split() == ["entries", "0"]


def test_plain_progress_draws_on_a_terminal_only(monkeypatch: pytest.MonkeyPatch) -> None:
    tty = FakeTty()
    monkeypatch.setattr(sys, "stderr", tty)
    with cli.UI(plain=True).progress("purging") as update:
        update("3 scanned")
    assert "\rpurging: 3 scanned" in tty.getvalue()
    pipe = io.StringIO()
    monkeypatch.setattr(sys, "stderr", pipe)
    with cli.UI(plain=True).progress("purging") as update:
        update("3 scanned")
    assert pipe.getvalue() == ""


def test_stats_json_and_sampling(run: Run) -> None:
    run("set", "a", "x", "--ttl", "1")
    run("set", "b", "yy")
    run("--prefix", "cache2", "set", "c", "1")
    time.sleep(TTL_WAIT)
    status, out, _ = run("stats", "--json")
    assert status == 0
    doc = json.loads(out)
    assert (doc["entries"], doc["bytes"], doc["sampled"]) == (2, 7, False)
    assert doc["expired_share"] == 0.5
    status, out, _ = run("stats", "--sample", "1", "--plain")
    assert status == 0
    assert "random sample of 1 entry," in out


# -- clear and purge --------------------------------------------------------------------------


def test_clear_refuses_an_empty_prefix(
    run: Run, s3: Any, env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run("set", "k", "1")
    monkeypatch.setenv("S3CACHE_PREFIX", "")
    status, _, err = run("clear", "--yes")
    assert status == 2
    assert "empty prefix" in one_line(err)
    assert keys(s3, env) == {"cache/k"}
    status, out, _ = run("clear", "--yes", "--all-bucket", "--json")
    assert status == 0
    assert json.loads(out)["deleted"] == 1
    assert keys(s3, env) == set()


def test_clear_confirmation(run: Run, s3: Any, env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    run("set", "a", "1")
    run("set", "b", "2")
    run("--prefix", "cache2", "set", "keep", "3")
    everything = {"cache/a", "cache/b", "cache2/keep"}

    status, _, err = run("clear")  # stdin is not a terminal, no --yes: refused
    assert status == 2
    assert "--yes" in one_line(err)
    assert keys(s3, env) == everything

    monkeypatch.setattr(sys, "stdin", FakeTty("n\n"))
    status, _, err = run("clear")
    assert status == 2
    assert "s3://" in err
    assert "nothing was deleted" in err
    assert keys(s3, env) == everything

    status, out, _ = run("clear", "--dry-run")
    assert status == 0
    assert "would delete 2 objects" in out
    assert keys(s3, env) == everything

    monkeypatch.setattr(sys, "stdin", FakeTty("y\n"))
    status, out, _ = run("clear")
    assert status == 0
    assert "deleted 2 objects" in out
    assert keys(s3, env) == {"cache2/keep"}


def test_purge_expired(run: Run, s3: Any, env: str) -> None:
    run("set", "old1", "1", "--ttl", "1")
    run("set", "old2", "2", "--ttl", "1")
    run("set", "fresh", "3", "--ttl", "3600")
    run("set", "forever", "4")
    run("--prefix", "cache2", "set", "old", "5", "--ttl", "1")
    time.sleep(TTL_WAIT)

    status, _, err = run("purge-expired")
    assert status == 2
    assert "--yes" in one_line(err)

    status, out, _ = run("purge-expired", "--dry-run", "--json")
    assert status == 0
    assert json.loads(out) | {"elapsed_s": 0} == {
        "bucket": env,
        "prefix": "cache/",
        "scanned": 4,
        "expired": 2,
        "bytes": 6,  # "1" and "2", JSON strings
        "deleted": 0,
        "leases": 0,
        "dry_run": True,
        "elapsed_s": 0,
        "invalidated": 0,
        "tag_records": 0,
    }
    assert len(keys(s3, env)) == 5

    status, out, _ = run("purge-expired", "--yes")
    assert status == 0
    assert "scanned 4 entries" in out
    assert "2 expired" in out
    assert "deleted 2" in out
    assert keys(s3, env) == {"cache/fresh", "cache/forever", "cache2/old"}


def test_leases_and_locks_are_not_entries(run: Run, s3: Any, env: str, s3_endpoint: str) -> None:
    """ls and stats count entries only; purge-expired removes run-out leases and locks."""
    creds: dict[str, Any] = {
        "aws_access_key_id": "testing-key-id",
        "aws_secret_access_key": "testing-secret",
    }
    with S3Cache(
        env, prefix="cache", endpoint_url=s3_endpoint, region_name="us-east-1", **creds
    ) as c:
        assert c.get_or_set("prompt", lambda: "answer", lease=5) == "answer"
        with c.lock("nightly", ttl=5):
            pass
    assert keys(s3, env) == {
        "cache/prompt",
        "cache/.s3cache/lease/prompt",
        "cache/.s3cache/lock/nightly",
    }
    status, out, _ = run("ls", "--json")
    assert [e["key"] for e in json.loads(out)] == ["prompt"]
    status, out, _ = run("stats", "--json")
    assert json.loads(out)["entries"] == 1
    time.sleep(2.1)  # a released lease runs out after a second, on whole-second dates
    status, out, _ = run("purge-expired", "--yes")
    assert status == 0
    assert "deleted 0, and 2 run-out leases and locks" in out
    assert keys(s3, env) == {"cache/prompt"}


# -- a slow server, a run stopped part-way, Ctrl-C ---------------------------------------------


def store(env: str, s3_endpoint: str, count: int, ttl: float | None = None) -> None:
    """``count`` entries ``k00``, ``k01``... under the CLI's prefix, written directly."""
    with S3Cache(env, prefix="cache", endpoint_url=s3_endpoint, **CREDENTIALS) as c:
        c.set_many({f"k{i:02d}": i for i in range(count)}, ttl=ttl)


def test_scans_complete_on_a_slow_but_healthy_server(
    run: Run, env: str, s3_endpoint: str, proxy: FaultProxy
) -> None:
    """The CLI's defaults failed with 1,100 entries, 0.4 s per HEAD, 32 at a time and a 10 s
    deadline; scaled down: 24 entries, 0.25 s, 2 at a time, a 2 s deadline (unpaced, the last
    HEAD of a batch would wait 3 s for its slot; paced, each has 8x its 0.25 s)."""
    store(env, s3_endpoint, 24)
    proxy.set_fault(Fault.DELAY, delay=0.25, methods={"HEAD"})
    slow = ["--endpoint-url", proxy.endpoint, "--concurrency", "2", "--timeout", "2"]
    status, out, err = run(*slow, "stats", "--json")
    assert (status, json.loads(out)["entries"], json.loads(out)["inspected"]) == (0, 24, 24), err
    status, out, err = run(*slow, "ls", "--page-size", "24", "--json")
    assert (status, len(json.loads(out))) == (0, 24), err
    status, out, err = run(*slow, "purge-expired", "--dry-run", "--page-size", "24", "--json")
    assert (status, json.loads(out)["scanned"]) == (0, 24), err


@pytest.fixture
def pages_of_two(
    monkeypatch: pytest.MonkeyPatch, small_pages: Callable[[AsyncS3Cache, int], None]
) -> None:
    """Every cache the CLI builds lists two objects a page."""

    def build(*args: Any, **kwargs: Any) -> AsyncS3Cache:
        cache = AsyncS3Cache(*args, **kwargs)
        small_pages(cache, 2)
        return cache

    monkeypatch.setattr(cli._main, "AsyncS3Cache", build)


@pytest.mark.usefixtures("pages_of_two")
@pytest.mark.parametrize("command", ["clear", "purge-expired"])
def test_a_run_stopped_part_way_says_what_it_deleted_and_a_rerun_finishes(
    run: Run, s3: Any, env: str, s3_endpoint: str, proxy: FaultProxy, command: str
) -> None:
    store(env, s3_endpoint, 6, ttl=1)
    time.sleep(TTL_WAIT)
    fail_later_pages(proxy)  # the listing after the first page answers 503 SlowDown
    status, out, err = run("--endpoint-url", proxy.endpoint, command, "--yes", "--plain")
    assert (status, out) == (2, "")
    line = one_line(err)
    operation = "clear_prefix" if command == "clear" else "purge_expired"
    assert line.startswith(
        f"s3cache: {operation}: deleted 2 of at least 2; stopped after 'cache/k01': "
    )
    assert "SlowDown" in line
    so_far = "deleting: 2 objects" if command == "clear" else "purging: 2 scanned, 2 expired"
    assert line.endswith(f" ({so_far}, 2 deleted); run the same command again to finish")
    assert len(keys(s3, env)) == 4

    status, out, err = run("--endpoint-url", proxy.endpoint, command, "--yes", "--json")
    assert status == 2
    partial = json.loads(out)
    assert (partial["deleted"], partial["prefix"]) == (2, "cache/")
    assert "SlowDown" in partial["error"]
    assert "stopped after 'cache/k03'" in one_line(err)

    proxy.clear()
    status, out, _ = run("--endpoint-url", proxy.endpoint, command, "--yes", "--json")
    assert (status, json.loads(out)["deleted"]) == (0, 2)  # 2 + 2 + 2: all six
    assert keys(s3, env) == set()


def test_long_commands_show_their_progress_on_a_terminal(
    env: str, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store(env, s3_endpoint, 3, ttl=1)
    time.sleep(TTL_WAIT)
    shown: dict[str, str] = {}
    for argv in (["ls"], ["stats"], ["purge-expired", "--yes"], ["clear", "--yes"]):
        tty = FakeTty()
        monkeypatch.setattr(sys, "stderr", tty)
        assert main(["--plain", *argv]) == 0
        shown[argv[0]] = tty.getvalue()
    assert "\rscanning: 1 entry inspected" in shown["ls"]  # the first HEAD's answer
    assert "\rcounting: 3 entries, 3 B" in shown["stats"]
    assert "\rpurging: 1 scanned, 1 expired, 0 deleted" in shown["purge-expired"]
    assert "\rdeleting: 0 objects, 0 deleted" in shown["clear"]  # purge left nothing


def read_until(fd: int, wanted: str, timeout: float = 30.0) -> str:
    """What a pseudo-terminal shows until ``wanted`` appears in it (or it closes)."""
    seen = ""
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"{wanted!r} never appeared in {seen!r}"
        if not select.select([fd], [], [], left)[0]:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the other side closed
            break
        if not chunk:
            break
        seen += chunk.decode("utf-8", "replace")
    return seen


def test_ctrl_c_stops_a_purge_cleanly_and_a_rerun_finishes(
    run: Run, s3: Any, env: str, s3_endpoint: str, proxy: FaultProxy
) -> None:
    """SIGINT in a real process, its stderr a terminal: no traceback, one line saying how far
    it got, exit status 130; the entries it reported deleted are gone, and a rerun deletes the
    rest. The fifth entry's HEAD is held at the proxy, so the first four are surely done."""
    store(env, s3_endpoint, 12, ttl=1)
    time.sleep(TTL_WAIT)
    proxy.set_fault(Fault.HOLD, methods={"HEAD"}, path_contains="/cache/k04")
    terminal, stderr = pty.openpty()
    argv = ["--plain", "--endpoint-url", proxy.endpoint, "--concurrency", "1"]
    with subprocess.Popen(
        [sys.executable, "-m", "s3cache", *argv, "purge-expired", "--yes", "--page-size", "4"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr,
        cwd=ROOT,
        env=dict(os.environ),
    ) as proc:
        os.close(stderr)
        try:
            shown = read_until(terminal, "purging: ")  # its progress line is drawn
            assert proxy.wait_held(1)  # k04's HEAD is held: k00-k03 were judged and deleted
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=30) == cli.EXIT_INTERRUPTED
            shown += read_until(terminal, "\x00")  # everything, until it closed
            assert proc.stdout is not None
            assert proc.stdout.read() == b""
        finally:
            proxy.release()
            proxy.clear()
            os.close(terminal)
    assert "Traceback" not in shown
    lines = [re.sub(r"\x1b\[K", "", part).strip() for part in re.split(r"[\r\n]+", shown)]
    *progress, summary = [line for line in lines if line]
    assert progress
    assert all(line.startswith("purging: ") for line in progress)  # nothing else, no warning
    assert summary == (
        "s3cache: interrupted while purging: 4 scanned, 4 expired, 4 deleted; "
        "run the same command again to finish"
    )
    assert len(keys(s3, env)) == 8
    status, out, _ = run("purge-expired", "--yes", "--json")
    assert (status, json.loads(out)["deleted"]) == (0, 8)  # 4 + 8: all twelve
    assert keys(s3, env) == set()


# -- lifecycle --------------------------------------------------------------------------------


def test_lifecycle_set_show_remove(run: Run, s3: Any, env: str) -> None:
    status, out, _ = run("lifecycle", "show", "--json")
    assert (status, json.loads(out)["rules"]) == (0, [])
    status, out, err = run("lifecycle", "show")
    assert "no lifecycle rule" in out
    assert "purge-expired" in err

    status, out, _ = run("lifecycle", "set", "--days", "2", "--json")
    assert status == 0
    assert json.loads(out) == {"id": "s3cache:cache/", "prefix": "cache/", "days": 2}
    stored = s3.get_bucket_lifecycle_configuration(Bucket=env)["Rules"]
    assert [(r["ID"], r["Filter"]["Prefix"], r["Expiration"]["Days"]) for r in stored] == [
        ("s3cache:cache/", "cache/", 2)
    ]

    status, out, _ = run("lifecycle", "show", "--json")
    (rule,) = json.loads(out)["rules"]
    assert (rule["days"], rule["ours"], rule["covers"]) == (2, True, "all")
    status, out, _ = run("lifecycle", "show", "--plain")
    assert "s3cache:cache/ (s3cache)" in out
    assert "2 days" in out

    status, out, _ = run("check", "--plain")
    assert "PASS  lifecycle rule" in out

    status, out, _ = run("lifecycle", "remove")
    assert (status, out.strip()) == (0, "removed rule 's3cache:cache/'")
    status, out, _ = run("lifecycle", "remove", "--json")
    assert (status, json.loads(out)) == (1, {"id": "s3cache:cache/", "removed": False})

    status, _, err = run("--prefix", "", "lifecycle", "set", "--days", "1")
    assert status == 2
    assert "empty prefix" in err


@pytest.fixture
def no_lifecycle_server() -> Iterator[str]:
    """An HTTP server that answers every S3 request 501 NotImplemented, like a minimal store."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            body = b"<Error><Code>NotImplemented</Code><Message>no</Message></Error>"
            self.send_response(501)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_PUT = do_DELETE = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.mark.parametrize("action", [["show"], ["set", "--days", "1"], ["remove"]])
def test_lifecycle_on_a_server_without_the_api(
    run: Run, no_lifecycle_server: str, action: list[str]
) -> None:
    status, out, err = run("--endpoint-url", no_lifecycle_server, "lifecycle", *action)
    assert status == 2
    assert out == ""
    line = one_line(err)
    assert "does not support bucket lifecycle rules" in line
    assert "NotImplemented" in line


# -- check and failures -----------------------------------------------------------------------


def test_check_passes_on_a_healthy_server(run: Run, s3: Any, env: str) -> None:
    status, out, _ = run("check", "--plain")
    assert status == 0
    lines = out.splitlines()
    for name in ("endpoint reachable", "bucket exists", "list", "put", "get", "delete"):
        assert any(line.startswith("PASS") and f" {name} " in line for line in lines), name
    assert any(line.startswith("PASS  conditional writes") for line in lines)
    assert any(line.startswith("PASS  conditional replace") for line in lines)
    assert any(line.startswith("PASS  clock skew") for line in lines)
    assert any(line.startswith("WARN  lifecycle rule") for line in lines)
    assert lines[-1].startswith("ok:")

    status, out, _ = run("check", "--json")
    doc = json.loads(out)
    assert doc["ok"] is True
    assert {i["name"] for i in doc["items"] if i["status"] == "pass"} >= {"put", "get", "delete"}
    assert keys(s3, env) == set()


def test_no_such_bucket_fails_check_with_1_and_other_commands_with_2(run: Run) -> None:
    status, out, _ = run("--bucket", "no-such-bucket-for-cli", "check", "--plain")
    assert status == 1
    assert "FAIL  bucket exists" in out
    assert out.splitlines()[-1] == "failed: bucket exists"
    status, out, err = run("--bucket", "no-such-bucket-for-cli", "ls")
    assert status == 2
    assert out == ""
    assert "NoSuchBucket" in one_line(err)


def test_unreachable_endpoint_exits_2_with_one_line(run: Run) -> None:
    nowhere = ["--endpoint-url", "http://127.0.0.1:9", "--timeout", "2"]
    status, out, err = run(*nowhere, "get", "k")
    assert status == 2
    assert out == ""
    assert one_line(err).startswith("s3cache: GetObject 'cache/k': ")
    status, _, err = run(*nowhere, "--debug", "get", "k")
    assert status == 2
    assert "Traceback" in err
    status, out, _ = run(*nowhere, "check", "--json")
    assert status == 1
    doc = json.loads(out)
    assert doc["ok"] is False
    assert doc["items"][0] == doc["items"][0] | {"name": "endpoint reachable", "status": "fail"}


# -- packaging and a real process -------------------------------------------------------------


def test_console_script_points_at_main() -> None:
    with (ROOT / "pyproject.toml").open("rb") as f:
        scripts = tomllib.load(f)["project"]["scripts"]
    module, _, attr = scripts["s3cache"].partition(":")
    assert (module, attr) == ("s3cache.cli", "main")
    assert getattr(cli, attr) is main


def s3cache_process(*argv: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    """``python -m s3cache ARGV`` in a real process, configured by the environment."""
    return subprocess.run(
        [sys.executable, "-m", "s3cache", *argv],
        input=stdin,
        capture_output=True,
        cwd=ROOT,
        env=dict(os.environ),
        timeout=60,
        check=False,
    )


def test_python_dash_m_in_a_subprocess(env: str, s3: Any) -> None:
    done = s3cache_process("set", "proc:1", '{"via": "subprocess"}', "--ttl", "600", "--json")
    assert (done.returncode, done.stderr) == (0, b"")
    done = s3cache_process("get", "proc:1", "--json")
    assert done.returncode == 0
    assert json.loads(done.stdout)["value"] == {"via": "subprocess"}
    done = s3cache_process("clear")  # stdin is not a terminal and no --yes
    assert done.returncode == 2
    assert keys(s3, env) == {"cache/proc/1"}
    done = s3cache_process("--bucket", "no-such-bucket-for-cli", "get", "k")
    assert done.returncode == 2
    assert b"Traceback" not in done.stderr


def test_check_fails_credentials_a_server_rejects(
    run: Run, canned_error_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A HEAD's 403 has no body: the doctor must not pass credentials the server rejects."""
    monkeypatch.setenv("S3CACHE_ENDPOINT_URL", canned_error_server(403, "SignatureDoesNotMatch"))
    status, out, _ = run("check", "--plain")
    assert status == 1
    assert "FAIL  credentials accepted" in out
    assert "PASS  credentials" not in out
    assert "SignatureDoesNotMatch" in out


# -- company-bucket options ---------------------------------------------------------------------

BUCKET_FLAGS = [
    "--sse",
    "aws:kms",
    "--sse-kms-key-id",
    "alias/cache",
    "--sse-bucket-key-enabled",
    "false",
    "--expected-bucket-owner",
    "111122223333",
    "--checksum",
    "crc32c",
    "--storage-class",
    "STANDARD_IA",
    "--request-payer",
    "requester",
]
BUCKET_ENV = {
    "S3CACHE_SSE": "aws:kms",
    "S3CACHE_SSE_KMS_KEY_ID": "alias/cache",
    "S3CACHE_SSE_BUCKET_KEY_ENABLED": "false",
    "S3CACHE_EXPECTED_BUCKET_OWNER": "111122223333",
    "S3CACHE_CHECKSUM": "crc32c",
    "S3CACHE_STORAGE_CLASS": "STANDARD_IA",
    "S3CACHE_REQUEST_PAYER": "requester",
}
SSE_C_KEY = bytes(range(32))


def _options_of(argv: list[str]) -> Any:
    args = cli.build_parser().parse_args(argv)
    return cli._main.prepare(args).transport.options


@pytest.mark.parametrize("where", ["flags", "environment", "flags after the command"])
def test_company_bucket_options_from_flags_or_environment(
    env: str, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    if where == "environment":
        for name, value in BUCKET_ENV.items():
            monkeypatch.setenv(name, value)
        argv = ["ls"]
    elif where == "flags":
        argv = [*BUCKET_FLAGS, "ls"]
    else:
        argv = ["ls", *BUCKET_FLAGS]
    options = _options_of(argv)
    assert (options.sse, options.sse_kms_key_id, options.sse_bucket_key_enabled) == (
        "aws:kms",
        "alias/cache",
        False,
    )
    assert options.expected_bucket_owner == "111122223333"
    assert (options.checksum, options.storage_class) == ("crc32c", "STANDARD_IA")
    assert options.request_payer == "requester"
    assert options.sse_customer_key is None


def test_the_customer_key_comes_in_base64_and_is_never_echoed(
    run: Run, env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoded = base64.b64encode(SSE_C_KEY).decode()
    assert _options_of(["--sse-customer-key", encoded, "ls"]).sse_customer_key == SSE_C_KEY
    monkeypatch.setenv("S3CACHE_SSE_CUSTOMER_KEY", encoded)
    assert _options_of(["ls"]).sse_customer_key == SSE_C_KEY
    status, _, err = run("--sse-customer-key", "not*base64", "ls")
    assert status == 2
    assert "not valid base64" in err
    assert "not*base64" not in err
    short = base64.b64encode(b"short key").decode()
    status, _, err = run("--sse-customer-key", short, "ls")
    assert status == 2
    assert "32 bytes" in one_line(err)
    assert short not in err


def test_signing_keys_come_from_the_environment_in_base64(
    run: Run, env: str, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    new, old = b"n" * 32, b"o" * 32
    monkeypatch.setenv("S3CACHE_SIGNING_KEY", base64.b64encode(new).decode())
    assert run("set", "k", "signed")[0] == 0
    head = s3.head_object(Bucket=env, Key="cache/k")
    assert head["Metadata"]["s3cache-sig"].startswith("v1:")
    s3.put_object(Bucket=env, Key="cache/forged", Body=b'"evil"', ContentType="application/json")
    assert run("get", "forged")[0] == 1  # not served
    both = ",".join(base64.b64encode(k).decode() for k in (old, new))
    monkeypatch.setenv("ROTATED", both)
    status, out, _ = run("--signing-key-env", "ROTATED", "get", "k")
    assert (status, out) == (0, "signed\n")  # the second key verifies
    monkeypatch.setenv("S3CACHE_SIGNING_KEY", base64.b64encode(old).decode())
    assert run("get", "k")[0] == 1  # signed with a key this one does not hold
    status, _, err = run("--signing-key-env", "UNSET_VARIABLE", "ls")
    assert status == 2
    assert "UNSET_VARIABLE: that environment variable is not set" in one_line(err)
    monkeypatch.setenv("S3CACHE_SIGNING_KEY", "not*base64")
    status, _, err = run("ls")
    assert status == 2
    assert "$S3CACHE_SIGNING_KEY must be base64" in one_line(err)
    assert "not*base64" not in err


def test_a_key_id_without_kms_is_a_usage_error(run: Run) -> None:
    status, _, err = run("--sse", "AES256", "--sse-kms-key-id", "alias/k", "ls")
    assert status == 2
    assert "sse_kms_key_id goes with sse='aws:kms'" in one_line(err)


@pytest.mark.server_limit("ceph", "Ceph RGW 16.2 has no SSE-S3: it refuses AES256 with a 400")
def test_check_reports_the_encryption(run: Run, s3: Any, env: str) -> None:
    status, out, _ = run("check", "--plain", "--sse", "AES256", "--checksum", "sha256")
    assert status == 0, out
    (line,) = [line for line in out.splitlines() if " encryption " in line]
    assert line.startswith("PASS")
    assert "entries are stored with SSE-S3 (AES256)" in line
    assert "this cache asks for SSE-S3 (AES256)" in line
    status, out, _ = run("check", "--json")
    (item,) = [i for i in json.loads(out)["items"] if i["name"] == "encryption"]
    assert "none requested (the bucket's default encryption applies)" in item["detail"]


def test_invalidate_tags_and_purge_invalidated(run: Run, s3: Any, env: str) -> None:
    with S3Cache(bucket=env, prefix="cache", endpoint_url=os.environ["S3CACHE_ENDPOINT_URL"]) as c:
        c.set("doc:1", "a", tags=["doc:1"])
        c.set("doc:2", "b", tags=["doc:2"])
    status, out, _ = run("tags")
    assert status == 0
    assert "no tag records" in out
    status, _, err = run("invalidate", "bad tag")
    assert status == 2
    assert "holds ' '" in err
    status, out, _ = run("invalidate", "doc:1", "team:9")
    assert status == 0
    assert "invalidated 'doc:1', 'team:9'" in out
    status, out, _ = run("tags", "--json")
    assert status == 0
    listed = json.loads(out)
    assert [r["tag"] for r in listed] == ["doc:1", "team:9"]
    assert all(r["object_key"].startswith("cache/.s3cache/tags/") for r in listed)
    assert all(r["invalidated_at_iso"] for r in listed)
    status, _, _ = run("get", "doc:1")
    assert status == 1  # invalidated: a miss
    status, out, _ = run("ls")
    assert ".s3cache" not in out  # records are not entries
    status, out, _ = run("purge-expired", "--yes", "--invalidated")
    assert status == 0
    assert "1 invalidated (by 2 tag records)" in out
    assert "deleted 1" in out
    assert keys(s3, env) == {
        "cache/doc/2",
        "cache/.s3cache/tags/doc:1",
        "cache/.s3cache/tags/team:9",
    }


def test_stats_shows_ages_and_watch_repeats_with_the_change(run: Run) -> None:
    """``stats`` shows entries by age; ``--watch S --count N`` repeats it N times (JSON: one
    line a round, with its time), the plain rounds after the first with the change in entries
    and bytes; --count without --watch, or a watch of 0 s, is refused before any request."""
    run("set", "a", "x")
    run("set", "b", "yy")
    status, out, _ = run("stats", "--plain")
    assert status == 0
    assert ["<", "1", "min", "2", "#" * 30] in [line.split() for line in out.splitlines()]
    status, out, _ = run("stats", "--watch", "0.05", "--count", "2", "--json")
    assert status == 0
    rounds = [json.loads(line) for line in out.splitlines()]
    assert [r["entries"] for r in rounds] == [2, 2]
    assert all(sum(r["ages"].values()) == 2 and r["ages"]["< 1 min"] == 2 for r in rounds)
    assert all("at" in r for r in rounds)
    status, out, _ = run("stats", "--watch", "0.05", "--count", "2", "--plain")
    assert status == 0
    assert [line.split()[0] for line in out.splitlines()].count("at") == 2  # one per round
    assert "2  (+0)" in out
    status, _, err = run("stats", "--count", "2")
    assert status == 2
    assert "--count needs --watch" in err
    status, _, err = run("stats", "--watch", "0")
    assert status == 2
    assert "above 0" in err
