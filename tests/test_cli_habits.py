"""The command line's habits: what ``set`` stores (a string, JSON, a file's bytes, stdin) and
``get`` prints, ``exists``, ``--version``, singular and plural, and grep's exit statuses
(0 found, 1 missing, 2 error), in-process and, where the claim is about the command line
itself, in a real ``python -m s3cache`` process."""

from __future__ import annotations

import re
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

import s3cache
from harness.faultproxy import Fault, FaultProxy
from s3cache import cli
from s3cache.cli import plural
from tests import test_cli
from tests.test_cli import ROOT, TTL_WAIT, Run, keys, one_line, s3cache_process

#: The command line's fixtures, shared with test_cli: configured by its environment variables
#: (the test bucket, prefix ``cache``), and ``run(*argv)`` -> (status, stdout, stderr).
env, run = test_cli.env, test_cli.run


def stored(s3: Any, bucket: str, key: str) -> tuple[bytes, str]:
    """The body and content type of an object, read behind the CLI's back."""
    obj = s3.get_object(Bucket=bucket, Key=key)
    return obj["Body"].read(), obj["ContentType"]


# -- --version --------------------------------------------------------------------------------


def test_version_in_a_process_needs_no_bucket(env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("S3CACHE_BUCKET")
    done = s3cache_process("--version")
    expected = f"s3cache-async {metadata.version('s3cache-async')}\n"
    assert (done.returncode, done.stdout.decode(), done.stderr) == (0, expected, b"")


def test_version_falls_back_to_the_package_version(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    def not_installed(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", not_installed)
    assert cli.version() == f"s3cache-async {s3cache.__version__}"
    assert run("--version") == (0, f"s3cache-async {s3cache.__version__}\n", "")


# -- set and get ------------------------------------------------------------------------------


def test_set_stores_a_string_unless_json_is_given(run: Run, s3: Any, env: str) -> None:
    status, out, _ = run("set", "greeting", "hello")
    assert status == 0
    assert out.startswith("stored 'greeting' (text) at s3://")
    assert stored(s3, env, "cache/greeting") == (b'"hello"', "application/json")
    assert run("get", "greeting") == (0, "hello\n", "")

    assert run("set", "doc", '{"a": 1}')[0] == 0  # the text itself, not the object it spells
    assert run("get", "doc")[1] == '{"a": 1}\n'
    assert run("get", "doc", "--json")[1] == '{\n  "key": "doc",\n  "value": "{\\"a\\": 1}"\n}\n'
    assert run("set", "dash", "-")[0] == 0  # a VALUE of "-" is that string, not stdin
    assert run("get", "dash")[1] == "-\n"

    status, out, _ = run("set", "doc", '{"a": [1, "x"]}', "--json")
    assert status == 0
    assert '"stored_as": "JSON"' in out
    assert stored(s3, env, "cache/doc") == (b'{"a":[1,"x"]}', "application/json")
    assert run("get", "doc")[1] == '{\n  "a": [\n    1,\n    "x"\n  ]\n}\n'
    assert run("set", "n", "5", "--json")[0] == 0
    assert run("get", "n")[1] == "5\n"


def test_set_reads_a_file_as_bytes_text_or_json(
    run: Run, s3: Any, env: str, tmp_path: Path
) -> None:
    raw = bytes(range(256))
    (tmp_path / "blob").write_bytes(raw)
    (tmp_path / "note.txt").write_text("line one\nünï\n", encoding="utf-8")
    (tmp_path / "doc.json").write_text('{"from": ["file"]}', encoding="utf-8")

    status, out, _ = run("set", "blob", "--file", str(tmp_path / "blob"))
    assert (status, "(bytes)" in out) == (0, True)
    assert stored(s3, env, "cache/blob") == (raw, "application/octet-stream")

    assert run("set", "note", "--file", str(tmp_path / "note.txt"), "--text")[0] == 0
    assert stored(s3, env, "cache/note")[0] == '"line one\\nünï\\n"'.encode()
    assert run("get", "note")[1] == "line one\nünï\n\n"  # the string, then a newline

    assert run("set", "doc", "--file", str(tmp_path / "doc.json"), "--json")[0] == 0
    assert stored(s3, env, "cache/doc")[0] == b'{"from":["file"]}'


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["set", "k", "v", "--text"], "--text goes with --file"),
        (["set", "k", "--file", "{note}", "--text", "--json"], "two readings of the file"),
        (["set", "k", "--file", "{latin1}", "--text"], "'{latin1}' is not UTF-8 text"),
        (["set", "k", "--file", "{note}", "--json"], "'{note}' is not JSON"),
        (["set", "k", "@{note}", "--json"], "@FILE is no longer read: use --file FILE"),
        (["set", "k", "{{", "--json"], "without --json, VALUE is stored as a string"),
        (["set", "k", "\udcff"], "VALUE cannot be stored"),  # an undecodable argv byte
    ],
)
def test_values_that_cannot_be_read_or_stored_exit_2(
    run: Run, s3: Any, env: str, tmp_path: Path, argv: list[str], message: str
) -> None:
    files = {"note": tmp_path / "note.txt", "latin1": tmp_path / "latin1.txt"}
    files["note"].write_text("plain text", encoding="utf-8")
    files["latin1"].write_bytes("café".encode("latin-1"))
    status, out, err = run(*(a.format(**files) for a in argv))
    assert (status, out) == (2, "")
    assert message.format(**files) in one_line(err)
    assert keys(s3, env) == set()


