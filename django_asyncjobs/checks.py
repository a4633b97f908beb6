"""System checks. Every id is listed, with its fix, in docs/checks.md."""

from __future__ import annotations

import contextlib
import difflib
import re
from collections.abc import Callable, Sequence
from typing import Any

from django.apps import AppConfig, apps
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from .conf import DEFAULTS

DOCS = "See docs/checks.md."


def _positive_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def _non_negative_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _queue_limits(value: Any) -> bool:
    if not isinstance(value, dict):
        return False
    for limits in value.values():
        if not isinstance(limits, dict) or not set(limits) <= {"MAX_DEPTH", "MAX_AGE"}:
            return False
        if "MAX_DEPTH" in limits and not _positive_int(limits["MAX_DEPTH"]):
            return False
        if "MAX_AGE" in limits and not _positive_number(limits["MAX_AGE"]):
            return False
    return True


def _time_zone_or_none(value: Any) -> bool:
    if value is None:
        return True
    from .times.recurrence import resolve_timezone

    try:
        resolve_timezone(value)
    except ValueError:
        return False
    return isinstance(value, str)


def _duration(value: Any) -> bool:
    from .times.durations import parse_duration

    try:
        parse_duration(value)
    except ValueError:
        return False
    return True


def _path_patterns(value: Any) -> bool:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        return False
    try:
        for pattern in value:
            re.compile(pattern)
    except re.error:
        return False
    return True


VALIDATORS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "DEFAULT_QUEUE": (lambda v: isinstance(v, str) and bool(v), "a queue name (non-empty string)"),
    "MAX_ATTEMPTS": (_positive_int, "an integer >= 1"),
    "TIMEOUT": (_positive_int, "a whole number of seconds >= 1"),
    "RETRY_BACKOFF": (_non_negative_number, "a number of seconds >= 0"),
    "RETRY_BACKOFF_MAX": (_non_negative_number, "a number of seconds >= 0"),
    "RETRY_JITTER": (lambda v: isinstance(v, bool), "True or False"),
    "PROGRESS_INTERVAL": (_non_negative_number, "a number of seconds >= 0"),
    "STRICT_ENQUEUE": (lambda v: isinstance(v, bool), "True or False"),
    "MESSAGE_TTL": (_positive_int, "a whole number of seconds >= 1"),
    "SCHEDULE_POLL_INTERVAL": (_positive_number, "a number of seconds > 0"),
    "QUEUE_LIMITS": (
        _queue_limits,
        "a dict of queue name to {'MAX_DEPTH': int >= 1, 'MAX_AGE': seconds > 0}",
    ),
    "BACKPRESSURE_CACHE_SECONDS": (_non_negative_number, "a number of seconds >= 0"),
    "RETRY_AFTER_MIN": (_non_negative_number, "a number of seconds >= 0"),
    "RETRY_AFTER_MAX": (_positive_number, "a number of seconds > 0"),
    "BACKPRESSURE_PATHS": (_path_patterns, "a dict of path regex (that compiles) to queue name"),
    "OFFLOAD_HEADERS": (
        lambda v: isinstance(v, list | tuple) and all(isinstance(h, str) for h in v),
        "a list of request.META keys, e.g. ['HTTP_ACCEPT']",
    ),
    "OFFLOAD_MAX_UPLOAD_SIZE": (_positive_int, "a number of bytes >= 1"),
    "OFFLOAD_STORAGE": (lambda v: isinstance(v, str) and bool(v), "an alias of STORAGES, e.g. 'default'"),
    "OFFLOAD_INLINE_RESPONSE_SIZE": (_non_negative_number, "a number of bytes >= 0"),
    "AUTODISCOVER": (
        lambda v: isinstance(v, str) or (isinstance(v, list | tuple) and all(isinstance(m, str) for m in v)),
        "a list of module names, e.g. ['jobs', 'tasks']",
    ),
    "SCHEDULES": (lambda v: isinstance(v, dict), "a dict of schedule name to entry (see docs/scheduling.md)"),
    "SCHEDULE_TIMEZONE": (_time_zone_or_none, "None or an IANA time zone name, e.g. 'Europe/Paris'"),
    "MISFIRE_GRACE": (_non_negative_number, "a number of seconds >= 0"),
    "RECOVERY_INTERVAL": (_positive_number, "a number of seconds > 0"),
    "RECOVERY_GRACE": (_non_negative_number, "a number of seconds >= 0"),
    "HEARTBEAT_INTERVAL": (_positive_number, "a number of seconds > 0"),
    "HEARTBEAT_TIMEOUT": (_positive_number, "a number of seconds > 0"),
    "UNKNOWN_JOB_TIMEOUT": (_non_negative_number, "a number of seconds >= 0"),
    "AGGREGATION_MAX_CATCH_UP": (_positive_int, "an integer >= 1"),
    "STATS_RETENTION": (_duration, 'a duration such as "7d" or a number of seconds > 0'),
}


