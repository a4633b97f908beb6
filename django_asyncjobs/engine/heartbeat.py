"""A worker's heartbeat while its jobs run, written into the jobs' rows.

The worker runs a job in its main thread (or, with ``--threads``, up to N jobs in
executor threads), so a long job would otherwise go silent. This thread writes
``Job.heartbeat_at`` of every job that has run for ``HEARTBEAT_INTERVAL`` seconds
since it began or was last beaten, all of them in one ``UPDATE ... WHERE id IN (...)``
(and refreshes the worker's registration in Redis, so RQ tools keep seeing it).
Recovery takes a running job whose heartbeat is older than ``HEARTBEAT_TIMEOUT`` as
lost with its worker.

A claimed row whose job starts a heartbeat interval or more after its claim was sent (the
worker was paused, or cut off from the database, while holding it) is confirmed first by
:func:`confirm_claim`: recovery may have taken it back meanwhile and another worker may
be running it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from django.db import Error as DatabaseError
from django.db import connections, router

from ..conf import app_settings
from ..logs import jobs_logger, log_event, worker_logger
from ..models import Job, JobStatus
from ..times.clock import now_value
from .broker import RedisError
from .connections import refresh_connections
from .reconnecting import persist
from .states import this_attempt


class JobHeartbeat(threading.Thread):
    """Beats for the jobs between their :meth:`begin` and :meth:`end`; idle (one wait) otherwise."""

    def __init__(
        self,
        worker_name: str,
        refresh_registration: Callable[[], Any] | None = None,
        backstop: Callable[[], float | None] | None = None,
        alive: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(name="asyncjobs-heartbeat", daemon=True)
        self.worker_name = worker_name
        self.refresh_registration = refresh_registration
        #: Called on every wake-up; returns the seconds until it wants the next (a batching
        #: worker's :meth:`~.batching.Batch.backstop`), or ``None``.
        self.backstop = backstop
        #: Called on every wake-up (at least every ``HEARTBEAT_INTERVAL``): the worker's health file.
        self.alive = alive
        self._backstop_in: float | None = None
        self._lock = threading.Lock()
        #: job id -> when it is due for its next beat (``time.monotonic()``).
        self._due: dict[str, float] = {}
        self._wake = threading.Event()
        self._stopped = False

    @property
    def interval(self) -> float:
        return max(0.05, app_settings.HEARTBEAT_INTERVAL)

    def begin(self, job_id: str) -> None:
        with self._lock:
            self._due[job_id] = time.monotonic() + self.interval

    def end(self, job_id: str | None = None) -> None:
        """Stop beating for ``job_id`` (``None``: for every job)."""
        with self._lock:
            if job_id is None:
                self._due.clear()
            else:
                self._due.pop(job_id, None)

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()

    def nudge(self) -> None:
        """Wake up now to call :attr:`backstop` (a batch was claimed)."""
        self._wake.set()

    def run(self) -> None:
        try:
            while not self._stopped:
                wait = self._until_next_beat()
                if self._backstop_in is not None:
                    wait = min(wait, self._backstop_in)
                self._wake.wait(wait)
                self._wake.clear()
                if self.alive is not None and not self._stopped:
                    self.alive()
                if self.backstop is not None and not self._stopped:
                    self._call_backstop()
                job_ids = self._take_due()
                if job_ids and not self._stopped:
                    try:
                        self.beat(job_ids)
                    except Exception:  # noqa: BLE001 - logged with its traceback
                        # A thread that dies would let recovery take a live job for a lost one.
                        fields = {"worker": self.worker_name, "job": ",".join(job_ids)[:200]}
                        log_event(worker_logger, logging.ERROR, "heartbeat.error", **fields, exc_info=True)
        finally:
            connections.close_all()

    def _call_backstop(self) -> None:
        assert self.backstop is not None
        try:
            self._backstop_in = self.backstop()
        except Exception:  # noqa: BLE001 - logged with its traceback; the next wake-up tries again
            self._backstop_in = 1.0
            log_event(worker_logger, logging.ERROR, "heartbeat.backstop_error", worker=self.worker_name, exc_info=True)

    def _until_next_beat(self) -> float:
        with self._lock:
            first = min(self._due.values(), default=None)
        if first is None:
            return self.interval
        return min(self.interval, max(0.0, first - time.monotonic()))

    def _take_due(self) -> list[str]:
        with self._lock:
            now = time.monotonic()
            job_ids = [job_id for job_id, due in self._due.items() if due <= now]
            for job_id in job_ids:
                self._due[job_id] = now + self.interval
        return job_ids

    def beat(self, job_ids: Sequence[str]) -> None:
        # This thread's own connection, kept between beats: one that broke (server restart,
        # failover, idle timeout) is replaced by this beat, or the next.
        refresh_connections()
        try:
            alias = router.db_for_write(Job)
            # The database's clock, which recovery compares it with (on any host).
            running = Job.objects.using(alias).filter(status=JobStatus.RUNNING, worker=self.worker_name)
            running.filter(pk__in=list(job_ids)).update(heartbeat_at=now_value(alias))
        except DatabaseError as exc:
            connections.close_all()
            fields = {"worker": self.worker_name, "job": ",".join(job_ids)[:200], "reason": str(exc)}
            log_event(worker_logger, logging.WARNING, "heartbeat.not_written", **fields)
        if self.refresh_registration is not None:
            try:
                self.refresh_registration()
            except RedisError as exc:
                fields = {"worker": self.worker_name, "reason": str(exc)}
                log_event(worker_logger, logging.WARNING, "worker.registration_not_refreshed", **fields)


def confirm_claim(job: Job, claimed_at: float) -> bool:
    """Whether the claimed ``job`` may start; ``claimed_at``: ``time.monotonic()`` just before its
    claim was sent. Recovery takes a claimed row back only ``HEARTBEAT_TIMEOUT`` (at least three
    heartbeat intervals) after the claim ran, so a row that waited less than one interval may
    start as it is. One that waited longer gets its first heartbeat now, written only if the row
    still holds this attempt: ``False`` (and nothing written) when recovery put it back, failed
    it or retried it meanwhile, and another worker may be running it."""
    waited = time.monotonic() - claimed_at
    if waited < app_settings.HEARTBEAT_INTERVAL:
        return True
    alias = router.db_for_write(Job)
    attempt = Job.objects.using(alias).filter(**this_attempt(job))

    def write() -> bool:
        return bool(attempt.update(heartbeat_at=now_value(alias)))

    if persist(write, what=f"the confirmation of the claim of job {job.pk}", alias=alias):
        return True
    fields = {"job": job.pk, "worker": job.worker, "attempt": job.attempts, "waited_s": round(waited, 1)}
    log_event(jobs_logger, logging.WARNING, "job.claim_lost", **fields)
    return False


@contextmanager
def beating(worker_name: str, job_id: str) -> Iterator[None]:
    """A heartbeat for one job, in a thread of its own (for workers other than ours)."""
    heartbeat = JobHeartbeat(worker_name)
    heartbeat.begin(job_id)
    heartbeat.start()
    try:
        yield
    finally:
        heartbeat.end()
        heartbeat.stop()
