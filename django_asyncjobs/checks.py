"""System checks. Every id is listed, with its fix, in docs/checks.md."""

from __future__ import annotations

import contextlib
import difflib
import importlib.util
from collections.abc import Mapping, Sequence
from typing import Any

import django
from django.apps import AppConfig, apps
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.db import DEFAULT_DB_ALIAS, router
from django.urls import get_resolver
from django.utils.module_loading import import_string

from .conf import SETTINGS, app_settings
from .engine.registry import registered_jobs
from .exceptions import ConfigurationError
from .links import docs_url, see
from .middleware import BackpressureMiddleware
from .offloading.access import status_urls_included
from .offloading.requests import atomic_views, offloaded_views
from .scheduling.declared import declared_schedules
from .tasks.checks import django_rq_missing
from .tracing import available as tracing_available


@register(Tags.compatibility)
def check_settings(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """``RQ_QUEUES`` and ``ASYNCJOBS``: each key against the rule it is declared with in
    :mod:`.conf`, then the queues the settings name, then the bounds that tie two keys."""
    rq_queues = app_settings.rq_queues
    messages = _installation_errors(rq_queues)
    user = getattr(settings, "ASYNCJOBS", {})
    if not isinstance(user, dict):
        return [*messages, _not_a_dict(user)]
    valid = _valid_values(user)
    return [
        *messages,
        *_unknown_keys(user),
        *_invalid_values(user),
        *_unknown_queues(valid, rq_queues),
        *_crossed_bounds(valid),
        *_missing_extras(valid),
    ]


def _installation_errors(rq_queues: Mapping[str, object]) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    if not apps.is_installed("django_rq") and not _reported_by_task_backends():
        messages.append(django_rq_missing())
    if not rq_queues:
        messages.append(
            Error(
                "RQ_QUEUES is missing or empty.",
                hint="Define RQ_QUEUES = {'default': {'URL': 'redis://localhost:6379/0'}}. "
                + see("checks", "asyncjobse002"),
                id="asyncjobs.E002",
            )
        )
    return messages


def _not_a_dict(user: object) -> Error:
    return Error(
        f"ASYNCJOBS must be a dict, got {type(user).__name__}.",
        hint="ASYNCJOBS = {'DEFAULT_QUEUE': 'default', ...}. " + see("checks", "asyncjobse003"),
        id="asyncjobs.E003",
    )


def _unknown_keys(user: Mapping[object, object]) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    for key in user:
        if key in SETTINGS:
            continue
        close = difflib.get_close_matches(str(key), SETTINGS, n=1)
        messages.append(
            Warning(
                f"ASYNCJOBS has an unknown key {key!r}.",
                hint=(f"Did you mean {close[0]!r}? " if close else "")
                + f"Known keys are listed at {docs_url('settings')}.",
                id="asyncjobs.W001",
            )
        )
    return messages


def _invalid_values(user: Mapping[object, object]) -> list[CheckMessage]:
    """One E004 per key whose value its declared rule refuses."""
    messages: list[CheckMessage] = []
    for name, setting in SETTINGS.items():
        problem = setting.problem(user[name]) if name in user else None
        if problem is not None:
            messages.append(
                Error(
                    f"ASYNCJOBS[{name!r}] is {user[name]!r} ({problem}); it must be {setting.rule.expected}.",
                    hint=see("settings"),
                    id="asyncjobs.E004",
                )
            )
    return messages


def _valid_values(user: Mapping[object, object]) -> dict[str, Any]:
    """Every key's value (the default where left out), without those E004 reports."""
    values = {name: user.get(name, setting.default) for name, setting in SETTINGS.items()}
    return {name: value for name, value in values.items() if SETTINGS[name].problem(value) is None}


def _unknown_queues(valid: Mapping[str, Any], rq_queues: Mapping[str, object]) -> list[CheckMessage]:
    if not rq_queues:
        return []  # E002
    configured = ", ".join(sorted(rq_queues))
    messages: list[CheckMessage] = []
    default_queue = valid.get("DEFAULT_QUEUE")
    if default_queue is not None and default_queue not in rq_queues:
        messages.append(
            Error(
                f"ASYNCJOBS['DEFAULT_QUEUE'] is {default_queue!r}, which is not a queue in RQ_QUEUES.",
                hint=f"Add it to RQ_QUEUES or pick one of: {configured}.",
                id="asyncjobs.E005",
            )
        )
    named = [("QUEUE_LIMITS", queue) for queue in valid.get("QUEUE_LIMITS", {})]
    named += [("BACKPRESSURE_PATHS", queue) for queue in valid.get("BACKPRESSURE_PATHS", {}).values()]
    messages += [
        Error(
            f"ASYNCJOBS[{key!r}] names queue {queue!r}, which is not in RQ_QUEUES.",
            hint=f"Configured queues: {configured}.",
            id="asyncjobs.E007",
        )
        for key, queue in named
        if queue not in rq_queues
    ]
    return messages


def _crossed_bounds(valid: Mapping[str, Any]) -> list[CheckMessage]:
    """Two keys that must agree, checked when both values are valid (else E004 says why)."""
    messages: list[CheckMessage] = []
    low, high = valid.get("RETRY_AFTER_MIN"), valid.get("RETRY_AFTER_MAX")
    if low is not None and high is not None and low > high:
        messages.append(
            Error(
                f"ASYNCJOBS['RETRY_AFTER_MIN'] ({low}) is greater than ASYNCJOBS['RETRY_AFTER_MAX'] ({high}).",
                hint="Make RETRY_AFTER_MIN <= RETRY_AFTER_MAX.",
                id="asyncjobs.E008",
            )
        )
    interval, timeout = valid.get("HEARTBEAT_INTERVAL"), valid.get("HEARTBEAT_TIMEOUT")
    if interval is not None and timeout is not None and timeout < 3 * interval:
        messages.append(
            Error(
                f"ASYNCJOBS['HEARTBEAT_TIMEOUT'] ({timeout}) is less than three HEARTBEAT_INTERVALs ({interval}).",
                hint="Recovery would take live jobs for lost ones: make HEARTBEAT_TIMEOUT at least 3x the interval.",
                id="asyncjobs.E010",
            )
        )
    return messages


def _missing_extras(valid: Mapping[str, Any]) -> list[CheckMessage]:
    if valid.get("OPENTELEMETRY") is True and not tracing_available():
        return [
            Error(
                "ASYNCJOBS['OPENTELEMETRY'] is True, but opentelemetry-api is not installed.",
                hint="Install the otel extra (pip install 'django-asyncjobs[otel]') and an OpenTelemetry SDK, "
                "or set OPENTELEMETRY to 'auto' or False. " + see("tracing"),
                id="asyncjobs.E015",
            )
        ]
    return []


@register(Tags.compatibility)
def check_databases(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """The databases jobs are written to and read from, as ``DATABASES`` declares them (no query)."""
    job = apps.get_model("django_asyncjobs", "Job")
    aliases = sorted({router.db_for_write(job), router.db_for_read(job)})
    return [message for alias in aliases for message in _prepared_behind_pooler(alias, settings.DATABASES.get(alias))]


def _prepared_behind_pooler(alias: str, database: Mapping[str, Any] | None) -> list[CheckMessage]:
    """psycopg 3 preparing statements on the server of a database whose server-side cursors
    are disabled: Django's sign of a transaction pooler, where a prepared statement lives on
    one server connection and the next transaction may get another."""
    if not database or not str(database.get("ENGINE", "")).endswith("postgresql"):
        return []
    options = database.get("OPTIONS") or {}
    threshold = options.get("prepare_threshold")
    prepares = options.get("server_side_binding") is True and threshold is not None
    if not (database.get("DISABLE_SERVER_SIDE_CURSORS") and prepares):
        return []
    return [
        Warning(
            f"DATABASES['{alias}'] disables server-side cursors, as behind PgBouncer in transaction mode, "
            f"but psycopg 3 prepares statements on the server (server_side_binding, prepare_threshold {threshold}).",
            hint="Before PgBouncer 1.21 (or with its max_prepared_statements 0) remove prepare_threshold from "
            "OPTIONS: Django's default, None, prepares nothing. With PgBouncer 1.21+ and max_prepared_statements "
            "set, add 'asyncjobs.W002' to SILENCED_SYSTEM_CHECKS. " + see("deployment", "pgbouncer"),
            id="asyncjobs.W002",
        )
    ]


@register(Tags.compatibility)
def check_schedules(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[CheckMessage]:
    if not isinstance(getattr(settings, "ASYNCJOBS", {}), dict):
        return []  # E003
    try:
        declared_schedules()
    except ConfigurationError as exc:
        return [
            Error(
                str(exc),
                hint="Fix @job(schedule=...) or ASYNCJOBS['SCHEDULES']. " + see("scheduling"),
                id="asyncjobs.E009",
            )
        ]
    return []


@register(Tags.compatibility)
def check_registered_jobs(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[CheckMessage]:
    rq_queues = app_settings.rq_queues
    if not rq_queues:
        return []

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


@register(Tags.compatibility)
def check_wiring(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """Pieces installed without what makes them work: ``@offload`` views without the status
    URLs (W003), ``BackpressureMiddleware`` without a queue limit to apply (W004)."""
    with contextlib.suppress(Exception):  # a broken URLconf is reported by Django's own URL checks
        get_resolver().url_patterns  # noqa: B018 - registers the offloaded views
    return [*_offload_without_status_urls(), *_middleware_without_limits()]


def _offload_without_status_urls() -> list[CheckMessage]:
    views = offloaded_views()
    if not views or status_urls_included():
        return []
    return [
        Warning(
            f"@offload is used by {views[0][0]!r}{f' and {len(views) - 1} other view(s)' if len(views) > 1 else ''}, "
            "but django_asyncjobs.urls is not included in the URLconf.",
            hint="Add path('async/', include('django_asyncjobs.urls')) to urlpatterns: every offloaded request "
            "answers with its job's status URL, and fails (500, nothing enqueued) without it. "
            + see("checks", "asyncjobsw003"),
            id="asyncjobs.W003",
        )
    ]


def _middleware_without_limits() -> list[CheckMessage]:
    if not _backpressure_middleware_installed():
        return []
    limits = getattr(settings, "ASYNCJOBS", {})
    limits = limits.get("QUEUE_LIMITS") if isinstance(limits, dict) else None
    if isinstance(limits, dict) and any(
        isinstance(entry, dict) and (entry.get("MAX_DEPTH") is not None or entry.get("MAX_AGE") is not None)
        for entry in limits.values()
    ):
        return []
    return [
        Warning(
            "BackpressureMiddleware is installed, but no queue has a limit: ASYNCJOBS['QUEUE_LIMITS'] sets no "
            "MAX_DEPTH or MAX_AGE, so it never answers 503.",
            hint="Set ASYNCJOBS['QUEUE_LIMITS'] = {'default': {'MAX_DEPTH': 1000}} (per queue), or remove the "
            "middleware. " + see("checks", "asyncjobsw004"),
            id="asyncjobs.W004",
        )
    ]


def _backpressure_middleware_installed() -> bool:
    for path in getattr(settings, "MIDDLEWARE", None) or ():
        if path == BACKPRESSURE_MIDDLEWARE:
            return True
        try:
            middleware = import_string(path)
        except ImportError:
            continue  # Django reports it when the middleware is loaded
        if isinstance(middleware, type) and issubclass(middleware, BackpressureMiddleware):
            return True
    return False


#: The dotted path of the back-pressure middleware, as MIDDLEWARE names it.
BACKPRESSURE_MIDDLEWARE = "django_asyncjobs.middleware.BackpressureMiddleware"

#: The dotted path of the backend for Django's Tasks framework.
TASKS_BACKEND = "django_asyncjobs.backends.AsyncJobsBackend"


@register(Tags.compatibility)
def check_atomic_jobs(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """Atomic jobs hold their transaction on the database ``Job`` rows are written to: warn
    when that is not the default database, which the functions' models most likely use."""
    alias = router.db_for_write(apps.get_model("django_asyncjobs", "Job"))
    if alias == DEFAULT_DB_ALIAS:
        return []
    with contextlib.suppress(Exception):  # registers the offloaded views; Django reports a broken URLconf
        get_resolver().url_patterns  # noqa: B018
    names = [name for name, job_function in sorted(registered_jobs().items()) if job_function.options.atomic]
    names += atomic_views()
    tasks = getattr(settings, "TASKS", None)
    for backend, config in sorted(tasks.items() if isinstance(tasks, dict) else []):
        options = config.get("OPTIONS") if isinstance(config, dict) else None
        if config.get("BACKEND") == TASKS_BACKEND and isinstance(options, dict) and options.get("ATOMIC") is True:
            names.append(f"the tasks of TASKS[{backend!r}]")
    if not names:
        return []
    return [
        Warning(
            f"Atomic jobs run in a transaction on database {alias!r}, where Job rows are written; what they "
            f"write to another database ({DEFAULT_DB_ALIAS!r} included) is not part of it: {', '.join(names)}.",
            hint=f"Route the models these jobs write to {alias!r} too, or drop atomic=True; if they write to "
            f"{alias!r} only, add 'asyncjobs.W005' to SILENCED_SYSTEM_CHECKS. " + see("jobs", "atomic-jobs"),
            id="asyncjobs.W005",
        )
    ]


@register(Tags.compatibility)
def check_task_backends(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """``TASKS`` entries that use ``AsyncJobsBackend`` on a Django without ``django.tasks``.

    On Django 6.0 and later, Django's own check of ``TASKS`` (``django.tasks.checks``,
    registered below) runs :meth:`AsyncJobsBackend.check`, which reports the rest:
    apps, queues, options (:func:`task_backend_errors`).
    """
    if _has_tasks():
        return []
    entries = getattr(settings, "TASKS", None)
    if not isinstance(entries, dict):
        return []
    return [
        Error(
            f"TASKS[{alias!r}] uses {params['BACKEND']}, which needs Django's Tasks framework "
            f"(Django 6.0 or later); this is Django {django.get_version()}.",
            hint="Upgrade Django, or remove the entry. " + see("django-tasks", "requirements"),
            id="asyncjobs.E013",
        )
        for alias, params in entries.items()
        if isinstance(params, dict) and params.get("BACKEND") == TASKS_BACKEND
    ]


def _has_tasks() -> bool:
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

    try:
        backend_class = import_string(path)
    except ImportError:
        return False  # reported by Django's own check of TASKS
    from .tasks.backend import AsyncJobsBackend  # lazy: django.tasks exists only on Django 6.0+

    return isinstance(backend_class, type) and issubclass(backend_class, AsyncJobsBackend)


if _has_tasks():
    # Django's check of TASKS (it runs each backend's check()) is registered when django.tasks
    # is imported, which a project may never do before `manage.py check`.
    import django.tasks
