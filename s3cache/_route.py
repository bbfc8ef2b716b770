"""Whether, and how, a loop's object requests may bypass aiobotocore: the wire path's plan.

:func:`plan_route` looks at the aiobotocore client of an event loop once, when the loop opens
it, and either returns a :class:`Route` (endpoint, addressing and signing region resolved
through botocore's own endpoint rules; credentials, retry policy, timeouts and TLS settings
taken from that client) or the reason the wire path would not be provably equivalent, in
which case every request keeps going through aiobotocore.

The reading of the client goes through a few of botocore's private attributes; anything that
is not as expected makes the route ineligible, never wrong.
"""

from __future__ import annotations

import calendar
import email.utils
import functools
import hashlib
import inspect
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final
from urllib.parse import urlsplit

from botocore.awsrequest import AWSResponse
from botocore.exceptions import NoCredentialsError
from botocore.hooks import first_non_none_response
from yarl import URL

from s3cache._bucket_options import is_directory_bucket
from s3cache._sigv4 import EMPTY_SHA256, AmzDate, CredentialSet, Signer, quote_key, signed_host

__all__ = ["OPERATIONS", "Route", "plan_route"]

#: The operations the wire path sends, with their HTTP methods.
OPERATIONS: Final = {
    "GetObject": "GET",
    "HeadObject": "HEAD",
    "PutObject": "PUT",
    "DeleteObject": "DELETE",
}
#: Events a client emits on the way of one request; a handler on any of them that is not
#: botocore's or aiobotocore's own is a hook the wire path would bypass.
_EVENTS: Final = (
    "provide-client-params",
    "before-parameter-build",
    "before-endpoint-resolution",
    "before-call",
    "request-created",
    "choose-signer",
    "before-sign",
    "before-send",
    "needs-retry",
    "after-call",
    "after-call-error",
    "response-received",
    "before-parse",
)
#: s3cache._paced: the pacing's hooks, which the wire path applies itself (pacing hook).
_OWN_MODULES: Final = ("botocore.", "aiobotocore.", "s3cache._paced", "s3cache._metering")
_STUB_MODULES: Final = ("botocore.stub", "aiobotocore.stub")
#: botocore adds ``Expect: 100-continue`` to every PutObject; the wire path only to large ones,
#: where not uploading a body the server rejects is worth a round trip.
EXPECT_CONTINUE_BYTES: Final = 1024 * 1024
#: aiobotocore connector options the wire path's connector accepts alike.
_URL_CACHE: Final = 4096
_CONNECTOR_OPTIONS: Final = frozenset(
    {"keepalive_timeout", "force_close", "use_dns_cache", "ttl_dns_cache"}
)


class Ineligible(Exception):
    """The wire path would not be equivalent for this client; the text says why."""


@dataclass(frozen=True, slots=True)
class Operation:
    """One operation as planned: HTTP method, botocore's model, and its header parameters."""

    name: str
    method: str
    model: Any
    headers: Mapping[str, tuple[str, str]]  # parameter -> (header name or prefix, kind)


