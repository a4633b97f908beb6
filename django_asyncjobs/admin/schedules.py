"""The schedules in the admin: timing, the next runs, the last outcome, and "run now"."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected
from django.contrib.admin.utils import unquote
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from ..engine.registry import job_function_by_name, schedulable_jobs
from ..exceptions import JobNotRegistered, QueueFull
from ..models import Schedule
from ..scheduling.firing import run_schedule_now
from ..times.durations import format_duration
from .display import (
    EMPTY,
    admin_link,
    breakable,
    compact_time,
    fieldset_names,
    full_time,
    local_time,
    short_time,
    status_badge,
)
from .windows import declared_aggregations

if TYPE_CHECKING:
    ScheduleModelAdmin = admin.ModelAdmin[Schedule]
else:  # ModelAdmin is generic only in django-stubs
    ScheduleModelAdmin = admin.ModelAdmin


class SchedulableJobField(forms.ChoiceField):
    """The registered jobs a schedule may run; anything else is refused with the registry's reason."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=self.job_choices, **kwargs)

    @staticmethod
    def job_choices() -> list[tuple[str, str]]:
        return [("", "---------"), *((name, name) for name in schedulable_jobs())]

    def validate(self, value: Any) -> None:
        forms.Field.validate(self, value)
        if value:
            try:
                job_function_by_name(value)
            except JobNotRegistered as exc:
                raise forms.ValidationError(str(exc), code="invalid_choice") from None


