"""The doorbell: writing jobs' messages, withdrawing those of cancelled jobs, telling workers to
stop a job, and schedules' counters."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import RedisError
from rq import get_current_job
from rq.command import parse_payload, send_command

from ...conf import app_settings
from ...exceptions import EnqueueError
from ...logs import enqueue_logger, log_event
from ...signals import job_enqueued, notify
from ..registry import timeout_for
from . import keys
from .connections import commands, get_connection, script

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
    """Write the messages of ``jobs``: one round trip per Redis server (per
    :data:`PUSH_CHUNK` jobs).

    Each message is an RQ job hash (with ``MESSAGE_TTL``) and its id on the queue
    list, as RQ's ``enqueue`` would write them: at the end, or at the front (RQ's
    ``at_front``) for jobs with a ``priority`` above 0. Without ``pipeline`` one Lua
    script (:data:`PUSH_SCRIPT`, run by its SHA) writes them all: one short command
    instead of four per job. With ``pipeline`` (whose server holds all of ``jobs``'
    queues) the same commands join it one by one, for its owner to execute.
    Raises ``RedisError``; :func:`ring` is what callers use.
    """
    by_queue: dict[str, list[Job]] = {}
    for job in jobs:
        by_queue.setdefault(job.queue, []).append(job)
    by_server: dict[int, tuple[Redis, list[str]]] = {}
    for name in by_queue:
        connection = get_connection(name)
        by_server.setdefault(id(connection), (connection, []))[1].append(name)
    created_at = _rq_timestamp()
    for connection, names in by_server.values():
        if pipeline is None:
            _push_by_script(connection, names, by_queue, created_at)
        else:
            _push_by_commands(pipeline, names, by_queue, created_at)


#: ``data`` of a message is this text with the job's id in between (``json.dumps`` of RQ's call).
_DATA_BEFORE, _DATA_AFTER = json.dumps([EXECUTOR, None, ["@"], {}]).split("@")

#: Writes the messages of jobs on one server. KEYS: ``rq:queues``, the list key of each
#: queue. ARGV: created_at, MESSAGE_TTL, FAILURE_TTL, the prefix of message keys, the number
#: of queues, each queue's name, then runs of jobs alike: their queue (1-based), description,
#: timeout, 1 for the front or 0, how many, and their ids.
PUSH_SCRIPT = f"""
local created, ttl, failure_ttl, prefix = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local queues = tonumber(ARGV[5])
local before, after = [=[{_DATA_BEFORE}]=], [=[{_DATA_AFTER}]=]
local back, front = {{}}, {{}}
for q = 1, queues do
  redis.call('SADD', KEYS[1], KEYS[1 + q])
  back[q], front[q] = {{}}, {{}}
