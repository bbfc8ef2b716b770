"""The circuit breaker (``s3cache._breaker``), sans-IO on a fake clock: it opens on a run or a
ratio of transport failures only, fails fast, half-opens with exactly one probe, closes, reopens
with a growing cool-down, ignores outcomes of requests from an earlier state, and stays cheap
while healthy."""

from __future__ import annotations

import pickle
import threading

import pytest

from s3cache._breaker import (
    NEUTRAL_KINDS,
    TRANSPORT_KINDS,
    Breaker,
    BreakerEvent,
    BreakerState,
    CircuitBreaker,
    CircuitOpenError,
    breaker_config,
    counts_as_failure,
)
from s3cache.errors import S3CacheError
from tests.test_pacing import FakeClock

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


def make(
    config: Breaker | None = None, probe_timeout: float = 10.0
) -> tuple[CircuitBreaker, FakeClock, list[BreakerEvent]]:
    clock = FakeClock()
    events: list[BreakerEvent] = []
    breaker = CircuitBreaker(
        config or Breaker(failures=3, ratio=None, cooldown=2.0, max_cooldown=8.0),
        name="http://s3.test",
        probe_timeout=probe_timeout,
        clock=clock,
        on_change=events.append,
    )
    return breaker, clock, events


def fail(breaker: CircuitBreaker, kind: str = "timeout", times: int = 1) -> None:
    for _ in range(times):
        ticket = breaker.allow()
        assert ticket is not None
        breaker.record(ticket, kind)


