"""A worker's heartbeat while a job runs, written into the job's row.

The worker runs a job in its main thread, so a long job would otherwise go
silent. This thread writes ``Job.heartbeat_at`` every ``HEARTBEAT_INTERVAL``
seconds while the job runs (and refreshes the worker's registration in Redis,
so RQ tools keep seeing it). Recovery takes a running job whose heartbeat is
older than ``HEARTBEAT_TIMEOUT`` as lost with its worker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import Error as DatabaseError
from django.db import connections, router

from ..conf import app_settings
from ..logs import log_event, worker_logger
from ..models import Job, JobStatus
from ..times.clock import now_value
from .broker import RedisError
from .connections import refresh_connections


class JobHeartbeat(threading.Thread):
    """Beats for the job between :meth:`begin` and :meth:`end`; idle (one wait) otherwise."""

    def __init__(
        self,
        worker_name: str,
        refresh_registration: Callable[[], Any] | None = None,
        backstop: Callable[[], float | None] | None = None,
    ) -> None:
        super().__init__(name="asyncjobs-heartbeat", daemon=True)
        self.worker_name = worker_name
        self.refresh_registration = refresh_registration
        #: Called on every wake-up; returns the seconds until it wants the next (a batching
        #: worker's :meth:`~.batching.Batch.backstop`), or ``None``.
        self.backstop = backstop
        self._backstop_in: float | None = None
        self._lock = threading.Lock()
        self._job_id: str | None = None
        self._next_beat = 0.0
        self._wake = threading.Event()
        self._stopped = False

    @property
    def interval(self) -> float:
        return max(0.05, app_settings.HEARTBEAT_INTERVAL)

    def begin(self, job_id: str) -> None:
        with self._lock:
            self._job_id = job_id
            self._next_beat = time.monotonic() + self.interval

    def end(self) -> None:
        with self._lock:
            self._job_id = None

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()

    def nudge(self) -> None:
        """Wake up now to call :attr:`backstop` (a batch was claimed)."""
        self._wake.set()

    def run(self) -> None:
        try:
            while not self._stopped:
                wait = self.interval if self._backstop_in is None else min(self.interval, self._backstop_in)
                self._wake.wait(wait)
                self._wake.clear()
                if self.backstop is not None and not self._stopped:
                    self._call_backstop()
                with self._lock:
                    job_id = self._job_id if time.monotonic() >= self._next_beat else None
                    if job_id is not None:
                        self._next_beat = time.monotonic() + self.interval
                if job_id is not None and not self._stopped:
                    try:
                        self.beat(job_id)
                    except Exception:  # noqa: BLE001 - logged with its traceback
                        # A thread that dies would let recovery take a live job for a lost one.
                        fields = {"worker": self.worker_name, "job": job_id}
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

    def beat(self, job_id: str) -> None:
        # This thread's own connection, kept between beats: one that broke (server restart,
        # failover, idle timeout) is replaced by this beat, or the next.
        refresh_connections()
        try:
            alias = router.db_for_write(Job)
            # The database's clock, which recovery compares it with (on any host).
            Job.objects.using(alias).filter(pk=job_id, status=JobStatus.RUNNING, worker=self.worker_name).update(
                heartbeat_at=now_value(alias)
            )
        except DatabaseError as exc:
            connections.close_all()
            fields = {"worker": self.worker_name, "job": job_id, "reason": str(exc)}
            log_event(worker_logger, logging.WARNING, "heartbeat.not_written", **fields)
        if self.refresh_registration is not None:
            try:
                self.refresh_registration()
            except RedisError as exc:
                fields = {"worker": self.worker_name, "reason": str(exc)}
                log_event(worker_logger, logging.WARNING, "worker.registration_not_refreshed", **fields)


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
