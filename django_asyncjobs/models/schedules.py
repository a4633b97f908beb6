"""Schedules: a job created on a cron expression or at a fixed interval."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ..exceptions import JobNotRegistered, UnknownQueue
from ..payloads import json_problem
from ..times.recurrence import next_run_time, resolve_timezone, validate_cron
from .jobs import Job


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
        # lazy: the engine imports the models; a schedule names a registered job and a queue
        from ..engine.broker import validate_queue
        from ..engine.registry import job_function_by_name

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
