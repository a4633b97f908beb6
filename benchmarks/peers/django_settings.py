"""Django settings of the Django peers (``ASYNCJOBS_PEERS_DJANGO``: ``django_q`` or ``django_tasks_db``).

django-tasks-db keeps its tasks in PostgreSQL (``ASYNCJOBS_PEERS_DB_URL``); django-q2 uses the
private Redis as its broker and a SQLite file (``ASYNCJOBS_PEERS_SQLITE``) for its results.
"""

from __future__ import annotations

import os
from importlib.util import find_spec
from urllib.parse import urlparse

from benchmarks.peers.marks import redis_url

SECRET_KEY = "benchmarks-only-not-secret"
DEBUG = False
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
PEER = os.environ.get("ASYNCJOBS_PEERS_DJANGO", "django_q")
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", PEER]

if PEER == "django_tasks_db":
    url = urlparse(os.environ.get("ASYNCJOBS_PEERS_DB_URL", "postgres://postgres@127.0.0.1:5432/asyncjobs_peers"))
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": url.path.lstrip("/"),
            "USER": url.username or "postgres",
            "PASSWORD": url.password or "",
            "HOST": url.hostname or "127.0.0.1",
            "PORT": str(url.port or 5432),
            "CONN_MAX_AGE": None,
        }
    }
    # Django 6 has django.tasks; on 5.2 the django-tasks backport provides it.
    if not find_spec("django.tasks"):
        INSTALLED_APPS.append("django_tasks")
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("ASYNCJOBS_PEERS_SQLITE", "asyncjobs-peers.sqlite3"),
            "OPTIONS": {"init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"},
        }
    }
    Q_CLUSTER = {"name": "asyncjobs-peers", "workers": 1, "redis": redis_url()}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {"django-q": {"level": "WARNING"}, "django_tasks": {"level": "WARNING"}},
}
