"""What Redis knows about queues and workers, read for back pressure, recovery, the admin
and the offload status view."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import keys
from .connections import get_connection, queue_names, script, text


@dataclass(frozen=True)
class QueueStats:
    """What Redis knows about a queue, read in one round trip."""

    depth: int
    oldest_enqueued_at: datetime | None
    #: Jobs finished per second over the last minute or so.
    throughput: float


# One round trip: depth, the head message's enqueue time, and the throughput buckets.
STATS_SCRIPT = """
local depth = redis.call('LLEN', KEYS[1])
local head = redis.call('LINDEX', KEYS[1], 0)
local enqueued_at = false
if head then enqueued_at = redis.call('HGET', ARGV[1] .. head, 'enqueued_at') end
local counts = {}
if #KEYS > 1 then counts = redis.call('MGET', unpack(KEYS, 2)) end
return {depth, enqueued_at, counts}
"""


def queue_stats(queue: str) -> QueueStats:
    """Depth, age of the oldest message and recent throughput of ``queue``."""
    now = time.time()
    bucket = int(now) // keys.THROUGHPUT_BUCKET_SECONDS
    buckets = range(bucket - keys.THROUGHPUT_BUCKETS + 1, bucket + 1)
    stats_keys = [keys.queue_key(queue), *[keys.finished_key(queue, b) for b in buckets]]
    stats = script(get_connection(queue), STATS_SCRIPT)
    depth, enqueued_at, counts = stats(keys=stats_keys, args=[keys.MESSAGE_PREFIX])
    seconds = keys.THROUGHPUT_BUCKET_SECONDS
    window = (keys.THROUGHPUT_BUCKETS - 1) * seconds + (now - bucket * seconds)
    finished = sum(int(count) for count in counts if count is not None)
    oldest = None
    if enqueued_at:
        try:
            oldest = datetime.strptime(text(enqueued_at), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        except ValueError:
            oldest = None
    return QueueStats(depth=int(depth), oldest_enqueued_at=oldest, throughput=finished / window)


# Registered workers whose hash has not expired: a worker that died without
# unregistering stays in RQ's set until RQ's maintenance pass cleans it.
LIVE_WORKERS_SCRIPT = """
local alive = 0
for _, key in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', key) == 1 then alive = alive + 1 end
end
return alive
"""


def live_workers(queue: str) -> int:
    """How many live workers listen on ``queue`` (RQ's worker registry; one round trip)."""
    live = script(get_connection(queue), LIVE_WORKERS_SCRIPT)
    return int(live(keys=[keys.workers_of_queue_key(queue)]))


#: Longest worker name looked up, and longest text kept of what its hash holds (untrusted).
WORKER_NAME_MAX = 512
_FIELD_MAX = 200


@dataclass(frozen=True)
class WorkerRegistration:
    """A live worker's hash in Redis, as RQ registers it and its heartbeats refresh it."""

    name: str
    #: ``idle``, ``busy``, ``suspended``... as the worker last wrote it (untrusted text).
    state: str
    #: The queue names it listens on, as registered.
    queues: str
    #: Seconds until Redis drops the hash unless the worker beats again (Redis's clock).
    expires_in: float | None
    #: The worker exited: RQ keeps its hash a minute longer, with the time of its ``death``.
    exited: bool = False


def _printable(value: bytes | str | None) -> str:
    """A field of a hash (untrusted) as text a terminal shows as is: short, no control characters."""
    decoded = value.decode(errors="replace") if isinstance(value, bytes) else value or ""
    return "".join(char if char.isprintable() else "?" for char in decoded[:_FIELD_MAX])


def worker_registration(name: str) -> WorkerRegistration | None:
    """The registration of the worker ``name`` on the Redis servers of ``RQ_QUEUES`` (one
    round trip each, until found), or ``None``: never registered, or expired after its last
    heartbeat (or a minute after it exited)."""
    if not name or len(name) > WORKER_NAME_MAX:
        return None
    servers: dict[int, Any] = {}
    for queue in queue_names():
        connection = get_connection(queue)
        servers.setdefault(id(connection), connection)
    for connection in servers.values():
        with connection.pipeline(transaction=False) as pipe:
            pipe.hmget(keys.worker_key(name), ["state", "queues", "death"])
            pipe.pttl(keys.worker_key(name))
            (state, queues, death), ttl = pipe.execute()
        if int(ttl) == -2:  # no such key
            continue
        return WorkerRegistration(
            name=name,
            state=_printable(state),
            queues=_printable(queues),
            expires_in=int(ttl) / 1000 if int(ttl) >= 0 else None,
            exited=death is not None,
        )
    return None


#: How far into a queue ``position()`` looks (LPOS scans the list).
POSITION_SCAN_LIMIT = 10_000


def position(queue: str, job_id: str) -> int | None:
    """How many messages are ahead of ``job_id``'s in ``queue``; ``None`` if it is not
    among the first ``POSITION_SCAN_LIMIT`` (or the server predates LPOS, Redis 6.0.6)."""
    found: Any = get_connection(queue).lpos(keys.queue_key(queue), job_id, maxlen=POSITION_SCAN_LIMIT)
    return None if found is None else int(found)


#: Queues up to this deep are read whole to tell which messages are in them.
MEMBERSHIP_SCAN_LIMIT = 100_000

# Read in one LRANGE (atomic): chunks read while workers pop would shift under us.
WAITING_IDS_SCRIPT = """
if redis.call('LLEN', KEYS[1]) > tonumber(ARGV[1]) then return false end
return redis.call('LRANGE', KEYS[1], 0, -1)
"""


def waiting_ids(queue: str) -> set[str] | None:
    """The ids of the messages waiting in ``queue``, read in one command (a consistent
    snapshot); ``None`` when the queue is deeper than ``MEMBERSHIP_SCAN_LIMIT``."""
    waiting = script(get_connection(queue), WAITING_IDS_SCRIPT)
    ids = waiting(keys=[keys.queue_key(queue)], args=[MEMBERSHIP_SCAN_LIMIT])
    return None if ids is None else {text(item) for item in ids}


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
            pipe.exists(keys.message_key(job_id))
        found = pipe.execute()
    return [job_id for job_id, exists in zip(job_ids, found, strict=True) if not exists]
