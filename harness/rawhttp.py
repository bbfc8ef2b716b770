"""A loopback TCP server that misbehaves on cue: each connection runs a test's script.

:class:`ScriptedServer` accepts connections on a free port and runs ``script(peer, index)``
for each in its own thread, with a :class:`Peer` (the blocking socket, with helpers to read a
request head or body and to send raw bytes) and the connection's number (0, 1, ...). A script
answers however the test needs: chunked bodies, a close instead of an answer, an answer
before the request body, a truncated body, a malformed or oversized head. It records every
request head it read (:attr:`ScriptedServer.requests`). For the HTTP client tests
(``tests/test_http11.py``); stdlib only, no side effects on import.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

__all__ = ["Peer", "ScriptedServer", "SeenHead", "response"]

_TIMEOUT: Final = 10.0  # no script waits longer for the client


@dataclass(frozen=True, slots=True)
class SeenHead:
    """A request head as read: method, target, headers (names lower-cased), raw bytes."""

    method: str
    target: str
    headers: dict[str, str]
    raw: bytes
    connection: int  # the number of the connection it came on


@dataclass
class Peer:
    """One accepted connection, as a script sees it."""

    sock: socket.socket
    index: int
    seen: list[SeenHead]
    pending: bytearray = field(default_factory=bytearray)  # read past the last head

    def head(self) -> SeenHead | None:
        """The next request head, or None when the client closed the connection first."""
        while b"\r\n\r\n" not in self.pending:
            chunk = self.recv()
            if not chunk:
                return None
            self.pending += chunk
        raw, _, rest = bytes(self.pending).partition(b"\r\n\r\n")
        self.pending = bytearray(rest)
        lines = raw.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        seen = SeenHead(method, target, headers, raw + b"\r\n\r\n", self.index)
        self.seen.append(seen)
        return seen

    def body(self, length: int) -> bytes:
        """Exactly ``length`` body bytes (fewer if the client closes first)."""
        while len(self.pending) < length:
            chunk = self.recv()
            if not chunk:
                break
            self.pending += chunk
        data = bytes(self.pending[:length])
        del self.pending[:length]
        return data

    def drain(self) -> int:
        """Read until the client closes; how many bytes came (past any pending ones)."""
        count = len(self.pending)
        self.pending.clear()
        while chunk := self.recv():
            count += len(chunk)
        return count

    def recv(self) -> bytes:
        """The next bytes from the client; b"" once it has closed, reset, or gone quiet."""
        try:
            return self.sock.recv(65536)
        except OSError:  # reset by the client, or the script's timeout
            return b""

    def send(self, data: bytes) -> None:
        """Send ``data`` whole (quietly nothing if the client has gone)."""
        with contextlib.suppress(OSError):  # the client may have gone already
            self.sock.sendall(data)

    def reset(self) -> None:
        """Close with a TCP reset rather than a FIN."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        self.sock.close()


def response(status: int, body: bytes = b"", *headers: str, length: bool = True) -> bytes:
    """A raw response: status line, ``headers`` ("Name: value"), Content-Length unless
    ``length`` is False, then ``body``."""
    lines = [f"HTTP/1.1 {status} X", *headers]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class ScriptedServer:
    """A loopback server running ``script(peer)`` for every connection, each in a thread."""

    def __init__(self, script: Callable[[Peer], None]) -> None:
        """``script``: what to do with one connection (return to close it)."""
        self.script = script
        self.requests: list[SeenHead] = []
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:  # closed: stop
                return
            sock.settimeout(_TIMEOUT)
            peer = Peer(sock, self.connections, self.requests)
            self.connections += 1
            thread = threading.Thread(target=self._run, args=(peer,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _run(self, peer: Peer) -> None:
        try:
            self.script(peer)
        finally:
            with contextlib.suppress(OSError):
                peer.sock.close()

    def close(self) -> None:
        """Stop listening and wait for every script to end."""
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self._listener.close()
        self._accepting.join(_TIMEOUT)
        for thread in self._threads:
            thread.join(_TIMEOUT)

    def __enter__(self) -> ScriptedServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
