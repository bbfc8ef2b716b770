"""Freshness decisions (``s3cache._freshness``), sans-IO: XFetch against its closed form and in a
simulated stampede, window boundaries at S3's one-second resolution, garbage metadata, tombstones
(and what older readers make of them), the refresh back-off."""

from __future__ import annotations

import copy
import math
import pickle
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from s3cache import _expiry, _format
from s3cache._expiry import TTL_HEADER
from s3cache._format import JsonSerializer, Payload
from s3cache._freshness import (
    ABSENT,
    ABSENT_HEADER,
    COMPUTE_HEADER,
    STALE_HEADER,
    Absent,
    EntryFacts,
    Policy,
    RefreshBackoff,
    Verdict,
    age_bounds,
    early_beta,
    format_compute,
    is_tombstone,
    judge,
    parse_seconds,
    policy,
    read_facts,
    serves_stale_on,
    stale_window,
    tombstone,
    with_freshness,
    xfetch,
    xfetch_probability,
)
from tests.test_pacing import FakeClock

T0 = 1_700_000_000.0  # a whole second


def http_date(epoch: float) -> str:
    """An HTTP date as S3 sends one: whole seconds, truncated."""
    return format_datetime(datetime.fromtimestamp(epoch, tz=UTC), usegmt=True)


def headers_of(payload: Payload, written: float, now: float) -> dict[str, str]:
    """The lower-cased headers a GET of ``payload``, PUT at ``written``, returns at ``now``."""
    headers = {
        "last-modified": http_date(written),
        "date": http_date(now),
        "content-type": payload.content_type,
    }
    headers.update({"x-amz-meta-" + k: v for k, v in payload.metadata.items()})
    if payload.expires is not None:
        headers["expires"] = http_date(payload.expires.timestamp())
    return headers


def entry(ttl: float, compute: float | None = None, stale: float | None = None) -> Payload:
    payload = _format.encode({"v": 1}, float(ttl), JsonSerializer(), T0)
    return with_freshness(payload, compute, None if stale is None else float(stale))


def old_reader_expired(headers: dict[str, str], now: float) -> bool:
    """Today's s3cache reader: expired per ``x-amz-meta-s3cache-ttl`` (or ``Expires``)."""
    return _expiry.is_expired(_expiry.safe_remaining_ttl(headers, now))


def litellm_expired(headers: dict[str, str], now: float) -> bool:
    """litellm's S3Cache: expired when ``Expires`` is past on its own clock."""
    return _expiry.parse_http_date(headers["expires"]) < now


RNG = random.Random(0)

# -- XFetch ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("remaining", "delta", "beta"),
    [(0.5, 0.2, 1.0), (0.2, 0.2, 1.0), (1.0, 0.5, 2.0), (3.0, 1.0, 1.0), (0.05, 0.2, 1.0)],
)
def test_xfetch_refreshes_with_the_closed_form_probability(
    remaining: float, delta: float, beta: float
) -> None:
    rng = random.Random(42)
    draws = 20_000
    hits = sum(xfetch(remaining, delta, beta, rng) for _ in range(draws))
    p = math.exp(-remaining / (delta * beta))
    assert xfetch_probability(remaining, delta, beta) == pytest.approx(p)
    sigma = math.sqrt(p * (1 - p) / draws)
    assert abs(hits / draws - p) <= 4.5 * sigma + 1e-9


def test_judge_draws_xfetch_for_fresh_entries_only_with_a_compute_time_and_beta() -> None:
    rng = random.Random(7)
    facts = EntryFacts(remaining=0.3, compute=0.2)
    early = sum(judge(facts, Policy(beta=1.0), rng) is Verdict.EARLY for _ in range(20_000))
    assert early / 20_000 == pytest.approx(math.exp(-1.5), abs=0.015)
    assert judge(facts, Policy(), rng) is Verdict.FRESH  # early not asked for
    assert judge(EntryFacts(remaining=0.0001), Policy(beta=5.0), rng) is Verdict.FRESH  # no delta
    assert judge(EntryFacts(remaining=0.0, compute=0.2), Policy(beta=1.0), rng) is Verdict.EARLY
    assert judge(EntryFacts(remaining=None, compute=9.0), Policy(beta=9.0), rng) is Verdict.FRESH


