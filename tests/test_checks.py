"""System checks: each id fires on the misconfiguration it documents, and only then."""

from __future__ import annotations

import importlib.util

import django
import pytest
from django.core.checks import Error, Warning

from django_asyncjobs.checks import check_registered_jobs, check_settings, check_task_backends, check_wiring
from django_asyncjobs.conf import DEFAULTS, app_settings
from django_asyncjobs.engine.functions import job
from django_asyncjobs.engine.registry import unregister
from django_asyncjobs.exceptions import ConfigurationError
from django_asyncjobs.links import DOCS_URL


def ids(messages) -> list[str]:
    return [message.id for message in messages]


def test_default_test_settings_pass() -> None:
    assert check_settings() == []
    assert check_registered_jobs() == []


def test_e001_django_rq_not_installed(settings) -> None:
    settings.INSTALLED_APPS = [app for app in settings.INSTALLED_APPS if app != "django_rq"]
    settings.TASKS = {}  # with an AsyncJobsBackend in TASKS its check() reports it (below)
    assert "asyncjobs.E001" in ids(check_settings())


@pytest.mark.parametrize("value", [None, {}, "redis://x"])
def test_e002_rq_queues_missing(settings, value) -> None:
    settings.RQ_QUEUES = value
    assert "asyncjobs.E002" in ids(check_settings())


def test_e003_asyncjobs_not_a_dict(settings) -> None:
    settings.ASYNCJOBS = ["DEFAULT_QUEUE"]
    messages = check_settings()
    assert ids(messages) == ["asyncjobs.E003"]
    assert isinstance(messages[0], Error)


def test_w001_unknown_key_suggests_the_right_one(settings) -> None:
    settings.ASYNCJOBS = {"MAX_ATEMPTS": 3}
    (message,) = check_settings()
    assert isinstance(message, Warning)
    assert message.id == "asyncjobs.W001"
    assert "'MAX_ATTEMPTS'" in message.hint


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("MAX_ATTEMPTS", 0),
        ("MAX_ATTEMPTS", "3"),
        ("TIMEOUT", 1.5),
        ("RETRY_BACKOFF", -1),
        ("RETRY_JITTER", "yes"),
        ("STRICT_ENQUEUE", 1),
        ("SCHEDULE_POLL_INTERVAL", 0),
        ("AUTODISCOVER", ["jobs", 3]),
        ("DEFAULT_QUEUE", ""),
    ],
)
def test_e004_bad_values_name_key_and_value(settings, key, value) -> None:
    settings.ASYNCJOBS = {key: value}
    messages = [m for m in check_settings() if m.id == "asyncjobs.E004"]
    assert len(messages) == 1
    assert repr(key) in messages[0].msg and repr(value) in messages[0].msg


def test_every_default_is_valid(settings) -> None:
    settings.ASYNCJOBS = dict(DEFAULTS)
    assert check_settings() == []


def test_e005_default_queue_not_in_rq_queues(settings) -> None:
    settings.ASYNCJOBS = {"DEFAULT_QUEUE": "missing"}
    (message,) = check_settings()
    assert message.id == "asyncjobs.E005"
    assert "'missing'" in message.msg


def test_e006_job_on_unknown_queue() -> None:
    def on_missing_queue() -> None: ...

    job(name="tests.on_missing_queue", queue="nowhere")(on_missing_queue)
    try:
        (message,) = check_registered_jobs()
        assert message.id == "asyncjobs.E006"
        assert "'nowhere'" in message.msg
    finally:
        unregister("tests.on_missing_queue")


def test_settings_are_read_lazily(settings) -> None:
    assert app_settings.MAX_ATTEMPTS == DEFAULTS["MAX_ATTEMPTS"]
    settings.ASYNCJOBS = {"MAX_ATTEMPTS": 7}
    assert app_settings.MAX_ATTEMPTS == 7


def test_unknown_setting_attribute_is_an_error() -> None:
    with pytest.raises(AttributeError, match="NOPE"):
        app_settings.NOPE  # noqa: B018


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("QUEUE_LIMITS", {"default": {"MAX_DEPTH": 0}}),
        ("QUEUE_LIMITS", {"default": {"MAX_SIZE": 10}}),
        ("QUEUE_LIMITS", {"default": {"MAX_AGE": -1}}),
        ("QUEUE_LIMITS", ["default"]),
        ("BACKPRESSURE_PATHS", {"^/upload/(": "default"}),
        ("BACKPRESSURE_PATHS", {"^/upload/": 3}),
        ("RETRY_AFTER_MAX", 0),
        ("BACKPRESSURE_CACHE_SECONDS", -1),
    ],
)
def test_e004_bad_backpressure_settings(settings, key, value) -> None:
    settings.ASYNCJOBS = {key: value}
    assert "asyncjobs.E004" in ids(check_settings())


