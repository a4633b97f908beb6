"""The durable record of every job. The row is the truth; Redis only rings the doorbell."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class JobStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    SCHEDULED = "scheduled", _("Scheduled")
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")


#: Statuses a job never leaves.
FINISHED_STATUSES = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class JobQuerySet(models.QuerySet["Job"]):
    def queued(self) -> JobQuerySet:
        return self.filter(status=JobStatus.QUEUED)

    def running(self) -> JobQuerySet:
        return self.filter(status=JobStatus.RUNNING)

    def finished(self) -> JobQuerySet:
        return self.filter(status__in=FINISHED_STATUSES)

    def unfinished(self) -> JobQuerySet:
        return self.exclude(status__in=FINISHED_STATUSES)

    def due(self, now: Any = None) -> JobQuerySet:
        """Scheduled jobs (delayed or awaiting a retry) whose time has come."""
        return self.filter(status=JobStatus.SCHEDULED, run_at__lte=now or timezone.now())

    def owned_by(self, user: Any) -> JobQuerySet:
        return self.filter(owner=user) if getattr(user, "is_authenticated", False) else self.none()


class Job(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(_("job name"), max_length=255, help_text=_("Registered name of the function."))
    queue = models.CharField(_("queue"), max_length=100)
    status = models.CharField(_("status"), max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    args = models.JSONField(_("positional arguments"), default=list, blank=True)
    kwargs = models.JSONField(_("keyword arguments"), default=dict, blank=True)
    result = models.JSONField(_("result"), null=True, blank=True)
    error = models.TextField(_("error"), blank=True, help_text=_("Message and traceback of the last failed attempt."))
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    max_attempts = models.PositiveIntegerField(_("max attempts"), default=1)
    failed_attempts = models.JSONField(
        _("failed attempts"), default=list, blank=True, help_text=_("Worker, times and error of each failed attempt.")
    )
    priority = models.SmallIntegerField(_("priority"), default=0, help_text=_("Above 0: pushed to the queue's front."))
    # How a job of Django's Tasks framework was enqueued (backend alias, run_after); NULL otherwise.
    django_task = models.JSONField(_("Django task"), null=True, blank=True)
    progress = models.PositiveSmallIntegerField(_("progress"), default=0, validators=[MaxValueValidator(100)])
    progress_message = models.CharField(_("progress message"), max_length=255, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("owner"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="asyncjobs",
    )
    # NULL, not "", for "no key": the unique constraint must ignore jobs without one.
    idempotency_key = models.CharField(_("idempotency key"), max_length=255, null=True, blank=True)  # noqa: DJ001
    worker = models.CharField(_("worker"), max_length=255, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    enqueued_at = models.DateTimeField(_("enqueued at"), null=True, blank=True)
    run_at = models.DateTimeField(
        _("run at"), null=True, blank=True, help_text=_("Earliest start of the next attempt.")
    )
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        _("heartbeat at"), null=True, blank=True, help_text=_("Last sign of life from the worker running it.")
    )
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    schedule = models.ForeignKey(
        "Schedule",
        verbose_name=_("schedule"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="jobs",
        help_text=_("The schedule that created this job, if any."),
    )

    objects = JobQuerySet.as_manager()

    class Meta:
        verbose_name = _("job")
        verbose_name_plural = _("jobs")
        ordering = ("-created_at",)
        indexes = [
            models.Index(fields=["status", "run_at"], name="asyncjobs_status_run_at"),
            models.Index(fields=["status", "queue", "created_at"], name="asyncjobs_status_queue"),
            models.Index(fields=["status", "finished_at"], name="asyncjobs_status_finished"),
            models.Index(fields=["status", "heartbeat_at"], name="asyncjobs_status_heartbeat"),
            models.Index(fields=["finished_at"], name="asyncjobs_finished"),
            models.Index(fields=["owner", "created_at"], name="asyncjobs_owner_created"),
            # The admin's queue and job name filters, newest first.
            models.Index(fields=["queue", "created_at"], name="asyncjobs_queue_created"),
            models.Index(fields=["name", "created_at"], name="asyncjobs_name_created"),
            models.Index(fields=["created_at"], name="asyncjobs_created"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["name", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="asyncjobs_unique_idempotency_key",
            ),
            models.CheckConstraint(condition=Q(progress__lte=100), name="asyncjobs_progress_lte_100"),
        ]

    def __str__(self) -> str:
        return f"{self.name} [{self.status}] {self.id}"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def wait_time(self) -> timedelta | None:
        """Time from being due (enqueued) to the start of the last attempt."""
        if self.started_at and self.enqueued_at:
            return self.started_at - self.enqueued_at
        return None

    @property
    def run_time(self) -> timedelta | None:
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None

    def refresh(self) -> Job:
        self.refresh_from_db()
        return self

    def cancel(self) -> bool:
        """Cancel this job. Returns whether it was cancelled.

        A queued or scheduled job never starts. A running job is marked
        ``cancelled`` at once and its worker is asked to stop it; whatever the
        function still does is not recorded. A finished job is left alone.
        """
        from .engine.execution import cancel_job

        return cancel_job(self)

    def set_progress(self, percent: int, message: str = "") -> None:
        """Record progress (0-100) of this running job; throttled, see PROGRESS_INTERVAL."""
        from .engine.execution import record_progress

        record_progress(self, percent, message)

    async def aset_progress(self, percent: int, message: str = "") -> None:
        """:meth:`set_progress` for ``async def`` jobs."""
        from asgiref.sync import sync_to_async

        await sync_to_async(self.set_progress)(percent, message)


class MisfirePolicy(models.TextChoices):
    SKIP = "skip", _("Skip missed runs")
    CATCH_UP = "catch_up", _("Run once to catch up")


#: The fields that decide when a schedule runs.
TIMING_FIELDS = ("cron", "interval", "time_zone")
_NOT_LOADED = object()


class Schedule(models.Model):
    """A job run periodically, by cron expression or fixed interval. See docs/scheduling.md."""

    name = models.CharField(_("name"), max_length=200, unique=True)
    job_name = models.CharField(_("job"), max_length=255, help_text=_("Registered name of the job to run."))
    args = models.JSONField(_("positional arguments"), default=list, blank=True)
    kwargs = models.JSONField(_("keyword arguments"), default=dict, blank=True)
    cron = models.CharField(
        _("cron expression"), max_length=100, blank=True, help_text=_('Five fields, e.g. "*/5 * * * *".')
    )
    interval = models.DurationField(_("interval"), null=True, blank=True, help_text=_("Or a fixed interval."))
    time_zone = models.CharField(
        _("time zone"),
        max_length=64,
        blank=True,
        help_text=_("Time zone of the cron expression; empty for ASYNCJOBS['SCHEDULE_TIMEZONE'] or TIME_ZONE."),
    )
    queue = models.CharField(_("queue"), max_length=100, blank=True, help_text=_("Empty for the job's own queue."))
    enabled = models.BooleanField(_("enabled"), default=True)
    misfire_policy = models.CharField(
        _("missed runs"), max_length=16, choices=MisfirePolicy.choices, default=MisfirePolicy.SKIP
    )
    declared_in_code = models.BooleanField(
        _("declared in code"),
        default=False,
        editable=False,
        help_text=_("Declared with @job(schedule=...) or ASYNCJOBS['SCHEDULES']; synced at scheduler start."),
    )
    next_run_at = models.DateTimeField(_("next run at"), null=True, blank=True)
    last_run_at = models.DateTimeField(_("last run at"), null=True, blank=True)
    last_job = models.ForeignKey(
        Job, verbose_name=_("last job"), null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("schedule")
        verbose_name_plural = _("schedules")
        ordering = ("name",)
        indexes = [models.Index(fields=["enabled", "next_run_at"], name="asyncjobs_schedule_due")]
        constraints = [
            models.CheckConstraint(
                condition=(Q(cron="") & Q(interval__isnull=False)) | (~Q(cron="") & Q(interval__isnull=True)),
                name="asyncjobs_schedule_cron_xor_interval",
                violation_error_message=_("Give either a cron expression or an interval, not both."),
            )
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Validates the timing (a bad cron expression never reaches the scheduler) and sets
        ``next_run_at`` when it is empty or the timing changed."""
        changed = self.timing_changed  # before validating, which loads deferred fields
        self.validate_timing()
        if self.next_run_at is None or changed:
            self.next_run_at = self.compute_next_run(timezone.now())
            update_fields = kwargs.get("update_fields")
            if update_fields is not None:
                kwargs["update_fields"] = {*update_fields, "next_run_at"}
        super().save(*args, **kwargs)
        self._loaded_timing = self._timing()

    @classmethod
    def from_db(cls, db: str | None, field_names: Any, values: Any, *args: Any, **kwargs: Any) -> Schedule:
        instance = super().from_db(db, field_names, values, *args, **kwargs)
        # Only what was loaded: reading a deferred field here would load it (and recurse).
        instance._loaded_timing = tuple(instance.__dict__.get(name, _NOT_LOADED) for name in TIMING_FIELDS)
        return instance

    def _timing(self) -> tuple[Any, ...]:
        return (self.cron, self.interval, self.time_zone)

    @property
    def timing_changed(self) -> bool:
        loaded = getattr(self, "_loaded_timing", None)
        if loaded is None:
            return True  # not from the database
        for name, old in zip(TIMING_FIELDS, loaded, strict=True):
            if name not in self.__dict__:
                continue  # still deferred: unchanged
            if old is _NOT_LOADED or old != self.__dict__[name]:
                return True
        return False

    def validate_timing(self) -> None:
        """Check cron, interval, time zone and misfire policy (no database, no registry)."""
        from .times.recurrence import resolve_timezone, validate_cron

        errors: dict[str, list[str]] = {}
        if self.cron and self.interval is not None:
            errors.setdefault("cron", []).append(str(_("Give either a cron expression or an interval, not both.")))
        elif not self.cron and self.interval is None:
            errors.setdefault("cron", []).append(str(_("Give a cron expression or an interval.")))
        if self.cron:
            try:
                self.cron = validate_cron(self.cron)
            except ValueError as exc:
                errors.setdefault("cron", []).append(str(exc))
        if self.interval is not None and self.interval <= timedelta(0):
            errors.setdefault("interval", []).append(f"The interval must be longer than zero, got {self.interval}.")
        if self.time_zone:
            try:
                resolve_timezone(self.time_zone)
            except ValueError as exc:
                errors.setdefault("time_zone", []).append(str(exc))
        if self.misfire_policy not in MisfirePolicy.values:
            errors.setdefault("misfire_policy", []).append(
                f"Unknown misfire policy {self.misfire_policy!r}; choose {' or '.join(MisfirePolicy.values)}."
            )
        if errors:
            raise ValidationError(errors)

    def clean(self) -> None:
        from .engine.broker import validate_queue
        from .engine.payloads import json_problem
        from .engine.registry import job_function_by_name
        from .exceptions import JobNotRegistered, UnknownQueue

        errors: dict[str, list[str]] = {}
        try:
            self.validate_timing()
        except ValidationError as exc:
            errors.update(exc.message_dict)
        try:
            if self.job_name:  # an empty name is reported by the field's own validation
                job_function_by_name(self.job_name)
        except JobNotRegistered as exc:
            errors.setdefault("job_name", []).append(str(exc))
        if self.queue:
            try:
                validate_queue(self.queue)
            except UnknownQueue as exc:
                errors.setdefault("queue", []).append(str(exc))
        if not isinstance(self.args, list):
            errors.setdefault("args", []).append("Positional arguments must be a JSON list.")
        if not isinstance(self.kwargs, dict):
            errors.setdefault("kwargs", []).append("Keyword arguments must be a JSON object.")
        for field_name, value in (("args", self.args), ("kwargs", self.kwargs)):
            problem = json_problem(value)
            if problem is not None:
                errors.setdefault(field_name, []).append(f"The value {problem}.")
        if errors:
            raise ValidationError(errors)

    def compute_next_run(self, after: Any, anchor: Any = None) -> Any:
        from .times.recurrence import next_run_time

        return next_run_time(
            cron=self.cron, interval=self.interval, timezone_name=self.time_zone, after=after, anchor=anchor
        )

    def upcoming(self, count: int = 3) -> list[Any]:
        """The next ``count`` run times from ``next_run_at`` (for the admin)."""
        if self.next_run_at is None:
            return []
        times = [self.next_run_at]
        while len(times) < count:
            times.append(self.compute_next_run(times[-1], anchor=times[-1]))
        return times


class WindowStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    RUNNING = "running", _("Running")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")


class AggregationWindow(models.Model):
    """One time window of an aggregation: recorded once, so each window runs once."""

    name = models.CharField(_("aggregation"), max_length=200)
    since = models.DateTimeField(_("since"))
    until = models.DateTimeField(_("until"))
    status = models.CharField(_("status"), max_length=16, choices=WindowStatus.choices, default=WindowStatus.PENDING)
    job = models.ForeignKey(
        Job, verbose_name=_("job"), null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    error = models.TextField(_("error"), blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("aggregation window")
        verbose_name_plural = _("aggregation windows")
        ordering = ("name", "-since")
        constraints = [models.UniqueConstraint(fields=["name", "since"], name="asyncjobs_unique_window")]

    def __str__(self) -> str:
        return f"{self.name} [{self.since:%Y-%m-%d %H:%M}, {self.until:%Y-%m-%d %H:%M}) {self.status}"


class JobStats(models.Model):
    """Per-queue, per-minute statistics of finished jobs, rolled up by the scheduler."""

    queue = models.CharField(_("queue"), max_length=100)
    period_start = models.DateTimeField(_("period start"))
    period_seconds = models.PositiveIntegerField(_("period (seconds)"), default=60)
    succeeded = models.PositiveIntegerField(_("succeeded"), default=0)
    failed = models.PositiveIntegerField(_("failed"), default=0)
    cancelled = models.PositiveIntegerField(_("cancelled"), default=0)
    wait_p50 = models.FloatField(_("wait p50 (s)"), null=True, blank=True)
    wait_p95 = models.FloatField(_("wait p95 (s)"), null=True, blank=True)
    run_p50 = models.FloatField(_("run p50 (s)"), null=True, blank=True)
    run_p95 = models.FloatField(_("run p95 (s)"), null=True, blank=True)

    class Meta:
        verbose_name = _("job statistics")
        verbose_name_plural = _("job statistics")
        ordering = ("-period_start", "queue")
        constraints = [models.UniqueConstraint(fields=["queue", "period_start"], name="asyncjobs_unique_stats")]
        indexes = [models.Index(fields=["period_start"], name="asyncjobs_stats_period")]

    def __str__(self) -> str:
        return f"{self.queue} {self.period_start:%Y-%m-%d %H:%M}"

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed + self.cancelled


class Dashboard(models.Model):
    """No table: it carries the "view dashboard" permission and the admin's link to the dashboard."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [("view_dashboard", _("Can view the async jobs dashboard"))]
        verbose_name = _("dashboard")
        verbose_name_plural = _("dashboard")

    def __str__(self) -> str:
        return str(self._meta.verbose_name)
