"""How a worker takes stop signals and RQ's ``stop-job`` command.

Signal handlers only set flags that the loop reads. The only exception a signal raises
is ``JobInterrupted``, and only inside the job function's guard window: for a cancel of
that job or a cold stop (a second stop signal more than ``DUPLICATE_SIGNAL_WINDOW``
seconds after the first).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..engine.broker import stopped_job_id
from ..exceptions import JobInterrupted, JobTimeout
from ..logs import log_event, worker_logger

if TYPE_CHECKING:
    from logging import Logger

    from ..engine.batching import Batch

#: A second stop signal sooner than this after the first is taken for a copy of it (a
#: terminal's Ctrl+C reaches both a ``--concurrency`` parent and its children), as in RQ.
DUPLICATE_SIGNAL_WINDOW = 1.0


class StopSignals:
    """The stop and interrupt handling of :class:`~django_asyncjobs.worker.Worker`."""

    if TYPE_CHECKING:
        name: str
        log: Logger
        death_penalty_class: Any
        _stop_requested: bool
        _current_job_id: str | None
        _interrupt_job_id: str | None
        _interruptible: bool
        _cold_stop: bool
        _first_stop_signal_at: float
        _batch: Batch | None

    # -- signals ----------------------------------------------------------------------------

    def _install_signal_handlers(self) -> None:
        signal.signal(signal.SIGINT, self._on_stop_signal)
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGUSR1, self._on_interrupt_signal)

    def request_stop(self, signum: int, frame: Any) -> None:
        self._on_stop_signal(signum, frame)

    def request_force_stop(self, signum: int, frame: Any) -> None:
        self._on_stop_signal(signum, frame)

    def _on_stop_signal(self, signum: int, frame: Any) -> None:
        now = time.monotonic()
        if not self._stop_requested:
            self._stop_requested = True
            self._first_stop_signal_at = now
            self.log.info("Worker %s: warm shut down requested; stopping after the current job", self.name)
            return
        if now - self._first_stop_signal_at < DUPLICATE_SIGNAL_WINDOW or self._cold_stop:
            return
        self._cold_stop = True
        self.log.warning("Worker %s: cold shut down", self.name)
        if self._interruptible:
            self._interruptible = False
            raise JobInterrupted()

    def _on_interrupt_signal(self, signum: int, frame: Any) -> None:
        if self._interruptible and self._interrupt_pending():
            self._interruptible = False
            raise JobInterrupted()

    def _interrupt_pending(self) -> bool:
        if self._cold_stop:
            return True
        if self._interrupt_job_id is not None and self._interrupt_job_id == self._current_job_id:
            self._interrupt_job_id = None
            return True
        return False

    def _cold(self) -> bool:
        return self._cold_stop

    @contextmanager
    def _guard(self, seconds: int, job_id: str) -> Iterator[None]:
        """The job function's time limit, and the only window in which a cancel or a cold stop
        interrupts it: once the function has returned, its outcome is recorded as it happened."""
        with self.death_penalty_class(seconds, JobTimeout, job_id=job_id):
            self._interruptible = True
            try:
                if self._interrupt_pending():  # came while the job was being claimed or started
                    self._interruptible = False
                    raise JobInterrupted()
                yield
            finally:
                self._interruptible = False

    def handle_payload(self, message: Any) -> None:
        """RQ's commands; a ``stop-job`` of an id claimed in this worker's batch and not started
        drops it (RQ's would ignore it: it is not the current job)."""
        job_id = stopped_job_id(message)
        batch = self._batch
        if job_id is not None and batch is not None and batch.drop(job_id):
            return
        try:
            super().handle_payload(message)  # type: ignore[misc]
        except (TypeError, ValueError, KeyError, AttributeError):  # anything in Redis is untrusted
            log_event(worker_logger, logging.ERROR, "worker.command_refused", worker=self.name, reason="not a command")

    def kill_horse(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Called by RQ's ``stop-job`` command (from the pub/sub thread): interrupt the job."""
        job_id = self._current_job_id
        if job_id is not None and getattr(self, "_stopped_job_id", job_id) == job_id:
            self._interrupt_job_id = job_id
            main = threading.main_thread().ident
            if main is not None:
                signal.pthread_kill(main, signal.SIGUSR1)
