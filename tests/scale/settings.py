"""Django settings of the harness's processes: DATABASE_URL and REDIS_URL point at the
services namespace; ASYNCJOBS_SCALE_HOSTS names the hosts (each has its own queue too)."""

from __future__ import annotations

import os
from urllib.parse import urlparse

SECRET_KEY = "scale-harness-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django_rq",
    "django_asyncjobs",
    "tests.scale",
]

_db = urlparse(os.environ["DATABASE_URL"])
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _db.path.lstrip("/"),
        "USER": _db.username or "postgres",
        "HOST": _db.hostname,
        "PORT": str(_db.port or 5432),
        "OPTIONS": {"application_name": os.environ.get("ASYNCJOBS_SCALE_HOST", "harness")},
    }
}

REDIS_URL = os.environ["REDIS_URL"]
HOSTS = [name for name in os.environ.get("ASYNCJOBS_SCALE_HOSTS", "").split(",") if name]
RQ_QUEUES = {name: {"URL": REDIS_URL} for name in ["default", *HOSTS]}

# Recovery timing: the harness passes its --heartbeat-* / --recovery-* options.
ASYNCJOBS = {
    "HEARTBEAT_INTERVAL": float(os.environ.get("ASYNCJOBS_SCALE_HEARTBEAT_INTERVAL", "10")),
    "HEARTBEAT_TIMEOUT": float(os.environ.get("ASYNCJOBS_SCALE_HEARTBEAT_TIMEOUT", "60")),
    "RECOVERY_INTERVAL": float(os.environ.get("ASYNCJOBS_SCALE_RECOVERY_INTERVAL", "30")),
    "RECOVERY_GRACE": float(os.environ.get("ASYNCJOBS_SCALE_RECOVERY_GRACE", "60")),
}

# Each line: wall-clock time (shared by every namespace), level, event. The harness counts the
# WARNING and above; the INFO lines (claims not taken, batches released) are there to read a
# failed run's timeline by (``--keep``).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"timed": {"format": "%(created).3f %(levelname)s %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "timed"}},
    "root": {"handlers": ["stderr"], "level": "WARNING"},
    "loggers": {"rq.worker": {"level": "WARNING"}, "django_asyncjobs": {"level": "INFO"}},
}
