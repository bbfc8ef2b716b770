"""Cache URLs (``s3://bucket/prefix?ttl=1h``) to constructor arguments and back; pure.

``s3://bucket/prefix?endpoint_url=...&region=...&ttl=1h`` becomes validated keyword arguments of
:class:`~s3cache.AsyncS3Cache`; also ``S3CACHE_URL``, and the merge of URL-given and explicit
arguments.

The URL names a place and plain settings, nothing else:

- ``s3://`` + the bucket (the host part, case kept) + the prefix (the path, percent-decoded;
  ``s3://b`` and ``s3://b/`` mean the whole bucket). No port, no fragment.
- The query takes the constructor's parameters whose values are text, numbers, booleans or
  durations, under their own names: ``endpoint_url``, ``region_name`` (or ``region``),
  ``use_ssl``, ``verify`` (``true``, ``false`` or a CA bundle path), ``api_version``,
  ``default_ttl`` (or ``ttl``), ``max_concurrency``, ``timeout``, ``on_error``,
  ``serializer`` (a name: ``json``, ``pickle``, ``msgpack``), ``compression``,
  ``compression_threshold``, ``fast_path`` and the company-bucket options (``sse``,
  ``sse_kms_key_id``, ``sse_bucket_key_enabled``, ``expected_bucket_owner``,
  ``checksum``, ``storage_class``, ``request_payer``). Booleans are ``true``/``false`` (any
  case); durations follow :mod:`s3cache._durations` (``90``, ``15m``, ``1h30m``). Values are
  percent-decoded as forms are: ``+`` is a space, so write a plus sign as ``%2B``.
- ``pricing`` (a preset name), ``telemetry`` and ``create_bucket`` are plain options;
  ``layout`` is in the table for the feature that brings it, and refused (:data:`PENDING`)
  until it lands.
- The local tier is flattened: ``local=true`` turns it on with its defaults; ``local_max_items``,
  ``local_max_bytes`` and ``local_ttl`` set :class:`~s3cache.LocalTier`'s fields (and turn it on).
- Refused, each with its reason and the way to pass it instead: unknown parameters, a
  parameter given twice, the options that take objects (``session``, ``config``,
  ``observer``, and a serializer object: keyword arguments), and every secret: user info
  (``s3://key:secret@bucket``) and ``aws_access_key_id``, ``aws_secret_access_key``,
  ``aws_session_token``, ``sse_customer_key``, ``signing_key``. URLs end up in logs, shell
  history, process lists and error reports, and s3cache already refuses user info in
  ``endpoint_url``; unlike aiocache's and cashews' ``redis://:password@host``, S3 requests are
  signed with credentials that the environment or the AWS chain supply
  (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, an IAM role). No message
  here ever shows the URL, user info or a value of a parameter it does not know.

Precedence (:func:`merge`): explicit keyword arguments win over the URL, and an explicit
``None`` counts as not given (so that a CLI flag or YAML key left unset never masks the URL).
For the command line: flags > ``S3CACHE_<OPTION>`` variables > ``S3CACHE_URL`` > defaults.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from s3cache import _durations, _layout, _options, _pricing
from s3cache._bucket_options import BUCKET_ARGS, CHECKSUMS, SSE_MODES, bucket_options
from s3cache._compression import COMPRESSIONS
from s3cache._expiry import normalize_ttl
from s3cache._keys import normalize_prefix
from s3cache._local import LocalTier

__all__ = [
    "ALIASES",
    "ENV_VAR",
    "OBJECTS",
    "PARAMETERS",
    "PENDING",
    "SECRETS",
    "from_environ",
    "merge",
    "parse_url",
    "to_url",
]

ENV_VAR: Final = "S3CACHE_URL"
SCHEME: Final = "s3"
Parser = Callable[[str, str], Any]


def _text(name: str, text: str) -> str:
    return text


def _flag(name: str, text: str) -> bool:
    lowered = text.lower()
    if lowered not in ("true", "false"):
        raise ValueError(f"{name} must be true or false, not {text[:40]!r}")
    return lowered == "true"


def _count(name: str, text: str) -> int:
    if not text.isdigit() or not text.isascii():
        raise ValueError(f"{name} must be a whole number, not {text[:40]!r}")
    return int(text)


def _duration(name: str, text: str) -> float:
    return _durations.seconds(text, name)


def _verify(name: str, text: str) -> bool | str:
    return _flag(name, text) if text.lower() in ("true", "false") else text


def _choice(*options: str) -> Parser:
    def parse(name: str, text: str) -> str:
        if text not in options:
            raise ValueError(f"{name} must be one of {', '.join(options)}, not {text[:40]!r}")
        return text

    return parse


#: URL parameter → parser, in the order :func:`to_url` writes them (canonical names only).
PARAMETERS: Final[Mapping[str, Parser]] = {
    "endpoint_url": _text,
    "region_name": _text,
    "use_ssl": _flag,
    "verify": _verify,
    "api_version": _text,
    "default_ttl": _duration,
    "max_concurrency": _count,
    "timeout": _duration,
    "on_error": _choice("log", "raise"),
    "serializer": _choice("json", "pickle", "msgpack"),  # pickle: signing_key= as a keyword
    "compression": _choice(*COMPRESSIONS),
    "compression_threshold": _count,
    "fast_path": _flag,
    "sse": _choice(*SSE_MODES),
    "sse_kms_key_id": _text,
    "sse_bucket_key_enabled": _flag,
    "expected_bucket_owner": _text,
    "checksum": _choice(*CHECKSUMS),
    "storage_class": _text,
    "request_payer": _choice("requester"),
    "local": _flag,
    "local_max_items": _count,
    "local_max_bytes": _count,
    "local_ttl": _duration,
    "layout": _choice(*_layout.LAYOUTS),
    "pricing": _choice(*_pricing.PRESETS),
    "telemetry": _flag,
    "create_bucket": _flag,
    "stale_ttl": _duration,
    "pacing": _flag,
    "tag_check_interval": _duration,
    "breaker": _flag,  # on or off; thresholds need a Breaker(...) in code
    "stale_if_error": _duration,
    "negative_ttl": _duration,
}
#: Parameters of features not in this version's constructor yet (refused until they land).
PENDING: Final = frozenset({"layout"})
#: The short spellings a URL may use (and :func:`to_url` writes).
ALIASES: Final = {"region": "region_name", "ttl": "default_ttl"}
_SHORT: Final = {canonical: short for short, canonical in ALIASES.items()}
SECRETS: Final = frozenset(
    {
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "sse_customer_key",
        "signing_key",
    }
)
OBJECTS: Final = frozenset({"session", "config", "observer"})
_LOCAL_FIELDS: Final = tuple(f.name for f in dataclasses.fields(LocalTier))
_SECRET_WORDS: Final = ("secret", "password", "passwd", "token", "credential", "_key")


def parse_url(url: str, *, source: str = "s3cache URL") -> dict[str, Any]:
    """The constructor's keyword arguments (``bucket`` included) that ``url`` gives, validated.

    Raises ValueError (TypeError for a non-str) starting with ``source``, never showing the URL.
    """
    if not isinstance(url, str):
        raise TypeError(f"{source} must be a str, not {type(url).__name__}")
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        raise ValueError(f"{source} is not a URL (not shown)") from None
    if parts.scheme != SCHEME:
        raise ValueError(f"{source} must start with s3:// (the scheme is {parts.scheme[:10]!r})")
    if "@" in parts.netloc:
        raise ValueError(
            f"{source} must not contain user info ('user:password@'): credentials come from the "
            "environment or the AWS credential chain (AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, an IAM role), or as keyword arguments; "
            "the URL is not shown"
        )
    if parts.fragment:
        raise ValueError(f"{source} must not have a fragment ('#...')")
    kwargs = _location(parts.netloc, parts.path, source)
    kwargs.update(_query(parts.query, source))
    _validate(kwargs, source)
    return kwargs


def _location(netloc: str, path: str, source: str) -> dict[str, Any]:
    """``bucket`` and ``prefix`` from the URL's host and path."""
    if not netloc:
        raise ValueError(f"{source} names no bucket: write s3://<bucket>/<prefix>")
    if ":" in netloc:
        raise ValueError(
            f"{source}: the bucket cannot have a port; an S3-compatible server's address "
            "goes in endpoint_url=http://host:port"
        )
    try:
        _options.check_bucket(netloc)
        prefix = normalize_prefix(unquote(path[1:] if path.startswith("/") else path))
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from None
    return {"bucket": netloc, "prefix": prefix}


