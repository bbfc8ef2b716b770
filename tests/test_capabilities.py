"""What the server supports, learned once per cache and published whole (s3cache._capabilities).

Against a stub S3 server that behaves as Ceph RGW 16.2 does with ``If-Match`` on PutObject: it
answers 412 to the quoted ETag (the form S3 returns) even when it matches, and honours the
unquoted one. A caller that arrives while the probe is learning that must never send the
half-learned form.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import http.server
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from s3cache import AsyncS3Cache
from s3cache._capabilities import IfMatchForm, if_match_value

CREDENTIALS: dict[str, Any] = {
    "aws_access_key_id": "stub-key-id",
    "aws_secret_access_key": "stub-secret",
    "region_name": "us-east-1",
}
BUCKET = "stub-bucket"
#: How long a caller arriving mid-probe is given to show the form it would send: on the fixed
#: code it waits for the probe, so nothing shows, and the window is the price of proving that.
MID_PROBE_WINDOW = 1.0


@dataclass
class _Object:
    body: bytes
    etag: str
    modified: float
    headers: dict[str, str]


@dataclass
class CephLike:
    """The stub's state: its objects, the If-Match values sent per key, and a hold on the
    probe's quoted If-Match (``held`` is set once it arrives; it is answered on ``release``)."""

    objects: dict[str, _Object] = field(default_factory=dict)
    if_match: dict[str, list[str]] = field(default_factory=dict)
    hold_probe: bool = False
    held: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    quoted_for_entries: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def put_expired(self, key: str, body: bytes = b'"stale"') -> None:
        """An entry with a 1-second ttl, written an hour ago."""
        headers = {"content-type": "application/json", "x-amz-meta-s3cache-ttl": "1"}
        etag = f'"{hashlib.md5(body).hexdigest()}"'
        self.objects[key] = _Object(body, etag, time.time() - 3600, headers)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: CephLike

    def _key(self) -> str:
        path = unquote(urlsplit(self.path).path)
        return path.removeprefix(f"/{BUCKET}/")

    def _send(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, code: str) -> None:
        body = f"<Error><Code>{code}</Code><Message>stub</Message></Error>".encode()
        self._send(status, {"Content-Type": "application/xml"}, body)

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        key = self._key()
        refusal = self._refusal(key, self.state.objects.get(key))
        if refusal is not None:
            self._error(*refusal)
            return
        headers = {
            name.lower(): value
            for name, value in self.headers.items()
            if name.lower().startswith("x-amz-meta-") or name.lower() == "content-type"
        }
        etag = f'"{hashlib.md5(body).hexdigest()}"'
        self.state.objects[key] = _Object(body, etag, time.time(), headers)
        self._send(200, {"ETag": etag})

    def _refusal(self, key: str, found: _Object | None) -> tuple[int, str] | None:
        """Why a conditional PUT of ``key`` is refused (status, code), as Ceph RGW 16.2 would;
        the probe's quoted If-Match is held here while ``hold_probe`` is on."""
        state = self.state
        if self.headers.get("If-None-Match") == "*" and found is not None:
            return 412, "PreconditionFailed"
        condition = self.headers.get("If-Match")
        if condition is None:
            return None
        with state.lock:
            state.if_match.setdefault(key, []).append(condition)
        quoted = condition.startswith('"')
        if quoted and key.startswith(".s3cache/check/") and state.hold_probe:
            state.held.set()
            state.release.wait(30)
        elif quoted:
            state.quoted_for_entries.set()
        if found is None:
            return 404, "NoSuchKey"
        if quoted or f'"{condition}"' != found.etag:  # Ceph RGW 16.2: quoted never matches
            return 412, "PreconditionFailed"
        return None

    def _read(self) -> None:
        key = self._key()
        if key in ("", f"/{BUCKET}"):  # HeadBucket
            self._send(200, {})
            return
        found = self.state.objects.get(key)
        if found is None:
            self._error(404, "NoSuchKey")
            return
        headers = {
            **found.headers,
            "ETag": found.etag,
            "Last-Modified": email.utils.formatdate(found.modified, usegmt=True),
        }
        self._send(200, headers, found.body)

    do_GET = do_HEAD = _read

    def do_DELETE(self) -> None:
        self.state.objects.pop(self._key(), None)
        self._send(204, {})

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def ceph_like() -> Iterator[tuple[CephLike, str]]:
    """A stub S3 server that refuses the quoted If-Match as Ceph RGW 16.2 does; its URL."""
    state = CephLike()
    handler = type("Handler", (_Handler,), {"state": state})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}"
    state.release.set()
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.mark.parametrize("fast_path", [True, False], ids=["wire", "aiobotocore"])
async def test_a_caller_arriving_mid_probe_waits_for_the_learned_form(
    ceph_like: tuple[CephLike, str], fast_path: bool
) -> None:
    """While the probe learns the If-Match form (held at the stub on its quoted attempt), an
    add() over an expired entry arrives: it must wait for the form, then send it unquoted,
    and win; never send the quoted form it would see half-learned."""
    state, url = ceph_like
    state.put_expired("k")
    kwargs = {"endpoint_url": url, "fast_path": fast_path, "on_error": "raise", **CREDENTIALS}
    async with AsyncS3Cache(BUCKET, **kwargs) as cache:
        assert await cache.supports_conditional_writes() is True
        state.hold_probe = True
        learning = asyncio.create_task(cache.supports_conditional_replace())
        assert await asyncio.to_thread(state.held.wait, 30), "the probe reached the stub"
        adding = asyncio.create_task(cache.add("k", "fresh", ttl=60))
        quoted = await asyncio.to_thread(state.quoted_for_entries.wait, MID_PROBE_WINDOW)
        state.release.set()
        assert not quoted, "a caller arriving mid-probe sent the half-learned (quoted) form"
        assert await learning is True
        assert await adding is True
        assert await cache.get("k") == "fresh"
    assert state.if_match["k"] == [state.objects["k"].etag.strip('"')] or all(
        not value.startswith('"') for value in state.if_match["k"]
    )


async def test_the_form_is_learned_once_and_shared_by_concurrent_callers(
    ceph_like: tuple[CephLike, str],
) -> None:
    """Ten add() calls over ten expired entries, all at once: one probe learns the form for
    all of them (its candidates sent once each), and every entry's If-Match is unquoted."""
    state, url = ceph_like
    keys = [f"k{i}" for i in range(10)]
    for key in keys:
        state.put_expired(key)
    async with AsyncS3Cache(BUCKET, endpoint_url=url, on_error="raise", **CREDENTIALS) as cache:
        results = await asyncio.gather(*(cache.add(key, key, ttl=60) for key in keys))
        assert results == [True] * 10
        probes = [k for k in state.if_match if k.startswith(".s3cache/check/")]
        assert len(probes) == 1, "one probe for every caller"
        assert [v.startswith('"') for v in state.if_match[probes[0]]] == [True, False, False]
        for key in keys:
            assert [v.startswith('"') for v in state.if_match[key]] == [False]
        report = await cache.check()
    assert (report.conditional_replace, report.if_match_etag) == (True, "unquoted")


# -- the If-Match value ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "sent"),
    [(None, '"abc"'), ("quoted", '"abc"'), ("unquoted", "abc")],
)
@pytest.mark.parametrize("etag", ['"abc"', "abc", ' "abc" '])
def test_if_match_quoting_is_decided_in_one_place(
    form: IfMatchForm | None, sent: str, etag: str
) -> None:
    assert if_match_value(etag, form) == sent
