"""OpenTelemetry metrics and (opt-in) spans for a cache: ``instrument(cache)``, or
``AsyncS3Cache(..., telemetry=True)``, on the global meter and tracer providers.

Needs the extra ``s3cache-async[otel]`` (``opentelemetry-api``); nothing of OpenTelemetry is
imported until :func:`instrument` runs. The telemetry is one more sink of the cache's operation
recorder (:mod:`s3cache._recorder`): it sees exactly what ``stats()`` counts.

OpenTelemetry has no semantic convention for caches yet, so the names follow the de facto
ones: Micrometer's and Caffeine's ``cache.gets{result}``, ``cache.puts``, ``cache.evictions``,
``cache.size``, and Sentry's cache spans (``cache.get``, ``cache.put``...) with ``cache.hit``,
``cache.item_size`` and ``cache.key``. Attributes stay low-cardinality: a result, a tier, an
operation name, ``cache.name`` (the bucket, unless named); never a key or a value. Span
attributes carry the key only with ``keys=True``, and then as a hash. See :data:`METRICS`.
"""

from __future__ import annotations

import hashlib
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

from s3cache._pacing import is_throttling
from s3cache._pricing import spend
from s3cache._recorder import Op
from s3cache._sinks import Phase

if TYPE_CHECKING:
    from s3cache._core import AsyncS3Cache
    from s3cache._sync import S3Cache

__all__ = ["METRICS", "Telemetry", "attach", "instrument"]

#: Every metric, with its unit and attributes (the README's table is this one).
METRICS: Final[Mapping[str, tuple[str, str]]] = {
    "cache.gets": ("{get}", "result (hit, miss, stale, error), tier (local, s3)"),
    "cache.puts": ("{put}", "cache.operation (set, add), result (stored, rejected, error)"),
    "cache.deletes": ("{entry}", "cache.operation (delete, delete_many, clear)"),
    "cache.invalidations": ("{call}", "clear() and invalidate() calls"),
    "cache.operation.duration": ("s", "cache.operation, result"),
    "cache.bytes.read": ("By", "entry bodies read from S3"),
    "cache.bytes.written": ("By", "entry bodies written to S3"),
    "cache.factory.calls": ("{call}", "result (ok, error)"),
    "cache.factory.duration": ("s", "result (ok, error)"),
    "cache.s3.requests": ("{request}", "s3.operation, outcome (ok, missing... or error kind)"),
    "cache.s3.request.duration": ("s", "s3.operation, outcome (with request_latency=True)"),
    "cache.s3.attempts": ("{request}", "s3.operation: every attempt sent (what S3 bills)"),
    "cache.s3.retries": ("{request}", "s3.operation"),
    "cache.s3.throttles": ("{request}", "s3.operation: 503 SlowDown and its kin"),
    "cache.leases": ("{lease}", "result (acquired, takeover, waited, gave_up)"),
    "cache.factory.avoided": ("{call}", "avoided (hit, joined, waited): get_or_set(cost=)"),
    "cache.cost.saved": ("USD", "avoided: the dollars those calls would have cost"),
    "cache.cost.spent": ("USD", "request_class (class_a, class_b, transfer), pricing= prices"),
    "cache.lease.wait.duration": ("s", "result"),
    "cache.size": ("{entry}", "the local tier's entries"),
    "cache.local.bytes": ("By", "the local tier's bytes"),
    "cache.evictions": ("{entry}", "the local tier's evictions"),
}
_MISSING_EXTRA: Final = (
    "s3cache.telemetry needs OpenTelemetry: pip install 's3cache-async[otel]' "
    "(or opentelemetry-api)"
)
#: A get's outcome as ``cache.gets`` reports it.
_GET_RESULT: Final = {
    "hit": "hit",
    "local_hit": "hit",
    "miss": "miss",
    "expired": "miss",
    "unverified": "miss",
    "error": "error",
}
_PUTS: Final = frozenset({"set", "add"})