@dataclass(slots=True)
class Route:
    """Everything the wire path needs for one client, decided once."""

    base: str  # scheme://netloc, as sent
    path: str  # the path before the key ("/bucket" in path style, "" in virtual-host style)
    host: str  # the Host header, exactly as signed
    signer: Signer
    sign_body: bool  # SHA-256 the body (botocore does unless payload signing is disabled)
    user_agent: str | None
    operations: dict[str, Operation]
    verify: bool | str | None  # aiobotocore's TLS verification; None for plain HTTP
    connect_timeout: float | None
    read_timeout: float | None
    connector_args: dict[str, Any]
    credentials: Callable[[], Awaitable[CredentialSet]]
    retry_events: Any  # the client's event emitter (needs-retry: retries and region redirects)
    endpoint: Any  # the client's endpoint object, passed along to needs-retry handlers
    release_quota: Callable[..., Any] | None
    region: str
    bucket: str
    static_credentials: CredentialSet | None = None  # frozen once when they never refresh
    moto: Any = None  # moto's in-process stubber, when moto is imported
    lambda_trace: bool = False
    amz_date: AmzDate = field(default_factory=AmzDate)
    _urls: dict[str, tuple[str, URL]] = field(default_factory=dict)

    def url(self, key: str) -> tuple[str, URL]:
        """The request path (encoded once, as signed) and URL of ``key`` (recent ones cached:
        hot keys come back)."""
        found = self._urls.get(key)
        if found is not None:
            return found
        path = f"{self.path}/{quote_key(key)}"
        if len(self._urls) >= _URL_CACHE:
            self._urls.clear()
        found = self._urls[key] = path, URL(self.base + path, encoded=True)
        return found

    def bypassed(self) -> bool:
        """Whether requests must go through aiobotocore right now (moto's ``mock_aws`` is on)."""
        return self.moto is not None and bool(getattr(self.moto, "enabled", False))

    def headers(self, op: Operation, params: Mapping[str, Any]) -> dict[str, str] | None:
        """Request headers for ``params`` as botocore serialises them; None when one of them
        cannot be sent on the wire path (then the request goes through aiobotocore)."""
        out: dict[str, str] = {"host": self.host}
        plan = op.headers
        for name, value in params.items():
            found = plan.get(name)
            if found is None:
                return None
            header, kind = found
            if kind == "map":
                for k, v in value.items():
                    out[f"{header}{k}".lower()] = v
            elif kind == "timestamp":
                out[header] = _rfc822(value)
            elif kind == "string":
                out[header] = value
            elif kind == "boolean" and isinstance(value, bool):
                out[header] = "true" if value else "false"
            else:
                return None
        for value in out.values():
            if not (isinstance(value, str) and value.isascii()):
                return None
        return out

    async def sign(
        self, op: Operation, path: str, headers: dict[str, str], body: bytes | None
    ) -> dict[str, str]:
        """``headers`` signed for one attempt, with the headers sent unsigned added."""
        if body and self.sign_body:
            payload_hash = _sha256(body)
        elif self.sign_body:
            payload_hash = EMPTY_SHA256
        else:
            payload_hash = "UNSIGNED-PAYLOAD"
        signed = dict(headers)
        credentials = self.static_credentials or await self.credentials()
        self.signer.sign(op.method, path, signed, payload_hash, credentials, self.amz_date())
        signed["accept-encoding"] = "identity"
        if self.user_agent:
            signed["user-agent"] = self.user_agent
        if body is not None and len(body) > EXPECT_CONTINUE_BYTES:
            signed["expect"] = "100-continue"
        if self.lambda_trace:
            trace = os.environ.get("_X_AMZN_TRACE_ID")
            if trace:
                signed["x-amzn-trace-id"] = trace
        return signed

    async def needs_retry(
        self,
        op: Operation,
        attempt: int,
        url: str,
        response: tuple[int, dict[str, str], dict[str, Any]] | None,
        exception: Exception | None,
        context: dict[str, Any],
    ) -> float | None:
        """Ask the client's own ``needs-retry`` handlers (botocore's retry policy and quota,
        and its S3 region redirector): seconds to wait before the next attempt, or None."""
        http_response = None
        if response is not None:
            status, headers, parsed = response
            http_response = (AWSResponse(url, status, headers, None), parsed)
        request_dict = {"url": url, "method": op.method, "headers": {}, "context": context}
        responses = await self.retry_events.emit(
            f"needs-retry.s3.{op.name}",
            response=http_response,
            endpoint=self.endpoint,
            operation=op.model,
            attempts=attempt,
            caught_exception=exception,
            request_dict=request_dict,
        )
        delay: float | None = first_non_none_response(responses)
        return delay

    def request_context(self, key: str) -> dict[str, Any]:
        """The request context botocore's retry and redirect handlers read and write."""
        return {
            "client_region": self.region,
            "s3_redirect": {
                "redirected": False,
                "bucket": self.bucket,
                "params": {"Bucket": self.bucket, "Key": key},
            },
            "signing": {"region": self.signer.region, "signing_name": self.signer.service},
            "retries": {},
        }


def _sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _rfc822(value: datetime) -> str:
    """botocore's header timestamp: whole seconds, naive taken as UTC, ``..., GMT``."""
    return _http_date(calendar.timegm(value.utctimetuple()))


@functools.lru_cache(maxsize=16)
def _http_date(seconds: int) -> str:
    return email.utils.formatdate(seconds, usegmt=True)


# -- planning -----------------------------------------------------------------------------------


async def plan_route(
    client: Any, bucket: str, max_concurrency: int, clock: Callable[[], float] = time.time
) -> Route:
    """The wire path's route for ``client``, signing at ``clock``'s time (the transport's
    signing clock, corrected for the server's); raises :class:`Ineligible` with the reason."""
    try:
        return await _plan(client, bucket, max_concurrency, clock)
    except Ineligible:
        raise
    except Exception as exc:  # an aiobotocore or botocore that is not as expected
        raise Ineligible(f"cannot read the client ({type(exc).__name__}: {exc})") from exc


