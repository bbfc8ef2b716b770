"""The adaptive pacer (``s3cache._pacing``), sans-IO, on a fake clock: unlimited until throttled,
one back-off per round trip, reservations spaced at the rate and never past the caller's bound,
CUBIC recovery back to unlimited."""

from __future__ import annotations

from typing import Any

import pytest

from s3cache._pacing import Pacer, is_throttling


class FakeClock:
    """Time that moves only when told to; counts how often it is read."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now


def replies(pacer: Pacer, clock: FakeClock, rate: float, seconds: float) -> None:
    """Unthrottled replies at ``rate`` per second for ``seconds``."""
    for _ in range(round(rate * seconds)):
        clock.now += 1 / rate
        pacer.observe(False, pacer.epoch)


def throttled_at(rate: float) -> tuple[Pacer, FakeClock]:
    """A pacer that saw 2 s of replies at ``rate`` per second, then one throttle."""
    clock = FakeClock()
    pacer = Pacer(clock=clock)
    replies(pacer, clock, rate, 2.0)
    pacer.observe(True, pacer.epoch)
    return pacer, clock


def test_unthrottled_sends_are_unlimited_without_reading_the_clock() -> None:
    clock = FakeClock()
    pacer = Pacer(clock=clock)
    replies(pacer, clock, 500, 3.0)
    before = clock.reads
    assert not pacer.limited
    assert [pacer.reserve(0.0) for _ in range(1000)] == [0.0] * 1000
    assert clock.reads == before  # the fast path: no clock, just an attribute read
    state = pacer.state()
    assert state.rate is None
    assert state.measured_rate == pytest.approx(500)
    assert (state.throttles, state.delayed, state.refused) == (0, 0, 0)


def test_a_throttle_cuts_the_rate_to_beta_times_the_measured_rate() -> None:
    pacer, _ = throttled_at(100)
    assert pacer.limited
    assert pacer.rate == pytest.approx(70)
    assert (pacer.throttles, pacer.backoffs, pacer.epoch) == (1, 1, 1)


def test_replies_to_requests_sent_before_the_backoff_do_not_cut_it_again() -> None:
    clock = FakeClock()
    pacer = Pacer(clock=clock)
    replies(pacer, clock, 100, 2.0)
    in_flight = pacer.epoch  # 50 requests sent, then all answered SlowDown
    for _ in range(50):
        pacer.observe(True, in_flight)
    assert pacer.rate == pytest.approx(70)
    assert (pacer.throttles, pacer.backoffs) == (50, 1)
    pacer.observe(True, pacer.epoch)  # sent after the back-off, still throttled: cut again
    assert pacer.rate == pytest.approx(49)
    assert pacer.backoffs == 2


def test_reservations_are_spaced_at_the_rate() -> None:
    pacer, clock = throttled_at(100)
    waits = [pacer.reserve() for _ in range(4)]
    assert waits == pytest.approx([1 / 70, 2 / 70, 3 / 70, 4 / 70])
    assert pacer.delayed == 4
    clock.now += 1.0  # a second's tokens: the 4 owed are repaid first
    assert [pacer.reserve() for _ in range(66)] == [0.0] * 66
    assert pacer.reserve() == pytest.approx(1 / 70)
    clock.now += 10.0  # idle: at most one second of tokens is banked
    assert [pacer.reserve() for _ in range(70)] == pytest.approx([0.0] * 70)
    assert pacer.reserve() == pytest.approx(1 / 70)


def test_a_wait_past_the_callers_bound_is_refused_and_takes_nothing() -> None:
    pacer, _ = throttled_at(10)
    assert pacer.rate == pytest.approx(7)
    first = pacer.reserve(limit=1.0)
    assert first == pytest.approx(1 / 7)
    assert pacer.reserve(limit=0.2) is None  # would wait 2/7 s
    assert pacer.reserve(limit=0.0) is None
    assert pacer.refused == 2
    assert pacer.reserve(limit=0.3) == pytest.approx(2 / 7)  # the refused took no slot


def test_no_wait_is_ever_longer_than_the_bound() -> None:
    """However many callers pile up, each waits at most its bound or is refused."""
    pacer, clock = throttled_at(5)
    granted = []
    for _ in range(500):
        wait = pacer.reserve(limit=2.0)
        if wait is not None:
            granted.append(wait)
        clock.now += 0.001
    assert max(granted) <= 2.0
    assert len(granted) < 20  # about 3.5 per second of the bound at 3.5/s
    assert pacer.refused == 500 - len(granted)


def test_repeated_throttles_stop_at_the_minimum_rate() -> None:
    pacer, clock = throttled_at(100)
    for _ in range(40):
        clock.now += 0.01
        pacer.observe(True, pacer.epoch)
    assert pacer.rate == pytest.approx(0.5)


def test_the_rate_recovers_along_cubic_and_then_stops_limiting() -> None:
    pacer, clock = throttled_at(100)
    backoff = clock.now
    k = (100 * 0.3 / 0.4) ** (1 / 3)  # seconds until the rate is back where it was cut
    replies(pacer, clock, 100, k / 2)
    halfway = pacer.rate
    assert halfway is not None
    assert 70 < halfway < 100
    replies(pacer, clock, 100, backoff + k - clock.now)
    assert pacer.rate == pytest.approx(100, rel=0.02)
    assert pacer.limited  # still paced: twice the measured rate not reached yet
    replies(pacer, clock, 100, (100 / 0.4) ** (1 / 3) + 0.1)  # past 0.4 t^3 = 100
    assert not pacer.limited
    assert pacer.rate is None
    before = clock.reads
    assert pacer.reserve(0.0) == 0.0
    assert clock.reads == before


def test_a_throttle_in_the_first_half_second_uses_the_partial_rate() -> None:
    clock = FakeClock()
    pacer = Pacer(clock=clock)
    replies(pacer, clock, 200, 0.1)  # 20 replies in 0.1 s: 40/s over the half-second bucket
    pacer.observe(True, pacer.epoch)
    assert pacer.rate == pytest.approx(0.7 * 21 / 0.5)


def test_an_observe_without_epoch_counts_as_current() -> None:
    pacer, _ = throttled_at(100)
    pacer.observe(True)
    assert pacer.backoffs == 2


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (503, "SlowDown", True),
        (503, None, True),  # a HEAD reply: no body, the status says it
        (503, "ServiceUnavailable", True),
        (429, None, True),
        (400, "Throttling", True),
        (400, "RequestLimitExceeded", True),
        (500, "InternalError", False),
        (404, "NoSuchKey", False),
        (200, None, False),
    ],
)
def test_throttling_replies_are_recognised(status: int, code: str | None, expected: bool) -> None:
    assert is_throttling(status, code) is expected


@pytest.mark.parametrize(
    "options", [{"beta": 1.0}, {"beta": 0.0}, {"scale": 0.0}, {"min_rate": -1.0}]
)
def test_bad_parameters_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be"):
        Pacer(**options)
