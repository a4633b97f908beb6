"""Counters kept in Redis for the Prometheus metrics: one hash per queue
(``asyncjobs:metrics:<queue>``, :func:`keys.tallies_key`), fields incremented by
``HINCRBYFLOAT``.

Increments wait in this process (:func:`add`) and are written:

- by a worker, in the round trip of its next pop (or of its stop), which it makes anyway
  (:func:`write_pending`, called by :func:`.consumer.record_finished`): no round trip of
  their own on the hot path. A process becomes such a worker at its first pop
  (:func:`defer_to`) and stops being one when it hands back what it popped;
- by any other process (a web process answering 503, a scheduler), at once: one round trip.

Counters start from zero when Redis loses the hash, as Prometheus counters do when a
process restarts; ``rate()`` and ``increase()`` handle the reset.
"""

from __future__ import annotations

import threading
from collections import defaultdict

from redis import Redis
from redis.client import Pipeline

from ...exceptions import UnknownQueue
from . import keys
from .connections import get_connection, text

_pending: defaultdict[str, defaultdict[str, float]] = defaultdict(lambda: defaultdict(float))
_lock = threading.Lock()
#: The connection of this process's worker loop, whose next pop writes the pending increments.
_deferred_to: Redis | None = None


def defer_to(connection: Redis | None) -> None:
    """Leave increments of queues on ``connection`` to the worker's next pop (``None``: write at once)."""
    global _deferred_to
    _deferred_to = connection


def add(queue: str, increments: dict[str, float]) -> None:
    """Add ``increments`` (field -> amount) to the counters of ``queue``.

    A queue not in ``RQ_QUEUES`` is ignored (its counters would have no server). Raises
    :data:`RedisError` when written at once and Redis cannot be reached.
    """
    try:
        connection = get_connection(queue)
    except UnknownQueue:
        return
    with _lock:
        fields = _pending[queue]
        for field, amount in increments.items():
            fields[field] += amount
    if connection is not _deferred_to:
        write_now()


def write_pending(connection: Redis, pipe: Pipeline) -> None:
    """Put the pending increments of the queues on ``connection`` in ``pipe`` (its owner executes it)."""
    if not _pending:
        return
    with _lock:
        taken = {queue: fields for queue, fields in _pending.items() if _connection_or_none(queue) is connection}
        for queue in taken:
            del _pending[queue]
    for queue, fields in taken.items():
        _increment(pipe, queue, fields)


def write_now() -> None:
    """Write every pending increment, one round trip per Redis server. On an error they are
    dropped (counters are a view, the rows are the truth) and the error is raised."""
    with _lock:
        taken = dict(_pending)
        _pending.clear()
    by_connection: dict[int, tuple[Redis, list[str]]] = {}
    for queue in taken:
        connection = _connection_or_none(queue)
        if connection is not None:
            by_connection.setdefault(id(connection), (connection, []))[1].append(queue)
    for connection, queues in by_connection.values():
        with connection.pipeline(transaction=False) as pipe:
            for queue in queues:
                _increment(pipe, queue, taken[queue])
            pipe.execute()


def read(queue: str) -> dict[str, float]:
    """Every counter of ``queue`` (one ``HGETALL``); a field that is not a number is skipped."""
    found: dict[str, float] = {}
    for field, value in get_connection(queue).hgetall(keys.tallies_key(queue)).items():
        try:
            found[text(field)] = float(value)
        except ValueError:
            continue
    return found


def _increment(pipe: Pipeline, queue: str, fields: dict[str, float]) -> None:
    # HINCRBYFLOAT for every field, counts included: HINCRBY fails on a field holding a
    # float, and an error would fail the worker's pop it rides with.
    key = keys.tallies_key(queue)
    for field, amount in fields.items():
        pipe.hincrbyfloat(key, field, amount)


def _connection_or_none(queue: str) -> Redis | None:
    try:
        return get_connection(queue)
    except UnknownQueue:
        return None