def stampede_period(readers: int, delta: float, rng: random.Random) -> tuple[int, int, float]:
    """One ttl period's end for ``readers`` each reading every 50 ms (Poisson arrivals).

    The first EARLY verdict starts a refresh that lands ``delta`` s later; reads before it lands
    still judge the old entry. Returns (EARLY draws, reads that found it expired, seconds left
    before expiry when the refresh started). Reads long before the end are skipped: there the
    chance of an early refresh is below e^-5 for the whole stretch.
    """
    rate = readers / 0.05
    start = delta * (math.log(rate * delta) + 5)
    options = Policy(beta=1.0)
    t, first, draws, expired = 0.0, -1.0, 0, 0
    while first < 0 or t < first + delta:
        t += rng.expovariate(rate)
        verdict = judge(EntryFacts(start - t, compute=delta), options, rng)
        if verdict is Verdict.EARLY:
            draws += 1
            first = t if first < 0 else first
        elif verdict is Verdict.EXPIRED:
            expired += 1
    return draws, expired, start - first


def test_xfetch_stampede_refreshes_once_before_expiry_whatever_the_number_of_readers() -> None:
    """The XFetch property: the number of early draws does not grow with the readers (it is
    about e, the first plus e - 1 while its refresh runs); single flight joins them into one
    refresh, which lands before the entry expires, so no reader waits."""
    rng = random.Random(2015)
    means = []
    for readers in (16, 64, 160):
        periods = [stampede_period(readers, 0.2, rng) for _ in range(120)]
        means.append(sum(p[0] for p in periods) / len(periods))
        assert sum(p[1] for p in periods) == 0  # no read ever found the entry expired
        assert min(p[2] for p in periods) > 0.2  # each refresh started over delta before expiry
    assert all(1.5 <= m <= 4.0 for m in means), means
    assert max(means) / min(means) < 1.6, means  # flat in the number of readers


# -- windows, on the server's clock ---------------------------------------------------------


def test_stale_window_needs_both_reader_and_writer() -> None:
    assert stale_window(None, 300.0) == 0.0
    assert stale_window(60.0, None) == 0.0
    assert stale_window(60.0, 300.0) == 60.0
    assert stale_window(600.0, 300.0) == 300.0


@pytest.mark.parametrize(
    ("age", "verdict"),
    [
        (58, Verdict.FRESH),  # remaining = 60 - (58 + 1) = 1
        (59, Verdict.FRESH),  # remaining 0: live to the last second that surely is
        (60, Verdict.STALE),  # might be 60.9 s old: never called fresh
        (89, Verdict.STALE),  # 30 s over at most
        (90, Verdict.ERROR_ONLY),  # might be 31 s over
        (149, Verdict.ERROR_ONLY),
        (150, Verdict.EXPIRED),
    ],
)
def test_window_boundaries_at_one_second_resolution(age: int, verdict: Verdict) -> None:
    payload = entry(60, compute=0.5, stale=30)
    now = T0 + age
    facts = read_facts(headers_of(payload, T0, now), now)
    options = policy(stale_ttl=30, stale_if_error=90)
    assert judge(facts, options, RNG) is verdict
    if verdict is not Verdict.FRESH:  # what an older reader makes of the same entry
        assert old_reader_expired(headers_of(payload, T0, now), now)
        # litellm reads its own clock: within the second that Date names, past Expires
        assert litellm_expired(headers_of(payload, T0, now), now + 0.5)


def test_sub_second_times_are_judged_conservatively() -> None:
    """Last-Modified and Date truncate to the second, so whatever the true write and read times
    within them, a FRESH verdict means the true age is within the ttl, and STALE within the
    stale window past it: an entry that might be expired is never called fresh."""
    rng = random.Random(5)
    payload = entry(60, stale=10)
    options = policy(stale_ttl=10)
    seen = set()
    for _ in range(5000):
        written = T0 + rng.random() * 3
        now = written + rng.uniform(55, 75)
        facts = read_facts(headers_of(payload, written, now), now)
        verdict = judge(facts, options, RNG)
        seen.add(verdict)
        low, high = age_bounds(headers_of(payload, written, now), now)
        assert low <= now - written <= high
        if verdict is Verdict.FRESH:
            assert now - written <= 60
        elif verdict is Verdict.STALE:
            assert 60 - 2 < now - written <= 70  # at most two seconds early, never late
        else:
            assert now - written > 70 - 2
    assert seen == {Verdict.FRESH, Verdict.STALE, Verdict.EXPIRED}


