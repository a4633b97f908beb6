"""django-asyncjobs: durable background jobs for Django on RQ workers.

Every public name is imported on first use, so that ``from django_asyncjobs import
job`` works in a module imported during Django's setup, and so that the
dependency-free ``django_asyncjobs.client`` can be used without Django installed.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .aggregations import Aggregation, AggregationNotRegistered, aggregation
    from .backpressure import QueueFull
    from .decorators import offload
    from .enqueueing import enqueue
    from .exceptions import (
        AsyncJobsError,
        ConfigurationError,
        EnqueueError,
        InternalJob,
        JobInterrupted,
        JobNotRegistered,
        JobTimeout,
        SerializationError,
        UnknownQueue,
        WorkerLost,
    )
    from .execution import current_job
    from .models import Job, JobStatus
    from .registry import Call, JobFunction, job

__version__ = "0.1.0.dev0"

_LAZY = {
    "Aggregation": ".aggregations",
    "AggregationNotRegistered": ".aggregations",
    "AsyncJobsError": ".exceptions",
    "Call": ".registry",
    "ConfigurationError": ".exceptions",
    "EnqueueError": ".exceptions",
    "InternalJob": ".exceptions",
    "Job": ".models",
    "JobFunction": ".registry",
    "JobInterrupted": ".exceptions",
    "JobNotRegistered": ".exceptions",
    "JobStatus": ".models",
    "JobTimeout": ".exceptions",
    "QueueFull": ".backpressure",
    "SerializationError": ".exceptions",
    "UnknownQueue": ".exceptions",
    "WorkerLost": ".exceptions",
    "aggregation": ".aggregations",
    "current_job": ".execution",
    "enqueue": ".enqueueing",
    "job": ".registry",
    "offload": ".decorators",
}

__all__ = [
    "Aggregation",
    "AggregationNotRegistered",
    "AsyncJobsError",
    "Call",
    "ConfigurationError",
    "EnqueueError",
    "InternalJob",
    "Job",
    "JobFunction",
    "JobInterrupted",
    "JobNotRegistered",
    "JobStatus",
    "JobTimeout",
    "QueueFull",
    "SerializationError",
    "UnknownQueue",
    "WorkerLost",
    "aggregation",
    "current_job",
    "enqueue",
    "job",
    "offload",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return [*globals(), *__all__]
