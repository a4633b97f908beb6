"""django-asyncjobs: durable background jobs for Django on RQ workers.

Every public name is imported on first use, so that ``from django_asyncjobs import
job`` works in a module imported during Django's setup, and so that the
dependency-free ``django_asyncjobs.client`` can be used without Django installed.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .aggregations.declarations import Aggregation, aggregation
    from .engine.enqueueing import aenqueue, enqueue
    from .engine.execution import current_job
    from .engine.functions import Call, JobFunction, job
    from .exceptions import (
        AggregationNotRegistered,
        AsyncJobsError,
        ConfigurationError,
        EnqueueError,
        InternalJob,
        JobInterrupted,
        JobNotRegistered,
        JobTimeout,
        QueueFull,
        SerializationError,
        UnknownQueue,
        WorkerLost,
    )
    from .models import Job, JobStatus
    from .offloading.decorator import offload

__version__ = "0.1.0.dev0"

_LAZY = {
    "Aggregation": ".aggregations.declarations",
    "AggregationNotRegistered": ".exceptions",
    "AsyncJobsError": ".exceptions",
    "Call": ".engine.functions",
    "ConfigurationError": ".exceptions",
    "EnqueueError": ".exceptions",
    "InternalJob": ".exceptions",
    "Job": ".models",
    "JobFunction": ".engine.functions",
    "JobInterrupted": ".exceptions",
    "JobNotRegistered": ".exceptions",
    "JobStatus": ".models",
    "JobTimeout": ".exceptions",
    "QueueFull": ".exceptions",
    "SerializationError": ".exceptions",
    "UnknownQueue": ".exceptions",
    "WorkerLost": ".exceptions",
    "aenqueue": ".engine.enqueueing",
    "aggregation": ".aggregations.declarations",
    "current_job": ".engine.execution",
    "enqueue": ".engine.enqueueing",
    "job": ".engine.functions",
    "offload": ".offloading.decorator",
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
    "aenqueue",
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