def test_written_late_in_a_second_and_read_early_in_one() -> None:
    """Written at .9 s (Last-Modified says .0) and read at .1 s: the true age of 59.2 s is
    below Date - Last-Modified + 1 s = 60 s, which is what counts: fresh, 0 s left."""
    payload = entry(60)
    written, now = T0 + 0.9, T0 + 59.1
    headers = headers_of(payload, written, now)
    assert read_facts(headers, now).remaining == 0.0
    assert age_bounds(headers, now) == (58.0, 60.0)
    later = T0 + 60.1  # true age 59.2 s still, but Date says 60: might be 61 s old
    assert read_facts(headers_of(payload, written, later), later).remaining == -1.0


def test_local_tier_ages_facts_without_a_request() -> None:
    facts = EntryFacts(remaining=5.0, stale=30.0)
    assert facts.aged(0) is facts
    assert judge(facts.aged(4.0), policy(stale_ttl=30), RNG) is Verdict.FRESH
    assert judge(facts.aged(6.0), policy(stale_ttl=30), RNG) is Verdict.STALE
    assert judge(facts.aged(40.0), policy(stale_ttl=30), RNG) is Verdict.EXPIRED
    assert EntryFacts(None).aged(1e9).remaining is None


def test_a_stale_entry_is_expired_for_every_older_reader() -> None:
    payload = entry(60, compute=2.5, stale=3600)
    assert payload.metadata[_expiry.TTL_METADATA] == "60"  # the fresh ttl, as before
    assert payload.cache_control == "max-age=60"
    assert payload.expires == datetime.fromtimestamp(T0 + 60, tz=UTC)
    for age in (60, 61, 600, 3000):
        headers = headers_of(payload, T0, T0 + age)
        assert read_facts(headers, T0 + age).stale == 3600
        assert old_reader_expired(headers, T0 + age)
        assert litellm_expired(headers, T0 + age + 1)


def test_entries_without_the_new_fields_are_judged_as_before() -> None:
    plain = _format.encode("v", 60.0, JsonSerializer(), T0)
    assert with_freshness(plain, None, None) is plain
    never = _format.encode("v", None, JsonSerializer(), T0)
    assert with_freshness(never, 1.0, 30.0) is never  # no ttl: never stale, never early
    for age in (10, 59, 60, 61, 500):
        headers = headers_of(plain, T0, T0 + age)
        facts = read_facts(headers, T0 + age)
        assert facts.stale is None
        assert facts.compute is None
        assert facts.remaining == _expiry.safe_remaining_ttl(headers, T0 + age)
        # no stale window recorded: a reader asking for one gets none
        verdict = judge(facts, policy(stale_ttl=300), RNG)
        assert (verdict is Verdict.EXPIRED) == old_reader_expired(headers, T0 + age)
    litellm_only = {"expires": http_date(T0 + 60), "date": http_date(T0 + 30)}
    assert judge(read_facts(litellm_only, 0.0), Policy(), RNG) is Verdict.FRESH


# -- garbage metadata -------------------------------------------------------------------------


GARBAGE = ["", "abc", "-5", "+5", "1e3", "nan", "inf", " 5", "5 ", "1_000", "0x10", "½"]


@pytest.mark.parametrize("raw", [*GARBAGE, "99999999999999", "1." + "0" * 18])
def test_unreadable_numbers_count_as_absent(raw: str) -> None:
    assert parse_seconds(raw) is None


def test_readable_numbers() -> None:
    assert parse_seconds("60") == 60.0
    assert parse_seconds("0.213") == 0.213
    assert parse_seconds("1.0000000000000002") == 1.0000000000000002
    assert parse_seconds(None) is None
    assert parse_seconds("10000000000") == 1e10
    assert format_compute(0.2134567) == "0.213"
    assert format_compute(12.5) == "12.5"
    assert format_compute(0.0001) == "0"
    assert format_compute(-3.0) == "0"
    assert format_compute(math.nan) == "0"
    assert parse_seconds(format_compute(1e20)) == 1e10


