"""Jobs that wait for other jobs: dependency edges, and groups with a completion callback.

A job enqueued ``after=[...]`` waits ``scheduled`` without a ``run_at`` until its
dependencies finished; each of them is one :class:`JobDependency` row. A
:class:`JobGroup` is many jobs enqueued at once, with one optional callback job that
waits the same way until every job of the group finished.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Avg, Case, Count, IntegerField, Value, When
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .jobs import FINISHED_STATUSES, Job, JobStatus


class GroupStatus(models.TextChoices):
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    #: Every job finished, and at least one of them failed or was cancelled.
    FAILED = "failed", _("Failed")


class JobGroup(models.Model):
    """Jobs enqueued together, whose callback (``then``) runs once when all of them finished."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(_("job name"), max_length=255, help_text=_("Registered name of the jobs' function."))
    status = models.CharField(_("status"), max_length=16, choices=GroupStatus.choices, default=GroupStatus.RUNNING)
    size = models.PositiveIntegerField(_("size"), default=0, help_text=_("How many jobs the group has."))
    #: Counted down as its jobs finish: a hint of when to look whether all did (which is then
    #: checked on the jobs themselves), so that is not looked up after every job.
    unfinished_hint = models.IntegerField(_("jobs not known to have finished"), default=0, editable=False)
    callback = models.OneToOneField(
        Job,
        verbose_name=_("callback"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="callback_of",
        help_text=_("The job that runs once every job of the group finished."),
    )
    callback_any = models.BooleanField(
        _("callback whatever the outcome"),
        default=False,
        help_text=_("Run the callback even when jobs of the group failed or were cancelled."),
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("owner"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("job group")
        verbose_name_plural = _("job groups")
        ordering = ("-created_at",)
        indexes = [
            models.Index(fields=["status", "created_at"], name="asyncjobs_group_status"),
            models.Index(fields=["finished_at"], name="asyncjobs_group_finished"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.size} jobs) [{self.status}] {self.id}"

    @property
    def is_finished(self) -> bool:
        return self.status != GroupStatus.RUNNING

    def counts(self) -> dict[str, int]:
        """How many of the group's jobs are in each status (every status named, 0 included)."""
        found = dict(self.jobs.order_by().values_list("status").annotate(n=Count("pk")).values_list("status", "n"))
        return {status.value: found.get(status.value, 0) for status in JobStatus}

    def progress(self) -> int:
        """The mean progress of the group's jobs (0-100), a finished job counting 100."""
        finished = [status.value for status in FINISHED_STATUSES]
        weighted = Case(When(status__in=finished, then=Value(100)), default="progress", output_field=IntegerField())
        mean = self.jobs.order_by().aggregate(mean=Avg(weighted))["mean"]
        return 100 if mean is None else int(mean)

    def results(self) -> list[Any]:
        """The jobs' results in the order of the calls (``None`` for a job without one)."""
        return list(self.jobs.order_by("group_index").values_list("result", flat=True))

    @classmethod
    def enqueue(cls, function: Any, calls: Any, **options: Any) -> JobGroup:
        """Shortcut for :func:`django_asyncjobs.enqueue_group`."""
        # lazy: the engine imports the models (this method is a shortcut to it)
        from ..engine.groups import enqueue_group

        return enqueue_group(function, calls, **options)


class JobDependency(models.Model):
    """``job`` starts only once ``depends_on`` finished (and succeeded, unless ``any_outcome``)."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="dependencies", verbose_name=_("job"))
    depends_on = models.ForeignKey(
        Job, on_delete=models.CASCADE, related_name="dependant_links", verbose_name=_("depends on")
    )
    any_outcome = models.BooleanField(
        _("whatever the outcome"), default=False, help_text=_("Start even if this dependency failed.")
    )
    pass_result = models.BooleanField(
        _("pass the result"), default=False, help_text=_("The dependency's result is the job's first argument.")
    )

    class Meta:
        verbose_name = _("job dependency")
        verbose_name_plural = _("job dependencies")
        constraints = [models.UniqueConstraint(fields=["job", "depends_on"], name="asyncjobs_unique_dependency")]

    def __str__(self) -> str:
        return f"{self.job_id} after {self.depends_on_id}"