def _query(query: str, source: str) -> dict[str, Any]:
    """The query's parameters, parsed, under their constructor names (``local`` built)."""
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise ValueError(
            f"{source}: the query must be name=value pairs joined by '&' (not shown)"
        ) from None
    kwargs: dict[str, Any] = {}
    spelled: dict[str, str] = {}
    for given, text in pairs:
        name = ALIASES.get(given, given)
        parse = PARAMETERS.get(name)
        if parse is None or name in PENDING:
            raise ValueError(f"{source}: {_refusal(given)}")
        if name in spelled:
            if spelled[name] == given:
                raise ValueError(f"{source}: {given} given twice (one value per option)")
            raise ValueError(f"{source}: {spelled[name]} and {given} name one option: give one")
        if not text:
            raise ValueError(f"{source}: {given} has no value")
        spelled[name] = given
        try:
            kwargs[name] = parse(given, text)
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from None
    return _with_local(kwargs, source)


def _refusal(given: str) -> str:
    """Why ``given`` cannot be a URL parameter, and what to do instead."""
    shown = repr(given[:40])
    if given in SECRETS or any(word in given.lower() for word in _SECRET_WORDS):
        return (
            f"{shown} cannot be in a URL: secrets stay out of URLs (logs, shell history, "
            "process lists); credentials come from the environment or the AWS credential "
            "chain, keys as keyword arguments (the value is not shown)"
        )
    if given in OBJECTS:
        return f"{given} takes an object: pass {given}= as a keyword argument"
    if given in ("bucket", "prefix"):
        return f"the {given} is the URL's {'host' if given == 'bucket' else 'path'}, not a query"
    if given in PENDING:
        return f"{given} is not supported by this version of s3cache"
    known = sorted(set(PARAMETERS) - PENDING | set(ALIASES))
    return f"unknown parameter {shown}; an s3cache URL takes {', '.join(known)}"