async def _plan(
    client: Any, bucket: str, max_concurrency: int, clock: Callable[[], float]
) -> Route:
    if is_directory_bucket(bucket):
        raise Ineligible(
            "an S3 Express directory bucket: its requests are signed with session credentials "
            "from CreateSession, which aiobotocore manages"
        )
    config = client.meta.config
    _check_config(config)
    moto = _check_hooks(client)
    operations: dict[str, Operation] = {}
    resolved: set[tuple[str, str, str]] = set()
    for name, method in OPERATIONS.items():
        model = client.meta.service_model.operation_model(name)
        url, region, signing_name = await _resolve_endpoint(client, model, bucket)
        resolved.add((url, region, signing_name))
        operations[name] = Operation(name, method, model, _header_plan(model))
    if len(resolved) != 1:
        raise Ineligible("the object operations resolve to different endpoints")
    url, region, signing_name = resolved.pop()
    session = _http_session(client, url)
    parts = urlsplit(url)
    credentials, static = await _credentials(client)
    return Route(
        base=f"{parts.scheme}://{parts.netloc}",
        path=parts.path.rstrip("/"),
        host=signed_host(url),
        signer=Signer(region, signing_name),
        sign_body=_sign_body(config),
        user_agent=_user_agent(client),
        operations=operations,
        verify=session["verify"],
        connect_timeout=session["connect_timeout"],
        read_timeout=session["read_timeout"],
        connector_args=session["connector_args"],
        credentials=credentials,
        static_credentials=static,
        retry_events=client.meta.events,
        endpoint=client._endpoint,
        release_quota=_quota_release(client),
        region=client.meta.region_name,
        bucket=bucket,
        moto=moto,
        lambda_trace="AWS_LAMBDA_FUNCTION_NAME" in os.environ,
        amz_date=AmzDate(clock),
    )


def _check_config(config: Any) -> None:
    retries = config.retries or {}
    if retries.get("mode", "legacy") != "standard":
        raise Ineligible(f"retry mode {retries.get('mode')!r} (the wire path's is 'standard')")
    if (config.request_checksum_calculation, config.response_checksum_validation) != (
        "when_required",
        "when_required",
    ):
        raise Ineligible("checksums are requested through config")
    s3 = config.s3 or {}
    for option in ("use_accelerate_endpoint", "use_dualstack_endpoint"):
        if s3.get(option):
            raise Ineligible(f"config.s3[{option!r}] is set")
    for option in ("use_dualstack_endpoint", "use_fips_endpoint"):
        if getattr(config, option, None):
            raise Ineligible(f"config.{option} is set")
    if getattr(config, "client_cert", None):
        raise Ineligible("a client certificate is configured")


def _check_hooks(client: Any) -> Any:
    """moto's stubber, if it is registered; Ineligible when a foreign hook is registered."""
    emitter = getattr(client.meta.events, "_emitter", client.meta.events)
    moto = None
    for event in _EVENTS:
        for op in OPERATIONS:
            for handler in emitter._handlers.prefix_search(f"{event}.s3.{op}"):
                module = _module_of(handler)
                if module.startswith("moto.") and type(handler).__name__ == "BotocoreStubber":
                    moto = handler
                elif not module.startswith(_OWN_MODULES) or module.startswith(_STUB_MODULES):
                    raise Ineligible(f"a {event} hook is registered ({module})")
    return moto


def _module_of(handler: Any) -> str:
    target = getattr(handler, "func", handler)  # functools.partial
    owner = getattr(target, "__self__", None)
    if owner is not None:
        return str(type(owner).__module__)
    module = getattr(target, "__module__", None)
    return str(module if module is not None else type(target).__module__)


async def _resolve_endpoint(client: Any, model: Any, bucket: str) -> tuple[str, str, str]:
    """(URL, signing region, signing name) by the client's endpoint rules and signer choice."""
    context: dict[str, Any] = {
        "client_region": client.meta.region_name,
        "client_config": client.meta.config,
        "has_streaming_input": model.has_streaming_input,
        "auth_type": model.resolved_auth_type,
    }
    resolver = client._ruleset_resolver
    if resolver is None:
        raise Ineligible("the client has no endpoint ruleset")
    endpoint = await resolver.construct_endpoint(
        operation_model=model, call_args={"Bucket": bucket, "Key": "k"}, request_context=context
    )
    if endpoint.headers:
        raise Ineligible("the endpoint asks for extra headers")
    schemes = endpoint.properties.get("authSchemes")
    if schemes:
        auth_type, signing = resolver.auth_schemes_to_signing_ctx(schemes)
        context["auth_type"] = auth_type
        context["signing"] = signing
    signer = client._request_signer
    version = await _awaited(signer._choose_signer(model.name, "standard", context))
    if version != "s3v4":
        raise Ineligible(f"signature version {version!r} (the wire path signs SigV4 only)")
    signing = context.get("signing") or {}
    region = signing.get("region") or signer._region_name
    name = signing.get("signing_name") or signer._signing_name
    url = endpoint.url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or parts.query or parts.fragment:
        raise Ineligible(f"endpoint {parts.scheme}://{parts.hostname} is not plain HTTP(S)")
    host = parts.hostname or ""
    if any(marker in host for marker in ("s3-accelerate", "dualstack", "fips")):
        raise Ineligible("an accelerate, dual-stack or FIPS endpoint")
    if not region or name != "s3":
        raise Ineligible(f"signing region {region!r}, service {name!r}")
    return url, region, name


