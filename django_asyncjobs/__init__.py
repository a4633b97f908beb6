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
    from .engine.calls import Call, Signature, chain
    from .engine.enqueueing import enqueue
    from .engine.execution import current_job
    from .engine.functions import JobFunction, job
    from .engine.groups import enqueue_group
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
    from .models import Job, JobGroup, JobStatus
    from .offloading.decorator import offload

__version__ = "0.1.0.dev0"

_LAZY = {
    "Aggregation": ".aggregations.declarations",
    "AggregationNotRegistered": ".exceptions",
    "AsyncJobsError": ".exceptions",
    "Call": ".engine.calls",
    "ConfigurationError": ".exceptions",
    "EnqueueError": ".exceptions",
    "InternalJob": ".exceptions",
    "Job": ".models",
    "JobGroup": ".models",
    "JobFunction": ".engine.functions",
    "JobInterrupted": ".exceptions",
    "JobNotRegistered": ".exceptions",
    "JobStatus": ".models",
    "JobTimeout": ".exceptions",
    "QueueFull": ".exceptions",
    "SerializationError": ".exceptions",
    "Signature": ".engine.calls",
    "UnknownQueue": ".exceptions",
    "WorkerLost": ".exceptions",
    "aggregation": ".aggregations.declarations",
    "chain": ".engine.calls",
    "current_job": ".engine.execution",
    "enqueue": ".engine.enqueueing",
    "enqueue_group": ".engine.groups",
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
    "JobGroup",
    "JobInterrupted",
    "JobNotRegistered",
    "JobStatus",
    "JobTimeout",
    "QueueFull",
    "SerializationError",
    "Signature",
    "UnknownQueue",
    "WorkerLost",
    "aggregation",
    "chain",
    "current_job",
    "enqueue",
    "enqueue_group",
    "job",
    "offload",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return [*globals(), *__all__]
