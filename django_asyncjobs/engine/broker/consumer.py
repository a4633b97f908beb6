"""The worker's side of the queues: popping messages, dropping finished ones, counting
throughput, putting a message back, and the worker's own state."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from redis import Redis
from redis.client import Pipeline

from ...logs import log_event, worker_logger
from . import keys, tallies
from .connections import commands, follow_master, text


def pop(
    connection: Redis,
    queue_keys: Sequence[str],
    timeout: float | None,
    finished: Sequence[tuple[str, str]] = (),
) -> tuple[str, str] | None:
    """Pop the next message id from the first non-empty queue, in order.

    With ``timeout=None`` it does not block (burst mode); otherwise it blocks up to
    ``timeout`` seconds. ``finished`` lists ``(job_id, queue)`` of the jobs the
    caller has just finished: in the same round trip they are recorded
    (:func:`record_finished`). Returns ``(queue_key, job_id)``.
    """
    tallies.defer_to(connection)
    follow_master(connection)
    if timeout is not None:
        with connection.pipeline(transaction=False) as pipe:
            record_finished(connection, finished, pipeline=pipe)
            pipe.blpop(list(queue_keys), timeout=max(1, int(timeout)))
            reply = _popped(pipe)
        return (text(reply[0]), _message(reply[1])) if reply else None
    for key in queue_keys:
        with connection.pipeline(transaction=False) as pipe:
            record_finished(connection, finished, pipeline=pipe)
            finished = ()
            pipe.lpop(key)
            job_id = _popped(pipe)
        if job_id is not None:
            return key, _message(job_id)
    return None


def pop_many(
    connection: Redis,
    queue_keys: Sequence[str],
    timeout: float | None,
    count: int,
    finished: Sequence[tuple[str, str]] = (),
) -> list[tuple[str, str]]:
    """Pop up to ``count`` message ids from the first non-empty queue, in order, in one round trip.

    ``LMPOP`` (burst mode) or ``BLMPOP`` (blocking up to ``timeout`` seconds, and returning
    as soon as one id is there) with ``COUNT``: Redis >= 7.0 (:func:`pops_many`). A queue
    listed first is drained before the next is touched. ``count`` 1 is :func:`pop`, with
    the commands of older servers. ``finished`` is recorded in the same round trip.
    Returns ``[(queue_key, job_id), ...]`` in the order the ids were queued.
    """
    if count <= 1:
        popped = pop(connection, queue_keys, timeout, finished)
        return [] if popped is None else [popped]
    tallies.defer_to(connection)
    follow_master(connection)
    names = list(queue_keys)
    with connection.pipeline(transaction=False) as pipe:
        record_finished(connection, finished, pipeline=pipe)
        if timeout is None:
            pipe.lmpop(len(names), *names, direction="LEFT", count=count)
        else:
            pipe.blmpop(max(1, int(timeout)), len(names), *names, direction="LEFT", count=count)
        reply = _popped(pipe)
    if not reply:
        return []
    key = text(reply[0])
    return [(key, _message(job_id)) for job_id in reply[1]]


def _popped(pipe: Pipeline) -> Any:
    """Run ``pipe`` and return the reply of its last command, the pop. What rides with the pop
    (deleting finished messages, throughput and metrics counters) is bookkeeping: a key someone
    overwrote with a value of another type fails only that command, never the pop, whose ids
    would be lost with it (their rows wait for recovery) at every turn of the loop."""
    replies = pipe.execute(raise_on_error=False)
    popped = replies[-1]
    if isinstance(popped, Exception):
        raise popped
    errors = [reply for reply in replies[:-1] if isinstance(reply, Exception)]
    if errors:
        fields = {"errors": len(errors), "reason": str(errors[0])}
        log_event(worker_logger, logging.WARNING, "worker.stats_not_written", **fields)
    return popped


def pops_many(connection: Redis) -> bool:
    """Whether the server has ``LMPOP``/``BLMPOP`` (Redis or Valkey >= 7.0): one round trip."""
    version = str(connection.info("server").get("redis_version", "0"))
    try:
        return tuple(int(part) for part in version.split(".")[:2]) >= (7, 0)
    except ValueError:
        return False


def record_finished(
    connection: Redis, finished: Sequence[tuple[str, str]], *, pipeline: Pipeline | None = None
) -> None:
    """Delete the message hashes of ``finished`` ``(job_id, queue)`` and count them for their
    queue's throughput (a queue of ``""`` marks a message that was skipped, not run); write
    the metrics' pending counters (:mod:`.tallies`) too."""
    if not finished:
        if pipeline is not None:
            tallies.write_pending(connection, pipeline)
        return
    with commands(connection, pipeline) as pipe:
        tallies.write_pending(connection, pipe)
        pipe.unlink(*[keys.message_key(job_id) for job_id, _ in finished])
        bucket = int(time.time()) // keys.THROUGHPUT_BUCKET_SECONDS
        counts: dict[str, int] = {}
        for _, queue in finished:
            if queue:
                counts[queue] = counts.get(queue, 0) + 1
        for queue, count in counts.items():
            key = keys.finished_key(queue, bucket)
            pipe.incrby(key, count)
            pipe.expire(key, keys.THROUGHPUT_BUCKET_TTL)


def put_back(connection: Redis, queue_key: str, job_id: str, *, pipeline: Pipeline | None = None) -> None:
    """Return a popped message to the front of its queue (a worker asked to stop meanwhile)."""
    with commands(connection, pipeline) as pipe:
        pipe.lpush(queue_key, job_id)


def hand_back(
    connection: Redis, unstarted: Sequence[tuple[str, str]], finished: Sequence[tuple[str, str]] = ()
) -> None:
    """Return popped ``(queue_key, job_id)`` messages a worker did not start to the front of
    their queues, in their order, and record ``finished``: one round trip (a stopping worker).
    The metrics' counters are written at once from now on (:func:`.tallies.defer_to`)."""
    tallies.defer_to(None)
    with connection.pipeline(transaction=False) as pipe:
        tallies.write_pending(connection, pipe)
        record_finished(connection, finished, pipeline=pipe)
        by_key: dict[str, list[str]] = {}
        for key, job_id in unstarted:
            by_key.setdefault(key, []).append(job_id)
        for key, job_ids in by_key.items():
            pipe.lpush(key, *reversed(job_ids))  # LPUSH a b c leaves c b a: pushed last-first
        pipe.execute()


def any_waiting(connection: Redis, queue_keys: Sequence[str]) -> bool:
    """Whether any of ``queue_keys`` holds a message (one round trip)."""
    with connection.pipeline(transaction=False) as pipe:
        for key in queue_keys:
            pipe.llen(key)
        return any(pipe.execute())


@contextmanager
def worker_heartbeat(connection: Redis, worker_key: str, state: str | None) -> Iterator[Pipeline]:
    """A transaction for the worker's heartbeat (RQ's ``heartbeat(pipeline=...)`` adds to it),
    writing the worker's ``state`` too when it changed (``None``: unchanged)."""
    with connection.pipeline() as pipe:
        if state is not None:
            pipe.hset(worker_key, "state", state)
        yield pipe
        pipe.execute()


def _message(value: bytes | str) -> str:
    """A popped message as text; bytes that are not UTF-8 become U+FFFD (and then no job id)."""
    return value.decode(errors="replace") if isinstance(value, bytes) else value