end
local i, jobs = 6 + queues, 0
while i <= #ARGV do
  local q, description, timeout, count = tonumber(ARGV[i]), ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 4])
  local origin, ids = ARGV[5 + q], ARGV[i + 3] == '1' and front[q] or back[q]
  for k = i + 5, i + 4 + count do
    local id = ARGV[k]
    local key = prefix .. id
    redis.call('HSET', key, 'data', before .. id .. after, 'origin', origin, 'description', description,
      'status', 'queued', 'created_at', created, 'enqueued_at', created, 'timeout', timeout,
      'result_ttl', '0', 'failure_ttl', failure_ttl)
    redis.call('EXPIRE', key, ttl)
    ids[#ids + 1] = id
  end
  jobs, i = jobs + count, i + 5 + count
end
for q = 1, queues do
  if #back[q] > 0 then redis.call('RPUSH', KEYS[1 + q], unpack(back[q])) end
  local ids = front[q]
  for k = 1, math.floor(#ids / 2) do ids[k], ids[#ids + 1 - k] = ids[#ids + 1 - k], ids[k] end
  if #ids > 0 then redis.call('LPUSH', KEYS[1 + q], unpack(ids)) end  -- LPUSH a b c leaves c b a
end
return jobs
"""

#: Most jobs one run of :data:`PUSH_SCRIPT` writes: Redis runs nothing else meanwhile, and
#: Lua's ``unpack()`` takes a few thousand values at most.
PUSH_CHUNK = 1000


def _rq_timestamp() -> str:
    """Now, as RQ writes times (``rq.utils.utcformat``: ``%Y-%m-%dT%H:%M:%S.%fZ``), without strftime's cost."""
    return datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _push_by_script(connection: Redis, names: list[str], by_queue: dict[str, list[Job]], created_at: str) -> None:
    push_script = script(connection, PUSH_SCRIPT)
    index = {name: str(number) for number, name in enumerate(names, 1)}
    jobs = [job for name in names for job in by_queue[name]]
    back = [job for job in jobs if job.priority <= 0]
    front = [job for job in jobs if job.priority > 0]
    # Chunks of front jobs go last chunk first: each lands ahead of the ones pushed before it.
    chunks = [back[i : i + PUSH_CHUNK] for i in range(0, len(back), PUSH_CHUNK)]
    chunks += [front[i : i + PUSH_CHUNK] for i in reversed(range(0, len(front), PUSH_CHUNK))]
    head = [created_at, app_settings.MESSAGE_TTL, FAILURE_TTL, keys.MESSAGE_PREFIX, len(names), *names]
    queue_keys = [keys.QUEUES_SET, *[keys.queue_key(name) for name in names]]
    for chunk in chunks:
        args: list[Any] = list(head)
        run: tuple[str, str, int, int] | None = None
        count_at = 0
        for job in chunk:
            alike = (index[job.queue], job.name, timeout_for(job.name), 1 if job.priority > 0 else 0)
            if alike != run:
                run = alike
                count_at = len(args) + 4
                args += [*alike, 0]
            args[count_at] += 1
            args.append(str(job.pk))
        push_script(keys=queue_keys, args=args)


def _push_by_commands(pipe: Pipeline, names: list[str], by_queue: dict[str, list[Job]], created_at: str) -> None:
    ttl = app_settings.MESSAGE_TTL
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


#: Most list entries one :func:`withdraw` reads (each ``LREM`` reads up to the list's
#: length): past it, the messages of further jobs are left in their lists, where a worker
#: pops and drops them (their rows are cancelled), and only their hashes are deleted.
WITHDRAW_SCAN_LIMIT = 1_000_000

#: Removes messages of cancelled jobs. KEYS: the list key of each queue. ARGV: the prefix
#: of message keys, the scan limit, then per queue (in KEYS' order) how many ids, and the ids.
#: ``LREM -1`` looks from the tail, where a job pushed recently is. Returns how many left a list.
WITHDRAW_SCRIPT = """
local prefix, budget = ARGV[1], tonumber(ARGV[2])
local i, removed, spent = 3, 0, 0
for q = 1, #KEYS do
  local count = tonumber(ARGV[i])
  local length = redis.call('LLEN', KEYS[q])
  for k = i + 1, i + count do
    redis.call('DEL', prefix .. ARGV[k])
    if length > 0 and (spent == 0 or spent + length <= budget) then
      local gone = redis.call('LREM', KEYS[q], -1, ARGV[k])
      spent, removed, length = spent + length, removed + gone, length - gone
    end
  end
  i = i + 1 + count
end
return removed
"""


def withdraw(jobs: Sequence[Job]) -> int:
    """Remove the messages of ``jobs`` (cancelled while they waited) from their queues and
    delete their hashes: one round trip per Redis server. Returns how many left a queue list;
    a message a worker popped already, or one past :data:`WITHDRAW_SCAN_LIMIT`, is not among
    them (a worker drops it: its row is no longer queued). Raises ``RedisError``."""
    by_queue: dict[str, list[str]] = {}
    for job in jobs:
        by_queue.setdefault(job.queue, []).append(str(job.pk))
    by_server: dict[int, tuple[Redis, list[str]]] = {}
    for name in by_queue:
        connection = get_connection(name)
        by_server.setdefault(id(connection), (connection, []))[1].append(name)
    removed = 0
    for connection, names in by_server.values():
        args: list[Any] = [keys.MESSAGE_PREFIX, WITHDRAW_SCAN_LIMIT]
        for name in names:
            args += [len(by_queue[name]), *by_queue[name]]
        withdraw_script = script(connection, WITHDRAW_SCRIPT)
        removed += int(withdraw_script(keys=[keys.queue_key(name) for name in names], args=args))
    return removed


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
