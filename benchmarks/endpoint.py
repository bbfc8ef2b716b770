"""The run's endpoint: a given one, a real server started for the run, or the embedded one,
with its latency on the wire (the server's own or a delaying proxy's); and how the output
names it."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

from benchmarks.options import Options
from benchmarks.server import (
    EMBEDDED_CREDENTIALS,
    EMBEDDED_SERVERS,
    REAL_SERVERS,
    DelayProxy,
    EmbeddedServer,
    Target,
    default_credentials,
)
from harness.servers import server as real_server

__all__ = ["latency_line", "latency_via", "server_label", "target_for", "where"]


def latency_line(options: Options, target: Target) -> str:
    """How latency is emulated in this run, in a line."""
    via = latency_via(options, target)
    ms = options.latency_ms
    if via == "server":
        how = "on the wire: the mini server holds every answer (and 100 Continue) back"
    elif via == "proxy":
        how = "on the wire: a delaying TCP proxy process holds every answer back"
    else:
        how = (
            "inside botocore clients only, by a before-send hook (asyncio.sleep / time.sleep): "
            "s3cache falls back to aiobotocore where hooks are registered, obstore sees none"
        )
    return f"latency: {ms:g} ms per request, EMULATED {how}"


def latency_via(options: Options, target: Target) -> str:
    """``server``, ``proxy`` or ``hook``: where the run's latency is added."""
    if options.latency_via != "auto":
        return options.latency_via
    return "server" if target.server == "mini" else "proxy"


def where(t: Target) -> str:
    """The endpoint, and what server it is."""
    if t.server in REAL_SERVERS:
        return f"{t.server} started for this run at {t.endpoint_url} ({REAL_SERVERS[t.server]})"
    if t.embedded:
        return f"embedded {t.server} server at {t.endpoint_url} ({EMBEDDED_SERVERS[t.server]})"
    return t.endpoint_url


@contextlib.contextmanager
def target_for(options: Options) -> Iterator[Target]:
    """The run's endpoint, with its latency on the wire (the server's or a proxy's)."""
    ms = options.latency_ms
    with contextlib.ExitStack() as stack:
        if options.endpoint_url:
            access, secret = options.access_key, options.secret_key
            if access is None:
                access, secret = default_credentials()
            target = Target(
                options.endpoint_url, options.region, options.bucket, access, secret, False
            )
        elif options.server:
            endpoint = stack.enter_context(real_server(options.server))
            target = Target(
                endpoint.url,
                options.region,
                options.bucket,
                endpoint.access_key,
                endpoint.secret_key,
                True,
                options.server,
            )
        else:
            mini = options.embedded == "mini"
            in_server = mini and options.latency_via in ("auto", "server")
            server = stack.enter_context(EmbeddedServer(options.embedded, ms if in_server else 0))
            access, secret = EMBEDDED_CREDENTIALS
            stats = f"{server.url}/_mini/stats" if mini else None
            target = Target(
                server.url,
                options.region,
                options.bucket,
                access,
                secret,
                True,
                options.embedded,
                stats,
            )
        if latency_via(options, target) == "proxy" and ms > 0:
            proxy = stack.enter_context(DelayProxy(target.endpoint_url, ms))
            target = dataclasses.replace(target, endpoint_url=proxy.url)
        yield target


def server_label(target: Target) -> str:
    """The server, in a few words (for titles)."""
    if target.server in REAL_SERVERS:
        return f"local {target.server} server"
    return f"embedded {target.server} server" if target.embedded else "external S3"