def _django_rq_missing() -> Error:
    return Error(
        "django_rq is not in INSTALLED_APPS.",
        hint="Add 'django_rq' to INSTALLED_APPS: django-asyncjobs uses its RQ_QUEUES connections.",
        id="asyncjobs.E001",
    )


@register(Tags.compatibility)
def check_settings(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    if not apps.is_installed("django_rq") and not _reported_by_task_backends():
        messages.append(_django_rq_missing())
    rq_queues = getattr(settings, "RQ_QUEUES", None)
    if not isinstance(rq_queues, dict) or not rq_queues:
        messages.append(
            Error(
                "RQ_QUEUES is missing or empty.",
                hint="Define RQ_QUEUES = {'default': {'URL': 'redis://localhost:6379/0'}}. " + DOCS,
                id="asyncjobs.E002",
            )
        )
        rq_queues = {}
    user = getattr(settings, "ASYNCJOBS", {})
    if not isinstance(user, dict):
        return [
            *messages,
            Error(
                f"ASYNCJOBS must be a dict, got {type(user).__name__}.",
                hint="ASYNCJOBS = {'DEFAULT_QUEUE': 'default', ...}. " + DOCS,
                id="asyncjobs.E003",
            ),
        ]
    for key in user:
        if key not in DEFAULTS:
            close = difflib.get_close_matches(str(key), DEFAULTS, n=1)
            messages.append(
                Warning(
                    f"ASYNCJOBS has an unknown key {key!r}.",
                    hint=(f"Did you mean {close[0]!r}? " if close else "")
                    + "Known keys are listed in docs/settings.md.",
                    id="asyncjobs.W001",
                )
            )
    for key, (is_valid, expected) in VALIDATORS.items():
        if key in user and not is_valid(user[key]):
            messages.append(
                Error(
                    f"ASYNCJOBS[{key!r}] is {user[key]!r}; it must be {expected}.",
                    hint="See docs/settings.md.",
                    id="asyncjobs.E004",
                )
            )
    default_queue = user.get("DEFAULT_QUEUE", DEFAULTS["DEFAULT_QUEUE"])
    if rq_queues and isinstance(default_queue, str) and default_queue not in rq_queues:
        messages.append(
            Error(
                f"ASYNCJOBS['DEFAULT_QUEUE'] is {default_queue!r}, which is not a queue in RQ_QUEUES.",
                hint=f"Add it to RQ_QUEUES or pick one of: {', '.join(sorted(rq_queues))}.",
                id="asyncjobs.E005",
            )
        )
    for key in ("QUEUE_LIMITS", "BACKPRESSURE_PATHS"):
        value = user.get(key)
        if not rq_queues or not isinstance(value, dict):
            continue
        names = value.keys() if key == "QUEUE_LIMITS" else value.values()
        for name in names:
            if name not in rq_queues:
                messages.append(
                    Error(
                        f"ASYNCJOBS[{key!r}] names queue {name!r}, which is not in RQ_QUEUES.",
                        hint=f"Configured queues: {', '.join(sorted(rq_queues))}.",
                        id="asyncjobs.E007",
                    )
                )
    low, high = (
        user.get("RETRY_AFTER_MIN", DEFAULTS["RETRY_AFTER_MIN"]),
        user.get("RETRY_AFTER_MAX", DEFAULTS["RETRY_AFTER_MAX"]),
    )
    if _non_negative_number(low) and _positive_number(high) and low > high:
        messages.append(
            Error(
                f"ASYNCJOBS['RETRY_AFTER_MIN'] ({low}) is greater than ASYNCJOBS['RETRY_AFTER_MAX'] ({high}).",
                hint="Make RETRY_AFTER_MIN <= RETRY_AFTER_MAX.",
                id="asyncjobs.E008",
            )
        )
    interval, timeout = (
        user.get("HEARTBEAT_INTERVAL", DEFAULTS["HEARTBEAT_INTERVAL"]),
        user.get("HEARTBEAT_TIMEOUT", DEFAULTS["HEARTBEAT_TIMEOUT"]),
    )
    if _positive_number(interval) and _positive_number(timeout) and timeout < 3 * interval:
        messages.append(
            Error(
                f"ASYNCJOBS['HEARTBEAT_TIMEOUT'] ({timeout}) is less than three HEARTBEAT_INTERVALs ({interval}).",
                hint="Recovery would take live jobs for lost ones: make HEARTBEAT_TIMEOUT at least 3x the interval.",
                id="asyncjobs.E010",
            )
        )
    return messages


@register(Tags.compatibility)
def check_schedules(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[CheckMessage]:
    from .exceptions import ConfigurationError
    from .scheduling.declared import declared_schedules

    if not isinstance(getattr(settings, "ASYNCJOBS", {}), dict):
        return []  # E003
    try:
        declared_schedules()
    except ConfigurationError as exc:
        return [
            Error(
                str(exc),
                hint="Fix @job(schedule=...) or ASYNCJOBS['SCHEDULES']. See docs/scheduling.md.",
                id="asyncjobs.E009",
            )
        ]
    return []


@register(Tags.compatibility)
def check_registered_jobs(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[CheckMessage]:
    from .engine.registry import registered_jobs

    rq_queues = getattr(settings, "RQ_QUEUES", None)
    if not isinstance(rq_queues, dict) or not rq_queues:
        return []
    from django.urls import get_resolver

    from .offloading.requests import offloaded_views

    # Importing the URLconf imports the views, which registers the offloaded ones.
    # A broken URLconf is reported by Django's own URL checks.
    with contextlib.suppress(Exception):
        get_resolver().url_patterns  # noqa: B018
    messages: list[CheckMessage] = [
        Error(
            f"Offloaded view {name!r} uses queue {queue!r}, which is not in RQ_QUEUES.",
            hint=f"Add it to RQ_QUEUES or change @offload(queue=...). Configured: {', '.join(sorted(rq_queues))}.",
            id="asyncjobs.E006",
        )
        for name, queue in offloaded_views()
        if queue is not None and queue not in rq_queues
    ]
    return messages + [
        Error(
            f"Job {name!r} uses queue {job_function.options.queue!r}, which is not in RQ_QUEUES.",
            hint=f"Add the queue to RQ_QUEUES or change @job(queue=...). Configured: {', '.join(sorted(rq_queues))}.",
            obj=job_function.func,
            id="asyncjobs.E006",
        )
        for name, job_function in sorted(registered_jobs().items())
        if job_function.options.queue is not None and job_function.options.queue not in rq_queues
    ]


#: The dotted path of the backend for Django's Tasks framework.
TASKS_BACKEND = "django_asyncjobs.backends.AsyncJobsBackend"


@register(Tags.compatibility)
def check_task_backends(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """``TASKS`` entries that use ``AsyncJobsBackend`` on a Django without ``django.tasks``.

    On Django 6.0 and later, Django's own check of ``TASKS`` (``django.tasks.checks``,
    registered below) runs :meth:`AsyncJobsBackend.check`, which reports the rest:
    apps, queues, options (:func:`task_backend_errors`).
    """
    import django

    if _has_tasks():
        return []
    entries = getattr(settings, "TASKS", None)
    if not isinstance(entries, dict):
        return []
    return [
        Error(
            f"TASKS[{alias!r}] uses {params['BACKEND']}, which needs Django's Tasks framework "
            f"(Django 6.0 or later); this is Django {django.get_version()}.",
            hint="Upgrade Django, or remove the entry. See docs/django-tasks.md.",
            id="asyncjobs.E013",
        )
        for alias, params in entries.items()
        if isinstance(params, dict) and params.get("BACKEND") == TASKS_BACKEND
    ]


def task_backend_errors(alias: str, params: dict[str, Any]) -> list[CheckMessage]:
    """The errors of ``TASKS[alias]`` (an ``AsyncJobsBackend``): what ``backend.check()`` returns."""
    messages: list[CheckMessage] = []
    if not apps.is_installed("django_asyncjobs"):
        messages.append(
            Error(
                f"TASKS[{alias!r}] uses AsyncJobsBackend, but 'django_asyncjobs' is not in INSTALLED_APPS.",
                hint="Add 'django_asyncjobs' (and 'django_rq') to INSTALLED_APPS: the backend saves its tasks "
                "as django_asyncjobs jobs. " + DOCS,
                id="asyncjobs.E014",
            )
        )
    if not apps.is_installed("django_rq"):
        messages.append(_django_rq_missing())
    rq_queues = getattr(settings, "RQ_QUEUES", None)
    queues = params.get("QUEUES", ["default"])
    if isinstance(rq_queues, dict) and rq_queues and isinstance(queues, list | tuple | set):
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


def _has_tasks() -> bool:
    import importlib.util

    return importlib.util.find_spec("django.tasks") is not None


def _reported_by_task_backends() -> bool:
    """Whether a ``TASKS`` entry uses ``AsyncJobsBackend``, whose ``check()`` Django runs."""
    entries = getattr(settings, "TASKS", None)
    if not _has_tasks() or not isinstance(entries, dict):
        return False
    return any(isinstance(entry, dict) and _is_task_backend(entry.get("BACKEND"), True) for entry in entries.values())


def _is_task_backend(path: Any, has_tasks: bool) -> bool:
    if path == TASKS_BACKEND:
        return True
    if not isinstance(path, str) or not has_tasks:
        return False
    from django.utils.module_loading import import_string

    try:
        backend_class = import_string(path)
    except ImportError:
        return False  # reported by Django's own check of TASKS
    from .tasks.backend import AsyncJobsBackend

    return isinstance(backend_class, type) and issubclass(backend_class, AsyncJobsBackend)


def _task_options_errors(alias: str, options: Any) -> list[CheckMessage]:
    from .engine.registry import JobOptions

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
            "See docs/django-tasks.md.",
            id="asyncjobs.E012",
        )
    ]


if _has_tasks():
    # Django's check of TASKS (it runs each backend's check()) is registered when django.tasks
    # is imported, which a project may never do before `manage.py check`.
    import django.tasks  # noqa: F401