def _with_local(kwargs: dict[str, Any], source: str) -> dict[str, Any]:
    """``local`` and ``local_*`` folded into one ``local=LocalTier(...)`` (or nothing)."""
    fields = {f: kwargs.pop(f"local_{f}") for f in _LOCAL_FIELDS if f"local_{f}" in kwargs}
    on = kwargs.pop("local", None)
    if on is False and fields:
        raise ValueError(f"{source}: local=false contradicts local_{next(iter(fields))}")
    if on or fields:
        try:
            kwargs["local"] = LocalTier(**fields)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{source}: {exc}") from None
    return kwargs


def _validate(kwargs: dict[str, Any], source: str) -> None:
    """Run the constructor's own checks on what the URL gave, so that errors name the URL."""
    try:
        _options.check_endpoint(kwargs.get("endpoint_url"), kwargs.get("use_ssl", True))
        if "default_ttl" in kwargs:
            normalize_ttl(kwargs["default_ttl"], "default_ttl")
        if "max_concurrency" in kwargs or "timeout" in kwargs:
            # check_limits judges both: a valid stand-in for the one the URL leaves out.
            _options.check_limits(kwargs.get("max_concurrency", 1), kwargs.get("timeout", 1.0))
        company = {name: kwargs[name] for name in BUCKET_ARGS if name in kwargs}
        bucket_options(kwargs["bucket"], **company)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{source}: {exc}") from None


def from_environ(environ: Mapping[str, str]) -> dict[str, Any]:
    """The keyword arguments ``S3CACHE_URL`` gives in ``environ`` (empty when unset or blank);
    its errors start with the variable's name."""
    url = environ.get(ENV_VAR, "").strip()
    return parse_url(url, source=ENV_VAR) if url else {}


def merge(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments from ``layers``, lowest precedence first (defaults, the URL, explicit
    ones): a later layer's value wins, and a None value counts as not given."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update((name, value) for name, value in layer.items() if value is not None)
    return merged


def to_url(kwargs: Mapping[str, Any]) -> str:
    """The URL that :func:`parse_url` turns back into ``kwargs`` (None values left out).

    ValueError for what a URL cannot carry: secrets and objects (never showing them), names
    that are not URL parameters, and values :func:`parse_url` would refuse.
    """
    rest = {ALIASES.get(name, name): value for name, value in kwargs.items()}
    bucket = rest.pop("bucket", None)
    if not isinstance(bucket, str):
        raise ValueError("to_url needs the bucket name (a str) as kwargs['bucket']")
    prefix = rest.pop("prefix", None) or ""
    query: list[tuple[str, str]] = []
    local = rest.pop("local", None)
    for name, value in rest.items():
        if value is not None and (
            name not in PARAMETERS or name in PENDING or name.startswith("local_")
        ):
            raise ValueError(f"to_url: {_refusal(name)}")
    for name in PARAMETERS:
        if rest.get(name) is not None:
            query.append((_SHORT.get(name, name), _spell(name, rest[name])))
    query.extend(_local_query(local))
    path = quote(prefix, safe="/")
    encoded = urlencode(query, quote_via=quote, safe="/:")
    url = f"{SCHEME}://{bucket}/{path}" + (f"?{encoded}" if encoded else "")
    parse_url(url)  # what it writes, it reads back
    return url


def _spell(name: str, value: Any) -> str:
    """One value as URL text, in the form its parser reads."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if PARAMETERS[name] is _duration:
        return _durations.spell(_durations.seconds(value, name))
    return str(value)


def _local_query(local: object) -> list[tuple[str, str]]:
    """``local`` as URL parameters: its fields that are not the defaults, or ``local=true``."""
    if local is None:
        return []
    if not isinstance(local, LocalTier):
        raise ValueError("to_url: local must be a LocalTier or None")
    default = LocalTier()
    changed = [
        (f"local_{f}", _spell(f"local_{f}", getattr(local, f)))
        for f in _LOCAL_FIELDS
        if getattr(local, f) != getattr(default, f)
    ]
    return changed or [("local", "true")]
