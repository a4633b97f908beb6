"""A worker that runs up to N jobs at once in one process: ``asyncjobs_worker --threads N``.

For I/O-bound jobs. The main thread is the only one that pops: when a thread is free it
pops as many ids as threads are free (one ``BLMPOP``/``LMPOP`` round trip, which also drops
the finished messages), and hands them to N executor threads. Each executor
thread runs the same per-job pipeline as the single-thread worker
(:func:`~django_asyncjobs.engine.execution.run_job`: claim with one conditional
``UPDATE``, run, record; a success is handed to one writer thread,
:class:`~django_asyncjobs.engine.batching.SuccessWriter`, which writes the successes
waiting in one transaction while the executor goes on) on its own database connection, closed when the thread ends, so a
job still starts at most once per attempt however often its id is delivered. One
heartbeat thread beats for all running jobs in one statement; a watchdog thread enforces
each job's time limit (:mod:`.slots`); ``async def`` jobs run as tasks of one event loop
(:mod:`.aio`), holding their thread's slot meanwhile.

Stops: a warm stop (first signal) pops nothing more, lets every running job finish and
pushes the ids not started back to the front of their queues; a cold stop (a second
signal, more than a second later) interrupts every running job function, and each attempt
is recorded failed (retried if attempts are left) by its thread. A ``stop-job`` command
(``Job.cancel()``) interrupts only the thread running that job. Batching (``WORKER_PREFETCH``:
one claim for many ids, group commit of successes) is the single-thread worker's.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from django.db import connections, router
from rq import Queue
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.exceptions import StopRequested
from rq.worker import DequeueStrategy, WorkerStatus

from ..conf import app_settings
from ..engine.batching import SuccessWriter
from ..engine.broker import any_waiting, pop_many, pops_many, stopped_job_id
from ..engine.execution import Outcome, run_job
from ..engine.functions import use_coroutine_runner
from ..logs import log_event, worker_logger
from ..models import Job
from ..validators import require_count
from .ahead import ClaimAhead, Handed
from .aio import EventLoopThread
from .loop import POP_WAIT, Worker
from .slots import Slot, Watchdog

#: After a cold stop, how long the worker waits for its threads to record their interrupted
#: jobs; a thread still blocked in C code then is left behind (recovery repairs its row).
COLD_STOP_GRACE = 10.0


class ThreadedWorker(Worker):
    """Runs up to ``threads`` jobs at once (default ``ASYNCJOBS["WORKER_THREADS"]``)."""

    def __init__(self, queues: Sequence[Queue], *args: Any, threads: int | None = None, **kwargs: Any) -> None:
        super().__init__(queues, *args, **kwargs)
        self.threads = require_count(app_settings.WORKER_THREADS if threads is None else threads, "threads")
        self._writer: SuccessWriter | None = None
        self._jobs = threading.Lock()  # guards what follows, and _finished and outcomes
        self._id_handed_out = threading.Condition(self._jobs)  # executor threads wait on it
        self._job_ended = threading.Condition(self._jobs)  # the main thread waits on it
        self._inbox: deque[Handed] = deque()  # popped, no thread took them yet
        self._busy = 0  # ids taken by a thread and not finished
        self._closing = False
        self._cold_stop_at: float | None = None
        self._abandoned = False
        self._watchdog = Watchdog()
        self._slots = [Slot(index, self._watchdog, self._cold) for index in range(self.threads)]
        self._watchdog.slots = self._slots
        self._executors: list[threading.Thread] = []
        self._event_loop: EventLoopThread | None = None
        self._event_loop_lock = threading.Lock()
        self._many_per_pop: bool | None = None
        self._ahead: ClaimAhead | None = None

    # -- the main thread: pop and hand out ----------------------------------------------------

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
        """The single-thread worker's loop, but a message is handed to a free executor thread."""
        self.bootstrap(logging_level, date_format, log_format)
        self._dequeue_strategy = dequeue_strategy
        if with_scheduler:
            self._start_scheduler(burst, logging_level, date_format, log_format)
        self._install_signal_handlers()
        self._start_threads()
        handed_out = 0
        backoff = 1.0
        idle_since = time.monotonic()
        try:
            while not self._stop_requested:
                self.loop_turned()  # wakes at least every POP_WAIT, whatever the executor threads do
                try:
                    self.check_for_suspension(burst)
                    if self.should_run_maintenance_tasks:
                        self.run_maintenance_tasks()  # type: ignore[no-untyped-call]
                    self.set_state(WorkerStatus.BUSY if self._assigned() else WorkerStatus.IDLE)
                    self.heartbeat()
                    self._promote_due_jobs()
                    if self._stop_requested:
                        break
                    room = None if max_jobs is None else max_jobs - handed_out
                    if room == 0:
                        if self._assigned():  # the ids handed out are run before the worker quits
                            self._wait_for_a_job_to_end()
                            continue
                        self.log.info("Worker %s: finished executing %d jobs, quitting", self.name, handed_out)
                        break
                    free = self._wait_for_a_free_thread()
                    self._release_held()
                    if free == 0:
                        continue
                    popped = self._pop(free if room is None else min(free, room), burst)
                    backoff = 1.0
                    if popped:
                        idle_since = time.monotonic()
                        self._hand_out(popped)
                        handed_out += len(popped)
                        continue
                    if self._held_since() is not None:  # looked without waiting: wait for a thread instead
                        self._wait_for_a_job_to_end()
                        continue
                    if burst:
                        if self._assigned():  # a running job may still push a retry
                            self._wait_for_a_job_to_end()
                            continue
                        self._promote_due_jobs(force=True)
                        if not any_waiting(self.connection, self.queue_keys()):
                            self.log.info("Worker %s: done, quitting", self.name)
                            break
                    elif self._assigned():
                        idle_since = time.monotonic()
                    elif max_idle_time is not None and time.monotonic() - idle_since >= max_idle_time:
                        self.log.info("Worker %s: idle for %d seconds, quitting", self.name, max_idle_time)
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
            self._stop_threads()
            self.teardown()
        return bool(handed_out)

    def _assigned(self) -> int:
        with self._jobs:
            return self._busy + len(self._inbox)

    def _wait_for_a_free_thread(self) -> int:
        """How many ids to pop: one per free thread, and the few claimed ahead (:mod:`.ahead`)."""
        wanted = self.threads + self._claim_ahead().extra()
        with self._jobs:
            if self._busy + len(self._inbox) >= wanted:
                self._job_ended.wait(self._wait_time())
            return max(0, wanted - self._busy - len(self._inbox))

    def _wait_for_a_job_to_end(self) -> None:
        with self._jobs:
            if self._busy + len(self._inbox):
                self._job_ended.wait(self._wait_time())

    def _wait_time(self) -> float:
        """Until the oldest row claimed ahead is due for release, at most ``POP_WAIT`` (under the lock)."""
        held = next((entry.since for entry in self._inbox if entry.job is not None), None)
        if held is None:
            return POP_WAIT
        return min(POP_WAIT, max(0.0, held + self._claim_ahead().hold - time.monotonic()) + 0.001)

    def _held_since(self) -> float | None:
        with self._jobs:
            return next((entry.since for entry in self._inbox if entry.job is not None), None)

    def _claim_ahead(self) -> ClaimAhead:
        if self._ahead is None:
            in_transaction = connections[router.db_for_write(Job)].in_atomic_block  # a test's: threads would not see it
            enabled = app_settings.WORKER_PREFETCH > 1 and not in_transaction
            hold = app_settings.WORKER_BATCH_HOLD
            self._ahead = ClaimAhead(
                self.name, threads=self.threads, hold=hold, enabled=enabled, stop_requested=self._cold
            )
        return self._ahead

    def _pop(self, count: int, burst: bool) -> list[tuple[str, str]]:
        """Up to ``count`` ids (as many as threads are free) in one round trip, which also drops
        the messages finished since the last pop."""
        if self._many_per_pop is None:
            self._many_per_pop = pops_many(self.connection)
        with self._jobs:
            finished, self._finished = self._finished, []
        try:
            popped = pop_many(
                self.connection,
                self.queue_keys(),
                None if burst or self._held_since() is not None else POP_WAIT,
                count if self._many_per_pop else 1,
                finished=finished,
            )
        except BaseException:
            with self._jobs:
                self._finished[:0] = finished
            raise
        if popped and self._stop_requested:  # asked to stop while waiting: teardown hands them back
            self._prefetched.extend(popped)
            return []
        return popped

    def _hand_out(self, popped: list[tuple[str, str]]) -> None:
        try:
            handed = self._claim_ahead().claim(popped)
        except BaseException:
            self._prefetched.extend(popped)  # not claimed: teardown hands them back
            raise
        with self._jobs:
            self._inbox.extend(handed)
            self._id_handed_out.notify(len(handed))

    def _release_held(self) -> None:
        """Release the rows claimed ahead that waited ``WORKER_BATCH_HOLD`` (every thread is
        busy with a long job): their ids go back to the front for other workers."""
        ahead = self._claim_ahead()
        due = time.monotonic() - ahead.hold
        with self._jobs:
            held = [entry for entry in self._inbox if entry.job is not None and entry.since <= due]
            self._inbox = deque(entry for entry in self._inbox if entry not in held)
        try:
            ahead.release_to_queues(held, self.connection)
        except BaseException:
            with self._jobs:
                self._inbox.extendleft(reversed(held))  # still claimed: they run in their turn
            raise

    # -- the executor threads -----------------------------------------------------------------

    def _start_threads(self) -> None:
        self._heartbeat_thread()  # started here, not raced for by the executor threads
        self._watchdog.start()
        self._writer = SuccessWriter(
            self.name, outcomes=self.outcomes, outcomes_lock=self._jobs, stop_requested=self._cold
        )
        self._writer.start()
        for slot in self._slots:
            thread = threading.Thread(
                target=self._serve, args=(slot,), name=f"asyncjobs-executor-{slot.index}", daemon=True
            )
            thread.start()
            self._executors.append(thread)

    def _serve(self, slot: Slot) -> None:
        slot.ident = threading.get_ident()
        use_coroutine_runner(functools.partial(self._run_coroutine, slot))
        try:
            while (entry := self._take()) is not None:
                took = time.monotonic()
                try:
                    self._execute(slot, entry, self._queue_by_key[entry.key])
                finally:
                    with self._jobs:
                        self._busy -= 1
                        self._claim_ahead().ran(time.monotonic() - took)
                        self._job_ended.notify()
        finally:
            connections.close_all()

    def _take(self) -> Handed | None:
        with self._jobs:
            while True:
                if self._closing or self._stop_requested:
                    return None  # what is left in the inbox is handed back
                if self._inbox:
                    self._busy += 1
                    return self._inbox.popleft()
                self._id_handed_out.wait()

    def _execute(self, slot: Slot, entry: Handed, queue: Queue) -> None:
        job_id = entry.job_id
        heartbeat = self._heartbeat_thread()
        slot.begin(job_id)
        heartbeat.begin(job_id)
        try:
            succeed = self._writer.succeeded if self._writer is not None else None
            outcome = run_job(
                job_id,
                worker_name=self.name,
                guard=slot.guard,
                stop_requested=self._cold,
                succeed=succeed,
                claimed=entry.job,
                claimed_at=entry.since,
            )
        except BaseException:  # noqa: BLE001 - a job's own exceptions are its outcome; this thread goes on
            fields = {"worker": self.name, "job": job_id[:64]}
            log_event(worker_logger, logging.ERROR, "worker.job_error", **fields, exc_info=True)
            outcome = Outcome.ERROR
        finally:
            heartbeat.end(job_id)
            slot.end()
        self.count_outcome(job_id, queue, outcome)

    def count_outcome(self, job_id: str, queue: Queue, outcome: Outcome) -> None:
        """Called in the executor thread as a message is done (the test helper records outcomes here)."""
        with self._jobs:
            if outcome is not Outcome.REFUSED:
                skipped = outcome in (Outcome.SKIPPED, Outcome.PUT_BACK, Outcome.DEFERRED)
                self._finished.append((job_id, "" if skipped else queue.name))
            self.outcomes[outcome] += 1

    def _run_coroutine(self, slot: Slot, call: Callable[[], Awaitable[Any]]) -> Any:
        with self._event_loop_lock:
            if self._event_loop is None:
                self._event_loop = EventLoopThread()
                self._event_loop.start()
            event_loop = self._event_loop
        return event_loop.run_job_coroutine(slot, call)

    def _stop_threads(self) -> None:
        """Warm: let the running jobs finish; the ids no thread took are handed back by teardown."""
        with self._jobs:
            self._closing = True
            left, self._inbox = list(self._inbox), deque()
            self._id_handed_out.notify_all()
        self._prefetched.extendleft(reversed(self._claim_ahead().unstarted(left)))  # before ids popped later
        for thread in self._executors:
            while thread.is_alive() and not self._left_behind():
                thread.join(0.2)  # short, so that a second signal (a cold stop) is handled meanwhile
        self._executors = [thread for thread in self._executors if thread.is_alive()]
        if self._writer is not None:  # the successes of the jobs that ended are written before the worker exits
            self._writer.stop()
            while self._writer.is_alive() and not self._left_behind():
                self._writer.join(0.2)
        self._watchdog.stop()
        if self._event_loop is not None:
            self._event_loop.stop()

    def _left_behind(self) -> bool:
        """Whether the threads still running are left behind: blocked past ``COLD_STOP_GRACE`` after a cold stop."""
        if self._cold_stop_at is None or time.monotonic() - self._cold_stop_at <= COLD_STOP_GRACE:
            return False
        if not self._abandoned:
            self._abandoned = True
            running = [slot.job_id for slot in self._slots if slot.job_id is not None]
            fields = {"worker": self.name, "jobs": ",".join(running), "repaired_by": "recovery"}
            log_event(worker_logger, logging.WARNING, "worker.threads_left_behind", **fields)
        return True

    # -- signals and commands -----------------------------------------------------------------

    def _on_stop_signal(self, signum: int, frame: Any) -> None:
        was_cold = self._cold_stop
        super()._on_stop_signal(signum, frame)  # never raises here: the main thread runs no job
        if self._cold_stop and not was_cold:
            self._cold_stop_at = time.monotonic()
            for slot in self._slots:
                slot.interrupt()

    def handle_payload(self, message: dict[Any, Any]) -> None:
        """RQ's pub/sub commands; ``stop-job`` interrupts the thread running that job, if any."""
        job_id = stopped_job_id(message)
        if job_id is None:
            super().handle_payload(message)
            return
        if not any(slot.interrupt(job_id) for slot in self._slots) and not self._drop(job_id):
            self.log.warning("Worker %s: not working on job %s, command ignored", self.name, job_id)

    def _drop(self, job_id: str) -> bool:
        """Forget a row claimed ahead and not started (``Job.cancel()`` cancelled it): it never runs."""
        with self._jobs:
            kept = deque(entry for entry in self._inbox if entry.job is None or entry.job_id != job_id)
            dropped = len(kept) != len(self._inbox)
            self._inbox = kept
        return dropped


def threaded(worker_class: type[Worker]) -> type[ThreadedWorker]:
    """``worker_class`` with :class:`ThreadedWorker`'s loop (``--threads`` with ``--worker-class``)."""
    if issubclass(worker_class, ThreadedWorker):
        return worker_class
    return type(f"Threaded{worker_class.__name__}", (ThreadedWorker, worker_class), {})
