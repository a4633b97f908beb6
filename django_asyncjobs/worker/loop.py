"""The asyncjobs worker: an RQ ``SimpleWorker`` trimmed to what a row-backed job needs.

Because the database row is the truth, the worker does not need RQ's per-job
bookkeeping in Redis (job hash reads, started/finished registries, results,
executions). Per batch of up to ``WORKER_PREFETCH`` ids it makes one pipelined round
trip (drop the finished messages' hashes, pop the next ids), and per job three small
SQL statements (claim, load, record). Registration, heartbeats, ``rq suspend`` and the ``stop-job`` /
``shutdown`` commands work as in RQ, so RQ's and django-rq's tooling see it.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from django.db import DatabaseError
from rq import Queue
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.exceptions import StopRequested
from rq.serializers import JSONSerializer
from rq.worker import DequeueStrategy, SimpleWorker, WorkerStatus

from ..conf import app_settings
from ..engine.batching import Batch
from ..engine.broker import (
    UNREACHABLE,
    RedisError,
    any_waiting,
    hand_back,
    pop_many,
    pops_many,
    worker_heartbeat,
    worker_queues,
)
from ..engine.connections import refresh_connections
from ..engine.execution import Outcome, run_job
from ..engine.heartbeat import JobHeartbeat
from ..engine.reconnecting import giving_up_when
from ..exceptions import DatabaseAway, JobInterrupted
from ..logs import log_event, worker_logger
from ..scheduling.firing import promote_due_jobs
from ..scheduling.scheduler import SchedulerThread
from .batches import run_batched
from .health import HealthFile, Liveness
from .stopping import StopSignals

HEARTBEAT_INTERVAL = 15.0
SUSPENSION_CHECK_INTERVAL = 1.0
#: Longest wait for the next message before the loop looks at its stop flag and due jobs again.
POP_WAIT = 1.0
#: Longest wait between two tries while Redis does not answer. A failover (Sentinel's
#: ``down-after-milliseconds``, 30 s by default, then the election) ends between two tries:
#: a longer wait adds up to its own length to the time the worker stands idle after it.
REDIS_RETRY_MAX = 5.0


class Worker(StopSignals, Liveness, SimpleWorker):
    """Runs asyncjobs messages in the worker process itself (no fork per job).

    Stop signals only set flags that the loop reads (RQ raises ``StopRequested`` from the
    handler, which code doing database work can turn into another error and lose). The
    only exception a signal raises is ``JobInterrupted``, and only inside the job function:
    for a cancel of that job or a cold stop. ``exit_status`` says how :meth:`work` ended:
    0 for a requested stop or a finished burst, 1 for an error of the worker itself.
    """

    def __init__(self, queues: Sequence[Queue], *args: Any, health_file: str | None = None, **kwargs: Any) -> None:
        if kwargs.get("serializer") is None:  # django-rq's rqworker passes None explicitly
            kwargs["serializer"] = JSONSerializer
        super().__init__(queues, *args, **kwargs)
        #: Touched while the worker is live (``--health-file``; see :mod:`.health`).
        self.health_file = HealthFile(health_file, self.name) if health_file else None
        self._current_job_id: str | None = None
        self._finished: list[tuple[str, str]] = []
        #: Popped ``(queue_key, job_id)`` not started yet, in order (``WORKER_PREFETCH``).
        self._prefetched: deque[tuple[str, str]] = deque()
        self._prefetch: int | None = None  # ids per pop; decided at the first pop
        self._room: int | None = None  # jobs left before ``max_jobs``
        self._interrupt_job_id: str | None = None
        self._interruptible = False
        self._cold_stop = False
        self._first_stop_signal_at = 0.0
        self._last_heartbeat_at = 0.0
        self._last_suspension_check_at = 0.0
        self._last_promotion_at = 0.0
        self._stored_state: str | None = None
        self._job_heartbeat: JobHeartbeat | None = None
        self._batch: Batch | None = None  # decided at the first pop
        self._scheduler_thread: SchedulerThread | None = None
        self.exit_status = 0
        self.outcomes: dict[Outcome, int] = dict.fromkeys(Outcome, 0)

    def start_scheduler(self, *, sync: bool = True) -> None:
        """Run the scheduler loop in a thread of this worker (``--with-scheduler``).

        ``sync`` first syncs the schedules declared in code (``ConfigurationError``
        if they are invalid); ``run_workers`` does that once, before it forks.
        """
        if self._scheduler_thread is None:
            thread = SchedulerThread()
            if sync:
                thread.scheduler.sync()
            thread.start()
            self._scheduler_thread = thread

    # -- the loop ---------------------------------------------------------------------------

    def work(
        self,
        burst: bool = False,
        logging_level: str | None = None,
        date_format: str = DEFAULT_LOGGING_DATE_FORMAT,
        log_format: str = DEFAULT_LOGGING_FORMAT,
        max_jobs: int | None = None,
        max_idle_time: int | None = None,
        with_scheduler: bool = False,
        dequeue_strategy: DequeueStrategy = DequeueStrategy.DEFAULT,
    ) -> bool:
        """RQ's loop, except that only a stop signal (or ``burst``, ``max_jobs``,
        ``max_idle_time``) ends it, and an error of the worker itself sets ``exit_status``.
        Returns whether it ran any job, as RQ's does."""
        self.bootstrap(logging_level, date_format, log_format)
        self._dequeue_strategy = dequeue_strategy
        if with_scheduler:
            self._start_scheduler(burst, logging_level, date_format, log_format)
        self._install_signal_handlers()
        completed = 0
        backoff = 1.0
        try:
            while not self._stop_requested:
                try:
                    self.check_for_suspension(burst)
                    if self.should_run_maintenance_tasks:
                        self.run_maintenance_tasks()  # type: ignore[no-untyped-call]
                    if self._stop_requested:
                        break
                    self._room = None if max_jobs is None else max_jobs - completed
                    result = self.dequeue_job_and_maintain_ttl(None if burst else self.dequeue_timeout, max_idle_time)
                    if result is None:
                        if not self._stop_requested and burst:
                            self.log.info("Worker %s: done, quitting", self.name)
                        elif not self._stop_requested and max_idle_time is not None:
                            self.log.info("Worker %s: idle for %d seconds, quitting", self.name, max_idle_time)
                        break
                    self.execute_job(*result)
                    self.heartbeat()
                    backoff = 1.0
                    completed += 1
                    if max_jobs is not None and completed >= max_jobs:
                        self.log.info("Worker %s: finished executing %d jobs, quitting", self.name, completed)
                        break
                except StopRequested:  # RQ's, e.g. suspended in burst mode
                    break
                except Exception as exc:  # noqa: BLE001 - logged with its traceback
                    next_backoff = self._after_loop_error(exc, backoff)
                    if next_backoff is None:
                        break
                    backoff = next_backoff
            if self._stop_requested:
                self.log.info("Worker %s: stopping on request", self.name)
        finally:
            self.teardown()
        return bool(completed)

    def _after_loop_error(self, exc: Exception, backoff: float) -> float | None:
        """An error of the loop itself: Redis away is waited out (the next backoff is returned);
        anything else ends the worker with ``exit_status`` 1 (``None``)."""
        if isinstance(exc, RedisError):
            fields = {"worker": self.name, "reason": str(exc), "retry_in_s": backoff}
            log_event(worker_logger, logging.WARNING, "worker.redis_error", **fields)
            self._pause(backoff)
            return self._next_backoff(backoff)
        log_event(worker_logger, logging.ERROR, "worker.quitting", worker=self.name, exc_info=exc)
        self.exit_status = 1
        return None

    def dequeue_job_and_maintain_ttl(  # type: ignore[override]
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[str, Queue] | None:
        """Return ``(job_id, queue)`` of the next message, or ``None`` (burst done, idle, stop).

        Messages come from the ids popped earlier, in order, before Redis is asked again."""
        self.set_state(WorkerStatus.IDLE)
        self.procline("Listening on " + ",".join(self.queue_names()))  # type: ignore[no-untyped-call]
        idle_since = time.monotonic()
        backoff = 1.0
        while not self._stop_requested:
            self.loop_turned()
            self._promote_due_jobs()
            if self._stop_requested:
                break
            claimed = self._batch.next_claimed() if self._batch is not None else None
            if claimed is not None:
                return claimed[1], self._queue_by_key[claimed[0]]
            if self._prefetched:
                return self._next_prefetched()
            wait = None if timeout is None else max(1.0, min(float(timeout), POP_WAIT))
            try:
                self.heartbeat()
                count = self._pop_count()
                waiting = self._batch is not None and self._batch.waiting
                # Successes wait to be written: look without blocking first; write them before waiting.
                popped = pop_many(
                    self.connection, self.queue_keys(), None if waiting else wait, count, finished=self._finished
                )
                if not popped and waiting:
                    self._finished = []
                    assert self._batch is not None
                    self._batch.flush()
                    if wait is not None:
                        popped = pop_many(self.connection, self.queue_keys(), wait, count)
                backoff = 1.0
            except UNREACHABLE as exc:
                self.log.error("Worker %s: Redis unreachable (%s); retrying in %.0fs", self.name, exc, backoff)
                self._pause(backoff)
                backoff = self._next_backoff(backoff)
                continue
            self._finished = []
            if popped:
                self._prefetched.extend(popped)
                if self._stop_requested:  # asked to stop while waiting: teardown hands the messages back
                    return None
                return self._next_prefetched()
            if timeout is None:
                self._promote_due_jobs(force=True)
                if not any_waiting(self.connection, self.queue_keys()):
                    return None
                continue
            if max_idle_time is not None and time.monotonic() - idle_since >= max_idle_time:
                return None
        return None

    def execute_job(self, job: Any, queue: Queue) -> None:
        job_id = str(job)
        self.set_state(WorkerStatus.BUSY)
        self._current_job_id = job_id
        heartbeat = self._heartbeat_thread()
        try:
            with self._in_job():
                if self._batch is not None:
                    outcome = run_batched(
                        self._batch, job_id, queue.key, self._prefetched, self._job_guard, self._cold, heartbeat
                    )
                else:
                    heartbeat.begin(job_id)
                    outcome = run_job(job_id, worker_name=self.name, guard=self._job_guard, stop_requested=self._cold)
        except (Exception, JobInterrupted):  # noqa: BLE001 - logged with its traceback
            # The row says what happened (or recovery will); the worker goes on with the next job.
            fields = {"worker": self.name, "job": job_id[:64]}
            log_event(worker_logger, logging.ERROR, "worker.job_error", **fields, exc_info=True)
            outcome = Outcome.ERROR
        finally:
            heartbeat.end()
            self._current_job_id = None
            self._interrupt_job_id = None
        if outcome is not Outcome.REFUSED:
            skipped = outcome in (Outcome.SKIPPED, Outcome.PUT_BACK, Outcome.DEFERRED)
            self._finished.append((job_id, "" if skipped else queue.name))
        self.outcomes[outcome] += 1
        self.set_state(WorkerStatus.IDLE)

    # -- RQ hooks, made cheap ---------------------------------------------------------------

    @property
    def _queue_by_key(self) -> dict[str, Queue]:
        return {queue.key: queue for queue in self.queues}

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        now = time.monotonic()
        if timeout is None and pipeline is None and now - self._last_heartbeat_at < HEARTBEAT_INTERVAL:
            return
        self._last_heartbeat_at = now
        changed_state = self._state if self._stored_state != self._state else None
        with worker_heartbeat(self.connection, self.key, changed_state) as pipe:
            super().heartbeat(timeout, pipe)
        self._stored_state = self._state

    def set_state(self, state: str, pipeline: Any = None) -> None:
        # Kept in memory (RQ's warm shutdown reads it); written with the next heartbeat.
        self._state = state
        if pipeline is not None or state not in (WorkerStatus.IDLE, WorkerStatus.BUSY):
            super().set_state(state, pipeline)
            self._stored_state = state

    def check_for_suspension(self, burst: bool) -> None:
        now = time.monotonic()
        if now - self._last_suspension_check_at >= SUSPENSION_CHECK_INTERVAL:
            self._last_suspension_check_at = now
            super().check_for_suspension(burst)

    def get_current_job_id(self) -> str | None:
        return self._current_job_id

    def unsubscribe(self) -> None:
        """RQ's, with the command listener told to stop before the channel is left: in RQ's
        order it then waits for a subscription that never comes, and every worker exit
        (each burst run, each test's worker) waited out the 1 s join timeout."""
        if self.pubsub_thread:
            self.pubsub_thread.stop()
        super().unsubscribe()  # type: ignore[no-untyped-call]

    def teardown(self) -> None:
        if self._batch is not None:
            try:
                with giving_up_when(self._cold):  # a database away holds a warm stop until a cold one
                    self._batch.flush()
                    self._prefetched.extendleft(reversed(self._batch.unstarted()))
            except (DatabaseAway, DatabaseError) as exc:
                # Still running in their rows: recovery takes them (see worker.md#batches).
                log_event(worker_logger, logging.ERROR, "worker.batch_not_written", worker=self.name, reason=str(exc))
        try:
            hand_back(self.connection, self._prefetched, self._finished)
        except RedisError as exc:
            # The popped rows are still queued: recovery pushes their messages again.
            fields = {"worker": self.name, "reason": str(exc), "not_handed_back": len(self._prefetched)}
            log_event(worker_logger, logging.WARNING, "worker.stats_not_written", **fields)
        self._prefetched.clear()
        self._finished = []
        if self._job_heartbeat is not None:
            self._job_heartbeat.stop()
            self._job_heartbeat.join(5)
            self._job_heartbeat = None
        if self._scheduler_thread is not None:
            self._scheduler_thread.stop()
            self._scheduler_thread = None
        if self.health_file is not None:
            self.health_file.remove()
        try:
            super().teardown()  # type: ignore[no-untyped-call]
        except RedisError as exc:
            log_event(worker_logger, logging.WARNING, "worker.not_unregistered", worker=self.name, reason=str(exc))

    # -- helpers ----------------------------------------------------------------------------

    def _next_prefetched(self) -> tuple[str, Queue]:
        key, job_id = self._prefetched.popleft()
        return job_id, self._queue_by_key[key]

    def _pop_count(self) -> int:
        """Ids to pop at once: ``WORKER_PREFETCH`` (1 on a server without ``LMPOP``), never more
        than the jobs left before ``max_jobs``."""
        if self._prefetch is None:
            self._prefetch = app_settings.WORKER_PREFETCH
            if self._prefetch > 1 and not pops_many(self.connection):
                fields = {"worker": self.name, "reason": "Redis < 7.0 has no LMPOP/BLMPOP"}
                log_event(worker_logger, logging.WARNING, "worker.prefetch_off", **fields)
                self._prefetch = 1
            if self._prefetch > 1:
                self._batch = Batch(
                    self.name,
                    size=self._prefetch,
                    window=app_settings.WORKER_BATCH_WINDOW,
                    hold=app_settings.WORKER_BATCH_HOLD,
                    push_back=lambda ids: hand_back(self.connection, ids),
                    outcomes=self.outcomes,
                    stop_requested=self._cold,
                )
        wanted = self._prefetch if self._batch is None else self._batch.wanted()
        return wanted if self._room is None else max(1, min(wanted, self._room))

    def _next_backoff(self, backoff: float) -> float:
        """The wait after ``backoff`` for the next try at Redis: doubled, at most :data:`REDIS_RETRY_MAX`."""
        return min(backoff * 2, REDIS_RETRY_MAX, float(self.max_connection_wait_time))

    def _pause(self, seconds: float) -> None:
        """Sleep, but not past a stop request (a signal that only sets a flag does not wake sleep)."""
        deadline = time.monotonic() + seconds
        while not self._stop_requested and time.monotonic() < deadline:
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))

    def _heartbeat_thread(self) -> JobHeartbeat:
        if self._job_heartbeat is None:
            backstop = self._batch.backstop if self._batch is not None else None
            refresh = lambda: self.heartbeat(timeout=self.worker_ttl)  # noqa: E731
            alive = self.health_file.heartbeat if self.health_file is not None else None
            self._job_heartbeat = JobHeartbeat(self.name, refresh, backstop, alive)
            self._job_heartbeat.start()
        return self._job_heartbeat

    def _promote_due_jobs(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_promotion_at >= app_settings.SCHEDULE_POLL_INTERVAL:
            self._last_promotion_at = now
            try:
                refresh_connections()
                promote_due_jobs()
            except (DatabaseError, RedisError) as exc:
                # Another process may hold the lock (SQLite) or a server may be away: try next time.
                fields = {"worker": self.name, "reason": str(exc)}
                log_event(worker_logger, logging.WARNING, "worker.promotion_failed", **fields)


def build_worker(
    queue_names: Sequence[str], *, name: str | None = None, worker_class: type[Worker] = Worker, **options: Any
) -> Worker:
    """A worker for ``queue_names`` (all on one Redis connection, as RQ requires); ``options``
    go to ``worker_class`` (``threads=`` for a ``ThreadedWorker``)."""
    connection, queues = worker_queues(queue_names)
    return worker_class(queues, connection=connection, name=name, **options)