def test_garbage_freshness_fields_are_absent_never_fresh() -> None:
    payload = entry(60, compute=0.5, stale=30)
    now = T0 + 70  # 11 s past the ttl, within the recorded stale window
    headers = headers_of(payload, T0, now)
    assert judge(read_facts(headers, now), policy(stale_ttl=30), RNG) is Verdict.STALE
    headers[STALE_HEADER] = "thirty"
    facts = read_facts(headers, now)
    assert facts.stale is None
    assert judge(facts, policy(stale_ttl=30), RNG) is Verdict.EXPIRED  # no window: not stale
    fresh = headers_of(payload, T0, T0 + 10)
    fresh[COMPUTE_HEADER] = "-1"
    assert read_facts(fresh, T0 + 10).compute is None
    assert judge(read_facts(fresh, T0 + 10), policy(early=100.0), RNG) is Verdict.FRESH


@pytest.mark.parametrize(
    "change",
    [
        {TTL_HEADER: "sixty"},
        {TTL_HEADER: "0"},
        {TTL_HEADER: "-60"},
        {"last-modified": "yesterday"},
        {"date": "now"},
    ],
)
def test_unreadable_expiry_is_dead_not_even_stale_if_error(change: dict[str, str]) -> None:
    headers = headers_of(entry(60, stale=30), T0, T0 + 5)
    headers.update(change)
    facts = read_facts(headers, T0 + 5)
    assert facts.dead
    assert judge(facts, policy(stale_ttl=30, stale_if_error=1e9), RNG) is Verdict.EXPIRED


def test_missing_last_modified_and_garbled_expires_are_dead() -> None:
    headers = headers_of(entry(60), T0, T0 + 5)
    del headers["last-modified"]
    assert read_facts(headers, T0).dead
    assert read_facts({"expires": "soon", "date": http_date(T0)}, T0).dead


# -- tombstones -------------------------------------------------------------------------------


def test_a_tombstone_is_a_negative_entry_with_its_own_ttl() -> None:
    stone = tombstone(30.0)
    headers = headers_of(stone, T0, T0 + 10)
    assert is_tombstone(headers)
    assert not is_tombstone(headers_of(entry(60), T0, T0 + 10))
    facts = read_facts(headers, T0 + 10)
    assert facts.tombstone
    assert facts.remaining == 30 - 11
    assert judge(facts, policy(stale_ttl=300, stale_if_error=300, early=True), RNG) is (
        Verdict.FRESH
    )
    last = read_facts(headers_of(stone, T0, T0 + 29), T0 + 29)
    assert last.remaining == 0.0
    assert judge(last, Policy(), RNG) is Verdict.FRESH
    late = read_facts(headers_of(stone, T0, T0 + 30), T0 + 30)
    assert judge(late, policy(stale_ttl=300, stale_if_error=300), RNG) is Verdict.EXPIRED


def test_a_tombstone_is_no_value_for_any_older_reader() -> None:
    stone = tombstone(3600.0)
    assert len(stone.body) < 16
    for age in (0, 1, 100):
        headers = headers_of(stone, T0, T0 + age)
        assert old_reader_expired(headers, T0 + age)
        assert litellm_expired(headers, T0 + age)
    # a reader that ignored every expiry field would find the body unreadable: a miss
    with pytest.raises(ValueError, match="neither JSON"):
        _format.decode(stone.body, stone.content_type, JsonSerializer())


def test_a_stored_none_is_a_value_not_a_tombstone() -> None:
    payload = _format.encode(None, 60.0, JsonSerializer(), T0)
    headers = headers_of(payload, T0, T0 + 1)
    assert not is_tombstone(headers)
    assert not read_facts(headers, T0 + 1).tombstone
    assert _format.decode(payload.body, payload.content_type, JsonSerializer()) is None


