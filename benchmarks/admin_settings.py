"""Django settings for ``benchmarks/bench_admin.py``: ``benchmarks.settings`` plus the admin.

Selected with ``DJANGO_SETTINGS_MODULE=benchmarks.admin_settings`` (``bench_admin.py`` sets it
for its child processes). The database and the private Redis come from the same environment
variables as ``benchmarks/settings.py``; what is added here is what a site with the admin has:
the admin, sessions in the database, messages, CSRF, templates and static files, and a few
more queues and registered jobs (``benchmarks/benchapp/admin_jobs.py``) so that the seeded rows
look like those of a real site. ``bench_core.py`` and ``bench_web.py`` do not use this module.
"""

from __future__ import annotations

from benchmarks.settings import *  # noqa: F403
from benchmarks.settings import INSTALLED_APPS as BASE_APPS
from benchmarks.settings import REDIS_URL

ROOT_URLCONF = "benchmarks.admin_urls"
DEBUG = False  # queries are captured with CaptureQueriesContext, only in the untimed runs

INSTALLED_APPS = [
    "django.contrib.admin",
    *BASE_APPS,
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
]

# Django's default project template (startproject), minus nothing.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
SESSION_ENGINE = "django.contrib.sessions.backends.db"  # Django's default: one query per request
STATIC_URL = "/static/"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,  # Django's default loaders; with DEBUG=False they are cached
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

#: The queues of the seeded rows (weights in bench_admin.py); all on the private Redis.
ADMIN_BENCH_QUEUES = ("default", "high", "low", "emails", "reports")
RQ_QUEUES = {name: {"URL": REDIS_URL} for name in ADMIN_BENCH_QUEUES}

ASYNCJOBS = {
    "DEFAULT_QUEUE": "default",
    # jobs.py of benchapp (noop, latency_probe) and admin_jobs.py (the seeded job names).
    "AUTODISCOVER": ("jobs", "admin_jobs"),
}
