"""The durable record of every job. The row is the truth; Redis only rings the doorbell."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
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
    # What the job is shown, filtered and counted as when its name says too little: the view of
    # an offloaded view's row (``myapp.views.export``); NULL for every other job.
    display_name = models.CharField(  # noqa: DJ001 - NULL: "the name"; the index leaves those rows out
        _("shown as"), max_length=255, null=True, blank=True, editable=False
    )
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
    # The enqueue's OpenTelemetry trace context (traceparent, ...); NULL unless OPENTELEMETRY is on.
    trace_context = models.JSONField(_("trace context"), null=True, blank=True)
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
    # A unique job's name and arguments, hashed (``@job(unique_for=...)``): one waiting job per key.
    # Set only while the row waits (queued, scheduled); its claim or cancel clears it.
    unique_key = models.CharField(_("unique key"), max_length=64, null=True, blank=True, editable=False)  # noqa: DJ001
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
    group = models.ForeignKey(
        "JobGroup",
        verbose_name=_("group"),
        null=True,
        blank=True,
        db_index=False,  # the (group, status) index below serves it
        on_delete=models.SET_NULL,
        related_name="jobs",
    )
    group_index = models.PositiveIntegerField(_("position in its group"), null=True, blank=True)
    has_dependants = models.BooleanField(
        _("has dependants"), default=False, editable=False, help_text=_("Jobs wait for this one to finish.")
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
            models.Index(
                fields=["display_name", "created_at"],
                name="asyncjobs_display_created",
                condition=Q(display_name__isnull=False),
            ),
            models.Index(fields=["created_at"], name="asyncjobs_created"),
            # Partial: a job outside a group costs its status changes no write to it.
            models.Index(fields=["group", "status"], name="asyncjobs_group_jobs", condition=Q(group__isnull=False)),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["name", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="asyncjobs_unique_idempotency_key",
            ),
            models.UniqueConstraint(
                fields=["unique_key"],
                condition=Q(unique_key__isnull=False, status__in=["queued", "scheduled"]),
                name="asyncjobs_unique_waiting_job",
            ),
            models.CheckConstraint(condition=Q(progress__lte=100), name="asyncjobs_progress_lte_100"),
        ]

    def __str__(self) -> str:
        return f"{self.shown_name} [{self.status}] {self.id}"

    @property
    def shown_name(self) -> str:
        """What the job is shown as: its display name (an offloaded view's), else its name."""
        return self.display_name or self.name

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
        # lazy: the engine imports the models (this method is a shortcut to it)
        from ..engine.execution import cancel_job

        return cancel_job(self)

    async def arefresh(self) -> Job:
        """:meth:`refresh` for async code."""
        await self.arefresh_from_db()
        return self

    async def acancel(self) -> bool:
        """:meth:`cancel` for async code (in Django's thread for sync code, as ``aenqueue``)."""
        return await sync_to_async(self.cancel)()

    def set_progress(self, percent: int, message: str = "") -> None:
        """Record progress (0-100) of this running job; throttled, see PROGRESS_INTERVAL."""
        # lazy: the engine imports the models (this method is a shortcut to it)
        from ..engine.execution import record_progress

        record_progress(self, percent, message)

    async def aset_progress(self, percent: int, message: str = "") -> None:
        """:meth:`set_progress` for ``async def`` jobs."""
        await sync_to_async(self.set_progress)(percent, message)