def test_e007_backpressure_names_unknown_queue(settings) -> None:
    settings.ASYNCJOBS = {"QUEUE_LIMITS": {"gone": {"MAX_DEPTH": 5}}, "BACKPRESSURE_PATHS": {"^/x/": "missing"}}
    messages = check_settings()
    assert ids(messages) == ["asyncjobs.E007", "asyncjobs.E007"]
    assert "'gone'" in messages[0].msg and "'missing'" in messages[1].msg


def test_e008_retry_after_bounds_reversed(settings) -> None:
    settings.ASYNCJOBS = {"RETRY_AFTER_MIN": 60, "RETRY_AFTER_MAX": 10}
    assert ids(check_settings()) == ["asyncjobs.E008"]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("SCHEDULES", ["nightly"]),
        ("SCHEDULE_TIMEZONE", "Mars/Olympus"),
        ("MISFIRE_GRACE", -1),
        ("RECOVERY_INTERVAL", 0),
        ("RECOVERY_GRACE", "soon"),
        ("HEARTBEAT_INTERVAL", 0),
        ("AGGREGATION_MAX_CATCH_UP", 0),
        ("STATS_RETENTION", "forever"),
    ],
)
def test_e004_bad_scheduling_settings(settings, key, value) -> None:
    settings.ASYNCJOBS = {key: value}
    assert "asyncjobs.E004" in ids(check_settings())


def test_e009_bad_declared_schedule(settings) -> None:
    from django_asyncjobs.checks import check_schedules

    assert check_schedules() == []
    settings.ASYNCJOBS = {"SCHEDULES": {"hourly": {"job": "tests.testapp.jobs.add", "cron": "0 * * *"}}}
    messages = check_schedules()
    assert ids(messages) == ["asyncjobs.E009"]
    assert "Schedule 'hourly'" in messages[0].msg and "expected 5 fields" in messages[0].msg


def test_e010_heartbeat_timeout_too_short(settings) -> None:
    settings.ASYNCJOBS = {"HEARTBEAT_INTERVAL": 10, "HEARTBEAT_TIMEOUT": 15}
    assert ids(check_settings()) == ["asyncjobs.E010"]


# -- TASKS entries that use AsyncJobsBackend (Django 6.0+; E013 is in test_django_tasks_unsupported.py)

needs_tasks = pytest.mark.skipif(
    importlib.util.find_spec("django.tasks") is None, reason=f"Django {django.get_version()} has no django.tasks"
)
BACKEND = "django_asyncjobs.backends.AsyncJobsBackend"


def test_task_backends_of_the_test_settings_pass() -> None:
    assert check_task_backends() == []


def backend_messages(params):
    from django_asyncjobs.backends import AsyncJobsBackend

    return AsyncJobsBackend("default", {"BACKEND": BACKEND, **params}).check()


def backend_check(params) -> list[str]:
    return ids(backend_messages(params))


@needs_tasks
def test_e011_task_queue_not_in_rq_queues() -> None:
    (message,) = backend_messages({"QUEUES": ["default", "reports"]})
    assert message.id == "asyncjobs.E011"
    assert message.msg == "TASKS['default']['QUEUES'] names queue 'reports', which is not in RQ_QUEUES."


@needs_tasks
def test_e011_the_default_queues_of_django_are_checked_too(settings) -> None:
    settings.RQ_QUEUES = {"high": settings.RQ_QUEUES["high"]}
    assert backend_check({}) == ["asyncjobs.E011"]  # QUEUES defaults to ["default"]


@needs_tasks
@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"MAX_ATEMPTS": 3}, "unknown key(s) MAX_ATEMPTS"),
        ({"MAX_ATTEMPTS": 0}, "max_attempts must be an integer >= 1, got 0"),
        ({"TIMEOUT": "10"}, "timeout must be a whole number of seconds >= 1"),
        (["MAX_ATTEMPTS"], "must be a dict, got list"),
    ],
)
def test_e012_task_options(options, problem) -> None:
    (message,) = backend_messages({"OPTIONS": options})
    assert message.id == "asyncjobs.E012"
    assert problem in message.msg


@needs_tasks
def test_other_task_backends_are_left_to_django(settings) -> None:
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend", "QUEUES": ["x"]}}
    assert check_task_backends() == []


