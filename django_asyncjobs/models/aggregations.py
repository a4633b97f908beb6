"""What aggregations record: each window run once, and the per-minute job statistics."""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .jobs import Job


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
