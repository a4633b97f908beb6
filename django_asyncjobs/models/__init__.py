"""The app's models: jobs (the durable record of every job), schedules, aggregation
windows, job statistics, and the dashboard's permission holder.

The data layer: may import the foundation only (exceptions, conf, payloads, times);
``Job.cancel()``, ``Job.set_progress()`` and ``Schedule.clean()`` reach the engine
through imports made when they are called.
"""

from .aggregations import AggregationWindow, JobStats, WindowStatus
from .dashboard import Dashboard
from .jobs import FINISHED_STATUSES, Job, JobQuerySet, JobStatus
from .schedules import TIMING_FIELDS, MisfirePolicy, Schedule

__all__ = [
    "FINISHED_STATUSES",
    "TIMING_FIELDS",
    "AggregationWindow",
    "Dashboard",
    "Job",
    "JobQuerySet",
    "JobStats",
    "JobStatus",
    "MisfirePolicy",
    "Schedule",
    "WindowStatus",
]
