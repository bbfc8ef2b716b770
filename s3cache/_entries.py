"""One cache's entries in the storage format: its serializer, compression, signing keys and
default ttl bound together, so that encoding, reading and judging an entry each have one home.

Pure and sans-IO (the wall clock is read only to stamp ``Expires`` for litellm's reader and to
stand in for a missing ``Date``: expiry is judged on the server's clock).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from s3cache import _expiry, _format, _freshness, _serializers, _signing, _tags
from s3cache._format import Body, Payload
from s3cache._metadata import PREFIX
from s3cache._nonce import NONCE_HEADER
from s3cache._settings import Settings

__all__ = ["Entries"]

#: Metadata a re-timed entry does not carry over: its ttl (replaced), nonce and signature (new).
_RETIMED: Final = frozenset({_expiry.TTL_HEADER, NONCE_HEADER, _signing.SIGNATURE_HEADER})

#: The client's wall clock (see the module's docstring).
_clock = time.time


class Entries:
    """Encodes values into payloads and reads entries back, as the cache's ``settings`` say."""

    __slots__ = (
        "_compressor",
        "_default_ttl",
        "_recorded",
        "_serializer",
        "freshness",
        "signer",
        "stale",
    )

    def __init__(self, settings: Settings) -> None:
        self._serializer = serializer = settings.serializer
        name = _serializers.name_of(serializer)
        #: The serializer field of the entries it writes (JSON's: none, as always).
        self._recorded = None if name == "json" else {_serializers.SERIALIZER_METADATA: name}
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
        tags: tuple[str, ...] = (),
    ) -> Payload:
        """The payload of ``value`` for ``okey``, with ``extra`` user metadata (s3cache's own
        fields win over it), the factory's ``compute`` time, the stale window (``stale``,
        else the cache's) and ``tags`` (normalised: :func:`s3cache._tags.normalize_tags`),
        signed when the cache has a signing key. Raises ``TypeError`` for a value the
        serializer cannot take, ``ValueError`` for tagged metadata over S3's cap."""
        payload = _format.encode(value, seconds, self._serializer, _clock(), self._compressor)
        if self._recorded is not None and payload.content_type != _format.BYTES_CONTENT_TYPE:
            payload = replace(payload, metadata={**payload.metadata, **self._recorded})
        if extra:
            payload = replace(payload, metadata={**extra, **payload.metadata})
        window = self.stale if stale is None else stale
        payload = _tags.with_tags(_freshness.with_freshness(payload, compute, window), tags)
        payload = payload if self.signer is None else self.signer.sign(okey, payload)
        if tags:  # untagged entries are checked by S3, as they always were
            _tags.check_metadata_size(payload.metadata, f"the entry {okey!r}")
        return payload

    def retimed(
        self, okey: str, body: Body, headers: Mapping[str, str], seconds: float | None
    ) -> Payload:
        """The entry read as ``body`` and ``headers`` again, but with a ttl of ``seconds`` from
        its next write (None: no expiry): its body, type, encoding and other metadata kept,
        ``Expires`` and ``Cache-Control`` (litellm's reader) redone, signed anew when the cache
        has a signing key (the caller has verified the old signature)."""
        metadata = {
            name[len(PREFIX) :]: value
            for name, value in headers.items()
            if name.startswith(PREFIX) and name not in _RETIMED
        }
        expires = cache_control = None
        if seconds is not None:
            metadata[_expiry.TTL_METADATA] = _expiry.format_seconds(seconds)
            expires = datetime.fromtimestamp(_clock() + seconds, tz=UTC)
            cache_control = f"max-age={math.ceil(seconds)}"
        content_type = headers.get("content-type") or "binary/octet-stream"
        encoding = headers.get("content-encoding")
        payload = Payload(bytes(body), content_type, metadata, expires, cache_control, encoding)
        return payload if self.signer is None else self.signer.sign(okey, payload)

    def tombstone(self, okey: str, seconds: float) -> Payload:
        """The tombstone ("no value") of ``okey`` for ``seconds``, signed with a signing key."""
        payload = _freshness.tombstone(seconds)
        return payload if self.signer is None else self.signer.sign(okey, payload)

    def decode(self, body: Body, content_type: str | None, content_encoding: str | None) -> Any:
        """The value of a body; ``ValueError`` (or ``KeyError``) when it cannot be read."""
        return _format.decode(body, content_type, self._serializer, content_encoding)

    def refusal(self, headers: Mapping[str, str]) -> str | None:
        """Why this cache's serializer must not decode the entry these headers describe (it
        was written by another), or None; raw bytes need no serializer."""
        content_type = (headers.get("content-type") or "").partition(";")[0].strip().lower()
        if content_type == _format.BYTES_CONTENT_TYPE:
            return None
        recorded = headers.get(_serializers.SERIALIZER_HEADER)
        return _serializers.mismatch(self._serializer, recorded)

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
