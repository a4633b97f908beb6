"""How a batching worker (``WORKER_PREFETCH`` > 1) runs one popped id: claim it together
with the ids popped after it, run it, leave its success to the batch's next transaction
(see :mod:`django_asyncjobs.engine.batching`)."""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable

from django.db import connections, router

from ..engine.batching import NOT_CLAIMED, Batch
from ..engine.connections import refresh_connections
from ..engine.execution import JobGuard, Outcome, not_claimed, parse_job_id, run_claimed, run_job
from ..engine.heartbeat import JobHeartbeat, confirm_claim
from ..engine.reconnecting import giving_up_when
from ..models import Job


def run_batched(
    batch: Batch,
    job_id: str,
    queue_key: str,
    prefetched: deque[tuple[str, str]],
    guard: JobGuard,
    stop_requested: Callable[[], bool],
    heartbeat: JobHeartbeat,
) -> Outcome:
    """Run the message ``job_id`` of ``queue_key``; ``prefetched`` holds the ids popped after it."""
    pk = parse_job_id(job_id)
    if pk is None:
        return Outcome.REFUSED
    if connections[router.db_for_write(Job)].in_atomic_block:
        # A test's transaction: other threads would not see the rows. One at a time, as without batching.
        heartbeat.begin(job_id)
        return run_job(job_id, worker_name=batch.worker_name, guard=guard, stop_requested=stop_requested)
    job = batch.take(job_id)
    if job is NOT_CLAIMED:
        more = _take_ids(prefetched, batch.size - 1)
        refresh_connections()
        try:
            with giving_up_when(stop_requested):
                batch.claim([(queue_key, pk), *more])
        except BaseException:
            # Not claimed: the ids after this one wait again (a stop hands them back).
            prefetched.extendleft((key, str(other)) for key, other in reversed(more))
            raise
        if more:  # the heartbeat thread keeps the batch's bounds (one job alone has none)
            heartbeat.nudge()
        job = batch.take(job_id)
    if job is None or job is NOT_CLAIMED:
        return not_claimed(pk)
    with giving_up_when(stop_requested):
        if not confirm_claim(job, batch.claimed_at):  # held long: recovery may have taken it back
            return not_claimed(pk)
    refresh_connections()
    heartbeat.begin(job_id)
    batch.begin()
    try:
        outcome = run_claimed(job, guard=guard, succeed=batch.succeeded)
    finally:
        with giving_up_when(stop_requested):
            batch.end()
        refresh_connections()
    return outcome


def _take_ids(prefetched: deque[tuple[str, str]], count: int) -> list[tuple[str, uuid.UUID]]:
    """Up to ``count`` ids from the front of ``prefetched``, stopping at a message that is
    not a job id (it is refused in its turn)."""
    taken: list[tuple[str, uuid.UUID]] = []
    while prefetched and len(taken) < count:
        key, message = prefetched[0]
        try:
            pk = uuid.UUID(message) if len(message) <= 64 else None
        except ValueError:
            pk = None
        if pk is None:
            break
        prefetched.popleft()
        taken.append((key, pk))
    return taken