# -- AsyncJobsBackend.check(): the backend's own errors, as Django's backends return theirs (issue 13, item 10)


@needs_tasks
def test_the_backend_check_passes_on_the_test_settings() -> None:
    from django.tasks import task_backends

    assert [message for backend in task_backends.all() for message in backend.check()] == []


@needs_tasks
def test_the_backend_check_reports_its_queues_and_options() -> None:
    assert backend_check({"QUEUES": ["default", "reports"], "OPTIONS": {"MAX_ATEMPTS": 3}}) == [
        "asyncjobs.E011",
        "asyncjobs.E012",
    ]
    assert backend_check({"OPTIONS": ["MAX_ATTEMPTS"]}) == ["asyncjobs.E012"]


@needs_tasks
def test_the_backend_check_reports_django_rq_missing(settings) -> None:
    settings.INSTALLED_APPS = [app for app in settings.INSTALLED_APPS if app != "django_rq"]
    assert backend_check({}) == ["asyncjobs.E001"]


@needs_tasks
def test_the_backend_check_reports_django_asyncjobs_missing(settings) -> None:
    from django_asyncjobs.backends import AsyncJobsBackend

    settings.INSTALLED_APPS = [
        app for app in settings.INSTALLED_APPS if app not in ("django_asyncjobs", "tests.testapp")
    ]
    (message,) = AsyncJobsBackend("tasks", {"BACKEND": BACKEND}).check()
    assert message.id == "asyncjobs.E014"
    assert message.msg == "TASKS['tasks'] uses AsyncJobsBackend, but 'django_asyncjobs' is not in INSTALLED_APPS."


@needs_tasks
@pytest.mark.django_db
def test_the_check_framework_reports_each_backend_error_once(settings) -> None:
    from django.core.checks import run_checks

    settings.INSTALLED_APPS = [app for app in settings.INSTALLED_APPS if app != "django_rq"]
    settings.TASKS = {"default": {"BACKEND": BACKEND, "QUEUES": ["default", "reports"], "OPTIONS": {"X": 1}}}
    found = [message.id for message in run_checks() if message.id.startswith("asyncjobs.E")]
    assert sorted(found) == ["asyncjobs.E001", "asyncjobs.E011", "asyncjobs.E012"]


# W003, W004: pieces installed without what makes them work


def wiring_ids() -> list[str]:
    return ids(check_wiring())


def test_w003_offloaded_views_without_the_status_urls(settings) -> None:
    assert "asyncjobs.W003" not in wiring_ids()  # tests.urls includes them
    settings.ROOT_URLCONF = "tests.urls_without_status"
    (message,) = [m for m in check_wiring() if m.id == "asyncjobs.W003"]
    assert isinstance(message, Warning)
    assert "django_asyncjobs.urls is not included" in message.msg
    assert "include('django_asyncjobs.urls')" in message.hint
    assert DOCS_URL + "checks.html#asyncjobsw003" in message.hint


@pytest.mark.django_db(transaction=True)
def test_w003_an_offloaded_request_without_the_status_urls_writes_and_pushes_nothing(settings, redis) -> None:
    """The status URL is resolved before the job is written: no row, no message, no run."""
    from django.test import Client

    from django_asyncjobs.models import Job

    settings.ROOT_URLCONF = "tests.urls_without_status"
    with pytest.raises(ConfigurationError, match=r"django_asyncjobs\.urls is not included"):
        Client().post("/echo/1/", {"a": "1"})
    assert Job.objects.count() == 0
    assert redis.llen("rq:queue:default") == 0


def test_w004_backpressure_middleware_without_queue_limits(settings) -> None:
    # The test settings install the middleware without limits.
    (message,) = [m for m in check_wiring() if m.id == "asyncjobs.W004"]
    assert isinstance(message, Warning)
    assert "QUEUE_LIMITS" in message.hint and DOCS_URL in message.hint
    settings.ASYNCJOBS = {"QUEUE_LIMITS": {"default": {"RATE": "10/s"}}}  # a rate only: still no 503
    assert "asyncjobs.W004" in wiring_ids()
    settings.ASYNCJOBS = {"QUEUE_LIMITS": {"default": {"MAX_AGE": 30}}}
    assert "asyncjobs.W004" not in wiring_ids()
    settings.ASYNCJOBS = {}
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if "Backpressure" not in m]
    assert "asyncjobs.W004" not in wiring_ids()
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "tests.testapp.middleware.OwnBackpressure"]
    assert "asyncjobs.W004" in wiring_ids()
