"""The jobs in the admin: list, filters, detail page, and the actions retry, cancel, push again, delete."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from ..engine.deletion import delete_jobs_and_files
from ..engine.operations import OperationReport, cancel_jobs, delete_finished_jobs, push_again, retry_jobs
from ..models import FINISHED_STATUSES, Job, JobStatus
from ..offloading.responses import OFFLOADED_VIEW_JOB
from .dependencies import WORKFLOW_FIELDSET, WorkflowFieldsMixin
from .display import (
    EMPTY,
    JobNameFilter,
    QueueFilter,
    admin_link,
    breakable,
    compact_duration,
    compact_time,
    fieldset_names,
    format_timedelta,
    local_time,
    pretty_json,
    progress_bar,
    shown_name,
    status_badge,
)
from .paginator import EstimatedCountPaginator
from .progress import ProgressEndpointMixin
from .queries import DateHierarchyQuerySet, search_filter

if TYPE_CHECKING:
    JobModelAdmin = admin.ModelAdmin[Job]
    AnyModelAdmin = admin.ModelAdmin[Any]
else:  # ModelAdmin is generic only in django-stubs
    JobModelAdmin = AnyModelAdmin = admin.ModelAdmin


def _report(model_admin: AnyModelAdmin, request: HttpRequest, report: OperationReport, verb: str) -> None:
    """``"5 jobs cancelled, 1 skipped: already finished (succeeded)."``: every selected row counted,
    a row that was deleted since the page was shown too."""
    if request.POST.get("select_across") != "1":
        selected = {value for value in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME) if value}
        missing = len(selected) - report.done - sum(report.skipped.values())
        report.skip(str(_("gone (deleted meanwhile)")), max(missing, 0))
    text = ngettext("%(count)d job %(verb)s", "%(count)d jobs %(verb)s", report.done) % {
        "count": report.done,
        "verb": verb,
    }
    skipped = sum(report.skipped.values())
    if skipped:
        details = next(iter(report.skipped)) if len(report.skipped) == 1 else report.describe_skipped()
        text += ", " + _("%(count)d skipped: %(details)s") % {"count": skipped, "details": details}
    level = messages.SUCCESS if report.done or not skipped else messages.WARNING
    model_admin.message_user(request, text + ".", level)


class JobAdmin(ProgressEndpointMixin, WorkflowFieldsMixin, JobModelAdmin):
    # Narrow enough for a 1280 px screen with Django's sidebar and the filters open: the id, queue
    # and owner sit under the name, the attempts under the status, times and durations are short
    # (the whole value in their tooltip).
    list_display = (
        "job_display",
        "state_display",
        "progress_display",
        "created",
        "waited",
        "ran",
    )
    list_display_links = ("job_display",)
    list_filter = ("status", QueueFilter, JobNameFilter, "created_at")
    list_select_related = ("owner",)
    search_fields = ("name",)  # the search itself is get_search_results()
    search_help_text = _("A job id, part of a job's name or of an offloaded view's, or its owner's username.")
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    actions = ("retry_selected", "cancel_selected", "push_selected_again", "delete_selected_finished")
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "id",
                    "name",
                    "display_name",
                    "status_display",
                    "queue",
                    "owner_link",
                    "schedule_link",
                    "worker",
                )
            },
        ),
        (_("Progress"), {"fields": ("progress_display", "progress_message", "attempts_display")}),
        (_("Timeline"), {"fields": ("timeline",)}),
        (_("Arguments"), {"fields": ("args_display", "kwargs_display", "idempotency_key")}),
        (_("Outcome"), {"fields": ("result_display", "error_display")}),
        WORKFLOW_FIELDSET,
    )

    class Media:
        css = {"all": ("django_asyncjobs/admin.css",)}
        js = ("django_asyncjobs/admin_progress.js",)

    def progress_rows(self, ids: list[uuid.UUID]) -> dict[str, dict[str, Any]]:
        """Status and progress of the jobs ``ids``, for admin_progress.js."""
        rows = Job.objects.filter(pk__in=ids).values_list("pk", "status", "progress", "progress_message")
        return {
            str(pk): {"status": status, "label": str(JobStatus(status).label), "progress": progress, "message": message}
            for pk, status, progress, message in rows
        }

    # -- permissions: a read-only detail page; changes only through actions ---------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Job | None = None) -> bool:
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Job | None = None) -> bool:
        if obj is not None and obj.status not in FINISHED_STATUSES:
            return False
        return super().has_delete_permission(request, obj)

    def get_readonly_fields(self, request: HttpRequest, obj: Job | None = None) -> list[str]:
        return fieldset_names(self.fieldsets)

    def delete_model(self, request: HttpRequest, obj: Job) -> None:
        delete_jobs_and_files([obj.pk])  # with its stored response and uploads, as the action does

    def get_actions(self, request: HttpRequest, action_location: Any = None) -> dict[str, Any]:
        # ``action_location`` exists from Django 6.1 on (actions on the change form too).
        parent: Any = super()
        actions: dict[str, Any] = (
            parent.get_actions(request)
            if action_location is None
            else parent.get_actions(request, action_location=action_location)
        )
        actions.pop("delete_selected", None)  # it would delete running jobs; ours keeps them
        return actions

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Job], search_term: str
    ) -> tuple[QuerySet[Job], bool]:
        if not search_term.strip():
            return queryset, False
        return queryset.filter(search_filter(search_term)), False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Job]:
        queryset = super().get_queryset(request)
        queryset.__class__ = DateHierarchyQuerySet  # see its docstring: no DISTINCT over the table
        return queryset

    # -- columns and fields -----------------------------------------------------------------

    @admin.display(description=_("job"), ordering="name")
    def job_display(self, job: Job) -> SafeString:
        details = [str(job.pk)[:8], job.queue]
        if job.owner is not None:
            details.append(job.owner.get_username())
        return format_html(
            '{}<div class="asyncjobs-sub">{}</div>', breakable(shown_name(job)), " \N{MIDDLE DOT} ".join(details)
        )

    @admin.display(description=_("status"), ordering="status")
    def state_display(self, job: Job) -> SafeString:
        """The status badge, and the attempts once there was more than one."""
        if job.attempts <= 1:
            return status_badge(job.status, job)
        return format_html(
            '{}<div class="asyncjobs-sub" title="{}">{}</div>',
            status_badge(job.status, job),
            _("attempt %(attempt)d of %(max)d") % {"attempt": job.attempts, "max": job.max_attempts},
            _("attempt %(attempt)d/%(max)d") % {"attempt": job.attempts, "max": job.max_attempts},
        )

    @admin.display(description=_("created"), ordering="created_at")
    def created(self, job: Job) -> str | SafeString:
        return compact_time(job.created_at)

    @admin.display(description=_("status"), ordering="status")
    def status_display(self, job: Job) -> SafeString:
        return status_badge(job.status, job)

    @admin.display(description=_("attempts"))
    def attempts_display(self, job: Job) -> str:
        return f"{job.attempts}/{job.max_attempts}"

    @admin.display(description=_("progress"))
    def progress_display(self, job: Job) -> SafeString:
        return progress_bar(job, self.progress_url())

    @admin.display(description=_("waited"))
    def waited(self, job: Job) -> str | SafeString:
        if job.enqueued_at is None:
            return EMPTY
        end = job.started_at if job.started_at and job.started_at >= job.enqueued_at else None
        if end is None and job.status != JobStatus.QUEUED:
            return EMPTY
        return compact_duration((end or timezone.now()) - job.enqueued_at)

    @admin.display(description=_("ran"))
    def ran(self, job: Job) -> str | SafeString:
        if job.started_at is None:
            return EMPTY
        if job.status == JobStatus.RUNNING:
            return compact_duration(timezone.now() - job.started_at)
        return compact_duration(job.run_time)

    @admin.display(description=_("owner"))
    def owner_link(self, job: Job) -> str | SafeString:
        return admin_link(job.owner)

    @admin.display(description=_("schedule"))
    def schedule_link(self, job: Job) -> str | SafeString:
        return admin_link(job.schedule)

    @admin.display(description=_("positional arguments"))
    def args_display(self, job: Job) -> SafeString:
        return pretty_json(_without_secrets(job))

    @admin.display(description=_("keyword arguments"))
    def kwargs_display(self, job: Job) -> SafeString:
        return pretty_json(job.kwargs)

    @admin.display(description=_("result"))
    def result_display(self, job: Job) -> str | SafeString:
        return EMPTY if job.result is None else pretty_json(job.result)

    @admin.display(description=_("error"))
    def error_display(self, job: Job) -> str | SafeString:
        return format_html('<pre class="asyncjobs-traceback">{}</pre>', job.error) if job.error else EMPTY

    @admin.display(description=_("timeline"))
    def timeline(self, job: Job) -> SafeString:
        steps: list[tuple[str, datetime | None]] = [
            (str(_("created")), job.created_at),
            (str(_("due (run at)")), job.run_at),
            (str(_("enqueued")), job.enqueued_at),
            (str(_("started")), job.started_at),
            (str(_("last heartbeat")), job.heartbeat_at if job.status == JobStatus.RUNNING else None),
            (str(_("finished")), job.finished_at),
        ]
        rows = []
        previous: datetime | None = None
        for label, moment in steps:
            if moment is None:
                continue
            since = f"+{format_timedelta(moment - previous)}" if previous and moment >= previous else ""
            rows.append((label, local_time(moment).isoformat(sep=" ", timespec="milliseconds"), since))
            previous = moment
        return format_html(
            '<table class="asyncjobs-timeline">{}</table>',
            format_html_join("", "<tr><th>{}</th><td>{}</td><td>{}</td></tr>", rows),
        )

    # -- actions ----------------------------------------------------------------------------

    @admin.action(permissions=["change"], description=_("Retry selected failed or cancelled jobs"))
    def retry_selected(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        _report(self, request, retry_jobs(queryset), str(_("queued again")))

    @admin.action(permissions=["change"], description=_("Cancel selected queued or running jobs"))
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        _report(self, request, cancel_jobs(queryset), str(_("cancelled")))

    @admin.action(permissions=["change"], description=_("Push selected queued jobs to Redis again"))
    def push_selected_again(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        _report(self, request, push_again(queryset), str(_("pushed again")))

    @admin.action(permissions=["delete"], description=_("Delete selected finished jobs"))
    def delete_selected_finished(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        _report(self, request, delete_finished_jobs(queryset), str(_("deleted")))


def _without_secrets(job: Job) -> Any:
    """A job's arguments for display: an offloaded request's CSRF secret is hidden."""
    args = job.args
    offloaded = job.name == OFFLOADED_VIEW_JOB and isinstance(args, list) and len(args) > 1
    if offloaded and isinstance(args[1], dict) and args[1].get("csrf_secret"):
        return [args[0], {**args[1], "csrf_secret": "(hidden)"}, *args[2:]]
    return args
