"""django-asyncjobs: durable background jobs for Django on RQ workers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .exceptions import (
    AsyncJobsError,
    ConfigurationError,
    EnqueueError,
    JobInterrupted,
    JobNotRegistered,
    JobTimeout,
    SerializationError,
    UnknownQueue,
)
from .registry import Call, JobFunction, job

if TYPE_CHECKING:
    from .backpressure import QueueFull
    from .decorators import offload
    from .enqueueing import enqueue
    from .execution import current_job
    from .models import Job, JobStatus

__version__ = "0.1.0.dev0"

__all__ = [
    "AsyncJobsError",
    "Call",
    "ConfigurationError",
    "EnqueueError",
    "Job",
    "JobFunction",
    "JobInterrupted",
    "JobNotRegistered",
    "JobStatus",
    "JobTimeout",
    "QueueFull",
    "SerializationError",
    "UnknownQueue",
    "current_job",
    "enqueue",
    "job",
    "offload",
]

# Names that need the app registry are imported on first use, so that
# ``from django_asyncjobs import job`` works in a module imported during setup.
_LAZY = {
    "offload": ".decorators",
    "QueueFull": ".backpressure",
    "Job": ".models",
    "JobStatus": ".models",
    "current_job": ".execution",
    "enqueue": ".enqueueing",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
