"""Every metric the view exposes, defined once: its name, type, labels and help text.

Names follow Prometheus' conventions: the ``asyncjobs_`` prefix, base units (seconds),
``_total`` for counters. Labels are bounded: ``queue`` comes from ``RQ_QUEUES``, ``name``
from the job registry (any other name is ``other``) or, for an offloaded view's jobs, the
registered offloaded views, ``schedule`` from the ``Schedule`` table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["gauge", "counter", "histogram"]


@dataclass(frozen=True)
class Family:
    name: str
    kind: Kind
    labels: tuple[str, ...]
    help: str


def _family(name: str, kind: Kind, labels: tuple[str, ...], help: str) -> Family:
    return Family(name, kind, labels, help)


QUEUE = ("queue",)

QUEUE_DEPTH = _family("asyncjobs_queue_depth", "gauge", QUEUE, "Messages waiting in the queue (Redis).")
QUEUE_OLDEST_AGE = _family(
    "asyncjobs_queue_oldest_age_seconds", "gauge", QUEUE, "Age of the oldest waiting message; 0 when empty."
)
QUEUE_WORKERS = _family("asyncjobs_queue_workers", "gauge", QUEUE, "Live workers listening on the queue.")
QUEUE_RUNNING = _family("asyncjobs_queue_running_jobs", "gauge", QUEUE, "Jobs of the queue whose row is running.")
REDIS_UP = _family(
    "asyncjobs_redis_up", "gauge", QUEUE, "1 when the queue's Redis answered this scrape, 0 when it did not."
)
JOBS = _family(
    "asyncjobs_jobs_total",
    "counter",
    ("queue", "name", "status"),
    "Jobs that reached a final status (succeeded, failed, cancelled).",
)
ATTEMPTS = _family(
    "asyncjobs_attempts_total",
    "counter",
    ("queue", "name", "outcome"),
    "Attempts that ended, by outcome (succeeded, failed, retried).",
)
WAIT = _family(
    "asyncjobs_wait_seconds", "histogram", QUEUE, "Time from a job's enqueue (or promotion) to its attempt's start."
)
RUN = _family("asyncjobs_run_seconds", "histogram", ("queue", "name"), "Run time of an attempt.")
MAX_DEPTH = _family("asyncjobs_backpressure_max_depth", "gauge", QUEUE, "QUEUE_LIMITS MAX_DEPTH of the queue (if set).")
MAX_AGE = _family(
    "asyncjobs_backpressure_max_age_seconds", "gauge", QUEUE, "QUEUE_LIMITS MAX_AGE of the queue (if set)."
)
ESTIMATED_WAIT = _family(
    "asyncjobs_backpressure_estimated_wait_seconds",
    "gauge",
    QUEUE,
    "Little's law: depth / recent throughput, the wait of a job enqueued now (absent when nothing finished recently).",
)
SATURATED = _family(
    "asyncjobs_backpressure_saturated",
    "gauge",
    QUEUE,
    "1 when the queue refuses new work (one more job would pass a limit).",
)
REFUSED = _family(
    "asyncjobs_backpressure_refused_total",
    "counter",
    ("queue", "where"),
    "Work refused on a saturated queue: 503s answered by the middleware (where=middleware), "
    "enqueues that raised QueueFull (where=enqueue).",
)
REPUSHED = _family(
    "asyncjobs_recovery_repushed_total", "counter", QUEUE, "Messages recovery pushed again (lost from Redis)."
)
LOST_JOBS = _family(
    "asyncjobs_recovery_lost_jobs_total", "counter", QUEUE, "Running jobs recovery found with a dead worker."
)
LOST_WORKERS = _family(
    "asyncjobs_recovery_lost_workers_total",
    "counter",
    QUEUE,
    "Workers found dead by recovery (counted once per recovery pass that found their jobs).",
)
SCHEDULE_RUNS = _family("asyncjobs_schedule_runs_total", "counter", ("schedule",), "Runs a schedule fired.")
SCHEDULE_MISSED = _family(
    "asyncjobs_schedule_missed_total",
    "counter",
    ("schedule",),
    "Runs a schedule missed (found more than MISFIRE_GRACE late).",
)

FAMILIES: tuple[Family, ...] = (
    QUEUE_DEPTH,
    QUEUE_OLDEST_AGE,
    QUEUE_WORKERS,
    QUEUE_RUNNING,
    REDIS_UP,
    JOBS,
    ATTEMPTS,
    WAIT,
    RUN,
    MAX_DEPTH,
    MAX_AGE,
    ESTIMATED_WAIT,
    SATURATED,
    REFUSED,
    REPUSHED,
    LOST_JOBS,
    LOST_WORKERS,
    SCHEDULE_RUNS,
    SCHEDULE_MISSED,
)


def sample_names() -> set[str]:
    """Every sample name the view may expose (a histogram's ``_bucket``, ``_count``, ``_sum``)."""
    names: set[str] = set()
    for family in FAMILIES:
        if family.kind == "histogram":
            names.update(f"{family.name}{suffix}" for suffix in ("_bucket", "_count", "_sum"))
        else:
            names.add(family.name)
    return names
