"""Settings of the example project: a small social site built on django-asyncjobs.

Environment variables:

- ``REDIS_URL``: the Redis server of every queue (default ``redis://127.0.0.1:6379/0``).
- ``DEMO_DB_PATH``: the SQLite file (default ``db.sqlite3`` next to ``manage.py``).
- ``DEMO_SLOW_SECONDS``: the pause per step of the slow views (export, fan-out batches, flood).
- ``DEMO_TRENDING_EVERY``: the window of the trending-hashtags aggregation (default ``5m``; the
  demo's test uses a few seconds so that it sees a window close).
"""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-project-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["*"] if DEBUG else ["localhost", "127.0.0.1"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_rq",
    "django_asyncjobs",
    "social",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_asyncjobs.middleware.BackpressureMiddleware",
]

ROOT_URLCONF = "demo_site.urls"
WSGI_APPLICATION = "demo_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DEMO_DB_PATH", str(BASE_DIR / "db.sqlite3")),
        # Workers and the web process share the file: wait for locks instead of failing at once.
        # IMMEDIATE: a transaction takes the write lock when it begins, so one that reads first
        # (the atomic fan-out) waits for it there rather than failing at its first write.
        "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
    }
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"

STATIC_URL = "/static/"
MEDIA_ROOT = BASE_DIR / "media"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

RQ_QUEUES = {
    "default": {"URL": REDIS_URL},  # aggregations
    "fanout": {"URL": REDIS_URL},  # posting a tweet: fan-out to the followers' timelines
    "reports": {"URL": REDIS_URL},  # the CSV export
    "flood": {"URL": REDIS_URL},  # the back-pressure demo: a deliberately small queue
}

ASYNCJOBS = {
    "QUEUE_LIMITS": {
        "flood": {"MAX_DEPTH": 5},
        "reports": {"MAX_DEPTH": 50},
    },
    # Keep the demo lively: without measured throughput Retry-After would be 300 s.
    "RETRY_AFTER_MAX": 15,
    "PROGRESS_INTERVAL": 0.2,
    # Strict limits for the flood demo: every check reads the queue (one Redis round trip).
    "BACKPRESSURE_CACHE_SECONDS": 0,
    # /metrics/ for a scraper: demo.py makes a token per run and prints it.
    "METRICS_TOKEN": os.environ.get("DEMO_METRICS_TOKEN") or None,
}

# Pause per step in the deliberately slow parts, so that progress bars have something to show.
DEMO_SLOW_SECONDS = float(os.environ.get("DEMO_SLOW_SECONDS", "0.2"))
# Trending hashtags are counted per window of this length; the home page sums the last hour.
DEMO_TRENDING_EVERY = os.environ.get("DEMO_TRENDING_EVERY", "5m")

# One line per job event (docs/logging.md); DEMO_JSON_LOGS=1 writes them as JSON lines instead.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "django_asyncjobs.logs.JSONFormatter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            **({"formatter": "json"} if os.environ.get("DEMO_JSON_LOGS") == "1" else {}),
        }
    },
    "loggers": {"django_asyncjobs": {"handlers": ["console"], "level": "INFO"}},
}
