"""Signed entries, pure and sans-IO: an HMAC-SHA256 over an entry's object key, its body and
the headers that give the body its meaning, carried in its user metadata.

With ``signing_key=``, every entry written carries ``x-amz-meta-s3cache-sig:
v1:<key id>:<hex HMAC>``, and an entry read back is served only when that signature verifies
with one of the keys. The key id is a short keyed hash of the key (it reveals nothing about
it), so that a reader holding several keys (rotation) knows which one to try. What the HMAC
covers, in this order, each part length-prefixed so that no two entries share a message:

- the version tag and the object key (so an entry copied to another key does not verify);
- each header of :data:`s3cache._format.MEANING_HEADERS` that the entry carries (content type,
  content encoding, the ttl, ...), by name: adding a field there signs it on every new entry,
  and entries written before it was added still verify (they do not carry it);
- the body, as stored (compressed bodies before they are expanded).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hmac
from collections.abc import Mapping, Sequence
from typing import Final, Literal

from s3cache._format import MEANING_HEADERS, Payload, payload_headers
from s3cache._metadata import SIGNATURE_HEADER, SIGNATURE_METADATA

__all__ = [
    "MIN_KEY_BYTES",
    "SIGNATURE_HEADER",
    "SIGNATURE_METADATA",
    "Reason",
    "Signer",
    "decode_keys",
    "key_id",
    "signing_keys",
]

#: The shortest signing key taken: 128 bits.
MIN_KEY_BYTES: Final = 16
_VERSION: Final = "v1"
_TAG: Final = "s3cache-entry-" + _VERSION
_KEY_ID_BYTES: Final = 4
_MAC_HEX: Final = 64
#: Why an entry did not verify: no signature, a key id none of the keys has, or a signature
#: that does not match (the key, body or a signed header was changed, or the field is garbled).
Reason = Literal["unsigned", "unknown_key", "altered"]


def key_id(key: bytes) -> str:
    """The short id of ``key`` written beside each signature (a keyed hash: no hint of the key)."""
    return hmac.digest(key, b"s3cache signing key id", "sha256")[:_KEY_ID_BYTES].hex()


class Signer:
    """Signs entries with the first of its keys and verifies them with any (rotation).

    The keys never appear in ``repr``, in messages or in the metadata written.
    """

    __slots__ = ("_keys", "_signing_id")

    def __init__(self, keys: Sequence[bytes]) -> None:
        """``keys``: validated (see :func:`signing_keys`), not empty; the first one signs.
        Each key's HMAC state is keyed once here; every signature copies it (cheaper than
        keying afresh)."""
        self._keys: dict[str, hmac.HMAC] = {}
        for key in keys:
            self._keys.setdefault(key_id(key), hmac.new(key, digestmod="sha256"))
        self._signing_id = key_id(keys[0])

    def sign(self, okey: str, payload: Payload) -> Payload:
        """``payload`` with its signature for object key ``okey`` added to its metadata."""
        mac = _mac(self._keys[self._signing_id], okey, payload.body, payload_headers(payload))
        value = f"{_VERSION}:{self._signing_id}:{mac}"
        return dataclasses.replace(
            payload, metadata={**payload.metadata, SIGNATURE_METADATA: value}
        )

    def verify(
        self, okey: str, body: bytes | bytearray, headers: Mapping[str, str]
    ) -> Reason | None:
        """None when ``body`` and the lower-cased response ``headers`` carry a valid signature
        for ``okey``; otherwise why not. Constant-time in the comparison of the HMAC."""
        found = self._key_for(headers)
        if isinstance(found, str):
            return found
        keyed, mac = found
        return None if hmac.compare_digest(_mac(keyed, okey, body, headers), mac) else "altered"

    def check_headers(self, headers: Mapping[str, str]) -> Reason | None:
        """What headers alone tell (``exists`` has no body): a signature with a known key id is
        there, or why not. Whether it matches needs the body (:meth:`verify`)."""
        found = self._key_for(headers)
        return found if isinstance(found, str) else None

    def _key_for(self, headers: Mapping[str, str]) -> tuple[hmac.HMAC, str] | Reason:
        """The keyed state and HMAC that ``headers``' signature names, or why there are none."""
        value = headers.get(SIGNATURE_HEADER)
        if value is None:
            return "unsigned"
        version, _, rest = value.partition(":")
        kid, _, mac = rest.partition(":")
        if version != _VERSION or len(mac) != _MAC_HEX or not mac.isascii():
            return "altered"
        keyed = self._keys.get(kid)
        if keyed is None:
            return "unknown_key"
        return keyed, mac

    def __repr__(self) -> str:
        return f"Signer(<{len(self._keys)} key(s) hidden>)"


def _mac(keyed: hmac.HMAC, okey: str, body: bytes | bytearray, headers: Mapping[str, str]) -> str:
    """The hex HMAC-SHA256 of an entry's signed message (see the module's docstring), from a
    copy of the key's precomputed state ``keyed``."""
    parts = [f"{_TAG}\n{len(okey)}:{okey}"]
    for name in MEANING_HEADERS:
        value = headers.get(name)
        if value is not None:
            parts.append(f"{name}:{len(value)}:{value}")
    mac = keyed.copy()
    mac.update("\n".join(parts).encode("utf-8") + b"\n\n")
    mac.update(body)
    return mac.hexdigest()


def signing_keys(signing_key: object) -> tuple[bytes, ...]:
    """Validate ``signing_key=`` (bytes, or a non-empty list of bytes: the first signs, any
    verifies) into its keys; () without one. Errors never show a key."""
    if signing_key is None:
        return ()
    if isinstance(signing_key, (bytes, bytearray, memoryview)):
        return (_checked(signing_key, "signing_key"),)
    if not isinstance(signing_key, (list, tuple)):
        hint = " (encode it, or decode a base64 key)" if isinstance(signing_key, str) else ""
        raise TypeError(
            "signing_key must be bytes, or a list of bytes for rotation, not "
            f"{type(signing_key).__name__}{hint}"
        )
    if not signing_key:
        raise ValueError(
            "signing_key must not be an empty list: give at least one key (the first signs)"
        )
    return tuple(_checked(k, f"signing_key[{i}]") for i, k in enumerate(signing_key))


def _checked(key: object, name: str) -> bytes:
    if not isinstance(key, (bytes, bytearray, memoryview)):
        raise TypeError(f"{name} must be bytes, not {type(key).__name__}")
    raw = bytes(key)
    if len(raw) < MIN_KEY_BYTES:
        raise ValueError(
            f"{name} must be at least {MIN_KEY_BYTES} bytes (128 bits), not {len(raw)}: use "
            "secrets.token_bytes(32)"
        )
    return raw


def decode_keys(text: str, what: str) -> list[bytes]:
    """Signing keys from configuration text (``S3CACHE_SIGNING_KEY``, the litellm proxy's
    YAML): base64, several separated by commas for rotation (the first signs). ``what`` names
    the setting in the error, which never shows the value."""
    keys: list[bytes] = []
    for part in text.split(","):
        try:
            keys.append(base64.b64decode(part.strip(), validate=True))
        except (binascii.Error, ValueError):
            raise ValueError(
                f"{what} must be base64 (several keys separated by commas); the value is not shown"
            ) from None
    return keys
