"""Default keys for ``@cached`` functions: ``module:qualname:sha256(arguments)``, pure and sans-IO.

The arguments are hashed through a type-tagged encoding, so two calls share a key only when their
arguments are equal values of the same types: ``f(1)``, ``f(1.0)``, ``f(True)``, ``f("1")``,
``f(Color.RED)`` (an IntEnum of value 1) and ``f(float("nan"))``/``f(None)`` all differ. The
encoding depends on nothing that changes between processes (no ``hash()``, no ``id()``, no
iteration order of sets), so every process and machine computes the same key.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import inspect
import uuid
from collections.abc import Callable
from datetime import date, datetime, time
from typing import Any, Final, ParamSpec, TypeVar

import orjson

__all__ = ["call_key", "function_key"]

P = ParamSpec("P")
R = TypeVar("R")

#: Hashed in front of the encoded arguments: a new encoding gets a new version, never a collision.
_VERSION: Final = b"s3cache-call-key/2\n"
#: Ints in this range are JSON numbers (orjson's range); others are tagged hex strings.
_INT_MIN: Final = -(1 << 63)
_INT_END: Final = 1 << 64
_BASES: Final[tuple[type[Any], ...]] = (str, int, float, list, tuple, dict)


def function_key(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """A cache key for a call: ``module:qualname:sha256(arguments)``, stable across processes.

    Arguments are bound to the signature (so ``f(1)`` and ``f(x=1)`` agree, defaults filled in),
    ``self``/``cls`` are skipped, and the rest are encoded with their types (str, int, float,
    bool, None, bytes, lists, tuples, dicts, sets, datetimes, UUIDs, enums, dataclasses). Anything
    else, whose repr may hold an address, is a ``TypeError``: pass ``key=`` for such functions.
    """
    signature = inspect.signature(func)
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    arguments = dict(bound.arguments)
    first = next(iter(signature.parameters), None)
    if first in ("self", "cls"):
        arguments.pop(first)
    try:
        encoded = orjson.dumps(_tagged(arguments))
    except (TypeError, RecursionError) as exc:  # orjson.JSONEncodeError is a TypeError
        raise TypeError(
            f"cannot build a cache key for {func.__qualname__}: {exc}; pass key= to cached()"
        ) from None
    digest = hashlib.sha256(_VERSION + encoded).hexdigest()
    name = func.__qualname__.replace("<", "").replace(">", "")
    return f"{func.__module__}:{name}:{digest}"


def call_key(
    func: Callable[..., Any],
    builder: Callable[..., str] | None,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> str:
    """The key of one call of a ``@cached`` function: ``builder``'s, or :func:`function_key`."""
    if builder is None:
        return function_key(func, args, kwargs)
    key = builder(*args, **kwargs)
    if not isinstance(key, str):
        raise TypeError(f"the key builder of {func.__qualname__} returned {type(key).__name__}")
    return key


def _tagged(value: Any) -> Any:
    """``value`` as JSON that names its type: decodable back to one value, hence injective.

    A str is a JSON string, an int a JSON number (a tagged hex string beyond 64 bits), a bool
    ``true``/``false``, None ``null``; every other value is an array whose first item is a tag.
    Unordered containers (dicts, sets) are sorted, so equal ones encode alike.
    """
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value
    if kind is int:
        return value if _INT_MIN <= value < _INT_END else ["I", hex(value)]
    if kind is float:
        return ["f", repr(value)]  # repr round-trips, and tells nan, inf and -0.0 apart
    if kind is list:
        return ["l", *map(_tagged, value)]
    if kind is tuple:
        return ["t", *map(_tagged, value)]
    if kind is dict:
        return _tagged_dict(value)
    return _tagged_other(value)


def _tagged_dict(value: dict[Any, Any]) -> list[Any]:
    if all(type(k) is str for k in value):
        items = sorted(value.items())
        return ["d", *[part for k, v in items for part in (k, _tagged(v))]]
    # Other keys are sorted by their encoding, which never compares values of different types.
    pairs = sorted((_dumped(k), _tagged(v)) for k, v in value.items())
    return ["D", *[part for k, v in pairs for part in (k, v)]]


def _tagged_other(value: Any) -> Any:
    """Enums, subclasses of the builtin types, and the rest of the documented types."""
    if isinstance(value, enum.Enum):
        where = _qualified(type(value))
        if value.name is not None:
            return ["e", where, value.name]
        return ["E", where, _tagged(value.value)]  # a Flag combination without a name
    for base in _BASES:  # subclasses encode as their base type
        if isinstance(value, base):
            return _tagged(base(value))
    if isinstance(value, bytes):
        return ["b", value.hex()]
    if isinstance(value, (set, frozenset)):
        tag = "s" if isinstance(value, set) else "fs"
        return [tag, *sorted(map(_dumped, value))]
    if isinstance(value, datetime):  # before date: a datetime is a date
        return ["dt", value.isoformat()]
    if isinstance(value, date):
        return ["da", value.isoformat()]
    if isinstance(value, time):
        return ["ti", value.isoformat()]
    if isinstance(value, uuid.UUID):
        return ["u", str(value)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = [part for f in dataclasses.fields(value) for part in _field(value, f.name)]
        return ["dc", _qualified(type(value)), *fields]
    raise TypeError(f"{type(value).__name__} arguments have no stable key")


def _qualified(cls: type[Any]) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _field(instance: Any, name: str) -> tuple[str, Any]:
    return name, _tagged(getattr(instance, name))


def _dumped(value: Any) -> str:
    """The encoding of ``value`` as text: a sort key for dict keys and set items."""
    return orjson.dumps(_tagged(value)).decode()
