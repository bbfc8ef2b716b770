"""``serializer=``: ``"json"`` (the default), ``"pickle"``, ``"msgpack"`` or an object with
``dumps``/``loads``; and the serializer's name recorded with every entry it writes, so that a
reader with another one refuses the entry (a typed error, never garbage). Pure and sans-IO.

An entry's serializer is the ``x-amz-meta-s3cache-serializer`` field (signed, as every field
that changes what a body means). JSON entries carry none, as they always have, so older readers
and litellm's read them as before; an entry without the field is JSON or was written before the
field existed, and every serializer but pickle and msgpack (which never wrote one without it)
reads it. Raw ``bytes`` values carry none either: they never go through a serializer.
"""

from __future__ import annotations

import pickle
from typing import Any, Final, Literal

from s3cache._format import JsonSerializer, Serializer
from s3cache._metadata import SERIALIZER_HEADER, SERIALIZER_METADATA

__all__ = [
    "SERIALIZER_HEADER",
    "SERIALIZER_METADATA",
    "MsgpackSerializer",
    "PickleSerializer",
    "SerializerName",
    "mismatch",
    "name_of",
    "resolve",
]

SerializerName = Literal["json", "pickle", "msgpack"]
#: Serializers that only read entries recorded as theirs (no entry of theirs lacks the field).
_STRICT: Final = frozenset({"pickle", "msgpack"})


class PickleSerializer:
    """Python's pickle (protocol 5): any picklable value. Loading a pickle runs code its
    writer chose, so a cache takes it only with a ``signing_key`` (only entries signed by a
    key it holds are ever loaded)."""

    content_type = "application/x-python-pickle"
    name = "pickle"

    def dumps(self, value: Any) -> bytes:
        try:
            return pickle.dumps(value, protocol=5)
        except (pickle.PicklingError, AttributeError) as exc:  # e.g. a lambda, a local class
            raise TypeError(f"cannot pickle the value: {exc}") from exc

    def loads(self, data: bytes) -> Any:
        try:
            return pickle.loads(data)  # noqa: S301 (signed entries only: see the class)
        except Exception as exc:
            raise ValueError(f"body is not a readable pickle: {type(exc).__name__}") from exc

    def __repr__(self) -> str:
        return "PickleSerializer()"


class MsgpackSerializer:
    """MessagePack (the ``msgpack`` package: ``pip install 's3cache-async[msgpack]'``),
    compacter than JSON and with real bytes inside values."""

    content_type = "application/msgpack"
    name = "msgpack"

    def __init__(self) -> None:
        try:
            import msgpack
        except ImportError:
            raise ImportError(
                "serializer='msgpack' needs the msgpack package: "
                "pip install 's3cache-async[msgpack]'"
            ) from None
        self._msgpack: Any = msgpack

    def dumps(self, value: Any) -> bytes:
        try:
            packed: bytes = self._msgpack.packb(value, use_bin_type=True)
        except (TypeError, ValueError, OverflowError) as exc:
            raise TypeError(f"cannot encode the value as MessagePack: {exc}") from exc
        return packed

    def loads(self, data: bytes) -> Any:
        try:
            return self._msgpack.unpackb(data, raw=False, strict_map_key=False)
        except Exception as exc:
            raise ValueError(f"body is not readable MessagePack: {type(exc).__name__}") from exc

    def __repr__(self) -> str:
        return "MsgpackSerializer()"


def resolve(serializer: Serializer | str | None, signed: bool) -> Serializer:
    """The serializer ``serializer=`` names (None: JSON); ``signed``: the cache has a signing
    key, without which pickle is refused. ValueError or TypeError before any request."""
    if serializer is None or serializer == "json":
        return JsonSerializer()
    if serializer == "msgpack":
        return MsgpackSerializer()
    if serializer == "pickle" or isinstance(serializer, PickleSerializer):
        if not signed:
            raise ValueError(
                "serializer='pickle' needs signing_key=: unpickling an entry runs code its "
                "writer chose, so only entries signed by a key this cache holds may be loaded"
            )
        return serializer if isinstance(serializer, PickleSerializer) else PickleSerializer()
    if isinstance(serializer, str):
        raise ValueError(
            f"serializer must be 'json', 'pickle', 'msgpack' or an object with content_type, "
            f"dumps and loads, not {serializer[:40]!r}"
        )
    return serializer


def name_of(serializer: Serializer) -> str:
    """The name an entry written by ``serializer`` records: its ``name`` attribute, else its
    class's qualified name."""
    name = getattr(serializer, "name", None)
    if isinstance(name, str) and name:
        return name
    kind = type(serializer)
    return f"{kind.__module__}.{kind.__qualname__}"


def mismatch(reader: Serializer, recorded: str | None) -> str | None:
    """Why ``reader`` must not decode an entry whose recorded serializer is ``recorded`` (None:
    the entry carries none), or None when it may."""
    mine = name_of(reader)
    if recorded == mine or (recorded is None and mine not in _STRICT):
        return None
    written = repr(recorded) if recorded is not None else "'json' (or none recorded)"
    return f"written with serializer {written}, and this cache reads {mine!r}"
