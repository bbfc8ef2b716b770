"""One cache's entries in the storage format: its serializer, compression, signing keys and
default ttl bound together, so that encoding, reading and judging an entry each have one home.

Pure and sans-IO (the wall clock is read only to stamp ``Expires`` for litellm's reader and to
stand in for a missing ``Date``: expiry is judged on the server's clock).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any

from s3cache import _expiry, _format, _freshness, _signing
from s3cache._format import Body, Payload
from s3cache._settings import Settings

__all__ = ["Entries"]

#: The client's wall clock (see the module's docstring).
_clock = time.time


class Entries:
    """Encodes values into payloads and reads entries back, as the cache's ``settings`` say."""

    __slots__ = ("_compressor", "_default_ttl", "_serializer", "freshness", "signer", "stale")

    def __init__(self, settings: Settings) -> None:
        self._serializer = settings.serializer
        self._compressor = settings.compressor
        self._default_ttl = settings.default_ttl
        #: The stale window recorded with every entry written (the constructor's ``stale_ttl``).
        self.stale = settings.freshness.stale_ttl
        #: The constructor's freshness options (``stale_ttl``, ``stale_if_error``).
        self.freshness = settings.freshness
        keys = settings.signing_keys
        #: Signs every entry written and verifies every entry read (None: no signing key).
        self.signer = _signing.Signer(keys) if keys else None

    def ttl(self, ttl: float | timedelta | str | None) -> float | None:
        """``ttl`` validated into seconds; None: the cache's ``default_ttl``."""
        return self._default_ttl if ttl is None else _expiry.normalize_ttl(ttl)

    def encode(
        self,
        okey: str,
        value: Any,
        seconds: float | None,
        extra: Mapping[str, str] | None = None,
        *,
        compute: float | None = None,
        stale: float | None = None,
    ) -> Payload:
        """The payload of ``value`` for ``okey``, with ``extra`` user metadata (s3cache's own
        fields win over it), the factory's ``compute`` time and the stale window (``stale``,
        else the cache's), signed when the cache has a signing key. Raises ``TypeError``
        for a value the serializer cannot take."""
        payload = _format.encode(value, seconds, self._serializer, _clock(), self._compressor)
        if extra:
            payload = replace(payload, metadata={**extra, **payload.metadata})
        window = self.stale if stale is None else stale
        payload = _freshness.with_freshness(payload, compute, window)
        return payload if self.signer is None else self.signer.sign(okey, payload)

    def tombstone(self, okey: str, seconds: float) -> Payload:
        """The tombstone ("no value") of ``okey`` for ``seconds``, signed with a signing key."""
        payload = _freshness.tombstone(seconds)
        return payload if self.signer is None else self.signer.sign(okey, payload)

    def decode(self, body: Body, content_type: str | None, content_encoding: str | None) -> Any:
        """The value of a body; ``ValueError`` (or ``KeyError``) when it cannot be read."""
        return _format.decode(body, content_type, self._serializer, content_encoding)

    def remaining(self, headers: Mapping[str, str]) -> float | None:
        """Seconds the entry has left on the server's clock (negative: expired; None: no
        expiry); unreadable expiry metadata counts as expired."""
        return _expiry.safe_remaining_ttl(headers, _clock())

    def facts(self, headers: Mapping[str, str]) -> _freshness.EntryFacts:
        """What the entry's headers say about its freshness, on the server's clock."""
        return _freshness.read_facts(headers, _clock())

    def is_live(self, headers: Mapping[str, str]) -> bool:
        """Whether the entry these (GET or HEAD) headers describe has not expired."""
        return not _expiry.is_expired(self.remaining(headers))

    def unverified(self, okey: str, body: Body | None, headers: Mapping[str, str]) -> str | None:
        """Why the entry under ``okey`` fails its signature check (``body`` None: what a HEAD
        shows), None when it passes or the cache has no signing key."""
        signer = self.signer
        if signer is None:
            return None
        return signer.check_headers(headers) if body is None else signer.verify(okey, body, headers)
