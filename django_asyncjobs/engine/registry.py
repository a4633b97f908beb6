"""The registry: job functions by name, the only code a worker runs.

A worker only ever runs functions found here: a message names a job row, the row
names a registered function, and nothing is imported from what Redis says.
:mod:`.functions` declares job functions (``@job``) and puts them here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ..conf import app_settings
from ..exceptions import ConfigurationError, InternalJob, JobNotRegistered

if TYPE_CHECKING:
    from .functions import JobFunction

JF = TypeVar("JF", bound="JobFunction[Any, Any]")

_registry: dict[str, JobFunction[Any, Any]] = {}


def register_job_function(job_function: JF) -> JF:
    """Put ``job_function`` in the registry under its name. The same function again replaces
    the entry; another function under the same name is a ``ConfigurationError``."""
    existing = _registry.get(job_function.name)
    if existing is not None and source_of(existing.func) != source_of(job_function.func):
        raise ConfigurationError(
            f"Two functions are registered as job {job_function.name!r}: {source_of(existing.func)} "
            f"and {source_of(job_function.func)}."
        )
    _registry[job_function.name] = job_function
    return job_function


def source_of(func: Callable[..., Any]) -> str:
    """Where ``func`` is defined, for error messages: ``module.qualname (file:line)``."""
    code = getattr(func, "__code__", None)
    where = f"{code.co_filename}:{code.co_firstlineno}" if code else "?"
    return f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', '?')} ({where})"


def get_job_function(name: str) -> JobFunction[Any, Any]:
    try:
        return _registry[name]
    except KeyError:
        pass
    job_function = _find(name)
    if job_function is None:
        raise JobNotRegistered(name)
    return job_function


def job_function_by_name(name: str) -> JobFunction[Any, Any]:
    """The job ``name`` as data may name it (``enqueue()`` by name, schedules, the admin):
    :class:`InternalJob` for the package's own jobs, :class:`JobNotRegistered` for unknown ones."""
    job_function = get_job_function(name)
    if job_function.internal:
        raise InternalJob(name)
    return job_function


def schedulable_jobs() -> list[str]:
    """Names of the registered jobs that schedules and ``enqueue()`` by name may use."""
    return sorted(name for name, job_function in _registry.items() if not job_function.internal)


#: Where a name not in the registry is looked for next, in order (see :func:`add_finder`).
_finders: list[Callable[[str], JobFunction[Any, Any] | None]] = []


def add_finder(finder: Callable[[str], JobFunction[Any, Any] | None]) -> None:
    """Look names missing from the registry up with ``finder`` too: it returns the job
    function it registered for the name, or ``None``. The django.tasks backend adds one
    that registers a ``@task`` whose module this process has not imported yet."""
    if finder not in _finders:
        _finders.append(finder)


def _find(name: str) -> JobFunction[Any, Any] | None:
    for finder in _finders:
        job_function = finder(name)
        if job_function is not None:
            return job_function
    return None


def timeout_for(name: str) -> int:
    """The time limit of job ``name``; the default for names this process does not know."""
    job_function = _registry.get(name)
    return job_function.options.resolved_timeout() if job_function else app_settings.TIMEOUT


def registered(name: str) -> JobFunction[Any, Any] | None:
    """The job function registered as ``name`` in this process, without looking further."""
    return _registry.get(name)


def registered_jobs() -> dict[str, JobFunction[Any, Any]]:
    """A copy of the registry: job name to function."""
    return dict(_registry)


def unregister(name: str) -> None:
    """Remove a job from the registry (for tests and dynamic set-ups)."""
    _registry.pop(name, None)
