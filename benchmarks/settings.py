"""Django settings for the benchmarks, selected with ``DJANGO_SETTINGS_MODULE=benchmarks.settings``.

Everything that differs between runs comes from environment variables set by
``benchmarks/bench_core.py`` (which also passes them to the worker subprocess):

- ``ASYNCJOBS_BENCH_REDIS_URL``: the private Redis server the run started (never 6379).
- ``ASYNCJOBS_BENCH_DB``: ``sqlite`` or ``postgres``.
- ``ASYNCJOBS_BENCH_SQLITE``: path of the SQLite file (a temp dir).
- ``ASYNCJOBS_BENCH_SQLITE_CONN_MAX_AGE``: ``0`` (Django's default) or ``none`` (persistent connections).
- ``ASYNCJOBS_BENCH_POSTGRES_URL``: ``postgres://user@host:port/dbname`` of the dedicated database.
"""

from __future__ import annotations

import os
from urllib.parse import urlparse

SECRET_KEY = "benchmarks-only-not-secret"
DEBUG = False  # DEBUG=True would record every SQL query in memory.
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

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
RQ_QUEUES = {"default": {"URL": REDIS_URL}}

ASYNCJOBS = {"DEFAULT_QUEUE": "default"}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"null": {"class": "logging.NullHandler"}},
    "loggers": {
        "rq.worker": {"handlers": ["null"], "propagate": False, "level": "WARNING"},
        "django_asyncjobs": {"level": "WARNING"},
    },
}
