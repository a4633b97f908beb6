"""Every exception class django-asyncjobs defines. All derive from :class:`AsyncJobsError`,
except :class:`JobInterrupted` (a ``BaseException`` on purpose) and the dependency-free
client's errors (``django_asyncjobs.client.ClientError``, which must import without Django).

The hierarchy, with the stdlib and Django bases kept where they let callers catch what
they already catch, is documented in docs/exceptions.md. Other modules import their
exceptions from here; the old import locations (``engine.capacity.QueueFull``, ...) keep working.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from django.core.exceptions import ImproperlyConfigured
from rq.timeouts import JobTimeoutException

if TYPE_CHECKING:
    from .engine.capacity import QueueState


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


class WorkerLostBeforeStart(WorkerLost):
    """Recorded by recovery for a row its dead worker had claimed in a batch and may not have
    started: the attempt is given back, once per job."""


class QueueFull(AsyncJobsError):
    """The queue is saturated; try again in ``retry_after`` seconds. Nothing was saved."""

    def __init__(self, state: QueueState, reason: str = "") -> None:
        self.state = state
        self.queue = state.queue
        self.retry_after = state.retry_after
        self.reason = reason or state.reason
        super().__init__(f"Queue {state.queue!r} is saturated ({self.reason}); retry in {self.retry_after}s.")


class AggregationNotRegistered(AsyncJobsError, LookupError):
    """No aggregation is registered under the given name."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        super().__init__(
            f"No aggregation is registered as {name!r} (registered: {', '.join(sorted(known)) or 'none'}). "
            "Decorate the function with @aggregation(every=...) and make sure its module "
            "is imported (modules named in ASYNCJOBS['AUTODISCOVER'] are imported at start-up)."
        )


class OffloadError(AsyncJobsError):
    """A request cannot be carried to a worker (too large, or needs what cannot be carried)."""


class DatabaseAway(AsyncJobsError):
    """The database did not answer, and the worker was told to stop before it did."""


class OutcomeRefused(AsyncJobsError):
    """The database refused the values of an outcome write (``DataError``, ``IntegrityError``).
    Internal: the worker records such an attempt as failed with a stored reason."""


class MetricsUnavailable(ConfigurationError):
    """The Prometheus metrics view is mounted but ``prometheus_client`` is not installed."""

    def __init__(self) -> None:
        super().__init__(
            "The metrics view (django_asyncjobs.metrics) needs prometheus_client: "
            "pip install 'django-asyncjobs[metrics]'."
        )


class RedisServerError(AsyncJobsError, RuntimeError):
    """``django_asyncjobs.testing`` could not find or start a Redis server."""


class JobInterrupted(BaseException):
    """Raised inside a running job to stop it (cancellation or worker shutdown).

    A ``BaseException`` so that a job's own ``except Exception`` does not swallow it.
    """
