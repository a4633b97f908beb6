"""The asyncjobs worker: an RQ ``SimpleWorker`` trimmed to what a row-backed job needs.

Because the database row is the truth, the worker does not need RQ's per-job
bookkeeping in Redis (job hash reads, started/finished registries, results,
executions). Per job it makes one pipelined round trip (drop the finished
message's hash, pop the next id) and three small SQL statements (claim, load,
record). Registration, heartbeats, ``rq suspend`` and the ``stop-job`` /
``shutdown`` commands work as in RQ, so RQ's and django-rq's tooling see it.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Sequence
from typing import Any

from django.db import DatabaseError, close_old_connections
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Queue
from rq.serializers import JSONSerializer
from rq.worker import SimpleWorker, WorkerStatus

from .conf import app_settings
from .exceptions import JobInterrupted, JobTimeout
from .execution import Outcome, run_job
from .heartbeat import JobHeartbeat
from .queues import flush_finished, get_connection, get_queue, pop
from .scheduler import Scheduler, SchedulerThread
from .scheduling import promote_due_jobs

logger = logging.getLogger("django_asyncjobs")

HEARTBEAT_INTERVAL = 15.0
SUSPENSION_CHECK_INTERVAL = 1.0


class Worker(SimpleWorker):
    """Runs asyncjobs messages in the worker process itself (no fork per job)."""

    def __init__(self, queues: Sequence[Queue], *args: Any, **kwargs: Any) -> None:
        if kwargs.get("serializer") is None:  # django-rq's rqworker passes None explicitly
            kwargs["serializer"] = JSONSerializer
        super().__init__(queues, *args, **kwargs)
        self._current_job_id: str | None = None
        self._finished: list[tuple[str, str]] = []
        self._interrupt_requested = False
        self._last_heartbeat_at = 0.0
        self._last_suspension_check_at = 0.0
        self._last_promotion_at = 0.0
        self._stored_state: str | None = None
        self._job_heartbeat: JobHeartbeat | None = None
        self._scheduler_thread: SchedulerThread | None = None
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

    # -- the loop RQ's ``work()`` drives -------------------------------------------------

    def dequeue_job_and_maintain_ttl(  # type: ignore[override]
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[str, Queue] | None:
        """Return ``(job_id, queue)`` of the next message, or ``None`` (burst done / idle)."""
        self.set_state(WorkerStatus.IDLE)
        self.procline("Listening on " + ",".join(self.queue_names()))  # type: ignore[no-untyped-call]
        poll = float(app_settings.SCHEDULE_POLL_INTERVAL)
        idle_since = time.monotonic()
        backoff = 1.0
        while True:
            self._promote_due_jobs()
            wait = None if timeout is None else max(1.0, min(float(timeout), poll))
            try:
                self.heartbeat()
                popped = pop(self.connection, self.queue_keys(), wait, finished=self._finished)
                backoff = 1.0
            except (RedisConnectionError, RedisTimeoutError) as exc:
                self.log.error("Worker %s: Redis unreachable (%s); retrying in %.0fs", self.name, exc, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, float(self.max_connection_wait_time))
                continue
            self._finished = []
            if popped is not None:
                key, job_id = popped
                return job_id, self._queue_by_key[key]
            if timeout is None:
                self._promote_due_jobs(force=True)
                if not any(self.connection.llen(k) for k in self.queue_keys()):
                    self.log.info("Worker %s: done, quitting", self.name)
                    return None
                continue
            if max_idle_time is not None and time.monotonic() - idle_since >= max_idle_time:
                return None

    def execute_job(self, job: Any, queue: Queue) -> None:
        job_id = str(job)
        self.set_state(WorkerStatus.BUSY)
        self._current_job_id = job_id
        self._interrupt_requested = False
        previous = signal.signal(signal.SIGUSR1, self._interrupt)
        heartbeat = self._heartbeat_thread()
        heartbeat.begin(job_id)
        try:
            outcome = run_job(job_id, worker_name=self.name, time_limit=self._time_limit)
        except Exception:
            # The row says what happened (or recovery will); the worker goes on with the next job.
            self.log.exception("Worker %s: error while handling job %s", self.name, job_id)
            outcome = Outcome.ERROR
        finally:
            heartbeat.end()
            signal.signal(signal.SIGUSR1, previous)
            self._current_job_id = None
        if outcome is not Outcome.REFUSED:
            self._finished.append((job_id, "" if outcome is Outcome.SKIPPED else queue.name))
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
        with self.connection.pipeline() as pipe:
            if self._stored_state != self._state:
                pipe.hset(self.key, "state", self._state)
                self._stored_state = self._state
            super().heartbeat(timeout, pipe)
            pipe.execute()

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

    def kill_horse(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Called by RQ's ``stop-job`` command (from the pub/sub thread): interrupt the job."""
        if self._current_job_id is not None:
            self._interrupt_requested = True
            main = threading.main_thread().ident
            if main is not None:
                signal.pthread_kill(main, signal.SIGUSR1)

    def teardown(self) -> None:
        flush_finished(self.connection, self._finished)
        self._finished = []
        if self._job_heartbeat is not None:
            self._job_heartbeat.stop()
            self._job_heartbeat.join(5)
            self._job_heartbeat = None
        if self._scheduler_thread is not None:
            self._scheduler_thread.stop()
            self._scheduler_thread = None
        super().teardown()  # type: ignore[no-untyped-call]

    # -- helpers ----------------------------------------------------------------------------

    def _interrupt(self, signum: int, frame: Any) -> None:
        if self._interrupt_requested and self._current_job_id is not None:
            self._interrupt_requested = False
            raise JobInterrupted()

    def _heartbeat_thread(self) -> JobHeartbeat:
        if self._job_heartbeat is None:
            self._job_heartbeat = JobHeartbeat(self.name, lambda: self.heartbeat(timeout=self.worker_ttl))
            self._job_heartbeat.start()
        return self._job_heartbeat

    def _time_limit(self, seconds: int, job_id: str) -> Any:
        return self.death_penalty_class(seconds, JobTimeout, job_id=job_id)

    def _promote_due_jobs(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_promotion_at >= float(app_settings.SCHEDULE_POLL_INTERVAL):
            self._last_promotion_at = now
            close_old_connections()
            try:
                promote_due_jobs()
            except (DatabaseError, RedisError) as exc:
                # Another process may hold the lock (SQLite) or a server may be away: try next time.
                self.log.warning("Worker %s: could not queue due jobs this time: %s", self.name, exc)


def build_worker(queue_names: Sequence[str], *, name: str | None = None, worker_class: type[Worker] = Worker) -> Worker:
    """A worker for ``queue_names`` (all on one Redis connection, as RQ requires)."""
    queues = [get_queue(name_) for name_ in queue_names]
    connection = get_connection(queue_names[0])
    for queue_name, queue in zip(queue_names, queues, strict=True):
        if queue.connection is not connection:
            from .exceptions import ConfigurationError

            raise ConfigurationError(
                f"Queue {queue_name!r} uses a different Redis server than {queue_names[0]!r}; "
                "run one worker per Redis server."
            )
    return worker_class(queues, connection=connection, name=name)


def run_workers(
    queue_names: Sequence[str],
    *,
    concurrency: int = 1,
    burst: bool = False,
    name: str | None = None,
    max_jobs: int | None = None,
    logging_level: str = "INFO",
    worker_class: type[Worker] = Worker,
    with_scheduler: bool = False,
) -> int:
    """Run ``concurrency`` worker processes until they stop; returns an exit status.

    ``with_scheduler`` runs the scheduler loop in a thread of the (first) worker.
    With ``concurrency > 1`` the current process forks that many workers (after
    closing its database and Redis connections, which must not be shared across a
    fork) and supervises them: SIGINT/SIGTERM are passed on for a warm shutdown.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")

    def work(index: int) -> bool:
        worker_name = f"{name}-{index}" if name and concurrency > 1 else name
        worker = build_worker(queue_names, name=worker_name, worker_class=worker_class)
        if with_scheduler and index == 0:
            worker.start_scheduler(sync=False)
        return worker.work(burst=burst, max_jobs=max_jobs, logging_level=logging_level)

    if with_scheduler:
        Scheduler().sync()  # here, so that a bad declaration stops the command, not one child
    if concurrency == 1:
        work(0)
        return 0

    import multiprocessing

    from django.db import connections

    from .queues import reset_connections

    connections.close_all()
    reset_connections()
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=work, args=(i,), name=f"asyncjobs-worker-{i}") for i in range(concurrency)]
    for process in processes:
        process.start()

    def forward(signum: int, frame: Any) -> None:
        for process in processes:
            if process.pid and process.is_alive():
                try:
                    import os

                    os.kill(process.pid, signum)
                except ProcessLookupError:
                    pass

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for process in processes:
            process.join()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return max((process.exitcode or 0) for process in processes)
