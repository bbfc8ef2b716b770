"""A Prometheus endpoint for caches, without OpenTelemetry: ``prometheus.instrument(cache)``,
then ``prometheus.start_http_server(9464)`` (or your own ``/metrics`` over the registry).

Needs the extra ``s3cache-async[prometheus]`` (``prometheus-client``). The metrics are those of
:mod:`s3cache.telemetry` (the same sink of the recorder counts them), named the Prometheus way:
dots become underscores, counters end in ``_total``, durations in ``_seconds`` and byte counts
in ``_bytes``: ``cache_gets_total{cache_name, result, tier}``, ``cache_s3_requests_total``,
``cache_operation_duration_seconds`` (a histogram)... Every instrumented cache of a registry
shares one collector; ``cache_name`` tells them apart.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final

from s3cache.telemetry import METRICS, Telemetry, attach

if TYPE_CHECKING:
    from s3cache._core import AsyncS3Cache
    from s3cache._sync import S3Cache

__all__ = [
    "BUCKETS",
    "Collector",
    "collector",
    "instrument",
    "prometheus_name",
    "start_http_server",
]

#: Histogram bucket bounds, seconds: 1 ms to 10 s (S3 requests and factory runs alike).
BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_MISSING_EXTRA: Final = (
    "s3cache.telemetry.prometheus needs prometheus-client: pip install 's3cache-async[prometheus]'"
)
Labels = tuple[tuple[str, str], ...]


def prometheus_name(name: str, kind: str) -> str:
    """The Prometheus name of the metric ``name`` (one of :data:`METRICS`) of ``kind``
    (``counter``, ``histogram``, ``gauge``): ``cache.gets`` -> ``cache_gets_total``."""
    unit = METRICS[name][0]
    base = name.replace(".", "_")
    if unit == "s" and not base.endswith("_seconds"):
        base += "_seconds"
    elif unit == "By" and not base.endswith("_bytes"):
        base += "_bytes"
    elif unit == "USD" and not base.endswith("_dollars"):
        base += "_dollars"
    return base + "_total" if kind == "counter" else base


def _labels(attributes: Mapping[str, str]) -> Labels:
    return tuple(sorted((k.replace(".", "_"), str(v)) for k, v in attributes.items()))


class _Histogram:
    __slots__ = ("_lock", "values")

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock
        #: Per label set: the count in each bucket (not cumulative), the sum, the count.
        self.values: dict[Labels, tuple[list[int], float, int]] = {}

    def record(self, amount: float, attributes: Mapping[str, str]) -> None:
        labels = _labels(attributes)
        with self._lock:
            buckets, total, count = self.values.get(labels) or ([0] * (len(BUCKETS) + 1), 0.0, 0)
            index = next((i for i, bound in enumerate(BUCKETS) if amount <= bound), len(BUCKETS))
            buckets[index] += 1
            self.values[labels] = (buckets, total + amount, count + 1)

    def items(self) -> list[tuple[Labels, tuple[list[int], float, int]]]:
        with self._lock:
            return [(labels, (list(b), t, c)) for labels, (b, t, c) in self.values.items()]


class _Meter:
    """The ``create_*`` methods :class:`~s3cache.telemetry.Telemetry` calls (counters are
    observables there), kept here for :class:`Collector`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.histograms: dict[str, _Histogram] = {}
        self.observables: dict[str, tuple[str, list[Callable[[Any], Iterable[Any]]]]] = {}

    def create_histogram(self, name: str, unit: str = "", description: str = "") -> _Histogram:
        return self.histograms.setdefault(name, _Histogram(self._lock))

    def create_observable_gauge(
        self, name: str, callbacks: list[Callable[[Any], Iterable[Any]]], *args: str
    ) -> None:
        self.observables[name] = ("gauge", callbacks)

    def create_observable_counter(
        self, name: str, callbacks: list[Callable[[Any], Iterable[Any]]], *args: str
    ) -> None:
        self.observables[name] = ("counter", callbacks)