def instrument(
    cache: AsyncS3Cache | S3Cache,
    *,
    meter_provider: Any = None,
    tracer_provider: Any = None,
    spans: bool = False,
    keys: bool = False,
    name: str | None = None,
    request_latency: bool = False,
    latency: bool = True,
) -> Telemetry:
    """Report the metrics of ``cache`` (an AsyncS3Cache or S3Cache) and, with ``spans=True``,
    its spans to OpenTelemetry, through the given providers or the global ones. ``keys=True``
    adds each operation's key, hashed (SHA-256, 16 hex digits), to its span as ``cache.key``;
    never to a metric. ``name``: the ``cache.name`` attribute (default: the bucket);
    ``request_latency=True`` adds the ``cache.s3.request.duration`` histogram;
    ``latency=False`` drops ``cache.operation.duration`` (the SDK's ``Histogram.record``
    is most of what the metrics cost per operation: see the README's Benchmarks). Raises
    ImportError naming the extra when OpenTelemetry is not installed; TypeError on a cache
    instrumented already."""
    try:
        from opentelemetry import metrics, trace
    except ImportError as exc:
        raise ImportError(_MISSING_EXTRA) from exc
    flags = {"spans": spans, "keys": keys, "request_latency": request_latency, "latency": latency}
    for flag, value in flags.items():
        if not isinstance(value, bool):
            raise TypeError(f"{flag} must be True or False, not {value!r}")
    if name is not None and (not isinstance(name, str) or not name):
        raise TypeError(f"name must be a non-empty str or None, not {name!r}")
    core: AsyncS3Cache = getattr(cache, "_core", None) or cache  # type: ignore[assignment]
    meter = metrics.get_meter("s3cache", _version(), meter_provider=meter_provider)
    tracer = trace.get_tracer("s3cache", _version(), tracer_provider) if spans else None
    label = name or core.bucket
    return attach(
        core, lambda: Telemetry(meter, tracer, core, keys, label, None, request_latency, latency)
    )


def attach(cache: AsyncS3Cache, make: Callable[[], Telemetry]) -> Telemetry:
    """The telemetry ``make()`` gives, attached to ``cache``'s recorder (TypeError, before it
    is made, on a cache instrumented already)."""
    recorder = cache._recorder
    if any(isinstance(sink, Telemetry) for sink in recorder.sinks):
        raise TypeError(f"{cache!r} is instrumented already")
    telemetry = make()
    recorder.sinks.append(telemetry)
    recorder.request_sinks.append(telemetry)
    if telemetry.traces:
        recorder.tracer = telemetry
    return telemetry


def _version() -> str:
    """The package's version (imported already: this module is part of it)."""
    return str(getattr(sys.modules.get("s3cache"), "__version__", "0"))


class _Observables:
    """The observable instruments of one meter, each made once (a meter refuses a second
    instrument of a name, keeping the first's callbacks), reading every cache's figures."""

    def __init__(self, meter: Any) -> None:
        self._meter = meter
        self._readers: dict[str, list[Callable[[], Iterable[Any]]]] = {}
        self._lock = threading.Lock()

    def add(
        self, kind: str, name: str, unit: str, description: str, read: Callable[[], Iterable[Any]]
    ) -> None:
        """Add ``read`` (one cache's readings) to the observable ``name``, made if new."""
        with self._lock:
            readers = self._readers.get(name)
            if readers is not None:
                readers.append(read)
                return
            readers = self._readers[name] = [read]
        create = (
            self._meter.create_observable_counter
            if kind == "counter"
            else self._meter.create_observable_gauge
        )
        create(name, [lambda _: [r for each in list(readers) for r in each()]], unit, description)


_OBSERVABLES: Final[dict[int, tuple[Any, _Observables]]] = {}
_OBSERVABLES_LOCK: Final = threading.Lock()


def _observables(meter: Any) -> _Observables:
    """The observables of ``meter`` (kept with it, by identity)."""
    with _OBSERVABLES_LOCK:
        found = _OBSERVABLES.get(id(meter))
        if found is None or found[0] is not meter:
            found = _OBSERVABLES[id(meter)] = (meter, _Observables(meter))
        return found[1]


class _Tally:
    """One counter's totals by attribute set (the sets :meth:`Telemetry._a` made once, so
    keyed by identity), read at each collection."""

    __slots__ = ("totals",)

    def __init__(self) -> None:
        self.totals: dict[int, list[Any]] = {}

    def add(self, amount: float, attributes: Mapping[str, str]) -> None:
        entry = self.totals.get(id(attributes))
        if entry is None:
            self.totals[id(attributes)] = [attributes, amount]
        else:
            entry[1] += amount

    def observed(self, observe: Callable[[Any, Mapping[str, str]], Iterable[Any]]) -> list[Any]:
        return [r for attrs, total in list(self.totals.values()) for r in observe(total, attrs)]


