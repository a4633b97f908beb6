"""A worker's batch: ids claimed together, successes written together (group commit).

With ``WORKER_PREFETCH`` above 1 the worker pops several ids at once and claims them in
one statement, then runs them one after another; a success is not written at once but
joins the next transaction, which also claims the next ids (:func:`.batched.commit`).
The durability cost is paid once per batch, not twice per job. The bounds:

- how many: the batch is sized from the recent jobs' run time so that it runs in
  about ``WORKER_BATCH_WINDOW`` seconds (1 id while jobs are slow), at most
  ``WORKER_PREFETCH``; no more than :data:`MAX_PENDING` successes wait;
- how long: a success waits at most ``WORKER_BATCH_WINDOW`` seconds; if the job after
  it runs longer, the worker's heartbeat thread writes it (:meth:`Batch.backstop`);
- ids claimed but not started wait at most :data:```WORKER_BATCH_HOLD``` seconds behind a long
  job: then they are released (``queued`` again, the attempt given back) and their
  messages put back at the front of the queue for any worker.

A worker killed meanwhile loses no job: what was not written is still ``running`` and
recovery takes it (see ``outcomes.record_lost_attempt`` for the rows that never started).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from django.db import connections
from django.utils import timezone

from ..exceptions import OutcomeRefused
from ..logs import log_event, worker_logger
from ..models import Job
from . import batched
from .execution import Outcome
from .finishing import finished_jobs
from .outcomes import announce_success, discard_outcome, storable_result, write_success
from .reconnecting import giving_up_when

#: Successes that may wait for one transaction.
MAX_PENDING = 64
#: Weight of the last job in the running average of job run times that sizes a batch.
RECENT_WEIGHT = 0.2

#: :meth:`Batch.take` of an id that this batch has not claimed (or gave up).
NOT_CLAIMED: Any = object()

PushBack = Callable[[Sequence[tuple[str, str]]], None]


class Batch:
    """The ids a worker claimed and the successes it has not written yet. The worker's main
    thread calls everything but :meth:`backstop` (its heartbeat thread) and :meth:`drop`
    (its ``stop-job`` listener); one lock keeps them apart."""

    def __init__(
        self,
        worker_name: str,
        *,
        size: int,
        window: float,
        hold: float,
        push_back: PushBack,
        outcomes: dict[Outcome, int],
        stop_requested: Callable[[], bool] = lambda: False,
    ) -> None:
        self.worker_name = worker_name
        self._stop_requested = stop_requested
        self.size = size
        self.window = window
        self.hold = hold
        self._push_back = push_back
        self._outcomes = outcomes
        self._lock = threading.Lock()
        #: The ids of the last claim not started yet, in order: (queue key, job id, the row
        #: claimed, or ``None`` when it was not ``queued``: a duplicate, cancelled, done).
        self._claimed: deque[tuple[str, str, Job | None]] = deque()
        self._pending: list[tuple[batched.Success, Any]] = []
        self._pending_since = 0.0
        #: Written by the heartbeat thread, to be logged and signalled by the main thread.
        self._unannounced: list[tuple[Job, Any, bool]] = []
        self._running_since: float | None = None
        self._average: float | None = None
        #: ``time.monotonic()`` just before the last claim was sent (see ``heartbeat.confirm_claim``).
        self.claimed_at = 0.0

    # -- sizing -----------------------------------------------------------------------------

    def wanted(self) -> int:
        """Ids to pop and claim next: as many as run in about one window (all at first: a
        first job that runs long has the others released)."""
        if self._average is None:
            return self.size
        return max(1, min(self.size, int(self.window / max(self._average, 1e-6))))

    # -- claiming ---------------------------------------------------------------------------

    def next_claimed(self) -> tuple[str, str] | None:
        """``(queue key, job id)`` of the next id of the last claim, if any is left."""
        with self._lock:
            return self._claimed[0][:2] if self._claimed else None

    def take(self, job_id: str) -> Any:
        """The row claimed for ``job_id`` (``None``: it could not be claimed) if it is the next
        id of the last claim, else :data:`NOT_CLAIMED` (not claimed yet, or released)."""
        with self._lock:
            if not self._claimed or self._claimed[0][1] != job_id:
                return NOT_CLAIMED
            return self._claimed.popleft()[2]

    def claim(self, ids: Sequence[tuple[str, uuid.UUID]]) -> None:
        """Claim ``(queue key, pk)``, in one transaction with the successes waiting."""
        with self._lock:
            pending, self._pending = self._pending, []
            self.claimed_at = time.monotonic()
            written, claimed = self._commit_or_keep(pending, [pk for _, pk in ids])
            rows = {job.pk: job for job in claimed}
            entries: deque[tuple[str, str, Job | None]] = deque()
            for key, pk in ids:
                entries.append((key, str(pk), rows.pop(pk, None)))  # a duplicate id runs once
            self._claimed = entries
        self._announce(pending, written)

    def drop(self, job_id: str) -> bool:
        """Forget a claimed id not started (its row was cancelled): it will not be run."""
        with self._lock:
            kept = deque(entry for entry in self._claimed if entry[1] != job_id or entry[2] is None)
            dropped = len(kept) != len(self._claimed)
            self._claimed = kept
            return dropped

    # -- running ----------------------------------------------------------------------------

    def begin(self) -> None:
        with self._lock:
            self._running_since = time.monotonic()

    def end(self) -> None:
        with self._lock:
            assert self._running_since is not None
            took = time.monotonic() - self._running_since
            self._running_since = None
        self._average = took if self._average is None else self._average + RECENT_WEIGHT * (took - self._average)
        self.announce_flushed()
        # With no claimed id left, the next claim (after one pop) writes them.
        if self._pending and (
            len(self._pending) >= MAX_PENDING
            or (self._claimed and time.monotonic() - self._pending_since >= self.window)
        ):
            self.flush()

    def succeeded(self, job: Job, result: Any, job_function: Any) -> Outcome:
        """The worker's ``SuccessRecorder``: the success waits for the batch's transaction."""
        stored, failed = storable_result(job, result, job_function)
        if failed is not None:
            return failed
        with self._lock:
            if not self._pending:
                self._pending_since = time.monotonic()
            self._pending.append((batched.Success(job, stored, timezone.now()), job_function))
        return Outcome.SUCCEEDED

    @property
    def waiting(self) -> bool:
        """Whether successes wait to be written."""
        return bool(self._pending or self._unannounced)

    def flush(self) -> None:
        """Write the successes waiting (before the worker waits for work, or stops)."""
        with self._lock:
            pending, self._pending = self._pending, []
            written = self._commit_or_keep(pending, [])[0] if pending else []
        self._announce(pending, written)
        self.announce_flushed()

    def unstarted(self) -> list[tuple[str, str]]:
        """Release every id claimed and not started; ``(queue key, job id)`` of those
        released, for the caller to put back (a stopping worker)."""
        with self._lock:
            return self._release(push=False)

    # -- the heartbeat thread ---------------------------------------------------------------

    def backstop(self) -> float | None:
        """Keep the bounds while the main thread runs a long job: write successes older than
        the window, release claimed ids after ``WORKER_BATCH_HOLD``. Returns the seconds until
        it should be called again, ``None`` while nothing waits."""
        # The database away: the heartbeat thread waits for it only until a cold stop, as the
        # main thread does (it may be waiting for this lock meanwhile).
        with self._lock, giving_up_when(self._stop_requested):
            now = time.monotonic()
            if self._running_since is not None:
                # Only behind a job that runs long: between short jobs the main thread writes them.
                if self._pending and now - self._running_since >= self.window:
                    pending, self._pending = self._pending, []
                    written = self._commit_or_keep(pending, [])[0]
                    self._unannounced.extend(
                        (success.job, job_function, done)
                        for (success, job_function), done in zip(pending, written, strict=True)
                    )
                if self._claimed and now - self._running_since >= self.hold:
                    released = self._release(push=True)
                    log_event(
                        worker_logger, logging.INFO, "batch.released", worker=self.worker_name, jobs=len(released)
                    )
            return min(self.window, self.hold) if self._pending or self._claimed else None

    # -- helpers (under the lock) -----------------------------------------------------------

    def _commit_or_keep(
        self, pending: list[tuple[batched.Success, Any]], claim: list[uuid.UUID]
    ) -> tuple[list[bool], list[Job]]:
        """:meth:`_commit`; if it fails, the successes wait again (a later commit, or recovery
        once the worker is gone, takes them)."""
        try:
            return self._commit(pending, claim)
        except BaseException:
            self._pending[:0] = pending
            raise

    def _commit(
        self, pending: list[tuple[batched.Success, Any]], claim: list[uuid.UUID]
    ) -> tuple[list[bool], list[Job]]:
        successes = [success for success, _ in pending]
        try:
            return batched.commit(successes, claim, self.worker_name)
        except OutcomeRefused:
            # A result the database refuses fails its own job only: write them one by one.
            for success, job_function in pending:
                outcome = write_success(success.job, success.result, job_function)
                self._correct(outcome)
            pending.clear()
            return [], batched.claim_many(claim, self.worker_name)

    def _release(self, *, push: bool) -> list[tuple[str, str]]:
        claimed = self._claimed
        released = {job.pk for job in batched.release([job for _, _, job in claimed if job is not None])}
        self._claimed = deque()  # only once released: if that failed, they still wait their turn here
        back = [(key, job_id) for key, job_id, job in claimed if job is not None and job.pk in released]
        if push and back:
            self._push_back(back)
        return back

    def _announce(self, pending: list[tuple[batched.Success, Any]], written: list[bool]) -> None:
        for (success, job_function), done in zip(pending, written, strict=True):
            self._announce_one(success.job, job_function, done)
        finished_jobs([success.job for (success, _), done in zip(pending, written, strict=True) if done])

    def announce_flushed(self) -> None:
        """Log and signal what the heartbeat thread wrote (in the main thread)."""
        if self._unannounced:
            with self._lock:
                flushed, self._unannounced = self._unannounced, []
            for job, job_function, done in flushed:
                self._announce_one(job, job_function, done)
            finished_jobs([job for job, _, done in flushed if done])

    def _announce_one(self, job: Job, job_function: Any, done: bool) -> None:
        if done:
            announce_success(job, job_function)
        else:
            self._correct(discard_outcome(job))

    def _correct(self, outcome: Outcome) -> None:
        if outcome is not Outcome.SUCCEEDED:
            self._outcomes[Outcome.SUCCEEDED] -= 1
            self._outcomes[outcome] += 1


class SuccessWriter(threading.Thread):
    """Writes the successes of a threaded worker's jobs, as many per transaction as are
    waiting (at most :data:`MAX_PENDING`), off the executor threads' path: a thread goes on
    to its next job while its last success is written. Nothing waits longer than the
    commit before it. Logs and signals each once written."""

    def __init__(
        self,
        worker_name: str,
        *,
        outcomes: dict[Outcome, int],
        outcomes_lock: threading.Lock,
        stop_requested: Callable[[], bool],
    ) -> None:
        super().__init__(name="asyncjobs-success-writer", daemon=True)
        self.worker_name = worker_name
        self._outcomes = outcomes
        self._outcomes_lock = outcomes_lock
        self._stop_requested = stop_requested
        self._waiting: list[tuple[batched.Success, Any]] = []
        self._changed = threading.Condition()
        self._stopping = False

    def succeeded(self, job: Job, result: Any, job_function: Any) -> Outcome:
        """An executor thread's ``SuccessRecorder``."""
        stored, failed = storable_result(job, result, job_function)
        if failed is not None:
            return failed
        with self._changed:
            self._waiting.append((batched.Success(job, stored, timezone.now()), job_function))
            self._changed.notify()
        return Outcome.SUCCEEDED

    def stop(self) -> None:
        """Write what waits, then end."""
        with self._changed:
            self._stopping = True
            self._changed.notify()

    def run(self) -> None:
        try:
            while True:
                with self._changed:
                    while not self._waiting and not self._stopping:
                        self._changed.wait()
                    if not self._waiting:
                        return
                    taken, self._waiting = self._waiting[:MAX_PENDING], self._waiting[MAX_PENDING:]
                self._write(taken)
        finally:
            connections.close_all()

    def _write(self, taken: list[tuple[batched.Success, Any]]) -> None:
        try:
            with giving_up_when(self._stop_requested):
                written: list[bool] | None = batched.commit([s for s, _ in taken], [], self.worker_name)[0]
        except OutcomeRefused:
            written = None  # one by one: a result the database refuses fails its own job only
        except Exception:  # noqa: BLE001 - logged; the rows stay running and recovery takes them
            fields = {"worker": self.worker_name, "jobs": len(taken)}
            log_event(worker_logger, logging.ERROR, "worker.successes_not_written", **fields, exc_info=True)
            return
        for index, (success, job_function) in enumerate(taken):
            if written is None:
                outcome = write_success(success.job, success.result, job_function)
            elif written[index]:
                outcome = announce_success(success.job, job_function)
            else:
                outcome = discard_outcome(success.job)
            if outcome is not Outcome.SUCCEEDED:
                with self._outcomes_lock:
                    self._outcomes[Outcome.SUCCEEDED] -= 1
                    self._outcomes[outcome] += 1
        if written is not None:
            finished_jobs([success.job for (success, _), done in zip(taken, written, strict=True) if done])