class Collector:
    """The metrics of every cache instrumented on one registry, collected at each scrape."""

    def __init__(self) -> None:
        self._meters: list[_Meter] = []
        self._lock = threading.Lock()

    def add(self, meter: _Meter) -> None:
        with self._lock:
            self._meters.append(meter)

    def describe(self) -> list[Any]:
        """Nothing up front (the metrics exist from the first cache on)."""
        return []

    def collect(self) -> Iterator[Any]:
        """Every metric of every cache, as prometheus-client metric families."""
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        with self._lock:
            meters = list(self._meters)
        for name, (_unit, help_text) in METRICS.items():
            histograms = [m.histograms[name] for m in meters if name in m.histograms]
            if histograms:
                yield _histogram(
                    HistogramMetricFamily, prometheus_name(name, "histogram"), help_text, histograms
                )
            observed = [m.observables[name] for m in meters if name in m.observables]
            if observed:
                readings = [
                    (_labels(attributes), value)
                    for _, callbacks in observed
                    for callback in callbacks
                    for value, attributes in callback(None)
                ]
                if observed[0][0] == "counter":
                    base = prometheus_name(name, "counter")[: -len("_total")]
                    yield _family(CounterMetricFamily, base, help_text, readings)
                else:
                    base = prometheus_name(name, "gauge")
                    yield _family(GaugeMetricFamily, base, help_text, readings)


def _family(klass: Any, name: str, help_text: str, samples: list[tuple[Labels, float]]) -> Any:
    """A metric family of ``samples`` (one label set per metric: the first one's names)."""
    names = [k for k, _ in samples[0][0]] if samples else []
    family = klass(name, help_text, labels=names)
    for labels, value in samples:
        family.add_metric([v for _, v in labels], value)
    return family


def _histogram(klass: Any, name: str, help_text: str, histograms: list[_Histogram]) -> Any:
    samples = [pair for histogram in histograms for pair in histogram.items()]
    names = [k for k, _ in samples[0][0]] if samples else []
    family = klass(name, help_text, labels=names)
    for labels, (buckets, total, _count) in samples:
        cumulative, pairs = 0, []
        for bound, count in zip([*map(str, BUCKETS), "+Inf"], buckets, strict=True):
            cumulative += count
            pairs.append((bound, float(cumulative)))
        family.add_metric([v for _, v in labels], pairs, total)
    return family


_COLLECTORS: Final[dict[int, Collector]] = {}
_COLLECTORS_LOCK: Final = threading.Lock()


def collector(registry: Any = None) -> Collector:
    """The collector of ``registry`` (default: prometheus-client's ``REGISTRY``), registered
    on it at its first cache."""
    try:
        from prometheus_client import REGISTRY
    except ImportError as exc:
        raise ImportError(_MISSING_EXTRA) from exc
    registry = REGISTRY if registry is None else registry
    with _COLLECTORS_LOCK:
        found = _COLLECTORS.get(id(registry))
        if found is None:
            found = _COLLECTORS[id(registry)] = Collector()
            registry.register(found)
    return found


def instrument(
    cache: AsyncS3Cache | S3Cache, *, registry: Any = None, name: str | None = None
) -> Telemetry:
    """Count ``cache``'s operations for Prometheus, on ``registry`` (default: the global one),
    as :func:`s3cache.telemetry.instrument` counts them for OpenTelemetry (no spans).
    ``name``: the ``cache_name`` label (default: the bucket). Raises ImportError naming the
    extra when prometheus-client is not installed."""
    core: AsyncS3Cache = getattr(cache, "_core", None) or cache  # type: ignore[assignment]
    if name is not None and (not isinstance(name, str) or not name):
        raise TypeError(f"name must be a non-empty str or None, not {name!r}")
    target = collector(registry)
    meter = _Meter()

    def make() -> Telemetry:
        label = name or core.bucket
        return Telemetry(meter, None, core, False, label, _readings, request_latency=True)

    telemetry = attach(core, make)
    target.add(meter)
    return telemetry


def _readings(value: float, attributes: Mapping[str, str]) -> Iterable[Any]:
    """An observable's reading, as :meth:`Collector.collect` reads it."""
    return [(value, attributes)]


def start_http_server(port: int, addr: str = "127.0.0.1", registry: Any = None) -> Any:
    """Serve ``registry`` (default: the global one) at ``http://addr:port/metrics`` from a
    daemon thread (prometheus-client's server); returns the server (``.shutdown()`` stops
    it) and its thread."""
    try:
        from prometheus_client import REGISTRY
        from prometheus_client import start_http_server as start
    except ImportError as exc:
        raise ImportError(_MISSING_EXTRA) from exc
    return start(port, addr, registry=REGISTRY if registry is None else registry)
