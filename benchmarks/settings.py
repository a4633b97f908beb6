"""Django settings for the benchmarks, selected with ``DJANGO_SETTINGS_MODULE=benchmarks.settings``.

Everything that differs between runs comes from environment variables set by
``benchmarks/bench_core.py`` and ``benchmarks/bench_web.py`` (which pass them on to
the worker and web server subprocesses they start):

- ``ASYNCJOBS_BENCH_REDIS_URL``: the private Redis server the run started (never 6379).
- ``ASYNCJOBS_BENCH_DB``: ``sqlite`` or ``postgres``.
- ``ASYNCJOBS_BENCH_SQLITE``: path of the SQLite file (a temp dir).
- ``ASYNCJOBS_BENCH_SQLITE_CONN_MAX_AGE``: ``0`` (Django's default) or ``none`` (persistent connections).
- ``ASYNCJOBS_BENCH_POSTGRES_URL``: ``postgres://user@host:port/dbname`` of the dedicated database.

The queues ``web`` and ``busy``, the views in ``benchmarks/benchapp/views.py`` and the
middleware stacks other than ``MIDDLEWARE`` (see ``benchmarks/wsgi.py``) are used by
``bench_web.py`` only; ``bench_core.py`` uses the ``default`` queue, which has no
limit, so the back-pressure settings below cost it nothing.
"""

from __future__ import annotations

import os
from urllib.parse import urlparse

SECRET_KEY = "benchmarks-only-not-secret"
DEBUG = False  # DEBUG=True would record every SQL query in memory.
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
ROOT_URLCONF = "benchmarks.urls"
WSGI_APPLICATION = "benchmarks.wsgi.application"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django_rq",
    "django_asyncjobs",
    "benchmarks.benchapp",
]


def _conn_max_age(value: str) -> int | None:
    return None if value.lower() == "none" else int(value)


def _database() -> dict[str, object]:
    engine = os.environ.get("ASYNCJOBS_BENCH_DB", "sqlite")
    if engine == "sqlite":
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("ASYNCJOBS_BENCH_SQLITE", "asyncjobs-bench.sqlite3"),
            "OPTIONS": {"init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"},
            "CONN_MAX_AGE": _conn_max_age(os.environ.get("ASYNCJOBS_BENCH_SQLITE_CONN_MAX_AGE", "0")),
        }
    if engine == "postgres":
        url = urlparse(
            os.environ.get("ASYNCJOBS_BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/asyncjobs_bench")
        )
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": url.path.lstrip("/") or "asyncjobs_bench",
            "USER": url.username or "postgres",
            "PASSWORD": url.password or "",
            "HOST": url.hostname or "127.0.0.1",
            "PORT": str(url.port or 5432),
            "CONN_MAX_AGE": None,
        }
    raise ValueError(f"ASYNCJOBS_BENCH_DB must be 'sqlite' or 'postgres', got {engine!r}")


DATABASES = {"default": _database()}

# Port 1 refuses connections: without the variable nothing can reach a real server by accident.
REDIS_URL = os.environ.get("ASYNCJOBS_BENCH_REDIS_URL", "redis://127.0.0.1:1/0")
RQ_QUEUES = {"default": {"URL": REDIS_URL}, "web": {"URL": REDIS_URL}, "busy": {"URL": REDIS_URL}}
# bench_scale.py: jobs spread over four queues that every worker serves.
RQ_QUEUES.update({f"scale-{i}": {"URL": REDIS_URL} for i in range(4)})

ASYNCJOBS = {
    "DEFAULT_QUEUE": "default",
    # bench_web.py: "web" has a limit it never reaches, "busy" one it always exceeds (it holds 2 messages).
    "QUEUE_LIMITS": {"web": {"MAX_DEPTH": 1_000_000, "MAX_AGE": 3600}, "busy": {"MAX_DEPTH": 1}},
    # Guarded paths that the benchmark's views do not match: what every other request pays for them.
    "BACKPRESSURE_PATHS": {r"^/api/import/": "web", r"^/uploads/": "web"},
}

# A small, common stack. Signed-cookie sessions: an anonymous request costs no query for them.
BASE_MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
BACKPRESSURE_MIDDLEWARE = [*BASE_MIDDLEWARE, "django_asyncjobs.middleware.BackpressureMiddleware"]
# The same place in the stack, a middleware of the same kind that does nothing.
CONTROL_MIDDLEWARE = [*BASE_MIDDLEWARE, "benchmarks.benchapp.middleware.NullViewMiddleware"]
MIDDLEWARE = BASE_MIDDLEWARE
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"null": {"class": "logging.NullHandler"}},
    "loggers": {
        "rq.worker": {"handlers": ["null"], "propagate": False, "level": "WARNING"},
        # runserver logs every request; bench_web.py's web servers should spend no time on that.
        "django.server": {"handlers": ["null"], "propagate": False, "level": "WARNING"},
        "django_asyncjobs": {"level": "WARNING"},
    },
}
