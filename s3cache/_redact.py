"""Secrets out of every log record while a cache holding them is open.

botocore's DEBUG logging prints each request's parameters, headers and canonical request, so an
SSE-C key (sent in a header) appears there in base64, and a signing key would wherever a
program logs it. While at least one cache with ``sse_customer_key`` or ``signing_key`` is open,
s3cache wraps the log-record factory, which every record of every logger passes through (a
filter on botocore's loggers would miss the records of their child loggers, which never meet
their parents' filters): each form a secret may be printed in (raw, ``repr``, hex, base64,
URL-safe and URL-quoted base64) is replaced by ``<redacted>`` in the message, the formatted
exception and the stack. The factory is restored once the last such cache is closed.
"""

from __future__ import annotations

import base64
import itertools
import logging
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any, Final
from urllib.parse import quote

__all__ = ["REDACTED", "forms_of", "hide"]

REDACTED: Final = "<redacted>"

_lock = threading.Lock()
_secrets: dict[int, tuple[str, ...]] = {}  # handle -> forms, for every open cache holding some
_forms: tuple[str, ...] = ()  # every form of every secret, longest first (read lock-free)
_previous: Any = None  # the factory we wrapped, while ours is installed
_numbers = itertools.count()


def forms_of(secret: bytes) -> tuple[str, ...]:
    """Every text form of ``secret`` a log line may hold, longest first."""
    b64 = base64.b64encode(secret).decode()
    urlsafe = base64.urlsafe_b64encode(secret).decode()
    candidates = {
        b64,
        b64.rstrip("="),  # unpadded, and the start of the padded form
        urlsafe.rstrip("="),
        quote(b64, safe=""),
        secret.hex(),
        secret.hex().upper(),
        repr(secret)[2:-1],  # inside b'...'
        secret.decode("latin-1"),  # the raw bytes, printed as text
    }
    return tuple(sorted(candidates, key=len, reverse=True))


def hide(owner: object, secrets: Iterable[bytes | None]) -> Callable[[], None] | None:
    """Redact ``secrets`` (None entries skipped) from every log record while ``owner`` is open:
    until the returned callable is called (idempotent), or ``owner`` is garbage-collected.
    None when there is nothing to hide."""
    forms = tuple(f for s in secrets if s for f in forms_of(s))
    if not forms:
        return None
    number = next(_numbers)
    with _lock:
        _secrets[number] = forms
        _refresh()
    return weakref.finalize(owner, _release, number)


def _release(number: int) -> None:
    with _lock:
        if _secrets.pop(number, None) is not None:
            _refresh()


def _refresh() -> None:
    """Recompute the forms; install the factory when there are some, restore it when none."""
    global _forms, _previous
    _forms = tuple(sorted({f for fs in _secrets.values() for f in fs}, key=len, reverse=True))
    current = logging.getLogRecordFactory()
    if _forms and _previous is None:
        _previous = current
        logging.setLogRecordFactory(_factory)
    elif not _forms and _previous is not None and current is _factory:
        logging.setLogRecordFactory(_previous)
        _previous = None
    # Wrapped by someone else since: ours stays in their chain, passing records through.


def _factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    previous = _previous if _previous is not None else logging.LogRecord
    record: logging.LogRecord = previous(*args, **kwargs)
    forms = _forms
    if forms:
        _scrub(record, forms)
    return record


def _scrub(record: logging.LogRecord, forms: tuple[str, ...]) -> None:
    """Replace every form in ``record``'s message, exception text and stack."""
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a bad format: logging reports it when it is emitted
        return
    if _holds(message, forms):
        record.msg, record.args = _redacted(message, forms), None
    if record.exc_info and not record.exc_text:
        text = logging.Formatter().formatException(record.exc_info)
        if _holds(text, forms):
            record.exc_text = _redacted(text, forms)
    if record.stack_info and _holds(record.stack_info, forms):
        record.stack_info = _redacted(record.stack_info, forms)


def _holds(text: str, forms: tuple[str, ...]) -> bool:
    return any(form in text for form in forms)


def _redacted(text: str, forms: tuple[str, ...]) -> str:
    for form in forms:
        text = text.replace(form, REDACTED)
    return text
