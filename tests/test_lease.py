"""The lease object format (s3cache._lease), tested without a server (it is sans-IO)."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

from s3cache import _lease
from s3cache._lease import HELD, RELEASED, TOKEN_SCALE

T0 = 1_750_000_000


def http_date(epoch: float) -> str:
    return format_datetime(datetime.fromtimestamp(epoch, tz=UTC), usegmt=True)


def headers(payload_metadata: dict[str, str], modified: int, now: int) -> dict[str, str]:
    """HEAD headers as a server returns them for an object written at ``modified``."""
    h = {f"x-amz-meta-{k}": v for k, v in payload_metadata.items()}
    h |= {"etag": '"abc"', "last-modified": http_date(modified), "date": http_date(now)}
    return h


def test_a_created_lease_is_held_by_its_writer_with_a_token_above_its_second() -> None:
    payload = _lease.encode(HELD, "host:1:aa", 10.0)
    state = _lease.read(headers(payload.metadata, T0, T0 + 1), now=0.0)
    assert state.held
    assert state.holder == "host:1:aa"
    assert state.etag == '"abc"'
    assert state.token == (T0 + 1) * TOKEN_SCALE  # above any token issued up to second T0
    assert state.wait == 10.0  # 10 - (1 - 1): never taken for expired early


def test_a_replacing_acquisition_exceeds_the_token_it_replaced() -> None:
    same_second = _lease.encode(HELD, "b", 10.0, after=(T0 + 1) * TOKEN_SCALE)
    state = _lease.read(headers(same_second.metadata, T0, T0), now=0.0)
    assert state.token == (T0 + 1) * TOKEN_SCALE + 1
    later = _lease.encode(HELD, "c", 10.0, after=state.token)
    assert _lease.read(headers(later.metadata, T0 + 5, T0 + 5), now=0.0).token == (
        (T0 + 5) * TOKEN_SCALE
    )


def test_renewals_and_releases_keep_the_token_and_releases_are_free() -> None:
    renewed = _lease.read(headers(_lease.encode(HELD, "a", 5.0, token=7).metadata, T0, T0), 0.0)
    assert (renewed.token, renewed.held) == (7, True)
    released = _lease.encode(RELEASED, "a", 5.0, token=7)
    state = _lease.read(headers(released.metadata, T0, T0), now=0.0)
    assert (state.token, state.held) == (7, False)
    assert released.metadata["s3cache-ttl"] == "1"  # maintenance may remove it soon


def test_a_lease_is_free_only_once_surely_expired_on_the_server_clock() -> None:
    meta = _lease.encode(HELD, "a", 2.0).metadata
    assert _lease.read(headers(meta, T0, T0 + 2), now=0.0).held  # true age may be 1.01 s
    expired = _lease.read(headers(meta, T0, T0 + 3), now=T0 - 3600.0)  # client clock ignored
    assert not expired.held
    assert expired.wait == 0.0


def test_unreadable_or_foreign_records_are_free_to_replace() -> None:
    foreign = _lease.read({"etag": '"x"', "last-modified": http_date(T0)}, now=T0)
    assert not foreign.held
    assert foreign.token == (T0 + 1) * TOKEN_SCALE
    garbled = {"x-amz-meta-s3cache-lease": "held", "x-amz-meta-s3cache-ttl": "soon"}
    assert not _lease.read(garbled, now=T0).held


def test_records_are_ascii_metadata_with_a_readable_body() -> None:
    payload = _lease.encode(HELD, "host:1:aa", 1.5, after=3)
    assert all(v.isascii() for v in payload.metadata.values())
    assert payload.metadata["s3cache-ttl"] == "1.5"
    assert payload.body == b'{"state":"held","holder":"host:1:aa","lease_s":1.5,"after":3}'
