"""The aggregation windows in the admin: which windows of which aggregation ran, and how.

Read-only: windows are recorded by the scheduler and ``asyncjobs_aggregate``. Deleting a window
(with the delete permission) lets the scheduler's catch-up or a backfill run it again;
``asyncjobs_aggregate NAME --since ... --force`` reruns windows without deleting them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from django.contrib import admin
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils import dateformat, timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from ..aggregations.declarations import registered_aggregations
from ..aggregations.windows import latest_windows
from ..models import AggregationWindow
from ..times.durations import format_duration
from .display import EMPTY, admin_link, breakable, compact_duration, compact_time, full_time, local_time

if TYPE_CHECKING:
    WindowModelAdmin = admin.ModelAdmin[AggregationWindow]
else:  # ModelAdmin is generic only in django-stubs
    WindowModelAdmin = admin.ModelAdmin


class AggregationWindowAdmin(WindowModelAdmin):
    # Narrow enough for a 1280 px screen with Django's sidebar and the filters open.
    list_display = ("name_display", "window", "status", "duration", "job_link", "finished")
    list_filter = ("status", "name")
    list_select_related = ("job",)
    search_fields = ("name",)
    date_hierarchy = "since"
    fields = ("name", "since", "until", "status", "job_link", "created_at", "finished_at", "duration", "error")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("name"), ordering="name")
    def name_display(self, window: AggregationWindow) -> SafeString:
        return breakable(window.name)

    @admin.display(description=_("window"), ordering="since")
    def window(self, window: AggregationWindow) -> SafeString:
        """``Nov 28 23:00-23:15``: the window in short, whole as its tooltip."""
        since, until = local_time(window.since), local_time(window.until)
        start = dateformat.format(since, "M j H:i" if since.year == timezone.localtime().year else "Y-m-d H:i")
        end = dateformat.format(until, "H:i" if until.date() == since.date() else "M j H:i")
        whole = f"{full_time(window.since)} \N{EN DASH} {full_time(window.until)}"
        return format_html('<span title="{}">{}\N{EN DASH}{}</span>', whole, start, end)

    @admin.display(description=_("job"))
    def job_link(self, window: AggregationWindow) -> str | SafeString:
        return EMPTY if window.job is None else admin_link(window.job, str(window.job.pk)[:8])

    @admin.display(description=_("finished"), ordering="finished_at")
    def finished(self, window: AggregationWindow) -> str | SafeString:
        return compact_time(window.finished_at)

    @admin.display(description=_("run time"))
    def duration(self, window: AggregationWindow) -> str | SafeString:
        if window.finished_at is None:
            return EMPTY
        started = window.job.started_at if window.job is not None and window.job.started_at else window.created_at
        return compact_duration(window.finished_at - started)


@dataclass(frozen=True)
class DeclaredAggregation:
    """An aggregation as the schedules page lists it: when it runs and how its last window went."""

    name: str
    every: str
    runs: str
    next_run: str | SafeString
    latest: AggregationWindow | None
    latest_since: str | SafeString
    windows_url: str


def declared_aggregations(admin_site_name: str) -> list[DeclaredAggregation]:
    """The aggregations declared in code, each with its next run (when its current window has
    ended, plus its grace) and its latest window: one indexed query per aggregation."""
    now = timezone.now()
    try:
        url = reverse(f"{admin_site_name}:django_asyncjobs_aggregationwindow_changelist")
    except NoReverseMatch:
        url = ""
    rows = []
    for name, agg in sorted(registered_aggregations().items()):
        latest, _done = latest_windows(agg)
        next_run = agg.last_completed(now)[1] + agg.every + agg.grace
        rows.append(
            DeclaredAggregation(
                name=name,
                every=format_duration(agg.every),
                runs=str(_("as a job") if agg.enqueue else _("in the scheduler")),
                next_run=compact_time(next_run, now),
                latest=latest,
                latest_since=compact_time(latest.since if latest is not None else None, now),
                windows_url=f"{url}?{urlencode({'name': name})}" if url else "",
            )
        )
    return rows
