"""The app's models: jobs (the durable record of every job), schedules, aggregation
windows, job statistics, the dashboard's permission holder, and the dependencies
and groups of jobs (``workflows``).

The data layer: may import the foundation only (exceptions, conf, payloads, times);
``Job.cancel()``, ``Job.set_progress()``, ``JobGroup.enqueue()`` and ``Schedule.clean()`` reach the engine
through imports made when they are called.
"""

from .aggregations import AggregationWindow, JobStats, WindowStatus
from .dashboard import Dashboard
from .jobs import FINISHED_STATUSES, Job, JobQuerySet, JobStatus
from .schedules import TIMING_FIELDS, MisfirePolicy, Schedule
from .workflows import GroupStatus, JobDependency, JobGroup

__all__ = [
    "FINISHED_STATUSES",
    "TIMING_FIELDS",
    "AggregationWindow",
    "Dashboard",
    "GroupStatus",
    "Job",
    "JobDependency",
    "JobGroup",
    "JobQuerySet",
    "JobStats",
    "JobStatus",
    "MisfirePolicy",
    "Schedule",
    "WindowStatus",
]
