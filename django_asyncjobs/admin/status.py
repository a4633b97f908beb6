"""The dashboard's queue figures as a health report: what ``manage.py asyncjobs_status`` prints.

Each queue is read as the dashboard reads it (:func:`.figures.queue_overview`: Redis for
depth, age, live workers and throughput, ``JobStats`` for the last hour, the running jobs
through their index), and judged: **saturated** when a new job would be refused now (at
or over its ``QUEUE_LIMITS``), **no live worker** when no registered worker listens on
it. The report's exit status says it for scripts and probes; its JSON form is documented
in docs/commands.md#asyncjobs_status (``schema`` is bumped when a field changes meaning
or goes away; fields may be added).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import DatabaseError, close_old_connections
from django.utils import timezone

from .figures import QueueOverview, queue_overview

EXIT_OK = 0
#: A queue is saturated or has no live worker.
EXIT_UNHEALTHY = 1
#: Redis (for a queue) or the database could not be read.
EXIT_UNREADABLE = 2
#: The version of the JSON form.
SCHEMA = 1


def problems(queue: QueueOverview) -> list[str]:
    """What is wrong with ``queue`` now (empty when healthy)."""
    if not queue.reachable:
        return [f"Redis not read ({queue.error})"]
    found = []
    if queue.full_reason:
        found.append(f"saturated ({queue.full_reason})")
    if not queue.workers:
        found.append("no live worker")
    return found


@dataclass(frozen=True)
class StatusReport:
    generated_at: datetime
    queues: list[QueueOverview]
    #: Why the database could not be read ("" when it could; no queue is read then).
    error: str = ""

    @property
    def exit_status(self) -> int:
        if self.error or any(not queue.reachable for queue in self.queues):
            return EXIT_UNREADABLE
        return EXIT_UNHEALTHY if any(problems(queue) for queue in self.queues) else EXIT_OK

    @property
    def status(self) -> str:
        return {EXIT_OK: "ok", EXIT_UNHEALTHY: "unhealthy"}.get(self.exit_status, "unreadable")

    def summary(self) -> str:
        """One line: ``ok: 3 queues`` or what is wrong, queue by queue."""
        if self.error:
            return f"unreadable: database not read ({self.error})"
        wrong = [f"{queue.name}: {', '.join(problems(queue))}" for queue in self.queues if problems(queue)]
        if wrong:
            return f"{self.status}: " + "; ".join(wrong)
        return f"ok: {len(self.queues)} queue{'s' if len(self.queues) != 1 else ''}"

    def as_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "generated_at": self.generated_at.isoformat(),
            "status": self.status,
            "exit_status": self.exit_status,
            "error": self.error,
            "queues": [_queue_json(queue) for queue in self.queues],
        }


def _queue_json(queue: QueueOverview) -> dict[str, Any]:
    hour = queue.last_hour
    return {
        "name": queue.name,
        "healthy": not problems(queue),
        "problems": problems(queue),
        "depth": queue.depth,
        "max_depth": queue.max_depth,
        "oldest_age_seconds": queue.oldest_age,
        "max_age_seconds": queue.max_age,
        "saturated": bool(queue.full_reason),
        "workers": queue.workers,
        "running": queue.running,
        "throughput_per_minute": queue.throughput_per_minute,
        "estimated_wait_seconds": queue.estimated_wait,
        "last_hour": {
            "succeeded": hour.succeeded,
            "failed": hour.failed,
            "cancelled": hour.cancelled,
            "per_minute": hour.per_minute,
            "failure_rate": hour.failure_rate,
        },
        "error": queue.error,
    }


def read_status(names: Sequence[str] | None = None, now: datetime | None = None) -> StatusReport:
    """The queues ``names`` (all of ``RQ_QUEUES`` if ``None``), read now."""
    moment = now or timezone.now()
    close_old_connections()  # a refresh after a database error gets a new connection
    try:
        return StatusReport(moment, queue_overview(moment, names))
    except DatabaseError as exc:
        return StatusReport(moment, [], error=f"{type(exc).__name__}: {str(exc).strip()[:200]}")


COLUMNS = ("QUEUE", "DEPTH/LIMIT", "OLDEST", "WORKERS", "RUNNING", "JOBS/MIN", "FAILED 1H", "EST. WAIT", "HEALTH")


def render_text(report: StatusReport) -> str:
    """The report as a table, one line per queue, with a heading and the summary line."""
    lines = [f"asyncjobs status at {report.generated_at:%Y-%m-%d %H:%M:%S %Z}"]
    if report.queues:
        rows = [COLUMNS, *(_row(queue) for queue in report.queues)]
        widths = [max(len(row[index]) for row in rows) for index in range(len(COLUMNS))]
        for row in rows:
            lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    lines.append(report.summary())
    return "\n".join(lines)


def _row(queue: QueueOverview) -> tuple[str, ...]:
    hour = queue.last_hour
    ran = hour.succeeded + hour.failed
    failed = "-" if not ran else f"{hour.failed}/{ran} ({(hour.failure_rate or 0) * 100:.0f}%)"
    depth = "?" if queue.depth is None else str(queue.depth)
    oldest = _seconds(queue.oldest_age) + ("" if queue.max_age is None else f"/{_seconds(queue.max_age)}")
    wait = "?" if not queue.reachable else "unknown" if queue.estimated_wait is None else _seconds(queue.estimated_wait)
    return (
        queue.name,
        f"{depth}/{queue.max_depth if queue.max_depth is not None else '-'}",
        oldest,
        "?" if queue.workers is None else str(queue.workers),
        str(queue.running),
        "?" if queue.throughput_per_minute is None else f"{queue.throughput_per_minute:.1f}",
        failed,
        wait,
        ", ".join(problems(queue)) or "ok",
    )


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 60:
        return f"{value:.1f}s"
    minutes, seconds = divmod(int(value), 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
