"""Coherence of reads and writes (s3cache._coherence), sans-IO: single flight and the local tier,
driven by fake fetches on one event loop, no server."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from s3cache._coherence import Coherence
from s3cache._format import Body, JsonSerializer, encode
from s3cache._local import LocalTier

HEADERS: Mapping[str, str] = {"content-type": "application/json"}
Found = tuple[Body, Mapping[str, str]] | None


class FakeStore:
    """GETs that wait until released, counted."""

    def __init__(self, body: bytes = b'"v"') -> None:
        self.body = body
        self.calls = 0
        self.release = asyncio.Event()

    async def get(self, okey: str) -> Found:
        self.calls += 1
        await self.release.wait()
        return self.body, HEADERS


async def test_readers_of_a_key_share_one_fetch() -> None:
    coherence = Coherence(None)
    store = FakeStore()
    readers = [asyncio.create_task(coherence.fetch("k", store.get)) for _ in range(5)]
    await asyncio.sleep(0)
    store.release.set()
    fetched = await asyncio.gather(*readers)
    assert store.calls == 1
    assert {id(f) for f in fetched} == {id(fetched[0])}
    assert fetched[0].found == (b'"v"', HEADERS)


async def test_an_answer_fills_the_tier_unless_a_write_began_since_it_was_sent() -> None:
    coherence = Coherence(LocalTier(ttl=60))
    store = FakeStore()
    store.release.set()
    fetched = await coherence.fetch("k", store.get)
    coherence.keep("k", fetched, b'"v"', HEADERS, None)
    entry = coherence.cached("k", fetched.sent)
    assert entry is not None
    assert entry.body == b'"v"'

    stale = await coherence.fetch("j", store.get)
    with coherence.writing(["j"]):
        pass  # a write (that stored nothing) began and ended after the read was sent
    coherence.keep("j", stale, b'"old"', HEADERS, None)
    assert coherence.cached("j", stale.sent) is None, "an overtaken answer never fills the tier"


async def test_a_write_in_progress_makes_a_read_in_flight_old() -> None:
    coherence = Coherence(None)
    store = FakeStore()
    before = asyncio.create_task(coherence.fetch("k", store.get))
    await asyncio.sleep(0)
    with coherence.writing(["k"]):
        after = asyncio.create_task(coherence.fetch("k", store.get))
        await asyncio.sleep(0)
    store.release.set()
    await asyncio.gather(before, after)
    assert store.calls == 2, "a read after the write began sends its own request"


def test_a_write_keeps_its_value_only_alone() -> None:
    coherence = Coherence(LocalTier(ttl=60))
    payload = encode("mine", 30.0, JsonSerializer(), 0.0)
    with coherence.writing(["k"]) as write:
        write.stored(payload, 30.0, 100.0)
    entry = coherence.cached("k", 100.0)
    assert entry is not None
    assert (entry.body, entry.deadline) == (payload.body, 100.0 + 29.0), "its ttl less a second"

    with coherence.writing(["k"]) as first:
        with coherence.writing(["k"]) as second:
            second.stored(payload, None, 0.0)
        first.stored(payload, None, 0.0)
    assert coherence.cached("k", 0.0) is None, "overlapping writes: the order is unknown"


def test_a_failed_write_keeps_nothing_and_clear_forgets_all() -> None:
    coherence = Coherence(LocalTier(ttl=60))
    payload = encode("v", None, JsonSerializer(), 0.0)
    for key in ("a", "b"):
        with coherence.writing([key]) as write:
            write.stored(payload, None, 0.0)
    try:
        with coherence.writing(["a"]):
            raise RuntimeError("the PUT failed")
    except RuntimeError:
        pass
    assert coherence.cached("a", 0.0) is None
    assert coherence.cached("b", 0.0) is not None
    coherence.forget_all()
    assert coherence.cached("b", 0.0) is None


async def test_without_a_tier_everything_but_single_flight_is_a_no_op() -> None:
    coherence = Coherence(None)
    store = FakeStore()
    store.release.set()
    fetched = await coherence.fetch("k", store.get)
    coherence.keep("k", fetched, b'"v"', HEADERS, None)
    with coherence.writing(["k"]) as write:
        write.stored(encode("v", None, JsonSerializer(), 0.0), None, 0.0)
    coherence.discard("k")
    coherence.forget_all()
    assert coherence.cached("k", 0.0) is None
    assert await coherence.fill("k", lambda: asyncio.sleep(0, "made")) == "made"
