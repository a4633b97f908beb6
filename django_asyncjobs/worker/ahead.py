"""Claiming ahead, for a threaded worker (``--threads N`` with ``WORKER_PREFETCH`` > 1).

A thread that ends a job would otherwise wait for the main thread to pop the next id and
for its own claim (an ``UPDATE`` and a commit: on PostgreSQL a WAL flush) before the next
job starts: for short I/O-bound jobs that wait is a tenth of the time. So the main thread
pops a few ids more than threads are free and claims them in one statement
(:func:`~django_asyncjobs.engine.batched.claim_many`); a thread that ends a job takes the
next claimed row at once.

The rows claimed ahead are those of a batch (see :mod:`django_asyncjobs.engine.batching`):
``running`` with ``heartbeat_at`` NULL until their job runs, released (``queued`` again,
the attempt given back, the id at the front of its queue) when they wait longer than
``WORKER_BATCH_HOLD``, on a stop, and put back by recovery after a crash. How many are
claimed ahead follows the recent jobs: enough to cover one claim's time, and none when
jobs are so long that a row would wait anywhere near the hold.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError

from ..engine import batched
from ..engine.broker import hand_back
from ..engine.reconnecting import giving_up_when
from ..exceptions import DatabaseAway
from ..logs import log_event, worker_logger
from ..models import Job

#: Weight of the newest measure in the running averages.
RECENT_WEIGHT = 0.2


@dataclass(slots=True)
class Handed:
    """A popped message handed to the executor threads: ``job`` is its row when it was
    claimed ahead (``None``: not claimed; the thread that takes it claims it itself)."""

    key: str
    job_id: str
    job: Job | None
    since: float


class ClaimAhead:
    """How many rows to claim ahead, and the claims and releases themselves (main thread)."""

    def __init__(
        self, worker_name: str, *, threads: int, hold: float, enabled: bool, stop_requested: Callable[[], bool]
    ) -> None:
        self.worker_name = worker_name
        self.threads = threads
        self.hold = hold
        self.enabled = enabled
        self._stop_requested = stop_requested
        self._run_time: float | None = None
        self._claim_time = 0.0
        self._paused = False

    def extra(self) -> int:
        """Rows to hold claimed beyond the busy threads."""
        if not self.enabled or self._run_time is None or self._paused:
            return 0  # until a job has run (again), nothing says a row would not wait long
        every = max(self._run_time / self.threads, 1e-6)  # a thread comes free this often
        wanted = math.ceil(self._claim_time / every) + 1
        affordable = int(self.hold / 2 / every)  # the last of them waits about extra * every
        return max(0, min(self.threads, wanted, affordable))

    def ran(self, seconds: float) -> None:
        """A thread ran a job for ``seconds`` (from taking it to its outcome)."""
        self._paused = False
        average = self._run_time
        self._run_time = seconds if average is None else average + RECENT_WEIGHT * (seconds - average)

    def claim(self, popped: Sequence[tuple[str, str]]) -> list[Handed]:
        """``popped`` as handed to the threads, the job ids among them claimed in one statement."""
        now = time.monotonic()
        if not self.enabled:
            return [Handed(key, job_id, None, now) for key, job_id in popped]
        pks = {job_id: pk for _, job_id in popped if (pk := _job_pk(job_id)) is not None}
        with giving_up_when(self._stop_requested):
            rows = {
                str(job.pk): job
                for job in batched.claim_many(list(dict.fromkeys(pks.values())), self.worker_name, held=True)
            }
        took = time.monotonic() - now
        self._claim_time += RECENT_WEIGHT * (took - self._claim_time)
        return [
            Handed(key, job_id, rows.pop(str(pks[job_id]), None) if job_id in pks else None, now)
            for key, job_id in popped
        ]

    def release(self, held: Sequence[Handed]) -> list[Handed]:
        """``queued`` again for the rows of ``held`` (claimed, not started); those released.
        No row is claimed ahead again until a job ends: every thread is busy with a long one,
        and the rows would only wait out the hold once more."""
        self._paused = True
        with giving_up_when(self._stop_requested):
            released = {job.pk for job in batched.release([entry.job for entry in held if entry.job is not None])}
        return [entry for entry in held if entry.job is not None and entry.job.pk in released]

    def release_to_queues(self, held: Sequence[Handed], connection: Any) -> None:
        """Release ``held`` and put their ids back at the front of their queues."""
        if not held:
            return
        released = self.release(held)
        hand_back(connection, [(entry.key, entry.job_id) for entry in released])
        log_event(worker_logger, logging.INFO, "batch.released", worker=self.worker_name, jobs=len(released))

    def unstarted(self, left: Sequence[Handed]) -> list[tuple[str, str]]:
        """``(queue key, job id)`` to hand back of the ids no thread took (a stopping worker):
        the rows claimed ahead released first; any the database kept running are left to recovery."""
        held = [entry for entry in left if entry.job is not None]
        try:
            released = {entry.job_id for entry in self.release(held)} if held else set()
        except (DatabaseAway, DatabaseError) as exc:
            # Still running in their rows, never started: recovery puts them back (worker.md#batches).
            log_event(
                worker_logger, logging.ERROR, "worker.batch_not_written", worker=self.worker_name, reason=str(exc)
            )
            released = set()
        return [(entry.key, entry.job_id) for entry in left if entry.job is None or entry.job_id in released]


def _job_pk(message: str) -> uuid.UUID | None:
    """The job id ``message`` carries, if it is one (the thread refuses the rest, and logs it)."""
    if len(message) > 64:
        return None
    try:
        return uuid.UUID(message)
    except ValueError:
        return None
