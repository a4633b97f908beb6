"""The readings of one scrape as ``prometheus_client`` metric families (a custom collector),
and their text exposition: a fresh registry per scrape, so nothing is kept between scrapes
and several web processes all answer the same figures (they are read from Redis and the
database, not counted in the process)."""

from __future__ import annotations

from collections.abc import Iterator

from ..exceptions import MetricsUnavailable

try:
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
    from prometheus_client.registry import Collector
except ImportError as exc:  # the `metrics` extra is not installed
    raise MetricsUnavailable() from exc

from ..engine.tallies import BUCKETS
from . import families as f
from .readings import QueueReading, Readings, read_all

__all__ = ["CONTENT_TYPE_LATEST", "AsyncJobsCollector", "exposition"]

#: The ``le`` of the histograms' buckets, as Prometheus writes them, then ``+Inf``.
BOUNDS = [*(repr(float(bound)) for bound in BUCKETS), "+Inf"]


def _gauge(family: f.Family) -> GaugeMetricFamily:
    return GaugeMetricFamily(family.name, family.help, labels=family.labels)


def _counter(family: f.Family) -> CounterMetricFamily:
    return CounterMetricFamily(family.name, family.help, labels=family.labels)


def _histogram(family: f.Family) -> HistogramMetricFamily:
    return HistogramMetricFamily(family.name, family.help, labels=family.labels)


class AsyncJobsCollector(Collector):
    """Collects :func:`~.readings.read_all` (or the ``readings`` given) as the families of
    :mod:`.families`."""

    def __init__(self, readings: Readings | None = None) -> None:
        self.readings = readings

    def collect(self) -> Iterator[Metric]:
        readings = self.readings or read_all()
        gauges = {family: _gauge(family) for family in f.FAMILIES if family.kind == "gauge"}
        counters = {family: _counter(family) for family in f.FAMILIES if family.kind == "counter"}
        histograms = {family: _histogram(family) for family in f.FAMILIES if family.kind == "histogram"}
        for reading in readings.queues:
            queue = reading.queue
            gauges[f.QUEUE_RUNNING].add_metric([queue], reading.running)
            gauges[f.REDIS_UP].add_metric([queue], 1 if reading.redis_up else 0)
            if not reading.redis_up or reading.state is None:
                continue
            _queue_state(reading, gauges)
            _queue_counters(reading, counters, histograms)
        for name, schedule in readings.schedules.items():
            counters[f.SCHEDULE_RUNS].add_metric([name], schedule.runs)
            counters[f.SCHEDULE_MISSED].add_metric([name], schedule.missed)
        yield from gauges.values()
        yield from counters.values()
        yield from histograms.values()


def _queue_state(reading: QueueReading, gauges: dict[f.Family, GaugeMetricFamily]) -> None:
    state, queue = reading.state, [reading.queue]
    assert state is not None
    gauges[f.QUEUE_DEPTH].add_metric(queue, state.depth)
    gauges[f.QUEUE_OLDEST_AGE].add_metric(queue, state.oldest_age or 0.0)
    gauges[f.QUEUE_WORKERS].add_metric(queue, reading.workers)
    gauges[f.SATURATED].add_metric(queue, 1 if state.is_saturated(1) else 0)
    if state.max_depth is not None:
        gauges[f.MAX_DEPTH].add_metric(queue, state.max_depth)
    if state.max_age is not None:
        gauges[f.MAX_AGE].add_metric(queue, state.max_age)
    wait = state.estimated_wait
    if wait is not None:
        gauges[f.ESTIMATED_WAIT].add_metric(queue, wait)


def _queue_counters(
    reading: QueueReading,
    counters: dict[f.Family, CounterMetricFamily],
    histograms: dict[f.Family, HistogramMetricFamily],
) -> None:
    queue = reading.queue
    for (status, name), value in sorted(reading.family("jobs", 2).items()):
        counters[f.JOBS].add_metric([queue, name, status], value)
    for (outcome, name), value in sorted(reading.family("attempts", 2).items()):
        counters[f.ATTEMPTS].add_metric([queue, name, outcome], value)
    for (where,), value in sorted(reading.family("refused").items()):
        counters[f.REFUSED].add_metric([queue, where], value)
    recovery = reading.family("recovery")
    counters[f.REPUSHED].add_metric([queue], recovery.get(("repushed",), 0))
    counters[f.LOST_JOBS].add_metric([queue], recovery.get(("lost",), 0))
    counters[f.LOST_WORKERS].add_metric([queue], recovery.get(("lost_workers",), 0))
    waits = {int(index): count for (index,), count in reading.family("wait").items() if index.isdigit()}
    histograms[f.WAIT].add_metric([queue], _buckets(waits), sum_value=reading.counters.get("wait_sum", 0.0))
    runs: dict[str, dict[int, float]] = {}
    for (index, name), count in reading.family("run", 2).items():
        if index.isdigit():
            runs.setdefault(name, {})[int(index)] = count
    sums = reading.family("run_sum")
    for name in sorted(runs):
        histograms[f.RUN].add_metric([queue, name], _buckets(runs[name]), sum_value=sums.get((name,), 0.0))


def _buckets(counts: dict[int, float]) -> list[tuple[str, float]]:
    """Counts per bucket index (``len(BUCKETS)``: above every bound) as cumulative buckets."""
    total, cumulative = 0.0, []
    for index, bound in enumerate(BOUNDS):
        total += counts.get(index, 0.0)
        cumulative.append((bound, total))
    return cumulative


def exposition(collector: Collector | None = None) -> bytes:
    """The text exposition of one scrape, collected on a fresh registry."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector or AsyncJobsCollector())
    return generate_latest(registry)
