"""Exceptions raised by django-asyncjobs. All derive from :class:`AsyncJobsError`."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from rq.timeouts import JobTimeoutException


class AsyncJobsError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigurationError(AsyncJobsError, ImproperlyConfigured):
    """The settings (``ASYNCJOBS``, ``RQ_QUEUES``) are wrong."""


class JobNotRegistered(AsyncJobsError, LookupError):
    """No function is registered under the given job name."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"No job is registered as {name!r}. Decorate the function with "
            "@django_asyncjobs.job and make sure its module is imported "
            "(modules named in ASYNCJOBS['AUTODISCOVER'] are imported at start-up)."
        )


class InternalJob(JobNotRegistered):
    """A job the package runs itself (an ``@offload`` view, an aggregation window): code may
    enqueue it through its ``JobFunction``, but it cannot be named by data (``enqueue()`` by
    name, a schedule, the admin)."""

    def __init__(self, name: str) -> None:
        self.name = name
        super(JobNotRegistered, self).__init__(
            f"Job {name!r} is internal to django-asyncjobs: it cannot be enqueued by name or scheduled. "
            "Schedule a job of your own that calls what you need.",
        )


class UnknownQueue(ConfigurationError, ValueError):
    """A queue name that is not a key of ``RQ_QUEUES``."""

    def __init__(self, queue: str, known: list[str]) -> None:
        self.queue = queue
        super().__init__(
            f"Unknown queue {queue!r}: it is not configured in RQ_QUEUES "
            f"(configured: {', '.join(sorted(known)) or 'none'})."
        )


class SerializationError(AsyncJobsError, TypeError):
    """An argument (or a return value) that cannot be stored as JSON."""


class EnqueueError(AsyncJobsError):
    """The job row was saved but its message could not be pushed to Redis.

    Raised only in strict mode; otherwise the row stays ``queued`` and recovery
    pushes it again.
    """

    def __init__(self, message: str, job_ids: list[str]) -> None:
        self.job_ids = job_ids
        super().__init__(message)


class JobTimeout(AsyncJobsError, JobTimeoutException):
    """A job ran longer than its time limit (raised inside the job by the worker)."""


class WorkerLost(AsyncJobsError):
    """Recorded by recovery for an attempt whose worker died (never raised inside a job)."""


class JobInterrupted(BaseException):
    """Raised inside a running job to stop it (cancellation or worker shutdown).

    A ``BaseException`` so that a job's own ``except Exception`` does not swallow it.
    """