class ScheduleAdmin(ScheduleModelAdmin):
    # Narrow enough for a 1280 px screen with Django's sidebar and the filters open.
    list_display = ("name_display", "timing_display", "enabled", "next_run", "last_outcome")
    list_editable = ("enabled",)
    list_filter = ("enabled", "declared_in_code", "misfire_policy")
    list_select_related = ("last_job",)
    search_fields = ("name", "job_name")
    actions = ("run_now",)
    fieldsets = (
        (None, {"fields": ("name", "job_name", "args", "kwargs", "queue", "enabled")}),
        (_("Timing"), {"fields": ("cron", "interval", "time_zone", "misfire_policy")}),
        (_("Runs"), {"fields": ("next_runs", "last_run_at", "last_job_link", "declared_in_code")}),
    )
    #: Never edited in the form: computed, or set by the scheduler.
    computed_fields = ("next_runs", "last_run_at", "last_job_link", "declared_in_code")

    class Media:
        css = {"all": ("django_asyncjobs/admin.css",)}

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        """The schedules, and under them the aggregations declared in code (they run on their own
        windows, not from a row here), so that every periodic piece of work is on one page."""
        context = {"declared_aggregations": declared_aggregations(self.admin_site.name), **(extra_context or {})}
        return super().changelist_view(request, context)

    def get_readonly_fields(self, request: HttpRequest, obj: Schedule | None = None) -> list[str]:
        if obj is not None and obj.declared_in_code:
            # Declared in code: code owns the definition; the operator may only switch it on or off.
            return [name for name in fieldset_names(self.fieldsets) if name != "enabled"]
        return list(self.computed_fields)

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "job_name":
            # Only jobs that may be scheduled: not the package's internal ones.
            return SchedulableJobField(label=db_field.verbose_name.capitalize(), help_text=db_field.help_text)
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def has_delete_permission(self, request: HttpRequest, obj: Schedule | None = None) -> bool:
        if obj is not None and obj.declared_in_code:
            return False  # it would come back at the next scheduler start
        return super().has_delete_permission(request, obj)

    def delete_view(self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None) -> Any:
        """A schedule declared in code is not deleted: back to its page, saying why and what to do instead."""
        schedule = self.get_object(request, unquote(object_id))
        if schedule is not None and schedule.declared_in_code and super().has_delete_permission(request, schedule):
            self.message_user(request, _declared_message([schedule.name]), messages.ERROR)
            url = reverse(f"{self.admin_site.name}:django_asyncjobs_schedule_change", args=[schedule.pk])
            return HttpResponseRedirect(url)
        return super().delete_view(request, object_id, extra_context)

    def get_actions(self, request: HttpRequest, action_location: Any = None) -> dict[str, Any]:
        parent: Any = super()
        actions: dict[str, Any] = (
            parent.get_actions(request)
            if action_location is None
            else parent.get_actions(request, action_location=action_location)
        )
        action: Any = actions.get("delete_selected")
        if hasattr(action, "func"):  # Django 6.1+: an Action dataclass (unpacking it is deprecated)
            actions["delete_selected"] = replace(action, func=_delete_selected_but_declared)
        elif action is not None:
            _, name, description = action
            actions["delete_selected"] = (_delete_selected_but_declared, name, description)
        return actions

    @admin.display(description=_("name"), ordering="name")
    def name_display(self, schedule: Schedule) -> SafeString:
        """The name, and under it the job it runs (when named otherwise) and whether code declares it."""
        notes = [] if schedule.job_name == schedule.name else [breakable(schedule.job_name)]
        if schedule.declared_in_code:
            notes.append(format_html('<span class="asyncjobs-tag">{}</span>', _("in code")))
        return format_html(
            '{}<div class="asyncjobs-sub">{}</div>',
            breakable(schedule.name),
            format_html_join(" ", "{}", ((n,) for n in notes)),
        )

    @admin.display(description=_("timing"))
    def timing_display(self, schedule: Schedule) -> str | SafeString:
        if schedule.cron and schedule.time_zone:
            return format_html('<code>{}</code><div class="asyncjobs-sub">{}</div>', schedule.cron, schedule.time_zone)
        return format_html("<code>{}</code>", schedule.cron) if schedule.cron else self.timing(schedule)

    @admin.display(description=_("next run"), ordering="next_run_at")
    def next_run(self, schedule: Schedule) -> str | SafeString:
        """The next run, the three next ones (whole) as its tooltip."""
        if not schedule.enabled:
            return str(_("disabled"))
        times = schedule.upcoming(3)
        if not times:
            return EMPTY
        return format_html('<span title="{}">{}</span>', "\n".join(full_time(t) for t in times), short_time(times[0]))

    @admin.display(description=_("timing"))
    def timing(self, schedule: Schedule) -> str:
        if schedule.cron:
            return f"{schedule.cron} ({schedule.time_zone})" if schedule.time_zone else schedule.cron

        return str(_("every %(interval)s") % {"interval": format_duration(schedule.interval or timedelta(0))})

    @admin.display(description=_("next runs"))
    def next_runs(self, schedule: Schedule) -> str | SafeString:
        if not schedule.enabled:
            return str(_("disabled"))
        times = schedule.upcoming(3)
        if not times:
            return EMPTY
        return format_html_join(
            mark_safe("<br>"), "{}", ((local_time(t).strftime("%Y-%m-%d %H:%M:%S"),) for t in times)
        )

    @admin.display(description=_("last run"), ordering="last_run_at")
    def last_outcome(self, schedule: Schedule) -> str | SafeString:
        job = schedule.last_job
        if job is None:
            return compact_time(schedule.last_run_at)
        return format_html(
            '{}<div class="asyncjobs-sub">{}</div>',
            admin_link(job, str(status_badge(job.status))),
            compact_time(schedule.last_run_at),
        )

    @admin.display(description=_("last job"))
    def last_job_link(self, schedule: Schedule) -> str | SafeString:
        return admin_link(schedule.last_job)

    @admin.action(permissions=["change"], description=_("Run selected schedules now"))
    def run_now(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        started, problems = 0, []
        for schedule in queryset:
            try:
                run_schedule_now(schedule)
                started += 1
            except (QueueFull, JobNotRegistered) as exc:
                problems.append(f"{schedule.name}: {exc}")
        message = ngettext("%(count)d schedule run now.", "%(count)d schedules run now.", started) % {"count": started}
        if problems:
            message += " " + _("Not run: %(problems)s") % {"problems": "; ".join(problems)}
        self.message_user(request, message, messages.WARNING if problems else messages.SUCCESS)


def _declared_message(names: list[str]) -> str:
    return ngettext(
        "%(count)d schedule not deleted: %(names)s is declared in code (@job(schedule=...) or "
        "ASYNCJOBS['SCHEDULES']) and would come back at the next scheduler start. Remove it from the code, "
        "or switch it off here (Enabled).",
        "%(count)d schedules not deleted: %(names)s are declared in code (@job(schedule=...) or "
        "ASYNCJOBS['SCHEDULES']) and would come back at the next scheduler start. Remove them from the code, "
        "or switch them off here (Enabled).",
        len(names),
    ) % {"count": len(names), "names": ", ".join(names)}


def _delete_selected_but_declared(
    model_admin: ScheduleAdmin, request: HttpRequest, queryset: QuerySet[Schedule]
) -> HttpResponse | None:
    """Django's "delete selected", for the schedules not declared in code; those are named and kept."""
    declared = sorted(queryset.filter(declared_in_code=True).values_list("name", flat=True))
    if declared:
        model_admin.message_user(request, _declared_message(declared), messages.WARNING)
    others = queryset.filter(declared_in_code=False)
    if not others.exists():
        return None
    return delete_selected(model_admin, request, others)
