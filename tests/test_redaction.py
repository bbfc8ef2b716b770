"""No secret in any log: with DEBUG on for every logger, every operation of a cache holding an
SSE-C key and a signing key, on both request paths, leaves neither key in any form in the logs;
the redaction is there only while such a cache is open."""

from __future__ import annotations

import base64
import gc
import io
import logging
import re
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from s3cache import AsyncS3Cache, _redact

BOTH_PATHS = pytest.mark.parametrize("fast_path", [True, False], ids=["wire", "aiobotocore"])


def printed_forms(secret: bytes) -> list[str]:
    """How a key could show in a log line, worked out here rather than taken from the module."""
    b64 = base64.b64encode(secret).decode()
    return [
        b64,
        b64.rstrip("="),
        base64.urlsafe_b64encode(secret).decode().rstrip("="),
        secret.hex(),
        repr(secret),
        repr(secret)[2:-1],
        secret.decode("latin-1"),
    ]


@pytest.fixture
def debug_log() -> Iterator[io.StringIO]:
    """DEBUG for every logger, each line formatted (tracebacks too) into one root handler."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    loggers = [
        lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    saved = [(lg, lg.level, lg.disabled, lg.propagate) for lg in loggers]
    root_level = root.level
    logging.disable(logging.NOTSET)
    root.setLevel(logging.DEBUG)
    root.addHandler(handler)
    for lg in loggers:  # loggers made later start at NOTSET: they inherit DEBUG
        lg.setLevel(logging.NOTSET)
        lg.disabled, lg.propagate = False, True
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(root_level)
        for lg, level, disabled, propagate in saved:
            lg.setLevel(level)
            lg.disabled, lg.propagate = disabled, propagate


async def _every_operation(cache: AsyncS3Cache) -> None:
    await cache.set("k", {"v": 1})
    assert await cache.get("k") == {"v": 1}
    assert await cache.add("added", 2) is True
    assert await cache.exists("k")
    await cache.set_many({"a": 1, "b": 2})
    assert await cache.get_many(["a", "b"]) == {"a": 1, "b": 2}
    assert await cache.delete_many(["a", "b"]) == 2
    assert await cache.delete("added")
    assert sorted([k async for k in cache.iter_keys()]) == ["k"]
    await cache.check()
    async with cache.lock("job", ttl=5) as held:
        assert held.token > 0
    assert await cache.get_or_set("leased", lambda: 3, lease=5) == 3
    assert await cache.clear() >= 2


@BOTH_PATHS
async def test_neither_key_is_in_any_log_whatever_the_operation(
    cache_kwargs: dict[str, Any], debug_log: io.StringIO, fast_path: bool
) -> None:
    sse_key, signing_key = secrets.token_bytes(32), secrets.token_bytes(32)
    gc.collect()  # caches other tests left unclosed release their redaction
    before = logging.getLogRecordFactory()
    options: dict[str, Any] = {
        "sse_customer_key": sse_key,
        "signing_key": signing_key,
        "fast_path": fast_path,
    }
    async with AsyncS3Cache(**cache_kwargs, prefix="secret", on_error="raise", **options) as c:
        assert logging.getLogRecordFactory() is _redact._factory  # redacting while it is open
        await _every_operation(c)
        logging.getLogger("app").debug("the app logs %r and %s", signing_key, sse_key.hex())
        try:
            raise RuntimeError(base64.b64encode(sse_key).decode())
        except RuntimeError:
            logging.getLogger("app.child").exception("a failure")
    assert logging.getLogRecordFactory() is before  # restored once it is closed
    text = debug_log.getvalue()
    assert "botocore" in text  # botocore's DEBUG output is there (the checks, the listing)
    if not fast_path:  # the request headers it prints, the key's place held
        assert "'x-amz-server-side-encryption-customer-key': '<redacted>'" in text
    assert re.search("the app logs b['\"]<redacted>['\"] and <redacted>", text)
    assert "RuntimeError: <redacted>" in text
    for secret in (sse_key, signing_key):
        for form in printed_forms(secret):
            assert form not in text


def test_without_the_redaction_botocore_prints_the_key(
    cache_kwargs: dict[str, Any], debug_log: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the redaction is for: botocore's own DEBUG lines carry the SSE-C key in base64."""
    monkeypatch.setattr(_redact, "hide", lambda owner, secrets: None)
    sse_key = secrets.token_bytes(32)
    from s3cache import S3Cache

    with S3Cache(**cache_kwargs, sse_customer_key=sse_key, fast_path=False) as cache:
        cache.set("k", 1)
    assert base64.b64encode(sse_key).decode() in debug_log.getvalue()


# -- the redaction itself ----------------------------------------------------------------------


def _emit(stream: io.StringIO, *args: Any) -> str:
    logging.getLogger("s3cache.test.redaction").warning(*args)
    return stream.getvalue()


def test_it_lasts_while_any_owner_is_open_and_ends_with_the_last(debug_log: io.StringIO) -> None:
    class Owner:
        pass

    secret = secrets.token_bytes(16)
    gc.collect()
    before = logging.getLogRecordFactory()
    first, second = Owner(), Owner()
    release_first = _redact.hide(first, [secret, None])
    release_second = _redact.hide(second, [secret])
    assert release_first is not None
    assert release_second is not None
    assert _redact.hide(Owner(), [None]) is None  # nothing to hide: nothing installed
    assert "<redacted>" in _emit(debug_log, "a %s", secret.hex())
    release_first()
    release_first()  # idempotent
    assert "b <redacted>" in _emit(debug_log, "b %s", secret.hex())
    del second
    gc.collect()  # an owner never closed, collected: released too
    assert logging.getLogRecordFactory() is before
    if before is not _redact._factory:  # no other cache holding a secret is open
        assert f"c {secret.hex()}" in _emit(debug_log, "c %s", secret.hex())


def test_a_factory_installed_after_ours_is_left_in_place(debug_log: io.StringIO) -> None:
    class Owner:
        pass

    secret = secrets.token_bytes(16)
    owner = Owner()
    release = _redact.hide(owner, [secret])
    assert release is not None
    ours = logging.getLogRecordFactory()

    def theirs(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = ours(*args, **kwargs)
        record.theirs = True
        return record

    logging.setLogRecordFactory(theirs)
    try:
        release()
        assert logging.getLogRecordFactory() is theirs
        assert f"d {secret.hex()}" in _emit(debug_log, "d %s", secret.hex())  # passes through
        again = _redact.hide(owner, [secret])
        assert again is not None
        assert "e <redacted>" in _emit(debug_log, "e %s", secret.hex())  # ours, still chained
        again()
    finally:
        logging.setLogRecordFactory(ours)
        last = _redact.hide(owner, [secret])
        assert last is not None
        last()  # and that refresh restores what was there before
