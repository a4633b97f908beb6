"""The checks of an ``AsyncJobsBackend`` entry of ``TASKS`` (its ``check()``): installed
apps, queues and options. Needs no ``django.tasks``: ``checks`` uses it too."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.checks import CheckMessage, Error

from ..conf import app_settings
from ..engine.functions import JobOptions
from ..links import see


def django_rq_missing() -> Error:
    return Error(
        "django_rq is not in INSTALLED_APPS.",
        hint="Add 'django_rq' to INSTALLED_APPS: django-asyncjobs uses its RQ_QUEUES connections. "
        + see("checks", "asyncjobse001"),
        id="asyncjobs.E001",
    )


def task_backend_errors(alias: str, params: dict[str, Any]) -> list[CheckMessage]:
    """The errors of ``TASKS[alias]`` (an ``AsyncJobsBackend``): what ``backend.check()`` returns."""
    messages: list[CheckMessage] = []
    if not apps.is_installed("django_asyncjobs"):
        messages.append(
            Error(
                f"TASKS[{alias!r}] uses AsyncJobsBackend, but 'django_asyncjobs' is not in INSTALLED_APPS.",
                hint="Add 'django_asyncjobs' (and 'django_rq') to INSTALLED_APPS: the backend saves its tasks "
                "as django_asyncjobs jobs. " + see("installation"),
                id="asyncjobs.E014",
            )
        )
    if not apps.is_installed("django_rq"):
        messages.append(django_rq_missing())
    rq_queues = app_settings.rq_queues
    queues = params.get("QUEUES", ["default"])
    if rq_queues and isinstance(queues, list | tuple | set):
        messages += [
            Error(
                f"TASKS[{alias!r}]['QUEUES'] names queue {queue!r}, which is not in RQ_QUEUES.",
                hint=f"Add it to RQ_QUEUES or remove it from QUEUES. Configured: {', '.join(sorted(rq_queues))}.",
                id="asyncjobs.E011",
            )
            for queue in queues
            if queue not in rq_queues
        ]
    return messages + _task_options_errors(alias, params.get("OPTIONS", {}))


def _task_options_errors(alias: str, options: Any) -> list[CheckMessage]:
    problem = None
    if not isinstance(options, dict):
        problem = f"must be a dict, got {type(options).__name__}"
    else:
        try:
            JobOptions.from_setting(options)
        except ValueError as exc:
            problem = str(exc)
    if problem is None:
        return []
    return [
        Error(
            f"TASKS[{alias!r}]['OPTIONS'] is invalid: {problem}.",
            hint="OPTIONS takes MAX_ATTEMPTS, TIMEOUT, RETRY_BACKOFF, RETRY_BACKOFF_MAX and RETRY_JITTER. "
            + see("django-tasks", "set-up"),
            id="asyncjobs.E012",
        )
    ]