def test_the_old_at_file_spelling_is_stored_as_text_with_a_remark(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "value.json"
    path.write_text('{"from": "file"}', encoding="utf-8")
    status, _, err = run("set", "k", f"@{path}")
    assert status == 0
    assert f"--file {path} stores the file's contents" in err
    assert run("get", "k")[1] == f"@{path}\n"
    assert run("set", "handle", "@ada")[2] == ""  # no such file: no remark


def test_stdin_raw_bytes_and_exit_statuses_in_a_process(s3: Any, env: str) -> None:
    blob = b"\x00\xff\x1b[31mbinary\n"
    done = s3cache_process("set", "blob", "--file", "-", stdin=blob)
    assert (done.returncode, done.stderr) == (0, b"")
    assert stored(s3, env, "cache/blob") == (blob, "application/octet-stream")
    done = s3cache_process("get", "blob")  # stdout is a pipe: the bytes, unchanged
    assert (done.returncode, done.stdout, done.stderr) == (0, blob, b"")
    done = s3cache_process("set", "note", "--file", "-", "--text", stdin="ünï\n".encode())
    assert done.returncode == 0
    assert s3cache_process("get", "note").stdout == "ünï\n\n".encode()

    assert s3cache_process("exists", "blob").returncode == 0
    done = s3cache_process("exists", "nothing")
    assert (done.returncode, done.stdout) == (1, b"no live entry for 'nothing'\n")
    done = s3cache_process("get", "nothing")
    assert (done.returncode, done.stdout) == (1, b"")
    assert "no live entry for key 'nothing'" in one_line(done.stderr.decode())
    assert s3cache_process("delete", "blob").returncode == 0
    assert s3cache_process("delete", "blob").returncode == 1  # nothing left to delete
    assert s3cache_process("set", "k").returncode == 2  # neither VALUE nor --file
    done = s3cache_process("--bucket", "no-such-bucket-for-cli", "get", "k")
    assert done.returncode == 2  # an S3 failure is an error, not a miss
    assert "NoSuchBucket" in one_line(done.stderr.decode())
    assert keys(s3, env) == {"cache/note"}


def test_exists_in_json(run: Run) -> None:
    run("set", "k", "v")
    assert run("exists", "k", "--json") == (0, '{\n  "key": "k",\n  "exists": true\n}\n', "")
    status, out, _ = run("exists", "other", "--json")
    assert (status, '"exists": false' in out) == (1, True)


def test_a_write_or_delete_whose_response_is_lost(
    run: Run, s3: Any, env: str, proxy: FaultProxy, tmp_path: Path
) -> None:
    """The server applied the request, the answer never came back: the command still reports
    what happened (stored; there was an entry to delete, so exit 0, not 1)."""
    raw = b"\x01" * 3000
    (tmp_path / "blob").write_bytes(raw)
    via_proxy = ["--endpoint-url", proxy.endpoint]
    proxy.set_fault(Fault.RESET_BODY, times=1, methods={"PUT"})
    status, _, err = run(*via_proxy, "set", "k", "--file", str(tmp_path / "blob"))
    assert status == 0, err
    assert stored(s3, env, "cache/k") == (raw, "application/octet-stream")
    proxy.set_fault(Fault.RESET_BODY, times=1, methods={"DELETE"})
    status, out, err = run(*via_proxy, "delete", "k")
    assert (status, out) == (0, "deleted 'k'\n"), err
    assert keys(s3, env) == set()


# -- singular and plural ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "words", "text"),
    [
        (0, ("object",), "0 objects"),
        (1, ("object",), "1 object"),
        (1, ("entry", "entries"), "1 entry"),
        (2, ("entry", "entries"), "2 entries"),
        (1000, ("object",), "1,000 objects"),
    ],
)
def test_plural(count: int, words: tuple[str, ...], text: str) -> None:
    assert plural(count, *words) == text


def test_counts_of_one_are_singular_in_every_summary(run: Run) -> None:
    run("set", "k", "v", "--ttl", "1")
    time.sleep(TTL_WAIT)
    said = {
        "ls": run("ls", "--plain")[2],
        "stats": run("stats", "--plain")[1],
        "purge": run("purge-expired", "--dry-run", "--plain")[1],
        "clear": run("clear", "--dry-run", "--plain")[1],
        "lifecycle": run("lifecycle", "set", "--days", "1", "--plain")[1],
    }
    assert "1 entry, 1 expired, under" in said["ls"]
    assert "(1 of 1 entry)" in said["stats"]
    assert "scanned 1 entry under" in said["purge"]
    assert "would delete 1 object (" in said["clear"]
    assert "deleted 1 day after" in said["lifecycle"]
    for text in said.values():
        assert not re.search(r"\b1 (entries|objects|days|bytes)\b", text), text


# -- the statuses, as documented ----------------------------------------------------------------


def test_the_exit_statuses_are_documented_in_help_and_readme() -> None:
    epilog = cli.build_parser().epilog or ""
    assert re.search(r"^  0 +success", epilog, re.MULTILINE)
    assert re.search(r"^  1 +missing", epilog, re.MULTILINE)
    assert re.search(r"^  2 +error", epilog, re.MULTILINE)
    assert re.search(r"^  130 +interrupted", epilog, re.MULTILINE)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Command line", 1)[1].split("\n## ", 1)[0]
    for status, word in (("0", "found"), ("1", "missing"), ("2", "error"), ("130", "interr")):
        assert re.search(rf"^\| {status} \| {word}", section, re.MULTILINE), status
    assert (cli.EXIT_OK, cli.EXIT_MISSING, cli.EXIT_ERROR, cli.EXIT_INTERRUPTED) == (0, 1, 2, 130)
