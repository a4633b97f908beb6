"""What a job's admin page shows of the workflow it is part of: its group, the jobs it waits
for, the jobs that wait for it, the group it is the callback of. Shown only for such jobs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from ..models import FINISHED_STATUSES, Job, JobDependency, JobGroup, JobStatus
from .display import EMPTY, admin_link, status_badge

if TYPE_CHECKING:
    from django.contrib.admin.options import _FieldOpts

#: Most jobs listed in one field (the rest are counted).
SHOWN = 50

WORKFLOW_FIELDSET: tuple[Any, _FieldOpts] = (
    _("Workflow"),
    {"fields": ("group_link", "callback_of_link", "waits_for", "waited_for_by")},
)


def _in_workflow(job: Job) -> bool:
    return (
        job.group_id is not None
        or job.has_dependants
        or JobDependency.objects.filter(job=job).exists()
        or JobGroup.objects.filter(callback=job).exists()
    )


def _job_rows(jobs: list[tuple[Job, str]], total: int) -> SafeString:
    rows = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
        ((admin_link(job, f"{job.name} {str(job.pk)[:8]}"), status_badge(job.status), note) for job, note in jobs),
    )
    more = total - len(jobs)
    extra = format_html("<tr><td colspan=3>{}</td></tr>", _("and %(count)d more") % {"count": more}) if more else ""
    return format_html('<table class="asyncjobs-timeline">{}{}</table>', rows, extra)


class WorkflowFieldsMixin:
    """For ``JobAdmin``: the workflow fieldset, and its fields (read-only, computed)."""

    def get_fieldsets(self, request: HttpRequest, obj: Job | None = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)  # type: ignore[misc]
        if obj is not None and _in_workflow(obj):
            return fieldsets
        return [fieldset for fieldset in fieldsets if fieldset is not WORKFLOW_FIELDSET]

    @staticmethod
    def _group(job: Job) -> JobGroup | None:
        return JobGroup.objects.filter(pk=job.group_id).first() if job.group_id else None

    @admin.display(description=_("group"))
    def group_link(self, job: Job) -> str | SafeString:
        group = self._group(job)
        if group is None:
            return EMPTY
        position = _("job %(n)d of %(size)d") % {"n": (job.group_index or 0) + 1, "size": group.size}
        return format_html("{} ({})", admin_link(group, f"{group.name} {str(group.pk)[:8]}"), position)

    @admin.display(description=_("callback of group"))
    def callback_of_link(self, job: Job) -> str | SafeString:
        group = JobGroup.objects.filter(callback=job).first()
        if group is None:
            return EMPTY
        return format_html(
            "{} {}", admin_link(group, f"{group.name} {str(group.pk)[:8]}"), status_badge(JobStatus(group.status))
        )

    @admin.display(description=_("waits for"))
    def waits_for(self, job: Job) -> str | SafeString:
        links = JobDependency.objects.filter(job=job).select_related("depends_on").order_by("pk")
        total = links.count()
        if not total:
            return EMPTY
        shown = []
        for link in links[:SHOWN]:
            notes = [str(_("whatever the outcome"))] if link.any_outcome else []
            if link.pass_result:
                notes.append(str(_("passes its result")))
            shown.append((link.depends_on, ", ".join(notes)))
        finished = links.filter(depends_on__status__in=[s.value for s in FINISHED_STATUSES]).count()
        waiting = job.status == JobStatus.SCHEDULED and job.run_at is None
        headline = (
            ngettext("waiting for %(count)d job", "waiting for %(count)d jobs", total - finished)
            % {"count": total - finished}
            if waiting
            else _("%(finished)d of %(total)d finished") % {"finished": finished, "total": total}
        )
        return format_html("<p>{}</p>{}", headline, _job_rows(shown, total))

    @admin.display(description=_("waited for by"))
    def waited_for_by(self, job: Job) -> str | SafeString:
        if not job.has_dependants:
            return EMPTY
        links = JobDependency.objects.filter(depends_on=job).select_related("job").order_by("pk")
        return _job_rows([(link.job, "") for link in links[:SHOWN]], links.count())
