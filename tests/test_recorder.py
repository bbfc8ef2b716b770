"""The operation recorder (s3cache._recorder), sans-IO: what each outcome counts, what reaches
the sinks, what ``on_error`` does with a failure. No server."""

from __future__ import annotations

import logging

import pytest

from s3cache import CacheEvent
from s3cache._recorder import Op, Recorder
from s3cache.errors import BatchError, CacheClosedError, ServerError


class Events:
    def __init__(self) -> None:
        self.seen: list[CacheEvent] = []

    def on_event(self, event: CacheEvent) -> None:
        self.seen.append(event)


class Finished:
    def __init__(self) -> None:
        self.ops: list[tuple[str, str | None, str | None, str, int]] = []

    def finished(self, op: Op) -> None:
        self.ops.append((op.name, op.outcome, op.error_kind, op.tier, op.nbytes))


def test_each_outcome_counts_once_and_reaches_every_sink() -> None:
    events = Events()
    recorder = Recorder(events, raise_errors=False)
    sink = Finished()
    recorder.sinks.append(sink)
    with recorder.op("get", "k") as op:
        op.hit(5)
    with recorder.op("get", "k") as op:
        op.local_hit(5)
    with recorder.op("get", "k") as op:
        op.expired()
    with recorder.op("exists", "k") as op:
        op.hit(0)  # a lookup of exists() is no hit or miss
    with recorder.op("set", "k") as op:
        op.stored(7)
    with recorder.op("delete", None) as op:
        op.deleted(3)
    stats = recorder.snapshot({}, 0.0)
    assert (stats.hits, stats.local_hits, stats.misses, stats.expired) == (2, 1, 1, 1)
    assert (stats.bytes_in, stats.sets, stats.bytes_out, stats.deletes) == (5, 1, 7, 3)
    assert set(stats.latency) == {"get", "exists", "set", "delete"}
    assert [(e.op, e.outcome, e.nbytes) for e in events.seen] == [
        ("get", "hit", 5),
        ("get", "local_hit", 5),
        ("get", "expired", 0),
        ("exists", "hit", 0),
        ("set", "stored", 7),
        ("delete", "deleted", 0),
    ]
    assert [tier for _, _, _, tier, _ in sink.ops] == ["s3", "local", "s3", "s3", "s3", "s3"]


def test_an_operation_left_without_an_outcome_is_not_recorded() -> None:
    recorder = Recorder(None, raise_errors=False)
    with pytest.raises(RuntimeError), recorder.op("get", "k"):
        raise RuntimeError("cancelled, or a bug")
    assert recorder.snapshot({}, 0.0).latency == {}


def test_on_error_log_falls_back_and_raise_raises_both_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    soft, hard = Recorder(None, raise_errors=False), Recorder(None, raise_errors=True)
    failure = ServerError("GetObject 'k': SlowDown (HTTP 503)")
    with soft.op("get", "k") as op:
        assert op.failed(failure, "fallback") == "fallback"
    with pytest.raises(ServerError), hard.op("get", "k") as op:
        op.failed(failure, "fallback")
    for recorder in (soft, hard):
        stats = recorder.snapshot({}, 0.0)
        assert (stats.errors, stats.misses, stats.latency["get"].count) == ({"server": 1}, 1, 1)
    assert "s3cache server failure" in caplog.text
    with pytest.raises(CacheClosedError), soft.op("get", "k") as op:
        op.failed(CacheClosedError("closed"), None)  # never dropped silently


def test_a_sink_that_raises_is_logged_and_the_operation_stands(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken:
        def on_event(self, event: CacheEvent) -> None:
            raise ValueError("exporter down")

    recorder = Recorder(Broken(), raise_errors=True)
    with caplog.at_level(logging.ERROR, logger="s3cache"), recorder.op("set", "k") as op:
        op.stored(1)
    assert recorder.snapshot({}, 0.0).sets == 1
    assert "observer" in caplog.text


def test_a_batch_is_counted_per_key_and_reported_once() -> None:
    recorder = Recorder(None, raise_errors=True)
    failures = {"a": ServerError("a"), "b": ServerError("b")}
    recorder.batch_failed("set_many", {}, 3, 3)  # nothing failed: nothing happens
    with pytest.raises(BatchError) as caught:
        recorder.batch_failed("set_many", failures, 3, 1)
    assert (caught.value.done, caught.value.total) == (1, 3)
    assert recorder.snapshot({}, 0.0).errors == {"server": 2}
