"""Settings for the test suite. SQLite by default; PostgreSQL when DATABASE_URL is set.

The Redis URL is filled in by tests/conftest.py, which starts a private server.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from typing import Any
from urllib.parse import urlparse

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "tests.urls"
STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_rq",
    "django_asyncjobs",
    "tests.testapp",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_asyncjobs.middleware.BackpressureMiddleware",
]
# The middleware is installed for the tests that give a queue a limit (override_settings); the
# suite's own settings have none, which W004 would report to `manage.py check` (.ci/run).
SILENCED_SYSTEM_CHECKS = ["asyncjobs.W004"]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]


def _database() -> dict[str, object]:
    url = os.environ.get("DATABASE_URL")
    if not url:
        # A file, not :memory:, so that worker subprocesses see the same test database.
        name = os.environ.get(
            "ASYNCJOBS_TEST_SQLITE", os.path.join(tempfile.gettempdir(), f"asyncjobs-test-{os.getpid()}.sqlite3")
        )
        os.environ["ASYNCJOBS_TEST_SQLITE"] = name
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": name,
            "TEST": {"NAME": name},
            "OPTIONS": {
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
        }
    parsed = urlparse(url)
    if parsed.scheme not in ("postgres", "postgresql"):
        raise ValueError(f"DATABASE_URL must be a postgres:// URL, got {url!r}")
    options: dict[str, object] = {
        # Worker subprocesses are told apart (pg_terminate_backend in the fault tests) by this name.
        "application_name": os.environ.get("ASYNCJOBS_TEST_DB_APPLICATION", "asyncjobs-tests"),
    }
    database: dict[str, object] = {}
    if os.environ.get("ASYNCJOBS_TEST_PGBOUNCER"):
        # Through PgBouncer in transaction pooling mode (tests/pgbouncer.py, `make test-pgbouncer`):
        # the settings docs/deployment.md#pgbouncer gives. psycopg 3 prepares no statement on the
        # server (Django's default, said here as a user would); server-side cursors are disabled
        # unless ASYNCJOBS_TEST_SERVER_SIDE_CURSORS asks to see the package's own iterations work.
        options["prepare_threshold"] = None
        database["DISABLE_SERVER_SIDE_CURSORS"] = not os.environ.get("ASYNCJOBS_TEST_SERVER_SIDE_CURSORS")
    return {
        **database,
        "ENGINE": "django.db.backends.postgresql",
        "NAME": parsed.path.lstrip("/") or "test",
        "USER": parsed.username or "postgres",
        "PASSWORD": parsed.password or "",
        "HOST": parsed.hostname or "127.0.0.1",
        "PORT": str(parsed.port or 5432),
        "CONN_MAX_AGE": 0,
        "OPTIONS": options,
    }


DATABASES = {"default": _database()}

# Offloaded uploads and large results go to the default storage: a throw-away folder.
MEDIA_ROOT = tempfile.mkdtemp(prefix="asyncjobs-test-media-")

# Never 6379: conftest starts a private server and sets ASYNCJOBS_TEST_REDIS_URL.
# Port 1 refuses connections, so code that runs before conftest cannot reach a real server.
REDIS_URL = os.environ.get("ASYNCJOBS_TEST_REDIS_URL", "redis://127.0.0.1:1/0")
RQ_QUEUES: dict[str, dict[str, object]] = {
    "default": {"URL": REDIS_URL},
    "high": {"URL": REDIS_URL},
    "low": {"URL": REDIS_URL},
}
# Worker subprocesses of tests/test_sentinel.py reach Redis through Sentinels ("host:port,...").
if os.environ.get("ASYNCJOBS_TEST_SENTINELS"):
    _ADDRESSES = [item.rsplit(":", 1) for item in os.environ["ASYNCJOBS_TEST_SENTINELS"].split(",")]
    _SENTINELS = [(host, int(port)) for host, port in _ADDRESSES]
    _MASTER = os.environ["ASYNCJOBS_TEST_SENTINEL_MASTER"]
    RQ_QUEUES = {name: {"SENTINELS": _SENTINELS, "MASTER_NAME": _MASTER, "DB": 0} for name in RQ_QUEUES}

# Django's Tasks framework (Django 6.0+): tests/test_django_tasks*.py. Left out on older
# versions, where asyncjobs.E013 would report the entry.
if importlib.util.find_spec("django.tasks") is not None:
    TASKS = {
        "default": {
            "BACKEND": "django_asyncjobs.backends.AsyncJobsBackend",
            "QUEUES": ["default", "high", "low"],
        },
        "retrying": {
            "BACKEND": "django_asyncjobs.backends.AsyncJobsBackend",
            "QUEUES": ["default"],
            "OPTIONS": {"MAX_ATTEMPTS": 3, "RETRY_BACKOFF": 0},
        },
        "dummy": {"BACKEND": "django.tasks.backends.dummy.DummyBackend", "QUEUES": []},
    }

ASYNCJOBS = {
    "RETRY_BACKOFF": 0,
    # The suite runs with prefetch on (the default is 1); tests of the default set 1 themselves.
    "WORKER_PREFETCH": 20,
    "WORKER_BATCH_HOLD": float(os.environ.get("ASYNCJOBS_TEST_BATCH_HOLD", "0.25")),
    "PROGRESS_INTERVAL": 0.2,
    # Worker subprocesses of the recovery tests beat faster than the default 10 s.
    "HEARTBEAT_INTERVAL": float(os.environ.get("ASYNCJOBS_TEST_HEARTBEAT_INTERVAL", "10")),
    "HEARTBEAT_TIMEOUT": float(os.environ.get("ASYNCJOBS_TEST_HEARTBEAT_TIMEOUT", "60")),
}

# Test hook (tests/test_clock_skew.py): this process runs on a host whose clock is off by
# ASYNCJOBS_TEST_CLOCK_OFFSET seconds, as far as django.utils.timezone.now() tells. The
# database and its clock are left alone.
_CLOCK_OFFSET = float(os.environ.get("ASYNCJOBS_TEST_CLOCK_OFFSET", "0"))
if _CLOCK_OFFSET:
    from datetime import datetime, timedelta

    from django.utils import timezone as _timezone

    _real_now = _timezone.now

    def _offset_now() -> datetime:
        return _real_now() + timedelta(seconds=_CLOCK_OFFSET)

    _timezone.now = _offset_now

LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {
        "null": {"class": "logging.NullHandler"},
        # A worker subprocess's warnings on stderr, one line each (as Python's last resort would
        # print them), not its INFO line per job, which would fill the pipe a test reads at the end.
        "warnings": {"class": "logging.StreamHandler", "level": "WARNING"},
    },
    "loggers": {
        "rq.worker": {"handlers": ["null"], "propagate": True, "level": "WARNING"},
        "django_asyncjobs": {"handlers": ["warnings"], "propagate": True},
    },
}
if os.environ.get("ASYNCJOBS_TEST_BARE_LOGGING") == "1":  # a project whose LOGGING leaves our loggers alone
    del LOGGING["loggers"]["django_asyncjobs"]
