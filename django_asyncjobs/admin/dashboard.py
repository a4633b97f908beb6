"""The dashboard page of the admin, on the table-less ``Dashboard`` model.

The ``Dashboard`` model only carries the ``view_dashboard`` permission and the
link on the app index (django-rq's pattern). Its admin has no add, change or
delete views: the changelist URL is the dashboard, and ``figures/`` serves the
part of the page that ``dashboard.js`` refreshes. The figures are computed in
:mod:`.dashboard`, the charts drawn by :mod:`.charts`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.contrib.admin.exceptions import NotRegistered
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

from ..engine.broker import queue_names
from ..models import Dashboard, Job
from .charts import Point, render_chart
from .figures import Bucket, PeriodFigures, Snapshot, known_queue, snapshot

if TYPE_CHECKING:
    DashboardModelAdmin = admin.ModelAdmin[Dashboard]
else:  # ModelAdmin is generic only in django-stubs
    DashboardModelAdmin = admin.ModelAdmin

#: The permission that opens the dashboard (superusers have it).
PERMISSION = "django_asyncjobs.view_dashboard"

TEMPLATE = "admin/django_asyncjobs/dashboard.html"
FIGURES_TEMPLATE = "admin/django_asyncjobs/dashboard_figures.html"


def can_view_dashboard(user: Any) -> bool:
    return bool(user.is_active and user.is_staff and user.has_perm(PERMISSION))


@dataclass(frozen=True)
class Chart:
    title: str
    svg: SafeString


def _charts(buckets: list[Bucket], key: str, span: str, failures: str, tick: Callable[[datetime], bool]) -> list[Chart]:
    """Throughput, failures and wait p95 of ``buckets``; ``tick`` picks the times labelled on the x axis."""
    starts = [timezone.localtime(bucket.start) for bucket in buckets]

    def points(value: Callable[[PeriodFigures], float | None]) -> list[Point]:
        return [
            Point(start.strftime("%H:%M"), value(bucket.figures), tick(start))
            for start, bucket in zip(starts, buckets, strict=True)
        ]

    # (title, kind, id suffix, value, y-axis label, unit)
    series: list[tuple[str, str, str, Callable[[PeriodFigures], float | None], str, str]] = [
        (_("Throughput (jobs/min)"), "line", "throughput", lambda f: f.per_minute, _("jobs/min"), _("jobs/min")),
        (failures, "bar", "failures", lambda f: float(f.failed), _("failed"), _("failed")),
        (_("Wait p95 (s)"), "line", "wait", lambda f: f.wait_p95, _("seconds"), "s"),
    ]
    return [
        Chart(
            title,
            render_chart(
                kind,
                points(value),
                chart_id=f"asyncjobs-{key}-{suffix}",
                title=f"{title}, {span}",
                y_label=y_label,
                x_label=_("local time"),
                unit=unit,
            ),
        )
        for title, kind, suffix, value, y_label, unit in series
    ]


class DashboardAdmin(DashboardModelAdmin):
    """Queue state, statistics charts and recent failures, for staff with ``view_dashboard``."""

    #: Seconds between two refreshes of the figures by ``dashboard.js``.
    refresh_seconds: int = 5
    #: How many recent failures the page lists.
    failures_shown: int = 10

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Dashboard | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Dashboard | None = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Dashboard | None = None) -> bool:
        return can_view_dashboard(request.user)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return can_view_dashboard(request.user)

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        view = self.admin_site.admin_view
        return [
            path("", view(self.changelist_view), name="{}_{}_changelist".format(*info)),
            path("figures/", view(self.figures_view), name="{}_{}_figures".format(*info)),
        ]

    def _check_permission(self, request: HttpRequest) -> None:
        # admin_view already sent anonymous and non-staff users to the login page.
        if not self.has_view_permission(request):
            raise PermissionDenied

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        """The dashboard page (the app index links a model to its changelist: here)."""
        self._check_permission(request)
        info = self.opts.app_label, self.opts.model_name
        context = {
            **self.admin_site.each_context(request),
            "title": _("Async jobs dashboard"),
            "opts": self.opts,
            "refresh_url": reverse("{}:{}_{}_figures".format(self.admin_site.name, *info)),
            "refresh_seconds": self.refresh_seconds,
            **self.figures_context(request),
            **(extra_context or {}),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, TEMPLATE, context)

    def figures_view(self, request: HttpRequest) -> HttpResponse:
        """The figures alone (an HTML fragment), for ``dashboard.js`` to swap in."""
        self._check_permission(request)
        return TemplateResponse(request, FIGURES_TEMPLATE, self.figures_context(request))

    def figures_context(self, request: HttpRequest) -> dict[str, Any]:
        data = snapshot(chart_queue=known_queue(request.GET.get("queue")), failures=self.failures_shown)
        return {
            "snapshot": data,
            "chart_queues": queue_names(),
            "hour_charts": _charts(
                data.last_hour, "hour", _("last hour"), _("Failed jobs per minute"), lambda t: t.minute % 10 == 0
            ),
            "day_charts": _charts(
                data.last_day,
                "day",
                _("last 24 hours"),
                _("Failed jobs per 15 minutes"),
                lambda t: t.minute == 0 and t.hour % 4 == 0,
            ),
            "failures": self._failure_rows(request, data),
        }

    def _failure_rows(self, request: HttpRequest, data: Snapshot) -> list[dict[str, Any]]:
        """The failures, each with the URL of its job's admin page if this user may open it."""
        try:
            job_admin = self.admin_site.get_model_admin(Job)
        except NotRegistered:
            job_admin = None
        may_open = job_admin is not None and job_admin.has_view_or_change_permission(request)
        rows = []
        for failure in data.failures:
            url = ""
            if may_open:
                url = reverse(f"{self.admin_site.name}:django_asyncjobs_job_change", args=[failure.job_id])
            rows.append({"failure": failure, "url": url})
        return rows
