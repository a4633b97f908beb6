"""The worker's side of the queues: popping messages, dropping finished ones, counting
throughput, putting a message back, and the worker's own state."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from redis import Redis
from redis.client import Pipeline

from . import keys
from .connections import commands, text


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
    if timeout is not None:
        with connection.pipeline(transaction=False) as pipe:
            record_finished(connection, finished, pipeline=pipe)
            pipe.blpop(list(queue_keys), timeout=max(1, int(timeout)))
            reply = pipe.execute()[-1]
        return (text(reply[0]), _message(reply[1])) if reply else None
    for key in queue_keys:
        with connection.pipeline(transaction=False) as pipe:
            record_finished(connection, finished, pipeline=pipe)
            finished = ()
            pipe.lpop(key)
            job_id = pipe.execute()[-1]
        if job_id is not None:
            return key, _message(job_id)
    return None


def record_finished(
    connection: Redis, finished: Sequence[tuple[str, str]], *, pipeline: Pipeline | None = None
) -> None:
    """Delete the message hashes of ``finished`` ``(job_id, queue)`` and count them for their
    queue's throughput (a queue of ``""`` marks a message that was skipped, not run)."""
    if not finished:
        return
    with commands(connection, pipeline) as pipe:
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
