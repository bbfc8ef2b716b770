"""litellm proxy: ``type: s3`` in the proxy's ``cache_params`` builds :class:`LiteLLMS3Cache`.

Enable it with one line in the proxy's config, before ``cache: true``::

    litellm_settings:
      callbacks: ["s3cache.integrations.litellm_proxy.proxy_handler_instance"]
      cache: true
      cache_params: {type: s3, s3_bucket_name: my-llm-cache, s3_region_name: eu-west-1}

The proxy applies ``litellm_settings`` in YAML order and imports each ``callbacks`` entry, in every
worker and before it builds the cache. Importing this module points the name that
``litellm.Cache(type="s3")`` calls (``litellm.caching.caching.S3Cache``) at a builder of
s3cache's backend, for the whole process: worker startups and cache rebuilds after a settings
reload all get s3cache. Nothing else of the proxy's cache wiring changes. litellm 1.110.2 offers
no supported hook for a custom cache type (``type`` is a closed enum); this name is the one seam.

``proxy_handler_instance`` is a ``CustomLogger`` that does nothing: the proxy only accepts a
logger (or a function) in ``callbacks``, and importing it is what switches the backend.
"""

from __future__ import annotations

import base64
import binascii
import inspect
from collections.abc import Callable, Mapping
from typing import Any, Final

import litellm
import litellm.caching.caching as _litellm_caching

# caching_handler binds its own ``S3Cache`` name at import, for an isinstance check that turns off
# per-input embedding caching for litellm's S3 cache. ``import litellm`` loads it already; loading
# it here too keeps it bound to litellm's class (never matching ours) if that ever becomes lazy.
import litellm.caching.caching_handler
from litellm.caching.s3_cache import S3Cache as _LiteLLMOwnS3Cache
from litellm.integrations.custom_logger import CustomLogger

from s3cache import LocalTier
from s3cache._signing import decode_keys
from s3cache.integrations.litellm import CORE_KWARGS, LiteLLMS3Cache

__all__ = ["install", "proxy_handler_instance"]

#: The line a config needs; quoted in the wrong-order error.
CALLBACKS_LINE: Final = 'callbacks: ["s3cache.integrations.litellm_proxy.proxy_handler_instance"]'
#: litellm's own S3 options, as ``litellm.Cache`` hands them to ``S3Cache``.
_S3_PARAMS: Final = frozenset(
    name for name in inspect.signature(LiteLLMS3Cache.__init__).parameters if name.startswith("s3_")
)
#: ``litellm.Cache`` options that it consumes itself (they never reach the backend).
_CACHE_PARAMS: Final = ("ttl", "namespace", "mode", "supported_call_types", "max_messages")
#: s3cache options that ``os.environ/`` references deliver as strings, with their parsers.
_NUMERIC: Final[Mapping[str, Callable[[str], float]]] = {
    "max_concurrency": int,
    "compression_threshold": int,
    "timeout": float,
    "default_ttl": float,
}


class _BackendBuilder:
    """Stands in for litellm's ``S3Cache`` in ``litellm.caching.caching``: builds ours instead."""

    is_s3cache_builder: Final = True

    def __call__(self, **kwargs: Any) -> LiteLLMS3Cache:
        """``LiteLLMS3Cache(**kwargs)`` from what ``litellm.Cache`` passes on from cache_params."""
        unknown = sorted(set(kwargs) - _S3_PARAMS - CORE_KWARGS)
        if unknown:
            raise TypeError(
                f"litellm_settings.cache_params has unknown option(s) {', '.join(unknown)} for "
                f"type: s3 with s3cache; it accepts the s3_* options, litellm's "
                f"{', '.join(_CACHE_PARAMS)}, and s3cache's {', '.join(sorted(CORE_KWARGS))}"
            )
        return LiteLLMS3Cache(**{name: _from_yaml(name, value) for name, value in kwargs.items()})

    def __repr__(self) -> str:
        return "<s3cache builder of LiteLLMS3Cache for litellm.Cache(type='s3')>"


#: s3cache options that ``os.environ/`` references deliver as ``true``/``false`` strings.
_BOOLEAN: Final = frozenset({"sse_bucket_key_enabled", "fast_path", "pacing"})


def _from_yaml(name: str, value: Any) -> Any:
    """A cache_params value as the backend takes it: numbers and booleans from ``os.environ/``
    strings, the SSE-C key and the signing keys (a list, or commas) from base64, ``local``
    from a mapping of :class:`~s3cache.LocalTier` fields."""
    if name == "sse_customer_key" and isinstance(value, str):
        try:
            return base64.b64decode(value.strip(), validate=True)
        except binascii.Error:
            raise ValueError(
                "litellm_settings.cache_params.sse_customer_key must be base64 (the value is "
                "not shown)"
            ) from None
    if name == "signing_key" and isinstance(value, (str, list)):
        texts = value if isinstance(value, list) else [value]
        what = "litellm_settings.cache_params.signing_key"
        return [key for text in texts for key in decode_keys(str(text), what)]
    if name in _BOOLEAN and isinstance(value, str):
        lowered = value.strip().lower()
        if lowered not in ("true", "false"):
            raise ValueError(f"litellm_settings.cache_params.{name} must be true or false")
        return lowered == "true"
    parse = _NUMERIC.get(name)
    if parse is not None and isinstance(value, str):
        try:
            return parse(value.strip())
        except ValueError:
            raise ValueError(
                f"litellm_settings.cache_params.{name} must be a number, not {value!r}"
            ) from None
    if name == "local" and isinstance(value, Mapping):
        return LocalTier(**value)
    return value


def install() -> None:
    """Make ``litellm.Cache(type="s3")`` build s3cache's backend in this process (idempotent).

    Raises RuntimeError, changing nothing, when litellm already built its own S3 cache: the
    config loads this module after ``cache: true``, which must come after it.
    """
    current: object = vars(_litellm_caching)["S3Cache"]
    if getattr(current, "is_s3cache_builder", False):
        return
    built = getattr(litellm.cache, "cache", None)
    if isinstance(built, _LiteLLMOwnS3Cache):
        raise RuntimeError(
            "s3cache.integrations.litellm_proxy was loaded after litellm built its own S3 cache "
            "(cache: true came first in litellm_settings, and the proxy applies those settings in "
            f"order). Move the line `{CALLBACKS_LINE}` above `cache: true` in litellm_settings."
        )
    if current is not _LiteLLMOwnS3Cache:
        raise RuntimeError(
            f"litellm.caching.caching.S3Cache is {current!r}, not litellm's S3Cache: something "
            "else replaced it; s3cache will not replace it in turn"
        )
    # A callable in a class's place: Cache(type="s3") only calls it. The one seam litellm has.
    vars(_litellm_caching)["S3Cache"] = _BackendBuilder()


class _ProxyHook(CustomLogger):
    """A logger that does nothing: the proxy imports it by name, and the import installs s3cache."""


install()
#: The object the proxy's ``callbacks`` entry names.
proxy_handler_instance: Final = _ProxyHook()