def succeed(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        ticket = breaker.allow()
        assert ticket is not None
        breaker.record(ticket)


def opened(breaker: CircuitBreaker, clock: FakeClock) -> None:
    """Open ``breaker`` by a run of timeouts and let its cool-down pass."""
    fail(breaker, times=3)
    assert breaker.state is OPEN
    clock.now += 2.0


def test_a_run_of_transport_failures_opens_it_and_it_fails_fast() -> None:
    breaker, clock, events = make()
    fail(breaker, "timeout")
    fail(breaker, "connection")
    assert breaker.state is CLOSED
    fail(breaker, "server")
    assert breaker.state is OPEN
    assert [(e.previous, e.state, e.reason, e.cooldown) for e in events] == [
        (CLOSED, OPEN, "failures", 2.0)
    ]
    for _ in range(100):
        assert breaker.allow() is None
    error = breaker.rejection("GetObject", "p/k")
    assert isinstance(error, S3CacheError)
    assert error.kind == "circuit_open"
    assert error.retry_after == pytest.approx(2.0)
    assert "GetObject 'p/k'" in str(error)
    assert "http://s3.test" in str(error)
    clock.now += 1.5
    assert breaker.allow() is None
    assert breaker.retry_after() == pytest.approx(0.5)
    stats = breaker.stats()
    assert (stats.state, stats.opened, stats.rejected, stats.failures) == ("open", 1, 101, 3)


def test_a_success_breaks_the_run() -> None:
    breaker, _, events = make()
    for _ in range(10):
        fail(breaker, times=2)
        succeed(breaker)
    assert breaker.state is CLOSED
    assert events == []


@pytest.mark.parametrize(
    "kind",
    ["no_such_bucket", "access_denied", "credentials", "corrupt", "checksum", "encryption",
     "bucket_owner", "unsupported", "lock_not_acquired", "batch"],
)  # fmt: skip
def test_answers_of_the_server_never_count_as_failures(kind: str) -> None:
    breaker, _, events = make()
    assert not counts_as_failure(kind)
    for _ in range(50):
        fail(breaker, kind)
    assert breaker.state is CLOSED
    assert breaker.stats().failures == 0
    fail(breaker, times=2)
    fail(breaker, kind)  # the server answered: the run is broken
    fail(breaker, times=2)
    assert breaker.state is CLOSED
    assert events == []


def test_the_classification() -> None:
    assert {k for k in ("timeout", "connection", "server") if counts_as_failure(k)} == set(
        TRANSPORT_KINDS
    )
    assert not counts_as_failure(None)
    assert not counts_as_failure("circuit_open")
    assert "circuit_open" in NEUTRAL_KINDS
    assert not NEUTRAL_KINDS & TRANSPORT_KINDS


def test_half_open_admits_exactly_one_probe_and_closes_on_its_success() -> None:
    breaker, clock, events = make()
    opened(breaker, clock)
    probe = breaker.allow()
    assert probe is not None
    assert breaker.state is HALF_OPEN
    assert [breaker.allow() for _ in range(20)] == [None] * 20  # the others fail fast
    breaker.record(probe)
    assert breaker.state is CLOSED
    assert [(e.previous, e.state, e.reason) for e in events][1:] == [
        (OPEN, HALF_OPEN, "cooldown_over"),
        (HALF_OPEN, CLOSED, "probe_succeeded"),
    ]
    succeed(breaker, 5)
    stats = breaker.stats()
    assert (stats.state, stats.opened, stats.closed, stats.probes) == ("closed", 1, 1, 1)


def test_threads_racing_in_half_open_get_one_probe_between_them() -> None:
    breaker, clock, _ = make()
    opened(breaker, clock)
    start = threading.Barrier(8)
    tickets: list[int | None] = []

    def race() -> None:
        start.wait()
        tickets.extend(breaker.allow() for _ in range(100))

    threads = [threading.Thread(target=race) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(tickets) == 800
    assert sum(t is not None for t in tickets) == 1


def test_on_change_runs_outside_the_lock() -> None:
    seen: list[tuple[BreakerState, int | None]] = []
    breaker = CircuitBreaker(
        Breaker(failures=1, ratio=None),
        clock=FakeClock(),
        on_change=lambda event: seen.append((event.state, breaker.allow())),
    )
    fail(breaker)  # the callback calls back into the breaker: no deadlock
    assert seen == [(OPEN, None)]


def test_a_failed_probe_reopens_it_with_a_doubled_cooldown_up_to_the_cap() -> None:
    breaker, clock, events = make()
    opened(breaker, clock)
    for expected in (4.0, 8.0, 8.0):
        probe = breaker.allow()
        assert probe is not None
        breaker.record(probe, "timeout")
        assert breaker.state is OPEN
        assert events[-1].reason == "probe_failed"
        assert events[-1].cooldown == expected
        clock.now += expected - 0.01
        assert breaker.allow() is None
        clock.now += 0.01
    probe = breaker.allow()
    assert probe is not None
    breaker.record(probe)
    assert breaker.state is CLOSED
    fail(breaker, times=3)  # a new incident starts from the first cool-down again
    assert events[-1].cooldown == 2.0
    stats = breaker.stats()
    assert (stats.opened, stats.reopened, stats.closed) == (2, 3, 1)


def test_a_probe_that_never_reports_frees_its_slot_after_probe_timeout() -> None:
    breaker, clock, _ = make(probe_timeout=5.0)
    opened(breaker, clock)
    lost = breaker.allow()
    assert lost is not None
    clock.now += 4.9
    assert breaker.allow() is None
    clock.now += 0.2
    probe = breaker.allow()
    assert probe is not None
    breaker.record(lost, "timeout")  # the vanished probe's late outcome changes nothing
    assert breaker.state is HALF_OPEN
    breaker.record(probe)
    assert breaker.state is CLOSED


def test_an_abandoned_probe_frees_its_slot_at_once() -> None:
    breaker, clock, _ = make()
    opened(breaker, clock)
    probe = breaker.allow()
    assert probe is not None
    breaker.record(probe, "closed")  # neutral: no verdict on the store
    assert breaker.state is HALF_OPEN
    second = breaker.allow()
    assert second is not None
    breaker.abandon(second)
    third = breaker.allow()
    assert third is not None
    breaker.record(third, "no_such_bucket")  # the server answered: it is up
    assert breaker.state is CLOSED


def test_outcomes_of_requests_from_before_a_change_of_state_are_ignored() -> None:
    breaker, clock, _ = make()
    stragglers = [breaker.allow() for _ in range(5)]  # sent into a black hole
    fail(breaker, times=3)
    opened_epoch = breaker.epoch
    clock.now += 2.0
    probe = breaker.allow()
    assert probe is not None
    for ticket in stragglers:
        assert ticket is not None
        breaker.record(ticket, "timeout")  # they time out while the probe is out
    assert breaker.state is HALF_OPEN
    breaker.record(probe)
    assert breaker.state is CLOSED
    for ticket in stragglers:  # and again after it closed: still nothing
        assert ticket is not None
        breaker.record(ticket, "timeout")
    assert breaker.state is CLOSED
    assert breaker.epoch > opened_epoch
    assert breaker.stats().failures == 3 + 10  # counted for stats, not for the state


def ratio_breaker() -> tuple[CircuitBreaker, FakeClock, list[BreakerEvent]]:
    return make(Breaker(failures=None, ratio=0.5, window=10.0, min_calls=20, cooldown=1.0))


def test_ratio_mode_opens_when_half_the_calls_in_the_window_fail() -> None:
    breaker, clock, events = ratio_breaker()
    for _ in range(9):  # 9 of 18: under min_calls
        fail(breaker)
        succeed(breaker)
        clock.now += 0.1
    assert breaker.state is CLOSED
    fail(breaker)
    succeed(breaker)
    assert breaker.state is CLOSED  # 10 of 20 is reached only by a failure being counted
    fail(breaker)
    assert breaker.state is OPEN
    assert events[-1].reason == "ratio"


def test_ratio_mode_ignores_a_sporadic_failure_among_many_successes() -> None:
    breaker, clock, _ = ratio_breaker()
    for _ in range(50):
        for _ in range(8):
            succeed(breaker)
        fail(breaker, times=2)  # 20 %
        clock.now += 0.25
    assert breaker.state is CLOSED


def test_ratio_mode_counts_successes_before_an_incident_by_their_rate() -> None:
    """Healthy successes cost no clock read; when failures start, those within the window are
    estimated from their rate: 1,000 successes over 100 s are about 100 in the last 10 s."""
    breaker, clock, _ = ratio_breaker()
    reads = clock.reads
    for _ in range(1000):
        succeed(breaker)
    assert clock.reads == reads  # no clock on the healthy path
    clock.now += 100.0
    failures = 0
    while breaker.state is CLOSED:
        fail(breaker)
        failures += 1
    assert failures == 100  # 100 failures of 200 calls in the window: half


def test_ratio_mode_forgets_failures_that_left_the_window() -> None:
    breaker, clock, _ = ratio_breaker()
    fail(breaker, times=9)
    clock.now += 11.0
    for _ in range(30):
        fail(breaker)
        succeed(breaker, 2)
    assert breaker.state is CLOSED  # the nine old failures no longer count
    breaker2, clock2, _ = ratio_breaker()
    fail(breaker2, times=9)
    clock2.now += 5.0
    fail(breaker2, times=11)
    assert breaker2.state is OPEN


def test_run_and_ratio_together() -> None:
    breaker, _, events = make(Breaker(failures=5, ratio=0.5, min_calls=20))
    fail(breaker, times=5)
    assert breaker.state is OPEN
    assert events[-1].reason == "failures"


def test_the_healthy_fast_path_reads_no_clock() -> None:
    for config in (Breaker(), Breaker(ratio=None), Breaker(failures=None)):
        breaker, clock, _ = make(config)
        reads = clock.reads
        succeed(breaker, 1000)
        assert clock.reads == reads


def test_config_validation_and_switches() -> None:
    assert breaker_config(None) is None
    assert breaker_config(False) is None
    assert breaker_config(True) == Breaker()
    custom = Breaker(failures=2)
    assert breaker_config(custom) is custom
    with pytest.raises(TypeError, match="breaker"):
        breaker_config("on")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="failures or ratio"):
        Breaker(failures=None, ratio=None)
    with pytest.raises(ValueError, match="failures"):
        Breaker(failures=0)
    with pytest.raises(ValueError, match="ratio"):
        Breaker(ratio=1.5)
    with pytest.raises(ValueError, match="cooldown"):
        Breaker(cooldown=0)
    with pytest.raises(ValueError, match="max_cooldown"):
        Breaker(cooldown=10, max_cooldown=5)
    with pytest.raises(TypeError, match="window"):
        Breaker(window="10")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="min_calls"):
        Breaker(min_calls=True)


def test_circuit_open_error_pickles_with_its_retry_after() -> None:
    error = CircuitOpenError("GetObject 'k': open", 1.5)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is CircuitOpenError
    assert (str(copy), copy.retry_after, copy.kind) == (str(error), 1.5, "circuit_open")