def _header_plan(model: Any) -> dict[str, tuple[str, str]]:
    """Header-located input parameters of ``model`` that the wire path can serialise."""
    plan: dict[str, tuple[str, str]] = {}
    for name, shape in model.input_shape.members.items():
        location = shape.serialization.get("location")
        header = shape.serialization.get("name", name)
        if location == "headers" and shape.type_name == "map":
            plan[name] = (header, "map")
        elif location == "header" and shape.type_name == "timestamp":
            if shape.serialization.get("timestampFormat", "rfc822") == "rfc822":
                plan[name] = (header.lower(), "timestamp")
        elif (
            location == "header"
            and shape.type_name == "string"
            and not shape.serialization.get("jsonvalue")
        ):
            plan[name] = (header.lower(), "string")
        elif location == "header" and shape.type_name == "boolean":
            plan[name] = (header.lower(), "boolean")
    return plan


def _http_session(client: Any, url: str) -> dict[str, Any]:
    """TLS, timeouts, pool and proxy settings of the client's aiohttp session, or Ineligible."""
    http = client._endpoint.http_session
    if type(http).__name__ != "AIOHTTPSession":
        raise Ineligible(f"HTTP session class {type(http).__name__}")
    if http._proxy_config.proxy_url_for(url):
        raise Ineligible("a proxy is configured for the endpoint")
    if getattr(http, "_cert_file", None):
        raise Ineligible("a client certificate is configured")
    connector_args = dict(http._connector_args or {})
    unknown = set(connector_args) - _CONNECTOR_OPTIONS
    if unknown:
        raise Ineligible(f"connector_args {sorted(unknown)}")
    timeout = http._timeout
    verify = http._verify if url.startswith("https:") else None
    if verify is not None and not isinstance(verify, (bool, str)):
        raise Ineligible(f"verify={type(verify).__name__}")
    return {
        "verify": verify,
        "connect_timeout": timeout.sock_connect,
        "read_timeout": timeout.sock_read,
        "connector_args": connector_args,
    }


def _sign_body(config: Any) -> bool:
    """botocore's choice for S3 when no checksum header is sent: sign the body's SHA-256
    unless ``config.s3["payload_signing_enabled"]`` is False."""
    explicit = (config.s3 or {}).get("payload_signing_enabled")
    return True if explicit is None else bool(explicit)


def _user_agent(client: Any) -> str | None:
    creator = getattr(client, "_user_agent_creator", None)
    if creator is None:
        return None
    text: str = creator.to_string()
    return text


async def _credentials(
    client: Any,
) -> tuple[Callable[[], Awaitable[CredentialSet]], CredentialSet | None]:
    """A coroutine function returning frozen credentials, refreshed as botocore refreshes
    them, and the frozen credentials themselves when they never refresh (static keys)."""
    getter = getattr(client, "_get_credentials", None)
    source = getter() if getter is not None else client._request_signer._credentials

    async def frozen() -> CredentialSet:
        if source is None:
            raise NoCredentialsError()
        return await _awaited(source.get_frozen_credentials())  # type: ignore[no-any-return]

    if source is not None and not hasattr(source, "refresh_needed"):
        return frozen, await frozen()
    return frozen, None


def _quota_release(client: Any) -> Callable[..., Any]:
    """The standard retry policy's quota release (an ``after-call`` handler)."""
    emitter = getattr(client.meta.events, "_emitter", client.meta.events)
    for handler in emitter._handlers.prefix_search("after-call.s3.GetObject"):
        if getattr(handler, "__name__", "") == "release_retry_quota":
            return handler  # type: ignore[no-any-return]
    raise Ineligible("no retry quota handler (not the standard retry mode)")


async def _awaited(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value
