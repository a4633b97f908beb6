"""Every Redis key the package reads or writes, in one place (the broker's schema).

Only :mod:`django_asyncjobs.engine.broker` uses these names. The rows in the database
are the truth, so everything here may be lost: recovery pushes the messages again,
counters start from zero. ``docs/deployment.md`` has the same list as a table.

``rq:queues`` (set; never expires)
    Written: ``push`` (SADD of the queue's list key, as RQ's ``enqueue`` does; a push
    runs its commands in ``messages.PUSH_SCRIPT``, or in a caller's pipeline).
    Read: RQ's and django-rq's tools.
``rq:queue:<queue>`` (list of job ids; never expires, drained by pops)
    Written: ``push`` (RPUSH; LPUSH for ``priority`` > 0), the worker's ``put_back`` and
    ``hand_back`` (LPUSH). Read: the worker (``pop_many``: LMPOP, or BLMPOP when not in
    burst mode, with COUNT ``WORKER_PREFETCH``; with 1, LPOP or BLPOP), ``queue_stats`` (LLEN,
    LINDEX), ``position`` (LPOS), ``waiting_ids`` (LRANGE), ``any_waiting`` (LLEN).
``rq:job:<job id>`` (hash, the fields ``rq.job.Job.restore`` reads; ``MESSAGE_TTL``)
    Written: ``push`` (HSET, EXPIRE). Deleted: the worker once the job is done (UNLINK,
    in the round trip of its next pop, or of its stop).
    Read: stock RQ workers, ``queue_stats`` (HGET ``enqueued_at`` of the head message),
    ``missing_messages`` (EXISTS).
``asyncjobs:finished:<queue>:<bucket>`` (string counter; ``THROUGHPUT_BUCKET_TTL``, 80 s)
    Written: the worker (INCRBY, with its next pop): jobs of ``queue`` finished in the
    10-second ``bucket`` (``unix time // 10``). Read: ``queue_stats`` (MGET of 6 buckets).
``asyncjobs:metrics:<queue>`` (hash of counters; never expires)
    Written: ``tallies`` (HINCRBYFLOAT): by a worker with its next pop or its
    stop, by other processes at once. Fields: jobs by final status and attempts by
    outcome per job name, the buckets, count and sum of the wait and run time
    histograms, 503s and refused enqueues, recovery's pushes and lost jobs, schedule
    runs. Read: ``tallies.read`` (HGETALL), by the metrics view.
``asyncjobs:schedule:missed:<schedule name>`` (string counter; never expires)
    Written: ``count_missed_runs`` (INCRBY), in the Redis of ``DEFAULT_QUEUE``.
    Read: ``missed_runs`` (GET), the metrics view.
``asyncjobs:rate:<job name>`` (sorted set of the period's starts in µs; expires a period after the last)
    Written and read: ``limits.rate_wait`` (``limits.RATE_SCRIPT``: ZREMRANGEBYSCORE, ZCARD,
    ZADD, PEXPIRE), in the Redis of ``DEFAULT_QUEUE``, for jobs declared with ``@job(rate_limit=...)``.
``asyncjobs:rate-queue:<queue>`` (sorted set, as the previous; for ``QUEUE_LIMITS`` ``RATE``)
    Written and read: ``limits.rate_wait``, as the previous, for every job of a queue with a ``RATE``.
``asyncjobs:running:<job name>[:<key>]`` (sorted set of job ids scored by lease end; expires with the last lease)
    Written and read: ``limits.take_slot`` (``limits.SLOT_SCRIPT``) and ``free_slot`` (ZREM),
    in the Redis of ``DEFAULT_QUEUE``, for jobs declared with ``@job(max_concurrency=...)``.
``rq:worker:<worker name>`` (hash; the worker's TTL, refreshed by its heartbeats)
    Written: RQ's worker base class (registration, heartbeat); our worker adds the
    ``state`` field in its heartbeat's transaction (``worker_heartbeat``).
    Read: ``live_workers`` (EXISTS), ``worker_registration`` (HMGET, PTTL), RQ's tools.
``rq:workers:<queue>`` (set of worker keys; never expires)
    Written: RQ's worker base class (registration; its maintenance drops dead workers).
    Read: ``live_workers`` (SMEMBERS, in a Lua script).
``rq:pubsub:<worker name>`` (pub/sub channel)
    Written: ``send_stop`` (PUBLISH of RQ's ``stop-job`` command).
    Read: the worker (RQ's SUBSCRIBE thread).

RQ's worker base class also keeps keys of its own that the package never writes
itself: ``rq:workers``, ``rq:suspended``, ``rq:executions:<worker>``, and the
registries (``rq:wip:<queue>`` and others), which stay empty as our worker does not
use them.
"""

from __future__ import annotations

from rq.job import Job as RQJob
from rq.queue import Queue
from rq.worker import Worker as RQWorker
from rq.worker_registration import WORKERS_BY_QUEUE_KEY

#: RQ's set of every queue's list key.
QUEUES_SET = Queue.redis_queues_keys
#: Prefix of a message's RQ hash (``rq:job:``).
MESSAGE_PREFIX = RQJob.redis_job_namespace_prefix

#: Finished jobs are counted per queue in buckets of this many seconds...
THROUGHPUT_BUCKET_SECONDS = 10
#: ...and this many buckets make the window the throughput is measured over.
THROUGHPUT_BUCKETS = 6
#: How long a bucket is kept: the window and two more, so a slow reader still finds it.
THROUGHPUT_BUCKET_TTL = THROUGHPUT_BUCKET_SECONDS * (THROUGHPUT_BUCKETS + 2)


def queue_key(queue: str) -> str:
    """The list of message ids waiting in ``queue`` (RQ's queue key)."""
    return f"{Queue.redis_queue_namespace_prefix}{queue}"


def message_key(job_id: str) -> str:
    """The RQ job hash of ``job_id``'s message."""
    return f"{MESSAGE_PREFIX}{job_id}"


def finished_key(queue: str, bucket: int) -> str:
    """How many jobs of ``queue`` finished in the 10 s ``bucket``."""
    return f"asyncjobs:finished:{queue}:{bucket}"


def tallies_key(queue: str) -> str:
    """The counters of ``queue`` that the Prometheus metrics expose."""
    return f"asyncjobs:metrics:{queue}"


def rate_key(name: str) -> str:
    """When the next start of the rate-limited job ``name`` may be, for every worker."""
    return f"asyncjobs:rate:{name}"


def queue_rate_key(queue: str) -> str:
    """When the next start of a job of ``queue`` may be (``QUEUE_LIMITS`` ``RATE``), for every worker."""
    return f"asyncjobs:rate-queue:{queue}"


def running_key(key: str) -> str:
    """The running jobs of a concurrency-limited job name (and its ``concurrency_key``)."""
    return f"asyncjobs:running:{key}"


def missed_runs_key(schedule: str) -> str:
    """How many runs of the schedule named ``schedule`` were missed."""
    return f"asyncjobs:schedule:missed:{schedule}"


def workers_of_queue_key(queue: str) -> str:
    """RQ's set of the worker hashes registered for ``queue``."""
    return WORKERS_BY_QUEUE_KEY % queue


def worker_key(name: str) -> str:
    """RQ's hash of the live worker ``name`` (it expires unless the worker beats)."""
    return f"{RQWorker.redis_worker_namespace_prefix}{name}"
