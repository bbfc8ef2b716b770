"""The values-seen map of stale_if_error (``s3cache._last_seen``), pure, on a fake clock: kept
only once armed, served within the window past the ttl and not after, bounded (the least
recently seen forgotten first), forgotten on a delete or clear."""

from __future__ import annotations

import pytest

from s3cache._last_seen import NOTHING, LastSeen
from tests.test_pacing import FakeClock


def armed(max_keys: int = 1024) -> tuple[LastSeen, FakeClock]:
    clock = FakeClock()
    seen = LastSeen(max_keys, clock=clock)
    seen.armed = True
    return seen, clock


def test_nothing_is_kept_until_armed() -> None:
    seen = LastSeen()
    seen.keep("k", "v", 60)
    assert len(seen) == 0
    assert seen.within("k", 1e9) is NOTHING


def test_served_within_the_window_past_the_ttl_and_not_after() -> None:
    seen, clock = armed()
    seen.keep("k", {"v": 1}, 5.0)
    clock.now += 5.0 + 10.0
    assert seen.within("k", 10.0) == {"v": 1}
    assert seen.within("k", 9.9) is NOTHING  # past this window: forgotten
    assert seen.within("k", 10.0) is NOTHING


def test_never_expiring_and_already_stale_values() -> None:
    seen, clock = armed()
    seen.keep("forever", "f", None)
    seen.keep("stale", "s", -3.0)  # read 3 s past its ttl
    clock.now += 1e6
    assert seen.within("forever", 1.0) == "f"
    assert seen.within("stale", 1e6 + 3.0) == "s"


def test_bounded_least_recently_seen_first() -> None:
    seen, _ = armed(max_keys=2)
    seen.keep("a", 1, 60)
    seen.keep("b", 2, 60)
    seen.keep("a", 3, 60)  # seen again: the most recent
    seen.keep("c", 4, 60)
    assert len(seen) == 2
    assert seen.within("b", 1) is NOTHING
    assert (seen.within("a", 1), seen.within("c", 1)) == (3, 4)


def test_forget_and_clear() -> None:
    seen, _ = armed()
    seen.keep("a", 1, 60)
    seen.keep("b", 2, 60)
    seen.forget("a")
    assert seen.within("a", 1) is NOTHING
    seen.clear()
    assert len(seen) == 0


def test_bad_bound() -> None:
    with pytest.raises(ValueError, match="max_keys"):
        LastSeen(0)
