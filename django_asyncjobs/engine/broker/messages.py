"""The doorbell: writing jobs' messages, telling workers to stop a job, and schedules' counters."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import RedisError
from rq import get_current_job
from rq.command import parse_payload, send_command
from rq.utils import now as rq_now
from rq.utils import utcformat

from ...conf import app_settings
from ...exceptions import EnqueueError
from ...logs import enqueue_logger, log_event
from ...signals import job_enqueued, notify
from ..registry import timeout_for
from . import keys
from .connections import commands, get_connection

if TYPE_CHECKING:
    from ...models import Job


#: Dotted path of the function every message calls.
EXECUTOR = "django_asyncjobs.engine.execution.perform"

#: Seconds RQ keeps a message that failed on a stock RQ worker (the row keeps the error).
FAILURE_TTL = 3600


def message_fields(job: Job, timeout: int, created_at: str) -> dict[Any, Any]:
    """The RQ job hash of ``job``'s message: the fields ``rq.job.Job.restore`` reads.

    Built by hand because building full ``rq.job.Job`` objects cost more than the
    rest of an enqueue. ``data`` is stored as plain JSON; RQ also reads it
    uncompressed.
    """
    job_id = str(job.pk)
    return {
        "data": json.dumps([EXECUTOR, None, [job_id], {}]).encode(),
        "origin": job.queue,
        "description": job.name,
        "status": "queued",
        "created_at": created_at,
        "enqueued_at": created_at,
        "timeout": timeout,
        "result_ttl": 0,
        "failure_ttl": FAILURE_TTL,
    }


def ring(jobs: Sequence[Job], *, strict: bool = False) -> bool:
    """Ring the doorbell of committed ``queued`` jobs: :func:`push` their messages and
    announce them (``job_enqueued``). Returns whether Redis took them.

    When Redis cannot be reached the rows stay ``queued`` and recovery pushes them
    later; ``strict=True`` raises :class:`EnqueueError` as well.
    """
    try:
        push(jobs)
    except RedisError as exc:
        ids = [str(job.pk) for job in jobs]
        message = f"Could not push {len(ids)} job(s) to Redis ({exc}); the rows stay queued for recovery."
        if strict:
            raise EnqueueError(message, ids) from exc
        # The rows stay queued for recovery.
        fields = {"count": len(ids), "reason": str(exc), "job_ids": ids}
        log_event(enqueue_logger, logging.WARNING, "enqueue.push_failed", **fields, recovery="pushes them")
        return False
    for job in jobs:
        notify(job_enqueued, job)
    return True


def push(jobs: Sequence[Job], *, pipeline: Pipeline | None = None) -> None:
    """Write the messages of ``jobs``: one pipelined round trip per Redis server.

    Each message is an RQ job hash (with ``MESSAGE_TTL``) and its id on the queue
    list, as RQ's ``enqueue`` would write them: at the end, or at the front (RQ's
    ``at_front``) for jobs with a ``priority`` above 0. With ``pipeline`` (whose
    server holds all of ``jobs``' queues) the commands join it for its owner to execute.
    Raises ``RedisError``; :func:`ring` is what callers use.
    """
    by_queue: dict[str, list[Job]] = {}
    for job in jobs:
        by_queue.setdefault(job.queue, []).append(job)
    by_server: dict[int, tuple[Redis, list[str]]] = {}
    for name in by_queue:
        connection = get_connection(name)
        by_server.setdefault(id(connection), (connection, []))[1].append(name)
    created_at = utcformat(rq_now())
    ttl = app_settings.MESSAGE_TTL
    for connection, names in by_server.values():
        with commands(connection, pipeline) as pipe:
            pipe.sadd(keys.QUEUES_SET, *[keys.queue_key(name) for name in names])
            for name in names:
                for job in by_queue[name]:
                    key = keys.message_key(str(job.pk))
                    pipe.hset(key, mapping=message_fields(job, timeout_for(job.name), created_at))
                    pipe.expire(key, ttl)
                back = [str(job.pk) for job in by_queue[name] if job.priority <= 0]
                front = [str(job.pk) for job in by_queue[name] if job.priority > 0]
                if back:
                    pipe.rpush(keys.queue_key(name), *back)
                if front:
                    pipe.lpush(keys.queue_key(name), *reversed(front))  # the first of them ends up first


def send_stop(queue: str, worker_name: str, job_id: str) -> None:
    """Ask ``worker_name`` to stop ``job_id`` (RQ's ``stop-job`` command)."""
    send_command(get_connection(queue), worker_name, "stop-job", job_id=job_id)


def stopped_job_id(message: dict[Any, Any]) -> str | None:
    """The job id of a ``stop-job`` command received on a worker's pub/sub channel; ``None``
    for any other command (RQ's ``shutdown``, ``kill-horse``, ...)."""
    try:
        payload = parse_payload(message)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    if not isinstance(payload, dict) or payload.get("command") != "stop-job":
        return None
    job_id = payload.get("job_id")
    return str(job_id) if job_id else None


def current_rq_worker_name() -> str | None:
    """The name of the RQ worker running the current message (a stock RQ worker), if any."""
    return getattr(get_current_job(), "worker_name", None)


def count_missed_runs(schedule: str, count: int, *, pipeline: Pipeline | None = None) -> None:
    """Add ``count`` to the missed runs of ``schedule`` (in the Redis of ``DEFAULT_QUEUE``)."""
    with commands(get_connection(app_settings.DEFAULT_QUEUE), pipeline) as pipe:
        pipe.incrby(keys.missed_runs_key(schedule), count)


def missed_runs(schedule: str) -> int:
    """How many runs of ``schedule`` were counted as missed since Redis was last flushed."""
    return int(get_connection(app_settings.DEFAULT_QUEUE).get(keys.missed_runs_key(schedule)) or 0)
