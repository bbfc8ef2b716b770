"""Validation of :class:`~s3cache.AsyncS3Cache`'s constructor arguments, one named check each.

Pure and sans-IO: every check raises ``TypeError`` or ``ValueError`` naming the argument before
any client exists, and never echoes a secret (an ``endpoint_url`` may hold a password).
"""

from __future__ import annotations

import math
import re
from typing import Final
from urllib.parse import urlsplit, urlunsplit

from s3cache._format import Serializer
from s3cache._local import LocalTier
from s3cache._stats import CacheObserver

__all__ = [
    "check_bucket",
    "check_credentials",
    "check_endpoint",
    "check_extensions",
    "check_limits",
    "check_on_error",
    "redact_url",
]

_BUCKET_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,61}[A-Za-z0-9]$")


def check_bucket(bucket: object) -> None:
    """A bucket name S3 (or a compatible server) could hold."""
    if not isinstance(bucket, str):
        raise TypeError(f"bucket must be a str, not {type(bucket).__name__}")
    if not _BUCKET_NAME.fullmatch(bucket) or ".." in bucket:
        raise ValueError(
            f"bucket {bucket!r} is not a valid bucket name: 3 to 63 letters, digits, '.', '-' "
            "or '_', starting and ending with a letter or digit"
        )


def check_limits(max_concurrency: object, timeout: object) -> None:
    """A whole number of requests in flight (at least 1) and a positive, finite deadline."""
    if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int):
        raise TypeError(f"max_concurrency must be an int, not {type(max_concurrency).__name__}")
    if max_concurrency < 1:
        raise ValueError(f"max_concurrency must be at least 1, not {max_concurrency}")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be seconds (int or float), not {type(timeout).__name__}")
    if not math.isfinite(timeout) or timeout <= 0:
        raise ValueError(f"timeout must be a positive, finite number of seconds, not {timeout}")


def check_on_error(on_error: object) -> None:
    if on_error not in ("log", "raise"):
        raise ValueError(f"on_error must be 'log' or 'raise', not {on_error!r}")


def check_endpoint(endpoint_url: object, use_ssl: bool) -> None:
    """An http(s) URL with a host and no user info, consistent with ``use_ssl``."""
    if endpoint_url is None:
        return
    if not isinstance(endpoint_url, str):
        raise TypeError(f"endpoint_url must be a str, not {type(endpoint_url).__name__}")
    parts = urlsplit(endpoint_url)
    if parts.username is not None or parts.password is not None:
        # Never echo the URL here: its user info may hold a password.
        raise ValueError(
            "endpoint_url must not contain user info ('user:password@'): S3 requests are "
            "signed with AWS credentials; pass aws_access_key_id/aws_secret_access_key instead"
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("endpoint_url must be an http:// or https:// URL with a host")
    if parts.scheme == "https" and use_ssl is False:
        raise ValueError("use_ssl=False contradicts an https:// endpoint_url")


def check_credentials(
    access_key_id: object, secret_access_key: object, session_token: object, session: object
) -> None:
    """Static keys come in pairs (a token needs both); a session can create clients."""
    if (access_key_id is None) != (secret_access_key is None):
        raise ValueError("give both aws_access_key_id and aws_secret_access_key, or neither")
    if session_token is not None and access_key_id is None:
        raise ValueError("aws_session_token needs aws_access_key_id and aws_secret_access_key")
    if session is not None and not (
        hasattr(session, "create_client") or hasattr(session, "client")
    ):
        raise TypeError("session must be an aiobotocore AioSession or an aioboto3 Session")


def check_extensions(
    serializer: object, local: object, observer: object, fast_path: object
) -> None:
    """The pluggable parts have the shape the core calls, and ``fast_path`` is a bool."""
    if serializer is not None and not isinstance(serializer, (str, Serializer)):
        raise TypeError(
            "serializer must be 'json', 'pickle', 'msgpack' or have content_type, dumps(value) "
            "and loads(data)"
        )
    if local is not None and not isinstance(local, LocalTier):
        raise TypeError(f"local must be a LocalTier or None, not {type(local).__name__}")
    if observer is not None and not isinstance(observer, CacheObserver):
        raise TypeError("observer must have an on_event(event) method")
    if not isinstance(fast_path, bool):
        raise TypeError(f"fast_path must be a bool, not {type(fast_path).__name__}")


def redact_url(url: str | None) -> str | None:
    """The URL without any user:password part (for messages and ``repr``)."""
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))
