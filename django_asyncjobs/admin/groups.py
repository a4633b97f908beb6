"""Groups of jobs (``enqueue_group``) in the admin: list, live progress, and a read-only page
with the counts, the callback and a link to the group's jobs."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.db.models import Avg, Case, IntegerField, OuterRef, QuerySet, Subquery, Value, When
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from ..models import FINISHED_STATUSES, Job, JobGroup, JobStatus
from ..models.workflows import GroupStatus
from .display import EMPTY, JobNameFilter, admin_link, fieldset_names, format_timedelta, local_time, status_badge
from .progress import ProgressEndpointMixin
from .queries import search_filter

if TYPE_CHECKING:
    GroupModelAdmin = admin.ModelAdmin[JobGroup]
else:  # ModelAdmin is generic only in django-stubs
    GroupModelAdmin = admin.ModelAdmin


def _mean_progress() -> Avg:
    """A group's progress as ``JobGroup.progress()`` computes it: a finished job counts 100."""
    finished = [status.value for status in FINISHED_STATUSES]
    weighted = Case(When(status__in=finished, then=Value(100)), default="progress", output_field=IntegerField())
    return Avg(weighted)


def with_progress(groups: QuerySet[JobGroup]) -> QuerySet[JobGroup]:
    """``groups`` with ``mean_progress``: one subquery per row shown, on the (group, status) index."""
    mean = Job.objects.filter(group=OuterRef("pk")).order_by().values("group").annotate(m=_mean_progress()).values("m")
    return groups.annotate(mean_progress=Subquery(mean))


def progress_of(group: JobGroup) -> int:
    """The group's progress, from ``with_progress()`` if it was annotated (no jobs: 100)."""
    if not hasattr(group, "mean_progress"):
        return group.progress()
    return 100 if group.mean_progress is None else int(group.mean_progress)


def jobs_url(group: JobGroup, **filters: str) -> str:
    """The job list filtered to the group's jobs (and ``filters``, e.g. ``status``)."""
    query = urlencode({"group__id__exact": str(group.pk), **filters})
    return f"{reverse('admin:django_asyncjobs_job_changelist')}?{query}"


def group_badge(group: JobGroup) -> SafeString:
    """A status badge that admin_progress.js updates (it takes the group for a job: same fields)."""
    return format_html(
        '<span class="asyncjobs-status asyncjobs-status-{}" data-job-status="{}">{}</span>',
        group.status,
        group.pk,
        GroupStatus(group.status).label,
    )


class JobGroupAdmin(ProgressEndpointMixin, GroupModelAdmin):
    list_display = ("short_id", "name", "status_display", "size", "progress_display", "created")
    list_filter = ("status", JobNameFilter, "created_at")
    list_select_related = ("owner",)
    search_fields = ("name",)  # the search itself is get_search_results()
    search_help_text = _("A group id, part of its jobs' name, or its owner's username.")
    ordering = ("-created_at",)
    show_full_result_count = False
    fieldsets = (
        (None, {"fields": ("id", "name", "status_display", "size", "owner_link")}),
        (_("Progress"), {"fields": ("progress_display", "counts_display", "jobs_link")}),
        (_("Callback"), {"fields": ("callback_link", "callback_any")}),
        (_("Timeline"), {"fields": ("created_at", "finished_at")}),
    )

    class Media:
        css = {"all": ("django_asyncjobs/admin.css",)}
        js = ("django_asyncjobs/admin_progress.js",)

    def progress_rows(self, ids: list[uuid.UUID]) -> dict[str, dict[str, Any]]:
        """Status and progress of the groups ``ids``, in the answer admin_progress.js reads."""
        groups = {}
        for group in with_progress(JobGroup.objects.filter(pk__in=ids)).only("pk", "status"):
            label = str(GroupStatus(group.status).label)
            groups[str(group.pk)] = {
                "status": group.status,
                "label": label,
                "progress": progress_of(group),
                "message": "",
            }
        return groups

    # -- permissions: a read-only page; only a finished group may be deleted ------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: JobGroup | None = None) -> bool:
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: JobGroup | None = None) -> bool:
        if obj is not None and not obj.is_finished:
            return False  # its callback would never be released
        return super().has_delete_permission(request, obj)

    def get_actions(self, request: HttpRequest, action_location: Any = None) -> dict[str, Any]:
        # ``action_location`` exists from Django 6.1 on (actions on the change form too).
        parent: Any = super()
        actions: dict[str, Any] = (
            parent.get_actions(request)
            if action_location is None
            else parent.get_actions(request, action_location=action_location)
        )
        actions.pop("delete_selected", None)  # it would delete running groups
        return actions

    def get_readonly_fields(self, request: HttpRequest, obj: JobGroup | None = None) -> list[str]:
        return fieldset_names(self.fieldsets)

    def get_queryset(self, request: HttpRequest) -> QuerySet[JobGroup]:
        return with_progress(super().get_queryset(request).select_related("callback"))

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[JobGroup], search_term: str
    ) -> tuple[QuerySet[JobGroup], bool]:
        if not search_term.strip():
            return queryset, False
        return queryset.filter(search_filter(search_term)), False

    # -- columns and fields -------------------------------------------------------------------

    @admin.display(description=_("id"), ordering="id")
    def short_id(self, group: JobGroup) -> str:
        return str(group.pk)[:8]

    @admin.display(description=_("status"), ordering="status")
    def status_display(self, group: JobGroup) -> SafeString:
        return group_badge(group)

    @admin.display(description=_("progress"))
    def progress_display(self, group: JobGroup) -> SafeString:
        progress = progress_of(group)
        return format_html(
            '<span class="asyncjobs-progress-cell" data-job="{}" data-status="{}" data-url="{}">'
            '<span class="asyncjobs-progress" title="{}%"><span style="width: {}%"></span></span> '
            '<span class="asyncjobs-progress-text">{}%</span></span>',
            group.pk,
            group.status,
            self.progress_url(),
            progress,
            progress,
            progress,
        )

    @admin.display(description=_("created"), ordering="created_at")
    def created(self, group: JobGroup) -> SafeString:
        """When it was created and, once finished, how long it took (a column, not two, so that
        the list fits 1280 px with its filters)."""
        created = local_time(group.created_at).strftime("%Y-%m-%d %H:%M:%S")
        if group.finished_at is None:
            return format_html("{}", created)
        took = format_timedelta(group.finished_at - group.created_at)
        return format_html("{}<br>{}", created, _("finished in %(took)s") % {"took": took})

    @admin.display(description=_("owner"))
    def owner_link(self, group: JobGroup) -> str | SafeString:
        return admin_link(group.owner)

    @admin.display(description=_("jobs by status"))
    def counts_display(self, group: JobGroup) -> SafeString:
        rows = [
            (status_badge(status), jobs_url(group, status=status), count)
            for status, count in group.counts().items()
            if count
        ]
        return format_html(
            '<table class="asyncjobs-timeline">{}</table>',
            format_html_join("", '<tr><th>{}</th><td><a href="{}">{}</a></td></tr>', rows),
        )

    @admin.display(description=_("jobs"))
    def jobs_link(self, group: JobGroup) -> SafeString:
        text = ngettext("%(count)d job", "%(count)d jobs", group.size) % {"count": group.size}
        return format_html('<a href="{}">{}</a>', jobs_url(group), text)

    @admin.display(description=_("callback"))
    def callback_link(self, group: JobGroup) -> str | SafeString:
        callback = group.callback
        if callback is None:
            return EMPTY
        return format_html("{} {}", admin_link(callback, callback.name), status_badge(JobStatus(callback.status)))
