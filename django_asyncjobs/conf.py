"""Settings for django-asyncjobs: one ``ASYNCJOBS`` dict over documented defaults.

Values are read on every access, never at import time, so ``override_settings``
works in tests.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # Queue used when @job() does not name one. Must be a key of RQ_QUEUES.
    "DEFAULT_QUEUE": "default",
    # Attempts per job (1 = no retry) and per-attempt time limit in seconds.
    "MAX_ATTEMPTS": 1,
    "TIMEOUT": 300,
    # Retry delay: RETRY_BACKOFF * 2 ** (attempt - 1), capped at RETRY_BACKOFF_MAX,
    # with "full jitter" (uniform between 0 and that) when RETRY_JITTER is true.
    "RETRY_BACKOFF": 10.0,
    "RETRY_BACKOFF_MAX": 3600.0,
    "RETRY_JITTER": True,
    # Minimum seconds between two progress writes of one job.
    "PROGRESS_INTERVAL": 0.5,
    # When Redis cannot be reached at enqueue time the row is kept as queued and
    # recovery pushes it later. STRICT_ENQUEUE=True raises EnqueueError instead.
    "STRICT_ENQUEUE": False,
    # Seconds the RQ message (the "doorbell") may wait in Redis before it expires.
    "MESSAGE_TTL": 7 * 24 * 3600,
    # How often (seconds) a worker moves due delayed jobs and retries onto queues.
    "SCHEDULE_POLL_INTERVAL": 1.0,
    # Back pressure, per queue: {"default": {"MAX_DEPTH": 1000, "MAX_AGE": 60}}. A queue
    # without an entry has no limit. See docs/backpressure.md.
    "QUEUE_LIMITS": {},
    # Seconds a process reuses a queue's depth and throughput before asking Redis again.
    "BACKPRESSURE_CACHE_SECONDS": 1.0,
    # Bounds of the Retry-After delay (seconds) derived from depth / throughput.
    "RETRY_AFTER_MIN": 1,
    "RETRY_AFTER_MAX": 300,
    # Extra URL path regexes the BackpressureMiddleware guards, mapped to a queue name.
    "BACKPRESSURE_PATHS": {},
    # @offload: request headers (META keys) carried to the worker, the largest request
    # body plus uploads it accepts (bytes, else 413), the storage (a STORAGES alias)
    # for uploads and large responses, and the largest response kept inline in the row.
    "OFFLOAD_HEADERS": (
        "CONTENT_TYPE",
        "HTTP_ACCEPT",
        "HTTP_ACCEPT_LANGUAGE",
        "HTTP_USER_AGENT",
        "HTTP_REFERER",
        "HTTP_X_REQUESTED_WITH",
        "REMOTE_ADDR",
    ),
    "OFFLOAD_MAX_UPLOAD_SIZE": 10 * 1024 * 1024,
    "OFFLOAD_STORAGE": "default",
    "OFFLOAD_INLINE_RESPONSE_SIZE": 256 * 1024,
    # Modules imported from every installed app so that their @job functions register.
    "AUTODISCOVER": ("jobs", "tasks"),
    # Schedules declared in settings: {"name": {"job": "app.jobs.f", "cron": "0 * * * *"}}
    # (or "interval": "5m"); see docs/scheduling.md. Synced into the Schedule table.
    "SCHEDULES": {},
    # Time zone of cron expressions (a schedule may set its own); None = settings.TIME_ZONE.
    "SCHEDULE_TIMEZONE": None,
    # A run more than this many seconds late is "missed": skipped, or run once ("catch_up").
    "MISFIRE_GRACE": 60.0,
    # Seconds between two recovery passes of the scheduler.
    "RECOVERY_INTERVAL": 30.0,
    # A queued job whose message is not in Redis is pushed again once it is this old (seconds).
    "RECOVERY_GRACE": 60.0,
    # A worker writes the running job's heartbeat this often (seconds); a running job whose
    # heartbeat is older than HEARTBEAT_TIMEOUT is taken as lost by recovery.
    "HEARTBEAT_INTERVAL": 10.0,
    "HEARTBEAT_TIMEOUT": 60.0,
    # A job whose code a worker lacks (a rolling deploy) is put back for another worker; it
    # fails once this many seconds have passed since the first put-back (0: at once).
    "UNKNOWN_JOB_TIMEOUT": 3600.0,
    # At most this many missed windows per aggregation are caught up by the scheduler.
    "AGGREGATION_MAX_CATCH_UP": 100,
    # Job statistics rollups older than this (seconds, or "7d") are deleted.
    "STATS_RETENTION": "7d",
}


class AppSettings:
    """Lazy view of ``settings.ASYNCJOBS`` merged over :data:`DEFAULTS`."""

    def user_settings(self) -> dict[str, Any]:
        value = getattr(settings, "ASYNCJOBS", {})
        return value if isinstance(value, dict) else {}

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"Unknown django-asyncjobs setting {name!r}")
        return self.user_settings().get(name, DEFAULTS[name])

    @property
    def rq_queues(self) -> dict[str, dict[str, Any]]:
        value = getattr(settings, "RQ_QUEUES", None)
        return value if isinstance(value, dict) else {}


app_settings = AppSettings()
