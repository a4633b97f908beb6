"""The admin: jobs (:mod:`.jobs`, their workflow in :mod:`.dependencies`), groups of jobs
(:mod:`.groups`), schedules (:mod:`.schedules`), aggregation windows
(:mod:`.windows`) and the dashboard (:mod:`.dashboard`, its figures in :mod:`.figures`
and SVG charts in :mod:`.charts`), with what they display (:mod:`.display`) and the
queries that keep the job list fast on large tables (:mod:`.queries`, :mod:`.paginator`);
the dashboard's figures as a health report for ``asyncjobs_status`` (:mod:`.status`).

May import everything below it; only the management commands import it (the top layer).
Importing this package registers the ModelAdmins (Django's admin autodiscovery does).
"""

from django.contrib import admin

from ..models import AggregationWindow, Dashboard, Job, JobGroup, Schedule
from .dashboard import DashboardAdmin
from .groups import JobGroupAdmin
from .jobs import JobAdmin
from .schedules import ScheduleAdmin
from .windows import AggregationWindowAdmin

admin.site.register(Job, JobAdmin)
admin.site.register(JobGroup, JobGroupAdmin)
admin.site.register(Schedule, ScheduleAdmin)
admin.site.register(Dashboard, DashboardAdmin)
admin.site.register(AggregationWindow, AggregationWindowAdmin)

__all__ = ["AggregationWindowAdmin", "DashboardAdmin", "JobAdmin", "JobGroupAdmin", "ScheduleAdmin"]