@pytest.mark.parametrize("garbage", ["", "x", "0", "-30", "1e9"])
def test_a_garbled_tombstone_is_expired_never_a_value(garbage: str) -> None:
    headers = headers_of(tombstone(30.0), T0, T0 + 1)
    headers[ABSENT_HEADER] = garbage
    facts = read_facts(headers, T0 + 1)
    assert facts.dead
    assert judge(facts, policy(stale_if_error=1e9), RNG) is Verdict.EXPIRED


def test_absent_is_a_falsy_singleton_that_survives_copies() -> None:
    assert repr(ABSENT) == "s3cache.ABSENT"
    assert not ABSENT
    assert pickle.loads(pickle.dumps(ABSENT)) is ABSENT
    assert copy.deepcopy(ABSENT) is ABSENT

    def load(found: bool) -> int | Absent:
        return 1 if found else ABSENT

    result = load(False)
    assert result is ABSENT
    value = load(True)
    assert value is not ABSENT
    assert value + 1 == 2  # narrowed to int for the type checker


# -- options and failure kinds ----------------------------------------------------------------


def test_policy_validates_its_options() -> None:
    assert policy().off
    assert policy(stale_ttl=0, stale_if_error=timedelta(0), early=False).off
    assert policy(stale_ttl=timedelta(minutes=1)).stale_ttl == 60.0
    assert policy(early=True).beta == 1.0
    assert early_beta(2) == 2.0
    with pytest.raises(ValueError, match="stale_ttl"):
        policy(stale_ttl=0.5)
    with pytest.raises(ValueError, match="stale_if_error"):
        policy(stale_if_error=-1)
    assert policy(stale_ttl="1m").stale_ttl == 60.0  # a duration string, as every ttl
    with pytest.raises(TypeError, match="stale_ttl"):
        policy(stale_ttl=b"60")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="beta"):
        policy(early=0.0)
    with pytest.raises(ValueError, match="beta"):
        policy(early=math.inf)
    with pytest.raises(TypeError, match="early"):
        policy(early="yes")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kind", "serves"),
    [
        ("timeout", True),
        ("connection", True),
        ("server", True),
        ("circuit_open", True),
        ("no_such_bucket", False),
        ("access_denied", False),
        ("credentials", False),
        ("corrupt", False),
        ("checksum", False),
        ("encryption", False),
        ("closed", False),
        ("other", False),
    ],
)
def test_stale_if_error_qualifying_failures(kind: str, serves: bool) -> None:
    assert serves_stale_on(kind) is serves


# -- refresh back-off -------------------------------------------------------------------------


def test_a_failed_refresh_backs_off_exponentially_with_jitter() -> None:
    clock = FakeClock()
    backoff = RefreshBackoff(1.0, 8.0, clock=clock, rng=random.Random(3))
    assert backoff.allows("k")
    assert clock.reads == 0  # nothing remembered: no clock read
    delays = []
    for n in range(1, 7):
        delay = backoff.failed("k")
        step = min(8.0, 2.0 ** (n - 1))
        assert step / 2 <= delay <= step
        delays.append(delay)
        assert not backoff.allows("k")
        clock.now += delay - 0.001
        assert not backoff.allows("k")
        clock.now += 0.002
        assert backoff.allows("k")
        assert backoff.allows("other")
    assert backoff.failures("k") == 6
    assert max(delays) <= 8.0
    backoff.succeeded("k")
    assert backoff.failures("k") == 0
    assert backoff.allows("k")
    assert len(backoff) == 0


def test_refresh_backoff_memory_is_bounded() -> None:
    clock = FakeClock()
    backoff = RefreshBackoff(10.0, 10.0, max_keys=3, clock=clock, rng=random.Random(1))
    for key in "abcde":
        backoff.failed(key)
    assert len(backoff) == 3
    assert backoff.allows("a")  # forgotten first: it merely retries sooner
    assert backoff.allows("b")
    assert not backoff.allows("e")


def test_refresh_backoff_validates() -> None:
    with pytest.raises(ValueError, match="base"):
        RefreshBackoff(0.0, 1.0)
    with pytest.raises(ValueError, match="base"):
        RefreshBackoff(5.0, 1.0)
    with pytest.raises(ValueError, match="max_keys"):
        RefreshBackoff(max_keys=0)