class Telemetry:
    """The OpenTelemetry instruments of one cache, fed by its recorder (a sink, a request
    sink and, with spans, its tracer). Made by :func:`instrument`."""

    def __init__(
        self,
        meter: Any,
        tracer: Any,
        cache: AsyncS3Cache,
        keys: bool,
        name: str,
        observe: Callable[[Any, Mapping[str, str]], Iterable[Any]] | None = None,
        request_latency: bool = False,
        latency: bool = True,
    ):
        """Instruments on ``meter`` (OpenTelemetry's, or one with its ``create_*`` methods),
        spans on ``tracer`` (None: none); ``observe`` makes an observable's readings (default:
        OpenTelemetry's ``Observation``); ``request_latency``: record each S3 request's
        duration too (a second histogram record per GET); ``latency``: record each
        operation's.

        The counters are tallied here, in plain numbers, and read by the meter at each
        collection (observable counters): an SDK ``Counter.add`` costs microseconds, several
        per GET. Only the histograms are recorded as operations end."""
        observed = observe or _observed

        shared = _observables(meter)

        def counter(name: str, unit: str, description: str) -> _Tally:
            tally = _Tally()
            shared.add("counter", name, unit, description, lambda: tally.observed(observed))
            return tally

        self._tracer = tracer
        #: Whether this telemetry opens spans (the recorder's tracer).
        self.traces = tracer is not None
        self._keys = keys
        self._name = name
        self._attrs: dict[tuple[str, ...], dict[str, str]] = {}
        histogram = meter.create_histogram
        self._gets = counter("cache.gets", "{get}", "Lookups by result and tier")
        self._puts = counter("cache.puts", "{put}", "Writes by operation and result")
        self._deletes = counter("cache.deletes", "{entry}", "Entries removed")
        self._invalidations = counter(
            "cache.invalidations", "{call}", "clear() and invalidate() calls"
        )
        self._duration = (
            histogram("cache.operation.duration", "s", "Cache operations") if latency else None
        )
        self._read = counter("cache.bytes.read", "By", "Entry bodies read from S3")
        self._written = counter("cache.bytes.written", "By", "Entry bodies written to S3")
        self._factory = counter("cache.factory.calls", "{call}", "get_or_set factory runs")
        self._factory_s = histogram("cache.factory.duration", "s", "get_or_set factory runs")
        self._requests = counter("cache.s3.requests", "{request}", "S3 requests by outcome")
        self._request_s = (
            histogram("cache.s3.request.duration", "s", "S3 requests") if request_latency else None
        )
        self._attempts = counter("cache.s3.attempts", "{request}", "S3 attempts sent (billed)")
        self._retries = counter("cache.s3.retries", "{request}", "S3 retries")
        self._throttles = counter("cache.s3.throttles", "{request}", "S3 throttling replies")
        self._leases = counter("cache.leases", "{lease}", "get_or_set(lease=) contention")
        self._lease_s = histogram("cache.lease.wait.duration", "s", "Time to settle a lease")
        self._avoided = counter("cache.factory.avoided", "{call}", "Factory calls avoided")
        self._saved = counter("cache.cost.saved", "USD", "Dollars saved (get_or_set cost=)")
        self._figures(shared, cache, observed)

    def _figures(
        self,
        shared: _Observables,
        cache: AsyncS3Cache,
        observed: Callable[[Any, Mapping[str, str]], Iterable[Any]],
    ) -> None:
        """The figures read at collection: the spend, and the local tier's size and
        evictions."""
        name = self._name
        shared.add(
            "counter",
            "cache.cost.spent",
            "USD",
            "Dollars spent on S3 requests, at the pricing= table's prices",
            lambda: _spent(cache, observed, self._a()),
        )
        local = cache._coherence.local
        if local is not None:
            attrs = {"cache.name": name}
            shared.add(
                "gauge",
                "cache.size",
                "{entry}",
                "Local tier entries",
                lambda: observed(len(local), attrs),
            )
            shared.add(
                "gauge",
                "cache.local.bytes",
                "By",
                "Local tier bytes",
                lambda: observed(local.size_bytes, attrs),
            )
            shared.add(
                "counter",
                "cache.evictions",
                "{entry}",
                "Local tier evictions",
                lambda: observed(local.evictions, attrs),
            )

    def _a(self, *pairs: str) -> dict[str, str]:
        """The attributes ``name=value`` pairs (flattened) and ``cache.name``, made once."""
        found = self._attrs.get(pairs)
        if found is None:
            found = self._attrs[pairs] = {
                "cache.name": self._name,
                **dict(zip(pairs[::2], pairs[1::2], strict=True)),
            }
        return found

    # -- the recorder's sink --------------------------------------------------------------

    def finished(self, op: Op) -> None:
        """Count a finished cache operation."""
        name, outcome = op.name, op.outcome or "error"
        if name == "get":
            result = "stale" if op.served_stale else _GET_RESULT.get(outcome, "miss")
            self._gets.add(1, self._a("result", result, "tier", op.tier))
            if outcome == "hit":
                self._read.add(op.nbytes, self._a())
        elif name in _PUTS:
            self._puts.add(1, self._a("cache.operation", name, "result", outcome))
            if outcome == "stored":
                self._written.add(op.nbytes, self._a())
        elif name == "clear" or name == "invalidate":
            self._invalidations.add(1, self._a("cache.operation", name))
        if op.removed:
            self._deletes.add(op.removed, self._a("cache.operation", name))
        if self._duration is not None:
            self._duration.record(op.duration, self._a("cache.operation", name, "result", outcome))

    # -- the recorder's request sink ---------------------------------------------------------

    def attempted(self, op: str, attempt: int, status: int, code: str | None) -> None:
        """Count an attempt sent, a retry, a throttle."""
        attrs = self._a("s3.operation", op)
        self._attempts.add(1, attrs)
        if attempt > 1:
            self._retries.add(1, attrs)
        if status >= 400 and is_throttling(status, code):
            self._throttles.add(1, attrs)

    def sent(self, op: str, outcome: str, seconds: float) -> None:
        """Count and time a request (and, with spans, give it its ``s3.request`` span)."""
        attrs = self._a("s3.operation", op, "outcome", outcome)
        self._requests.add(1, attrs)
        if self._request_s is not None:
            self._request_s.record(seconds, attrs)
        if self._tracer is not None:
            end = time.time_ns()
            span = self._tracer.start_span(
                "s3.request",
                attributes={"s3.operation": op, "outcome": outcome},
                start_time=end - int(seconds * 1e9),
            )
            if outcome not in ("ok", "missing", "refused", "gone", "empty"):
                _error(span, outcome)
            span.end(end_time=end)

    def phased(self, phase: Phase, failed: bool) -> None:
        """Count and time a factory's run."""
        if phase.name == "factory":
            attrs = self._a("result", "error" if failed else "ok")
            self._factory.add(1, attrs)
            self._factory_s.record(phase.duration, attrs)

    def saved(self, how: str, dollars: float) -> None:
        """Count a factory call avoided and the dollars it saved."""
        attrs = self._a("avoided", how)
        self._avoided.add(1, attrs)
        self._saved.add(dollars, attrs)

    def leased(self, result: str, seconds: float) -> None:
        """Count a lease contended for, and the time it took."""
        attrs = self._a("result", result)
        self._leases.add(1, attrs)
        self._lease_s.record(seconds, attrs)

    # -- the recorder's tracer (spans=True) --------------------------------------------------

    def opened(self, item: Op | Phase) -> None:
        """Open the span of ``item`` and make it current (its requests become its children)."""
        from opentelemetry import context, trace

        name = "cache.put" if item.name in _PUTS else f"cache.{item.name}"
        attributes = {"cache.name": self._name, "cache.operation": item.name}
        if self._keys and isinstance(item, Op) and item.key is not None:
            attributes["cache.key"] = hashlib.sha256(item.key.encode()).hexdigest()[:16]
        span = self._tracer.start_span(name, attributes=attributes)
        item.trace = (span, context.attach(trace.set_span_in_context(span)))

    def closed(self, item: Op | Phase) -> None:
        """Close the span of ``item``, with its outcome."""
        from opentelemetry import context

        span, token = item.trace
        if isinstance(item, Op):
            outcome = item.outcome
            if item.name in ("get", "exists"):
                span.set_attribute("cache.hit", outcome in ("hit", "local_hit"))
            if item.nbytes:
                span.set_attribute("cache.item_size", item.nbytes)
            if outcome is not None:
                span.set_attribute("cache.result", outcome)
            if outcome == "error":
                _error(span, item.error_kind or "error")
        elif item.failed:
            _error(span, "factory" if item.name == "factory" else "error")
        context.detach(token)
        span.end()


