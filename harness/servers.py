"""The real servers by name, for the test suite's ``--server`` and the benchmark's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from harness._server import Endpoint, S3Server, ServerUnavailable
from harness.ceph import CephServer
from harness.seaweedfs import SeaweedFSServer

__all__ = ["SERVERS", "Endpoint", "S3Server", "ServerUnavailable", "server"]

#: Every server the harness can start, by the name used on command lines.
SERVERS: Final[dict[str, Callable[..., S3Server]]] = {
    CephServer.name: CephServer,
    SeaweedFSServer.name: SeaweedFSServer,
}


def server(name: str, **options: Any) -> S3Server:
    """A stopped server by name (``with server("ceph") as endpoint: ...`` starts and stops it)."""
    try:
        factory = SERVERS[name]
    except KeyError:
        raise ValueError(f"unknown server {name!r}; choose from {', '.join(SERVERS)}") from None
    return factory(**options)
