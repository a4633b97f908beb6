"""The only module that talks to RQ and Redis.

A message ("doorbell") is a plain RQ job whose id is the ``Job`` row's UUID, whose
function is :func:`django_asyncjobs.engine.execution.perform` and whose only argument is
that UUID, serialized as JSON. Our own worker needs nothing but the id popped
from the queue list; stock RQ workers (``rqworker``) can run the message too.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from django.core.signals import setting_changed
from django.dispatch import receiver
from redis import Redis
from rq import Queue
from rq.command import send_command
from rq.serializers import JSONSerializer
from rq.utils import now as rq_now
from rq.utils import utcformat
from rq.worker_registration import WORKERS_BY_QUEUE_KEY

from ..conf import app_settings
from ..exceptions import UnknownQueue

if TYPE_CHECKING:
    from ..models import Job

#: Dotted path of the function every message calls.
EXECUTOR = "django_asyncjobs.engine.execution.perform"

#: RQ_QUEUES keys that configure the queue, not the connection.
QUEUE_ONLY_KEYS = frozenset(
    {"DEFAULT_TIMEOUT", "DEFAULT_RESULT_TTL", "DEFAULT_FAILURE_TTL", "ASYNC", "COMMIT_MODE", "AUTOCOMMIT", "SERIALIZER"}
)

_connections: dict[str, Redis] = {}
_queues: dict[str, Queue] = {}
_lock = threading.Lock()


@receiver(setting_changed)
def _forget_connections(setting: str, **kwargs: Any) -> None:
    if setting in ("RQ_QUEUES", "ASYNCJOBS"):
        reset_connections()


def reset_connections() -> None:
    """Drop cached Redis clients (after RQ_QUEUES changes, or after a fork)."""
    with _lock:
        for connection in _connections.values():
            connection.close()
        _connections.clear()
        _queues.clear()


def queue_names() -> list[str]:
    return list(app_settings.rq_queues)


def validate_queue(name: str) -> str:
    if name not in app_settings.rq_queues:
        raise UnknownQueue(name, queue_names())
    return name


def get_connection(queue: str) -> Redis:
    """The Redis client for ``queue``, built from its ``RQ_QUEUES`` entry.

    Queues with the same connection settings share one cached client.
    """
    config = app_settings.rq_queues.get(queue)
    if config is None:
        raise UnknownQueue(queue, queue_names())
    key = repr(sorted((k, v) for k, v in config.items() if k not in QUEUE_ONLY_KEYS))
    connection = _connections.get(key)
    if connection is None:
        from django_rq.connection_utils import get_redis_connection

        with _lock:
            connection = _connections.setdefault(key, get_redis_connection(config))
    return connection


def get_queue(name: str) -> Queue:
    """The RQ queue ``name`` (cached: RQ caches the server version per instance)."""
    queue = _queues.get(name)
    if queue is None:
        queue = _queues.setdefault(name, Queue(name, connection=get_connection(name), serializer=JSONSerializer))
    return queue


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


def push(jobs: Sequence[Job]) -> None:
    """Ring the doorbell for ``jobs``: one pipelined round trip per queue.

    Each message is an RQ job hash (with ``MESSAGE_TTL``) and its id on the queue
    list, as RQ's ``enqueue`` would write them: at the end, or at the front (RQ's
    ``at_front``) for jobs with a ``priority`` above 0.
    """
    from .registry import timeout_for

    by_queue: dict[str, list[Job]] = {}
    for job in jobs:
        by_queue.setdefault(job.queue, []).append(job)
    created_at = utcformat(rq_now())
    ttl = app_settings.MESSAGE_TTL
    for name, queue_jobs in by_queue.items():
        queue = get_queue(name)
        with queue.connection.pipeline(transaction=False) as pipe:
            pipe.sadd(Queue.redis_queues_keys, queue.key)
            for job in queue_jobs:
                key = Queue.job_class.key_for(str(job.pk))
                pipe.hset(key, mapping=message_fields(job, timeout_for(job.name), created_at))
                pipe.expire(key, ttl)
            back = [str(job.pk) for job in queue_jobs if job.priority <= 0]
            front = [str(job.pk) for job in queue_jobs if job.priority > 0]
            if back:
                pipe.rpush(queue.key, *back)
            if front:
                pipe.lpush(queue.key, *reversed(front))  # the first of them ends up first
            pipe.execute()


#: Finished jobs are counted per queue in buckets of this many seconds...
THROUGHPUT_BUCKET_SECONDS = 10
#: ...and this many buckets make the window the throughput is measured over.
THROUGHPUT_BUCKETS = 6


def _throughput_key(queue: str, bucket: int) -> str:
    return f"asyncjobs:finished:{queue}:{bucket}"


def pop(
    connection: Redis,
    queue_keys: Sequence[str],
    timeout: float | None,
    finished: Sequence[tuple[str, str]] = (),
) -> tuple[str, str] | None:
    """Pop the next message id from the first non-empty queue, in order.

    With ``timeout=None`` it does not block (burst mode); otherwise it blocks up to
    ``timeout`` seconds. ``finished`` lists ``(job_id, queue)`` of the jobs the
    caller has just finished: in the same round trip their RQ hashes are deleted
    and they are counted for the queue's throughput. Returns ``(queue_key, job_id)``.
    """
    if timeout is not None:
        with connection.pipeline(transaction=False) as pipe:
            _record_finished(pipe, finished)
            pipe.blpop(list(queue_keys), timeout=max(1, int(timeout)))
            reply = pipe.execute()[-1]
        return (_text(reply[0]), _message(reply[1])) if reply else None
    for key in queue_keys:
        with connection.pipeline(transaction=False) as pipe:
            _record_finished(pipe, finished)
            finished = ()
            pipe.lpop(key)
            job_id = pipe.execute()[-1]
        if job_id is not None:
            return key, _message(job_id)
    return None


def _record_finished(pipe: Any, finished: Sequence[tuple[str, str]]) -> None:
    if not finished:
        return
    pipe.unlink(*[Queue.job_class.key_for(job_id) for job_id, _ in finished])
    bucket = int(time.time()) // THROUGHPUT_BUCKET_SECONDS
    counts: dict[str, int] = {}
    for _, queue in finished:
        if queue:  # "" marks a message that was skipped, not run: it does not count
            counts[queue] = counts.get(queue, 0) + 1
    for queue, count in counts.items():
        key = _throughput_key(queue, bucket)
        pipe.incrby(key, count)
        pipe.expire(key, THROUGHPUT_BUCKET_SECONDS * (THROUGHPUT_BUCKETS + 2))


def flush_finished(connection: Redis, finished: Sequence[tuple[str, str]]) -> None:
    """Delete the hashes of and count ``finished`` jobs without popping (at worker exit)."""
    if finished:
        with connection.pipeline(transaction=False) as pipe:
            _record_finished(pipe, finished)
            pipe.execute()


@dataclass(frozen=True)
class QueueStats:
    """What Redis knows about a queue, read in one round trip."""

    depth: int
    oldest_enqueued_at: datetime | None
    #: Jobs finished per second over the last minute or so.
    throughput: float


# One round trip: depth, the head message's enqueue time, and the throughput buckets.
_STATS_SCRIPT = """
local depth = redis.call('LLEN', KEYS[1])
local head = redis.call('LINDEX', KEYS[1], 0)
local enqueued_at = false
if head then enqueued_at = redis.call('HGET', ARGV[1] .. head, 'enqueued_at') end
local counts = {}
if #KEYS > 1 then counts = redis.call('MGET', unpack(KEYS, 2)) end
return {depth, enqueued_at, counts}
"""


_stats_script: Any = None


def queue_stats(queue: str) -> QueueStats:
    """Depth, age of the oldest message and recent throughput of ``queue``."""
    connection = get_connection(queue)
    now = time.time()
    bucket = int(now) // THROUGHPUT_BUCKET_SECONDS
    buckets = range(bucket - THROUGHPUT_BUCKETS + 1, bucket + 1)
    keys = [get_queue(queue).key, *[_throughput_key(queue, b) for b in buckets]]
    depth, enqueued_at, counts = connection.eval(
        _STATS_SCRIPT, len(keys), *keys, Queue.job_class.redis_job_namespace_prefix
    )
    window = (THROUGHPUT_BUCKETS - 1) * THROUGHPUT_BUCKET_SECONDS + (now - bucket * THROUGHPUT_BUCKET_SECONDS)
    finished = sum(int(count) for count in counts if count is not None)
    oldest = None
    if enqueued_at:
        try:
            oldest = datetime.strptime(_text(enqueued_at), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        except ValueError:
            oldest = None
    return QueueStats(depth=int(depth), oldest_enqueued_at=oldest, throughput=finished / window)


# Registered workers whose hash has not expired: a worker that died without
# unregistering stays in RQ's set until RQ's maintenance pass cleans it.
_LIVE_WORKERS_SCRIPT = """
local alive = 0
for _, key in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', key) == 1 then alive = alive + 1 end
end
return alive
"""


def live_workers(queue: str) -> int:
    """How many live workers listen on ``queue`` (RQ's worker registry; one round trip)."""
    return int(get_connection(queue).eval(_LIVE_WORKERS_SCRIPT, 1, WORKERS_BY_QUEUE_KEY % queue))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _message(value: bytes | str) -> str:
    """A popped message as text; bytes that are not UTF-8 become U+FFFD (and then no job id)."""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def depth(queue: str) -> int:
    """Number of messages waiting in ``queue`` (one round trip)."""
    return int(get_connection(queue).llen(get_queue(queue).key))


#: How far into a queue ``position()`` looks (LPOS scans the list).
POSITION_SCAN_LIMIT = 10_000


def position(queue: str, job_id: str) -> int | None:
    """How many messages are ahead of ``job_id``'s in ``queue``; ``None`` if it is not
    among the first ``POSITION_SCAN_LIMIT`` (or the server predates LPOS, Redis 6.0.6)."""
    found: Any = get_connection(queue).lpos(get_queue(queue).key, job_id, maxlen=POSITION_SCAN_LIMIT)
    return None if found is None else int(found)


#: Queues up to this deep are read whole to tell which messages are in them.
MEMBERSHIP_SCAN_LIMIT = 100_000


def waiting_ids(queue: str) -> set[str] | None:
    """The ids of the messages waiting in ``queue``, read in one command (a consistent
    snapshot); ``None`` when the queue is deeper than ``MEMBERSHIP_SCAN_LIMIT``."""
    connection = get_connection(queue)
    key = get_queue(queue).key
    # Read in one LRANGE (atomic): chunks read while workers pop would shift under us.
    ids = connection.eval(
        "if redis.call('LLEN', KEYS[1]) > tonumber(ARGV[1]) then return false end "
        "return redis.call('LRANGE', KEYS[1], 0, -1)",
        1,
        key,
        MEMBERSHIP_SCAN_LIMIT,
    )
    return None if ids is None else {_text(item) for item in ids}


def missing_messages(queue: str, job_ids: Sequence[str], waiting: set[str] | None) -> list[str]:
    """The ids in ``job_ids`` that have no message waiting in ``queue``.

    ``waiting`` is the snapshot from :func:`waiting_ids`: a message popped by a worker
    that died before claiming its row counts as missing. Without one (a queue too
    deep to read whole) a message counts as missing when its RQ hash is gone, one
    pipelined round trip: a flushed or restarted Redis loses those too.
    """
    if waiting is not None:
        return [job_id for job_id in job_ids if job_id not in waiting]
    if not job_ids:
        return []
    with get_connection(queue).pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.exists(Queue.job_class.key_for(job_id))
        found = pipe.execute()
    return [job_id for job_id, exists in zip(job_ids, found, strict=True) if not exists]


def send_stop(queue: str, worker_name: str, job_id: str) -> None:
    """Ask ``worker_name`` to stop ``job_id`` (RQ's ``stop-job`` command)."""
    send_command(get_connection(queue), worker_name, "stop-job", job_id=job_id)
