"""Schedules declared in code, with ``@job(schedule=...)`` or ``ASYNCJOBS["SCHEDULES"]``,
and their sync into the ``Schedule`` table (done at scheduler start)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, router, transaction

from ..conf import app_settings
from ..engine.registry import registered_jobs
from ..exceptions import ConfigurationError
from ..logs import log_event, scheduler_logger
from ..models import MisfirePolicy, Schedule
from ..times.durations import parse_duration

#: Keys of an ``ASYNCJOBS["SCHEDULES"]`` entry.
ENTRY_KEYS = frozenset({"job", "cron", "interval", "args", "kwargs", "queue", "timezone", "misfire_policy", "enabled"})

#: The fields code owns; an operator may still switch ``enabled``.
DEFINITION_FIELDS = ("job_name", "args", "kwargs", "cron", "interval", "time_zone", "queue", "misfire_policy")


@dataclass(frozen=True)
class DeclaredSchedule:
    name: str
    job_name: str
    source: str
    cron: str = ""
    interval: timedelta | None = None
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    queue: str = ""
    time_zone: str = ""
    misfire_policy: str = MisfirePolicy.SKIP
    enabled: bool = True

    def as_model(self) -> Schedule:
        """An unsaved ``Schedule``, validated like one saved in the admin."""
        schedule = Schedule(
            name=self.name,
            enabled=self.enabled,
            declared_in_code=True,
            **{f: getattr(self, f) for f in DEFINITION_FIELDS},
        )
        try:
            schedule.full_clean(validate_unique=False, validate_constraints=False)
        except ValidationError as exc:
            problems = "; ".join(f"{key}: {' '.join(messages)}" for key, messages in exc.message_dict.items())
            raise ConfigurationError(f"Schedule {self.name!r} ({self.source}) is invalid: {problems}") from None
        return schedule


def declared_schedules() -> list[DeclaredSchedule]:
    """Every schedule declared in code, validated; ``ConfigurationError`` names what is wrong."""
    found: dict[str, DeclaredSchedule] = {}

    def add(declared: DeclaredSchedule) -> None:
        other = found.get(declared.name)
        if other is not None:
            raise ConfigurationError(
                f"Two schedules are named {declared.name!r}: {other.source} and {declared.source}. "
                "Schedule names must be unique; rename one."
            )
        declared.as_model()
        found[declared.name] = declared

    for name, job_function in sorted(registered_jobs().items()):
        if job_function.schedule is not None:
            timing = job_function.schedule
            add(
                DeclaredSchedule(
                    name=name,
                    job_name=name,
                    source=f"@job(schedule=...) on {name}",
                    cron=timing if isinstance(timing, str) else "",
                    interval=timing if isinstance(timing, timedelta) else None,
                )
            )
    entries = app_settings.SCHEDULES
    if not isinstance(entries, dict):
        raise ConfigurationError(
            f"ASYNCJOBS['SCHEDULES'] must be a dict of name to entry, got {type(entries).__name__}."
        )
    for name, entry in entries.items():
        add(_from_entry(name, entry))
    return list(found.values())


def _from_entry(name: Any, entry: Any) -> DeclaredSchedule:
    source = f"ASYNCJOBS['SCHEDULES'][{name!r}]"
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"{source}: a schedule name must be a non-empty string.")
    if not isinstance(entry, dict):
        raise ConfigurationError(f"{source} must be a dict with 'job' and 'cron' or 'interval'.")
    unknown = sorted(set(entry) - ENTRY_KEYS)
    if unknown:
        raise ConfigurationError(
            f"{source}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(ENTRY_KEYS))}."
        )
    if not isinstance(entry.get("job"), str):
        raise ConfigurationError(f"{source} needs 'job', the registered name of the job to run.")
    interval = None
    if entry.get("interval") is not None:
        try:
            interval = parse_duration(entry["interval"], what="interval")
        except ValueError as exc:
            raise ConfigurationError(f"{source}: {exc}") from None
    enabled = entry.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigurationError(f"{source}: 'enabled' must be True or False, got {enabled!r}.")
    return DeclaredSchedule(
        name=name,
        job_name=entry["job"],
        source=source,
        cron=str(entry.get("cron") or ""),
        interval=interval,
        args=entry.get("args", []),
        kwargs=entry.get("kwargs", {}),
        queue=str(entry.get("queue") or ""),
        time_zone=str(entry.get("timezone") or ""),
        misfire_policy=entry.get("misfire_policy", MisfirePolicy.SKIP),
        enabled=enabled,
    )


@dataclass
class SyncReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


def sync_declared_schedules() -> SyncReport:
    """Make the ``Schedule`` table match the schedules declared in code.

    New ones are created, changed ones updated (the next run is recomputed when the
    timing changed), and code-declared rows no longer declared are deleted. The
    ``enabled`` flag is set only on creation: after that it is the operator's.
    """
    declared = {item.name: item for item in declared_schedules()}
    report = SyncReport()
    with transaction.atomic(using=router.db_for_write(Schedule)):
        rows = {row.name: row for row in Schedule.objects.select_for_update().filter(name__in=list(declared))}
        for name, item in declared.items():
            row = rows.get(name)
            if row is None:
                try:
                    with transaction.atomic(using=router.db_for_write(Schedule)):
                        item.as_model().save()
                except IntegrityError:
                    continue  # another scheduler starting at the same time created it
                report.created.append(name)
                continue
            if not row.declared_in_code:
                raise ConfigurationError(
                    f"Schedule {name!r} is declared in code ({item.source}) and also exists as a schedule "
                    "created in the database (the admin). Schedule names must be unique; rename one."
                )
            wanted = item.as_model()
            changed = [f for f in DEFINITION_FIELDS if getattr(row, f) != getattr(wanted, f)]
            if changed:
                for f in changed:
                    setattr(row, f, getattr(wanted, f))
                row.save()
                report.updated.append(name)
        stale = Schedule.objects.filter(declared_in_code=True).exclude(name__in=list(declared))
        report.deleted = sorted(stale.values_list("name", flat=True))
        stale.delete()
    if report.created or report.updated or report.deleted:
        counts = {"created": len(report.created), "updated": len(report.updated), "deleted": len(report.deleted)}
        log_event(scheduler_logger, logging.INFO, "schedules.synced", **counts)
    return report