def _error(span: Any, kind: str) -> None:
    from opentelemetry.trace import Status, StatusCode

    span.set_status(Status(StatusCode.ERROR, kind))
    span.set_attribute("error.type", kind)


def _spent(
    cache: AsyncS3Cache,
    observed: Callable[[Any, Mapping[str, str]], Iterable[Any]],
    attributes: Mapping[str, str],
) -> Iterable[Any]:
    """The dollars spent so far by request class (``class_a``, ``class_b``), and the per-GB
    transfer charges (``transfer``), at the cache's prices."""
    recorder = cache._recorder
    counters, table = recorder.counters, recorder.pricing
    spent = spend(
        dict(counters.requests),
        table,
        bytes_read=counters.bytes_in,
        bytes_written=counters.bytes_out,
    )
    readings: list[Any] = []
    for klass in ("class_a", "class_b"):
        dollars = spent.requests.get(klass, 0) * table.per_request(klass)
        readings.extend(observed(dollars, {**attributes, "request_class": klass}))
    readings.extend(observed(spent.transfer_usd, {**attributes, "request_class": "transfer"}))
    return readings


def _reading(
    observed: Callable[[Any, Mapping[str, str]], Iterable[Any]],
    read: Callable[[], int],
    attributes: Mapping[str, str],
) -> Callable[[], Iterable[Any]]:
    """A reader of ``read()``'s figure with ``attributes``."""
    return lambda: observed(read(), attributes)


def _observed(value: float, attributes: Mapping[str, str]) -> Iterable[Any]:
    from opentelemetry.metrics import Observation

    return [Observation(value, attributes)]
