"""What one scrape reads, for every queue of ``RQ_QUEUES``: the counters in Redis
(:mod:`django_asyncjobs.engine.tallies`), the queue's state (depth, oldest message,
throughput, limits), its live workers, and from the database its running rows and the
schedules. Three round trips per queue (plus one per schedule for its missed runs) and two
queries.

A queue whose Redis does not answer is read as ``redis_up=False`` and the rest goes on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from django.db.models import Count

from ..engine import broker
from ..engine.broker import tallies as stored
from ..engine.capacity import QueueState, queue_state
from ..engine.tallies import SEPARATOR
from ..logs import log_event, metrics_logger
from ..models import Job, JobStatus, Schedule


@dataclass
class QueueReading:
    queue: str
    running: int
    redis_up: bool = False
    state: QueueState | None = None
    workers: int = 0
    #: The queue's counters: field -> value (see :mod:`django_asyncjobs.engine.tallies`).
    counters: dict[str, float] = field(default_factory=dict)

    def family(self, name: str, labels: int = 1) -> dict[tuple[str, ...], float]:
        """The counters of family ``name``, by their ``labels`` labels (the last may hold the separator)."""
        prefix = name + SEPARATOR
        found: dict[tuple[str, ...], float] = {}
        for key, value in self.counters.items():
            if key.startswith(prefix):
                parts = tuple(key[len(prefix) :].split(SEPARATOR, labels - 1))
                if len(parts) == labels:
                    found[parts] = value
        return found


@dataclass
class ScheduleReading:
    runs: float = 0.0
    missed: int = 0


@dataclass
class Readings:
    queues: list[QueueReading]
    schedules: dict[str, ScheduleReading]


def read_all() -> Readings:
    """Everything the metrics view exposes, read now."""
    try:
        stored.write_now()  # this process's own increments first (a worker between pops, say)
    except broker.RedisError as exc:
        log_event(metrics_logger, logging.WARNING, "metrics.not_counted", reason=str(exc))
    running = dict(
        Job.objects.filter(status=JobStatus.RUNNING)
        .order_by()
        .values("queue")
        .annotate(count=Count("pk"))
        .values_list("queue", "count")
    )
    queues = [_read_queue(queue, running.get(queue, 0)) for queue in broker.queue_names()]
    return Readings(queues=queues, schedules=_read_schedules(queues))


def _read_queue(queue: str, running: int) -> QueueReading:
    reading = QueueReading(queue=queue, running=running)
    try:
        reading.state = queue_state(queue, max_cache_age=0)
        reading.workers = broker.live_workers(queue)
        reading.counters = stored.read(queue)
    except broker.RedisError as exc:
        log_event(metrics_logger, logging.WARNING, "metrics.queue_unread", queue=queue, reason=str(exc))
        return reading
    reading.redis_up = True
    return reading


def _read_schedules(queues: list[QueueReading]) -> dict[str, ScheduleReading]:
    schedules = {name: ScheduleReading() for name in Schedule.objects.order_by("name").values_list("name", flat=True)}
    for reading in queues:
        for (name,), runs in reading.family("schedule").items():
            if name in schedules:
                schedules[name].runs += runs
    for name, schedule in schedules.items():
        try:
            schedule.missed = broker.missed_runs(name)
        except broker.RedisError:
            break  # the Redis of DEFAULT_QUEUE is away: its queue says so (asyncjobs_redis_up)
    return schedules
