"""What the admin pages show: durations, progress bars, status badges, JSON, links, filters."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils import dateformat, timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext_lazy as _

from ..engine.broker import queue_names
from ..engine.registry import registered_jobs
from ..models import Job, JobStatus
from ..offloading.requests import offloaded_views

#: Shown for a value that is not there (Django's own ``empty_value_display``).
EMPTY = "-"


def format_timedelta(value: timedelta | None) -> str:
    """``"850 ms"``, ``"12.3 s"``, ``"4 min 05 s"``, ``"2 h 03 min"``, ``"3 d 04 h"``."""
    if value is None:
        return EMPTY
    seconds = value.total_seconds()
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours:02d} h"


def short_duration(value: timedelta | None) -> str:
    """``format_timedelta``'s value in fewer characters, for list columns: ``"850ms"``, ``"12.3s"``,
    ``"4m05s"``, ``"2h03m"``, ``"3d04h"``."""
    if value is None:
        return EMPTY
    seconds = value.total_seconds()
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def compact_duration(value: timedelta | None) -> str | SafeString:
    """A short duration with the exact one (in seconds) as its tooltip."""
    if value is None:
        return EMPTY
    return format_html('<span title="{} s">{}</span>', f"{value.total_seconds():.3f}", short_duration(value))


def full_time(moment: datetime) -> str:
    """``2026-11-28 23:39:44.123+01:00``: the whole moment, in the current time zone."""
    return local_time(moment).isoformat(sep=" ", timespec="milliseconds")


def short_time(moment: datetime, now: datetime | None = None) -> str:
    """``"23:39:44"`` today, ``"Nov 27 23:39"`` this year, ``"2025-11-27"`` before (local time)."""
    moment, now = local_time(moment), local_time(now or timezone.now())
    if moment.date() == now.date():
        return dateformat.format(moment, "H:i:s")
    if moment.year == now.year:
        return dateformat.format(moment, "M j H:i")
    return dateformat.format(moment, "Y-m-d")


def compact_time(moment: datetime | None, now: datetime | None = None) -> str | SafeString:
    """A short time for a list column, the whole moment as its tooltip (and machine-readable)."""
    if moment is None:
        return EMPTY
    full = full_time(moment)
    return format_html('<time datetime="{}" title="{}">{}</time>', full, full, short_time(moment, now))


def breakable(name: str) -> SafeString:
    """A dotted name that may wrap after each dot (``social.views.export_csv``) in a narrow column."""
    parts = name.split(".")
    return format_html_join(
        mark_safe("<wbr>"), "{}", ((part if i == len(parts) - 1 else part + ".",) for i, part in enumerate(parts))
    )


def progress_bar(job: Job, url: str = "") -> SafeString:
    """A bar that admin_progress.js keeps up to date from ``url`` while the job is not finished."""
    return format_html(
        '<span class="asyncjobs-progress-cell" data-job="{}" data-status="{}" data-url="{}">'
        '<span class="asyncjobs-progress" title="{}"><span style="width: {}%"></span></span> '
        '<span class="asyncjobs-progress-text">{}%</span></span>',
        job.pk,
        job.status,
        url,
        job.progress_message or f"{job.progress}%",
        job.progress,
        job.progress,
    )


def status_badge(status: str, job: Job | None = None) -> SafeString:
    return format_html(
        '<span class="asyncjobs-status asyncjobs-status-{}" data-job-status="{}">{}</span>',
        status,
        "" if job is None else job.pk,
        JobStatus(status).label,
    )


def pretty_json(value: Any) -> SafeString:
    return format_html('<pre class="asyncjobs-json">{}</pre>', json.dumps(value, indent=2, sort_keys=True))


def admin_link(obj: Any, text: str | None = None) -> str | SafeString:
    if obj is None:
        return EMPTY
    try:
        url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    except NoReverseMatch:
        return str(obj)
    return format_html('<a href="{}">{}</a>', url, text or str(obj))


def local_time(moment: datetime) -> datetime:
    return timezone.localtime(moment) if timezone.is_aware(moment) else moment


def fieldset_names(fieldsets: Any) -> list[str]:
    return [str(name) for _, options in fieldsets for name in options["fields"]]


class QueueFilter(admin.SimpleListFilter):
    """The queues of ``RQ_QUEUES`` (a constant list: no query over the table)."""

    title = _("queue")
    parameter_name = "queue"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(name, name) for name in sorted(queue_names())]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(queue=self.value()) if self.value() else queryset


class JobNameFilter(admin.SimpleListFilter):
    """The registered job names and offloaded views that have jobs (one index lookup each, not a
    scan of the table), and the one chosen. A view filters on ``display_name`` (its own index), a
    job name on ``name``.
    """

    title = _("job name")
    parameter_name = "name"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        chosen, views = self.value(), view_names()

        def has_jobs(name: str) -> bool:
            rows = Job.objects.filter(display_name=name) if name in views else Job.objects.filter(name=name)
            return rows.order_by().exists()

        return [(name, name) for name in sorted({*registered_jobs(), *views}) if name == chosen or has_jobs(name)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if not value:
            return queryset
        return queryset.filter(display_name=value) if value in view_names() else queryset.filter(name=value)


def view_names() -> set[str]:
    """The offloaded views of this site (registered when the URLconf is imported)."""
    return {name for name, _queue in offloaded_views()}


def shown_name(job: Job) -> str:
    """A job's name in lists: an offloaded view's row shows its view, others their job name."""
    return job.display_name or job.name
