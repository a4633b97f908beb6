"""The broker: the only code that talks to RQ and Redis.

A message ("doorbell") is a plain RQ job whose id is the ``Job`` row's UUID, whose
function is :func:`django_asyncjobs.engine.execution.perform` and whose only argument is
that UUID, serialized as JSON. Our own worker needs nothing but the id popped
from the queue list; stock RQ workers (``rqworker``) can run the message too.

- :mod:`.keys`: every Redis key the package reads or writes (the schema);
- :mod:`.connections`: clients and RQ queues from ``RQ_QUEUES`` (through Sentinel: following
  the master, :func:`.connections.follow_master`), pipelines, Lua scripts (registered once
  per connection, run by SHA);
- :mod:`.messages`: ringing the doorbell, withdrawing cancelled jobs' messages, stopping a
  running job, schedules' counters;
- :mod:`.reads`: queue depth, age and throughput, live workers, positions, lost messages;
- :mod:`.consumer`: the worker's pops and bookkeeping;
- :mod:`.limits`: rate limits (one Lua script).

Functions that write take an optional ``pipeline=``: pass one from :func:`batch` to put
several of them in one round trip. Other modules catch :data:`RedisError` (and the
worker :data:`UNREACHABLE`) from here rather than importing ``redis``.
"""

from redis.exceptions import ConnectionError as _ConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as _TimeoutError
from rq.timeouts import JobTimeoutException

from .connections import (
    batch,
    get_connection,
    get_queue,
    ping,
    queue_names,
    reset_connections,
    validate_queue,
    worker_queues,
)
from .consumer import any_waiting, hand_back, pop, pop_many, pops_many, put_back, record_finished, worker_heartbeat
from .limits import free_slot, rate_wait, take_slot
from .messages import (
    EXECUTOR,
    count_missed_runs,
    current_rq_worker_name,
    missed_runs,
    push,
    ring,
    send_stop,
    stopped_job_id,
    withdraw,
)
from .reads import (
    MEMBERSHIP_SCAN_LIMIT,
    POSITION_SCAN_LIMIT,
    QueueStats,
    WorkerRegistration,
    live_workers,
    missing_messages,
    position,
    queue_stats,
    waiting_ids,
    worker_registration,
)

#: The errors of a Redis server that cannot be reached (as opposed to one that refused a command).
UNREACHABLE = (_ConnectionError, _TimeoutError)

__all__ = [
    "EXECUTOR",
    "MEMBERSHIP_SCAN_LIMIT",
    "POSITION_SCAN_LIMIT",
    "UNREACHABLE",
    "JobTimeoutException",
    "QueueStats",
    "RedisError",
    "WorkerRegistration",
    "any_waiting",
    "batch",
    "count_missed_runs",
    "current_rq_worker_name",
    "free_slot",
    "get_connection",
    "get_queue",
    "hand_back",
    "live_workers",
    "missed_runs",
    "missing_messages",
    "ping",
    "pop",
    "pop_many",
    "pops_many",
    "position",
    "push",
    "put_back",
    "queue_names",
    "queue_stats",
    "rate_wait",
    "record_finished",
    "reset_connections",
    "ring",
    "send_stop",
    "stopped_job_id",
    "take_slot",
    "validate_queue",
    "waiting_ids",
    "withdraw",
    "worker_heartbeat",
    "worker_queues",
    "worker_registration",
]
