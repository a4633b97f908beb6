"""The aggregation windows in the admin: which windows of which aggregation ran, and how.

Read-only: windows are recorded by the scheduler and ``asyncjobs_aggregate``. Deleting a window
(with the delete permission) lets the scheduler's catch-up or a backfill run it again;
``asyncjobs_aggregate NAME --since ... --force`` reruns windows without deleting them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from ..models import AggregationWindow
from .display import EMPTY, admin_link, format_timedelta

if TYPE_CHECKING:
    WindowModelAdmin = admin.ModelAdmin[AggregationWindow]
else:  # ModelAdmin is generic only in django-stubs
    WindowModelAdmin = admin.ModelAdmin


class AggregationWindowAdmin(WindowModelAdmin):
    list_display = ("name", "since", "until", "status", "duration", "job_link", "finished_at")
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

    @admin.display(description=_("job"))
    def job_link(self, window: AggregationWindow) -> str | SafeString:
        return admin_link(window.job)

    @admin.display(description=_("run time"))
    def duration(self, window: AggregationWindow) -> str:
        if window.finished_at is None:
            return EMPTY
        started = window.job.started_at if window.job is not None and window.job.started_at else window.created_at
        return format_timedelta(window.finished_at - started)
