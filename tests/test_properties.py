"""A stateful property test: the cache behaves like a dict, whatever the sequence of operations.

Hypothesis drives :class:`AsyncS3Cache` (or its facade :class:`S3Cache`) against a plain dict model
over moto's S3 server, with keys that alias (``a:b`` and ``a/b`` are one object), unicode and
near-limit keys, values of every supported type (``None`` and bytes included), and the local tier
on or off, on either request path (the wire path or ``fast_path=False``), through the fault
proxy, which now and then loses the response of a write after the server applied it (the retry
must learn the write's true outcome). Tags too: entries written with tags, ``invalidate`` of
some (each a miss from then on; the invalidated object stays on S3 until deleted, cleared or
replaced, and its tag record until cleared). ``get_or_set`` runs a factory that returns a value
or ``ABSENT``: the model learns tombstones (a miss for ``get``/``exists``, no factory call
within their hour, an expired object for ``add``, ``delete`` and ``clear``). Stale windows
too: some entries are set with a ttl, the server's clock is moved on at the proxy (every
answer's ``Date``), and the model judges each entry fresh, stale (past its ttl, within the
cache's ``stale_ttl``: a miss for ``get``, served at once by ``get_or_set``, which refreshes it
in the background) or expired. The default
profile keeps ``python -m nox`` fast; ``S3CACHE_PROPS=soak`` (the nox session ``soak-props``)
runs many more and longer sequences.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
import uuid
from collections.abc import Callable, Coroutine
from collections.abc import Set as AbstractSet
from typing import Any, TypeVar

import boto3
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from harness.faultproxy import Fault, FaultProxy
from s3cache import ABSENT, AsyncS3Cache, LocalTier, S3Cache, _loop
from tests.conftest import CREDENTIALS

T = TypeVar("T")

PROFILES = {
    "default": settings(
        max_examples=12,
        stateful_step_count=25,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    ),
    "soak": settings(
        max_examples=400,
        stateful_step_count=60,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    ),
}

#: Keys chosen to collide and to stress the key path: ``:`` and ``/`` alias, unicode, reserved
#: URL characters, and one whose object key is close to S3's 1,024-byte limit.
KEYS = [
    "a",
    "a:b",
    "a/b",
    "ключ:値",
    "emoji 🎉 key",
    "pct%2F+plus~tilde",
    "q?x=1&y=#frag",
    "long:" + "k" * 990,
]

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
VALUES = st.binary(max_size=40) | st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
MISSING = object()
#: Tags entries may carry; ``invalidate`` takes some of them.
TAGS = ["t1", "t2", "user:7"]
#: The ttl of ``set_expiring``, the cache's ``stale_ttl``, the step the server's clock moves on
#: by, and the furthest it goes: an entry's age is a multiple of the step (plus the seconds a
#: sequence really takes), never near a boundary (ttl, ttl + stale window), and always below
#: ``get_or_set``'s ttl of an hour.
TTL, STALE, STEP, MAX_OFFSET = 100.0, 1000.0, 200.0, 2000.0
#: What the model holds for a key whose factory returned ABSENT: a tombstone (no value).
TOMBSTONE = object()


def object_key(key: str) -> str:
    return key.replace(":", "/")


class CacheModel(RuleBasedStateMachine):
    """The cache under test against ``model``: object key -> value."""

    endpoint: str = ""
    bucket: str = ""
    proxy: FaultProxy

    def __init__(self) -> None:
        super().__init__()
        self.model: dict[str, Any] = {}
        self.tags: dict[str, frozenset[str]] = {}  # object key -> its tags (live entries)
        self.stale: set[str] = set()  # object keys invalidated but still on S3
        self.records: set[str] = set()  # tags with a record on S3
        #: object key -> (the server's clock offset when it was written, its ttl or None)
        self.written: dict[str, tuple[float, float | None]] = {}
        self.local = False
        self.runner: asyncio.Runner | None = None
        self.core: AsyncS3Cache | None = None
        self.facade: S3Cache | None = None

    @initialize(local=st.booleans(), sync=st.booleans(), fast_path=st.booleans())
    def open(self, local: bool, sync: bool, fast_path: bool) -> None:
        self.local = local
        self.proxy.move_clock(0.0)
        kwargs: dict[str, Any] = {
            "bucket": self.bucket,
            "endpoint_url": self.proxy.endpoint,
            "prefix": f"props-{uuid.uuid4().hex[:8]}",
            "on_error": "raise",
            "local": LocalTier(ttl=60) if local else None,
            "fast_path": fast_path,
            "stale_ttl": STALE,
            **CREDENTIALS,
        }
        if sync:
            self.facade = S3Cache(**kwargs)
        else:
            self.runner = asyncio.Runner()
            self.core = AsyncS3Cache(**kwargs)

    def call(self, name: str, *args: Any) -> Any:
        """``name(*args)`` on the cache, awaited on this machine's loop for the async core."""
        if self.facade is not None:
            return getattr(self.facade, name)(*args)
        assert self.runner is not None
        method: Callable[..., Coroutine[Any, Any, Any]] = getattr(self.core, name)
        return self.runner.run(method(*args))

    def settle(self) -> None:
        """Wait for the cache's background refreshes to end."""
        core = self.facade._core if self.facade is not None else self.core
        assert core is not None

        async def settled() -> None:
            await asyncio.gather(*core._refresher._tasks.values(), return_exceptions=True)

        if self.facade is not None:
            _loop.run(settled())
        else:
            assert self.runner is not None
            self.runner.run(settled())

    def teardown(self) -> None:
        self.proxy.clear()
        self.proxy.move_clock(0.0)
        if self.facade is not None:
            self.facade.close()
        if self.runner is not None:
            assert self.core is not None
            self.runner.run(self.core.close())
            self.runner.close()

    # -- rules -------------------------------------------------------------------------------

    @rule(method=st.sampled_from(["PUT", "DELETE", "POST"]))
    def lose_the_next_write(self, method: str) -> None:
        """The next PutObject, DeleteObject or DeleteObjects is applied, its answer lost: the
        model does not change, and neither may what the cache reports."""
        self.proxy.set_fault(Fault.RESET_BODY, times=1, methods={method})

    def stored(
        self,
        okey: str,
        value: Any,
        tags: frozenset[str] = frozenset(),
        ttl: float | None = None,
    ) -> None:
        self.model[okey] = value
        self.tags[okey] = tags
        self.written[okey] = (self.proxy.clock_offset, ttl)
        self.stale.discard(okey)

    def gone(self, okey: str) -> None:
        self.model.pop(okey, None)
        self.tags.pop(okey, None)
        self.written.pop(okey, None)
        self.stale.discard(okey)

    def freshness(self, okey: str) -> str:
        """``fresh``, ``stale`` or ``expired``: the model's entry under ``okey`` on the
        server's clock as the proxy moves it (``expired``: none)."""
        if okey not in self.model:
            return "expired"
        at, ttl = self.written[okey]
        age = self.proxy.clock_offset - at
        if ttl is None or age < ttl:
            return "fresh"
        if age < ttl + STALE and self.model[okey] is not TOMBSTONE:
            return "stale"
        return "expired"

    def aged(self) -> set[str]:
        """Object keys still on S3 that are no longer live (stale or expired by age)."""
        return {okey for okey in self.model if self.freshness(okey) != "fresh"}

    @rule(key=st.sampled_from(KEYS), value=VALUES)
    def set_expiring(self, key: str, value: Any) -> None:
        self.call("set", key, value, TTL)
        self.stored(object_key(key), value, ttl=TTL)

    @precondition(lambda self: not self.local and self.proxy.clock_offset < MAX_OFFSET)
    @rule()
    def age(self) -> None:
        """The server's clock moves on: entries with a ttl go stale, then expire. (Not with
        the local tier, whose entries live by this machine's clock, rightly unaware of it.)"""
        self.proxy.move_clock(self.proxy.clock_offset + STEP)

    @rule(key=st.sampled_from(KEYS), value=VALUES)
    def set(self, key: str, value: Any) -> None:
        self.call("set", key, value)
        self.stored(object_key(key), value)

    @rule(key=st.sampled_from(KEYS), value=VALUES, tags=st.sets(st.sampled_from(TAGS), min_size=1))
    def set_tagged(self, key: str, value: Any, tags: AbstractSet[str]) -> None:
        self.call("set", key, value, None, sorted(tags))
        self.stored(object_key(key), value, frozenset(tags))

    @rule(tags=st.sets(st.sampled_from(TAGS), min_size=1))
    def invalidate(self, tags: AbstractSet[str]) -> None:
        assert self.call("invalidate", *sorted(tags)) is True
        for okey in [k for k, t in self.tags.items() if t & tags]:
            del self.model[okey], self.tags[okey]
            self.stale.add(okey)
        self.records |= tags
        # S3 dates are whole seconds: a tagged write in this second would be invalidated too
        # (tested in tests/test_invalidation.py); the model's writes come from the next one.
        time.sleep(math.floor(time.time()) + 1.01 - time.time())

    def value(self, key: str) -> Any:
        """The model's live value of ``key``, or MISSING (none, a tombstone, or past its ttl)."""
        okey = object_key(key)
        if self.freshness(okey) != "fresh":
            return MISSING
        found = self.model[okey]
        return MISSING if found is TOMBSTONE else found

    @rule(key=st.sampled_from(KEYS))
    def get(self, key: str) -> None:
        assert self.call("get", key, MISSING) == self.value(key)

    @rule(key=st.sampled_from(KEYS), value=VALUES | st.just(ABSENT))
    def get_or_set(self, key: str, value: Any) -> None:
        """A factory returning ``value`` (ABSENT: a tombstone, for the hour): a value or a live
        tombstone is served without it; otherwise it runs and its result is stored."""
        okey = object_key(key)
        freshness = self.freshness(okey)
        got = self.call("get_or_set", key, lambda: value, 3600)
        if freshness == "fresh":
            expected = self.model[okey]
            assert got is ABSENT if expected is TOMBSTONE else got == expected
        elif freshness == "stale":  # served at once; the factory runs in the background
            assert got == self.model[okey]
            self.settle()
            self.stored(okey, TOMBSTONE if value is ABSENT else value, ttl=3600)
        else:
            assert got is ABSENT if value is ABSENT else got == value
            self.stored(okey, TOMBSTONE if value is ABSENT else value, ttl=3600)

    @precondition(lambda self: not self.local and self.proxy.clock_offset < MAX_OFFSET)
    @rule(key=st.sampled_from(KEYS), value=VALUES)
    def set_then_age(self, key: str, value: Any) -> None:
        """An entry with a ttl, then the clock moves on: it is stale at once (one rule, so
        that sequences of 25 steps meet stale entries)."""
        self.set_expiring(key, value)
        self.age()

    def stale_keys(self) -> list[str]:
        return [key for key in KEYS if self.freshness(object_key(key)) == "stale"]

    @precondition(lambda self: bool(self.stale_keys()))
    @rule(data=st.data(), value=VALUES | st.just(ABSENT))
    def get_or_set_stale(self, data: st.DataObject, value: Any) -> None:
        """``get_or_set`` of a key whose entry is stale: the old value at once, then the new."""
        self.get_or_set(data.draw(st.sampled_from(self.stale_keys())), value)

    @rule(key=st.sampled_from(KEYS))
    def exists(self, key: str) -> None:
        assert self.call("exists", key) is (self.value(key) is not MISSING)

    @rule(key=st.sampled_from(KEYS))
    def delete(self, key: str) -> None:
        okey = object_key(key)
        live = self.value(key) is not MISSING
        deleted = self.call("delete", key)
        if okey not in self.stale:  # an invalidated object: there, but not live to reads
            assert deleted is live
        self.gone(okey)

    @rule(key=st.sampled_from(KEYS), value=VALUES)
    def add(self, key: str, value: Any) -> None:
        absent = self.value(key) is MISSING  # an invalidated entry or a tombstone: absent
        assert self.call("add", key, value) is absent
        if absent:
            self.stored(object_key(key), value)

    @rule(keys=st.lists(st.sampled_from(KEYS), max_size=5))
    def get_many(self, keys: list[str]) -> None:
        expected = {k: self.value(k) for k in keys if self.value(k) is not MISSING}
        assert self.call("get_many", keys) == expected

    @rule(mapping=st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=4))
    def set_many(self, mapping: dict[str, Any]) -> None:
        # Two keys that alias one object in a single batch race each other: keep one of them.
        batch = {object_key(k): (k, v) for k, v in mapping.items()}
        failed = self.call("set_many", dict(batch.values()))
        assert not failed
        for okey, (_, v) in batch.items():
            self.stored(okey, v)

    @rule(keys=st.lists(st.sampled_from(KEYS), max_size=5))
    def delete_many(self, keys: list[str]) -> None:
        okeys = {object_key(k) for k in keys}
        present, stale = okeys & self.model.keys(), okeys & (self.stale | self.aged())
        live = {okey for okey in present - stale if self.model[okey] is not TOMBSTONE}
        assert len(live) <= self.call("delete_many", keys) <= len(live) + len(stale)
        for okey in okeys:
            self.gone(okey)

    @precondition(lambda self: len(self.model) > 0)
    @rule()
    def clear(self) -> None:
        assert self.call("clear") == len(self.model) + len(self.stale) + len(self.records)
        self.model.clear()
        self.tags.clear()
        self.stale.clear()
        self.records.clear()

    @invariant()
    def stats_never_count_errors(self) -> None:
        cache = self.facade if self.facade is not None else self.core
        if cache is not None:
            assert cache.stats().error_count == 0


def test_the_cache_behaves_like_a_dict(s3_endpoint: str, proxy: FaultProxy) -> None:
    bucket = f"props-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=s3_endpoint, **CREDENTIALS)
    try:
        client.create_bucket(Bucket=bucket)
    finally:
        client.close()
    attributes = {"endpoint": s3_endpoint, "bucket": bucket, "proxy": proxy}
    machine = type("Machine", (CacheModel,), attributes)
    profile = PROFILES[os.environ.get("S3CACHE_PROPS", "default")]
    run_state_machine_as_test(machine, settings=profile)
    assert proxy.count(Fault.RESET_BODY) > 0  # the machine did lose responses
    assert any(m == "PUT" and "/.s3cache/tags/" in path for m, path in proxy.paths)  # invalidated
    assert proxy.dates_shifted > 0  # the server's clock did move on
