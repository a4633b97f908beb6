"""The scheduler loop: fire due schedules, queue due delayed jobs and retries, recover
lost jobs, and run due aggregations (including the job statistics rollup).

Run it as ``manage.py asyncjobs_scheduler``, or inside a worker with
``asyncjobs_worker --with-scheduler``. Any number of copies may run: every step
is safe to run concurrently (see docs/scheduling.md).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.db import DatabaseError, connections

from ..aggregations.windows import schedule_due_aggregations
from ..conf import app_settings
from ..engine.broker import RedisError
from ..engine.connections import refresh_connections
from ..logs import log_event, scheduler_logger
from .declared import SyncReport, sync_declared_schedules
from .firing import FiringReport, fire_due_schedules, promote_due_jobs
from .recovery import RecoveryReport, recover

T = TypeVar("T")


@dataclass
class TickReport:
    """What one pass of the scheduler did."""

    schedules: FiringReport
    promoted: int = 0
    recovery: RecoveryReport | None = None
    windows: int = 0
    #: The steps that failed this pass (logged; tried again at the next pass).
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [
            f"{len(self.schedules.fired)} schedule(s) fired",
            f"{sum(self.schedules.missed.values())} missed run(s) skipped or caught up",
            f"{self.promoted} due job(s) queued",
            f"{self.windows} aggregation window(s) started",
        ]
        if self.recovery is not None:
            parts.append(f"recovery: {len(self.recovery.requeued)} re-pushed, {len(self.recovery.lost)} lost")
        if self.schedules.failed:
            parts.append(f"{len(self.schedules.failed)} schedule(s) failed")
        if self.errors:
            parts.append(f"failed steps: {', '.join(self.errors)}")
        return "; ".join(parts)


class Scheduler:
    """One scheduler. ``interval``: seconds between passes (``SCHEDULE_POLL_INTERVAL``)."""

    def __init__(self, *, interval: float | None = None, recovery_interval: float | None = None) -> None:
        self.interval = app_settings.SCHEDULE_POLL_INTERVAL if interval is None else interval
        if self.interval <= 0:
            raise ValueError(f"interval must be a number of seconds > 0, got {interval!r}")
        self.recovery_interval = app_settings.RECOVERY_INTERVAL if recovery_interval is None else recovery_interval
        self._last_recovery_at: float | None = None
        self.stopping = threading.Event()

    def sync(self) -> SyncReport:
        """Sync the schedules declared in code into the table (raises ``ConfigurationError``)."""
        return sync_declared_schedules()

    def tick(self) -> TickReport:
        """One pass. A step that fails (database or Redis away) is logged and retried next pass.
        The database connection is kept from one pass to the next (see ``engine/connections.py``)."""
        refresh_connections()
        errors: list[str] = []
        report = TickReport(schedules=self._step("fire due schedules", fire_due_schedules, errors) or FiringReport())
        report.promoted = self._step("queue due jobs", promote_due_jobs, errors) or 0
        now = time.monotonic()
        if self._last_recovery_at is None or now - self._last_recovery_at >= self.recovery_interval:
            self._last_recovery_at = now
            report.recovery = self._step("recover lost jobs", recover, errors)
        report.windows = self._step("start due aggregation windows", _schedule_due_aggregations, errors) or 0
        report.errors = errors
        return report

    def run(self, *, once: bool = False, sync: bool = True, on_tick: Callable[[TickReport], Any] | None = None) -> None:
        """Sync declared schedules, then pass every ``interval`` seconds until :meth:`stop`."""
        try:
            if sync:
                self.sync()
            while not self.stopping.is_set():
                started = time.monotonic()
                report = self.tick()
                if on_tick is not None:
                    on_tick(report)
                if once:
                    return
                self.stopping.wait(max(0.0, self.interval - (time.monotonic() - started)))
        finally:
            connections.close_all()

    def stop(self) -> None:
        self.stopping.set()

    def _step(self, what: str, step: Callable[[], T], errors: list[str]) -> T | None:
        try:
            return step()
        except (DatabaseError, RedisError) as exc:
            log_event(scheduler_logger, logging.WARNING, "scheduler.step_failed", step=what, reason=str(exc))
        except Exception:  # noqa: BLE001 - logged with its traceback
            log_event(scheduler_logger, logging.ERROR, "scheduler.step_error", step=what, exc_info=True)
        refresh_connections()  # a connection that broke is replaced at the next step
        errors.append(what)
        return None


def _schedule_due_aggregations() -> int:
    return schedule_due_aggregations()


class SchedulerThread(threading.Thread):
    """The scheduler in a daemon thread of another process (``asyncjobs_worker --with-scheduler``)."""

    def __init__(self, scheduler: Scheduler | None = None) -> None:
        super().__init__(name="asyncjobs-scheduler", daemon=True)
        self.scheduler = scheduler or Scheduler()

    def run(self) -> None:
        try:
            self.scheduler.run(sync=False)  # the worker synced before it started this thread
        except Exception:  # noqa: BLE001 - logged with its traceback
            log_event(scheduler_logger, logging.ERROR, "scheduler.thread_stopped", exc_info=True)

    def stop(self, timeout: float | None = 10.0) -> None:
        self.scheduler.stop()
        self.join(timeout)
