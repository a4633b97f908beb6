"""Settings for django-asyncjobs, declared once: every key of the ``ASYNCJOBS`` dict with its
type, default, rule and documentation, as a typed attribute of :data:`app_settings`.

``app_settings.MAX_ATTEMPTS`` is an ``int``, ``app_settings.QUEUE_LIMITS`` a mapping of
:class:`QueueLimits`: call sites need no conversion. Values are read from
``settings.ASYNCJOBS`` on first use, never at import time, and kept until Django's
``setting_changed`` says ``ASYNCJOBS`` (or ``RQ_QUEUES``) changed, so ``override_settings``
works. The same declaration gives ``manage.py check`` its rules (:mod:`.checks`) and
docs/settings.md its table (``python -m django_asyncjobs.conf --write docs/settings.md``, written
by :mod:`.settings_reference`).

Foundation layer: imports only :mod:`.validators` (and through it :mod:`.times.durations`, :mod:`.times.rates`).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, Generic, TypedDict, TypeVar, cast, overload

from django.conf import settings
from django.core.signals import setting_changed

from . import validators as rules

T = TypeVar("T")


class QueueLimits(TypedDict, total=False):
    """One entry of ``QUEUE_LIMITS`` (any key may be left out)."""

    MAX_DEPTH: int
    MAX_AGE: float
    RATE: str


class Setting(Generic[T]):
    """One ``ASYNCJOBS`` key: its default, the rule a value must follow, and its documentation
    (one paragraph, shown in docs/settings.md). Read on an :class:`AppSettings` it is the value."""

    name: str

    def __init__(self, default: T, rule: rules.Rule, doc: str, *, note: str = "") -> None:
        self.default = default
        self.rule = rule
        self.doc = doc
        self.note = note  # said after the default in the docs, e.g. "7 days"

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type) -> Setting[T]: ...
    @overload
    def __get__(self, instance: AppSettings, owner: type) -> T: ...
    def __get__(self, instance: AppSettings | None, owner: type) -> Setting[T] | T:
        if instance is None:
            return self
        return cast(T, instance.values()[self.name])

    def problem(self, value: object) -> str | None:
        """What is wrong with ``value`` for this key, or ``None``."""
        return self.rule.problem(value)


_OFFLOAD_HEADERS = (
    "CONTENT_TYPE",
    "HTTP_ACCEPT",
    "HTTP_ACCEPT_LANGUAGE",
    "HTTP_USER_AGENT",
    "HTTP_REFERER",
    "HTTP_X_REQUESTED_WITH",
    "REMOTE_ADDR",
)


class AppSettings:
    """``settings.ASYNCJOBS`` over the declared defaults; one typed attribute per key."""

    DEFAULT_QUEUE: Setting[str] = Setting(
        "default",
        rules.non_empty_string("a queue name (non-empty string)"),
        "Queue of jobs whose `@job()` names none, and of `asyncjobs_worker` without queue arguments. Must"
        " be a key of `RQ_QUEUES` (`asyncjobs.E005`).",
    )
    MAX_ATTEMPTS: Setting[int] = Setting(
        1,
        rules.count(),
        "Attempts per job when neither `@job(max_attempts=)` nor `enqueue(max_attempts=)` sets it. `1` means no retry.",
    )
    TIMEOUT: Setting[int] = Setting(
        300,
        rules.count("a whole number of seconds >= 1"),
        "Time limit of one attempt when `@job(timeout=)` does not set it. See [jobs.md](jobs.md#timeouts).",
    )
    RETRY_BACKOFF: Setting[float] = Setting(
        10.0,
        rules.number(unit="seconds"),
        "Base of the retry delay: `RETRY_BACKOFF * 2 ** (attempt - 1)`. `0` retries immediately.",
    )
    RETRY_BACKOFF_MAX: Setting[float] = Setting(
        3600.0,
        rules.number(unit="seconds"),
        "Cap of one retry delay.",
    )
    RETRY_JITTER: Setting[bool] = Setting(
        True,
        rules.boolean(),
        '"Full jitter": the delay is drawn uniformly between 0 and the capped backoff. See [jobs.md](jobs.md#retries).',
    )
    PROGRESS_INTERVAL: Setting[float] = Setting(
        0.5,
        rules.number(unit="seconds"),
        "Minimum time between two progress writes of one job; `0` writes every call. See "
        "[jobs.md](jobs.md#inside-a-job-current_job-and-progress).",
    )
    ATOMIC_WARN_AFTER: Setting[float | None] = Setting(
        30.0,
        rules.number_or_none(unit="seconds"),
        "An atomic job (`@job(atomic=True)`) that held its transaction longer than this is logged "
        "(`job.long_transaction`, WARNING); `None`: never. See [jobs.md](jobs.md#atomic-jobs).",
    )
    STRICT_ENQUEUE: Setting[bool] = Setting(
        False,
        rules.boolean(),
        "When Redis cannot be reached at enqueue time: `False` keeps the row `queued` and logs a warning;"
        " `True` raises `EnqueueError` (the row is kept either way). `enqueue(strict=...)` overrides it "
        "per call.",
    )
    MESSAGE_TTL: Setting[int] = Setting(
        7 * 24 * 3600,
        rules.count("a whole number of seconds >= 1"),
        "RQ `ttl` of a message: the time its RQ job hash may wait in Redis. After that Redis deletes the "
        "hash. A stock `rqworker` then skips the message. `asyncjobs_worker` only needs the id and still "
        "runs it.",
        note="7 days",
    )
    SCHEDULE_POLL_INTERVAL: Setting[float] = Setting(
        1.0,
        rules.number(unit="seconds", positive=True),
        "How often each `asyncjobs_worker` moves due delayed jobs and retries to `queued`, and the "
        "default time between two passes of `asyncjobs_scheduler`. Also the longest time an idle worker "
        "blocks waiting for Redis. An idle worker checks at most once a second, whatever the value.",
    )
    QUEUE_LIMITS: Setting[Mapping[str, QueueLimits]] = Setting(
        {},
        rules.queue_limits(),
        'Back-pressure limits per queue, e.g. `{"default": {"MAX_DEPTH": 1000, "MAX_AGE": 60}}`. A queue '
        "without an entry has no limit. Queue names must be keys of `RQ_QUEUES` (`asyncjobs.E007`). See "
        '[backpressure.md](backpressure.md#queue-limits). `"RATE": "100/m"` also bounds how many of the '
        "queue's jobs start per period, across all workers ([jobs.md](jobs.md#rate-limits)).",
    )
    BACKPRESSURE_CACHE_SECONDS: Setting[float] = Setting(
        1.0,
        rules.number(unit="seconds"),
        "How long each process reuses a queue's depth, age and throughput before it asks Redis again. A "
        "failed read (Redis unreachable) is remembered as long: checks let work through without trying "
        "again. `0` asks on every check. See [backpressure.md](backpressure.md#the-per-process-cache).",
    )
    RETRY_AFTER_MIN: Setting[float] = Setting(
        1,
        rules.number(unit="seconds"),
        "Lower bound of the `Retry-After` of 503 answers (the status endpoint also uses it, capped at 10 "
        "s). At most `RETRY_AFTER_MAX` (`asyncjobs.E008`).",
    )
    RETRY_AFTER_MAX: Setting[float] = Setting(
        300,
        rules.number(unit="seconds", positive=True),
        "Upper bound of `Retry-After`, and its value when the throughput of a queue is unknown. See "
        "[backpressure.md](backpressure.md#retry-after-from-littles-law).",
    )
    BACKPRESSURE_PATHS: Setting[Mapping[str, str]] = Setting(
        {},
        rules.path_patterns(),
        "Extra paths `BackpressureMiddleware` guards, for views that enqueue without `@offload`, e.g. "
        '`{r"^/imports/": "imports"}`. Matched with `re.search` on `request.path_info`. Queue names must '
        "be keys of `RQ_QUEUES` (`asyncjobs.E007`).",
    )
    OFFLOAD_HEADERS: Setting[Sequence[str]] = Setting(
        _OFFLOAD_HEADERS,
        rules.strings("a list of request.META keys, e.g. ['HTTP_ACCEPT']"),
        "Request headers carried to the worker for `@offload` views. They are stored in the `Job` row, so"
        " leave out secrets. Keep `CONTENT_TYPE` for non-form bodies. See "
        "[offload.md](offload.md#what-is-carried-to-the-worker).",
    )
    OFFLOAD_MAX_UPLOAD_SIZE: Setting[int] = Setting(
        10 * 1024 * 1024,
        rules.count("a whole number of bytes >= 1"),
        "Largest request body (declared `Content-Length`) and largest total of uploaded files an "
        "`@offload` view accepts. Larger requests get 413.",
        note="10 MiB",
    )
    OFFLOAD_STORAGE: Setting[str] = Setting(
        "default",
        rules.non_empty_string("an alias of STORAGES, e.g. 'default'"),
        "Where `@offload` keeps uploads until the view ran, and response bodies larger than "
        "`OFFLOAD_INLINE_RESPONSE_SIZE` (under random names, `asyncjobs/results/<random hex>/body`; not "
        "deleted yet). Web processes and workers must share it. Use a storage that is not served "
        "publicly. See [offload.md](offload.md#how-the-response-is-stored-and-served-back).",
    )
    OFFLOAD_INLINE_RESPONSE_SIZE: Setting[float] = Setting(
        256 * 1024,
        rules.number(unit="bytes"),
        "Largest body of an offloaded view's response stored in the `Job` row. Larger bodies go to "
        "`OFFLOAD_STORAGE`. `0` stores every non-empty body as a file.",
        note="256 KiB",
    )
    AUTODISCOVER: Setting[str | Sequence[str]] = Setting(
        ("jobs", "tasks"),
        rules.strings("a module name or a list of them, e.g. ['jobs', 'tasks']", one_string_allowed=True),
        "Module names imported from every installed app at start-up (`AppConfig.ready()`), so that their "
        "`@job` functions are registered in every process. `()` turns it off.",
    )
    SCHEDULES: Setting[Mapping[str, Mapping[str, object]]] = Setting(
        {},
        rules.mapping("a dict of schedule name to entry (checked by asyncjobs.E009)"),
        'Schedules declared in settings, e.g. `{"nightly-report": {"job": "reports.jobs.build", "cron": '
        '"0 3 * * *"}}`. Synced into the `Schedule` table when a scheduler starts. Entry keys: `job`, '
        "`cron` or `interval`, `args`, `kwargs`, `queue`, `timezone`, `misfire_policy`, `enabled`. "
        "Checked by `asyncjobs.E009`. See [scheduling.md](scheduling.md#schedules-declared-in-code).",
    )
    SCHEDULE_TIMEZONE: Setting[str | None] = Setting(
        None,
        rules.time_zone_or_none(),
        "Time zone of cron expressions whose schedule names none; `None` uses `TIME_ZONE`.",
    )
    MISFIRE_GRACE: Setting[float] = Setting(
        60.0,
        rules.number(unit="seconds"),
        "A run found more than this late (the scheduler was down, say) is *missed*: skipped, or run once "
        "with the `catch_up` policy. See [scheduling.md](scheduling.md#missed-runs).",
    )
    RECOVERY_INTERVAL: Setting[float] = Setting(
        30.0,
        rules.number(unit="seconds", positive=True),
        "Time between two recovery passes of a scheduler.",
    )
    RECOVERY_GRACE: Setting[float] = Setting(
        60.0,
        rules.number(unit="seconds"),
        "A `queued` job is checked for a lost message only once it has waited this long. See "
        "[recovery.md](recovery.md).",
    )
    HEARTBEAT_INTERVAL: Setting[float] = Setting(
        10.0,
        rules.number(unit="seconds", positive=True),
        "How often a worker writes the running job's `heartbeat_at`.",
    )
    HEARTBEAT_TIMEOUT: Setting[float] = Setting(
        60.0,
        rules.number(unit="seconds", positive=True),
        "A `running` job whose heartbeat is older than this is taken as lost with its worker, and retried"
        " or failed. At least three times `HEARTBEAT_INTERVAL` (`asyncjobs.E010`).",
    )
    WORKER_CONN_MAX_AGE: Setting[float | None] = Setting(
        None,
        rules.number_or_none(unit="seconds"),
        "Lifetime of a database connection in worker processes (the worker, its heartbeat, the "
        "scheduler), which ignore `CONN_MAX_AGE` (meant for requests). `None` keeps a connection until the "
        "process stops; it is checked between jobs and replaced when broken, and a transaction a job left "
        "open is rolled back. A number closes it once that many seconds old; `0` after every job. See "
        "[worker.md](worker.md#database-connections).",
    )
    WORKER_PREFETCH: Setting[int] = Setting(
        32,
        rules.count(),
        "Most jobs a worker pops (one Redis round trip, `LMPOP`/`BLMPOP`, Redis >= 7.0) and claims (one"
        " UPDATE) at once; their successes are then written in one transaction with the next claim. The"
        " batch is sized from recent run times to last about `WORKER_BATCH_WINDOW`, so slow jobs go one"
        " at a time; ids that wait behind a job running over 0.25 s are released for other workers. `1`"
        " turns batching off (and a threaded worker's claiming ahead): one claim and one outcome write per"
        " job. An older Redis gets 1. See"
        " [worker.md](worker.md#batches).",
    )
    WORKER_BATCH_WINDOW: Setting[float] = Setting(
        0.005,
        rules.number(unit="seconds"),
        "How long a batching worker (`WORKER_PREFETCH` > 1) may hold a finished job's success before it is"
        " written (with at most 64 waiting): the bound on how much later than the job's end its row says"
        " `succeeded`, and what a batch is sized to last. See [worker.md](worker.md#batches).",
    )
    WORKER_BATCH_HOLD: Setting[float] = Setting(
        0.25,
        rules.number(unit="seconds"),
        "How long jobs claimed in a batch may wait behind a job that runs long before the worker releases"
        " them (`queued` again, the attempt given back, their ids at the front of the queue) for other"
        " workers. See [worker.md](worker.md#batches).",
    )
    WORKER_THREADS: Setting[int] = Setting(
        1,
        rules.count(),
        "Jobs one worker process runs at once (`--threads`), each in a thread with its own database connection;"
        " `async def` ones on one event loop. `1`: one at a time. See [worker.md](worker.md#threads).",
    )
    WORKER_HEALTH_FILE: Setting[str | None] = Setting(
        None,
        rules.string_or_none("a file path (non-empty string)"),
        "A file the worker keeps touched while it is live and removes when it exits, for a liveness probe"
        " (`asyncjobs_health --file`); `asyncjobs_worker --health-file` overrides it. With `--concurrency N`"
        " each process has its own, `PATH-0` ... `PATH-<N-1>`. `None`: no file. See"
        " [worker.md](worker.md#health-file).",
    )
    UNKNOWN_JOB_TIMEOUT: Setting[float] = Setting(
        3600.0,
        rules.number(unit="seconds"),
        "A worker that meets a job whose code it does not have (an old worker during a rolling deploy) "
        "puts it back for another worker, `scheduled` a few seconds later (5 s, doubled per put-back up "
        "to 60 s), without using up an attempt; the put-backs are counted in one `failed_attempts` entry."
        " Once this long has passed since the first put-back, the next worker without the code fails the "
        "job with `JobNotRegistered`. `0` fails it at once. See "
        "[worker.md](worker.md#jobs-this-worker-has-no-code-for).",
    )
    OPENTELEMETRY: Setting[bool | str] = Setting(
        False,
        rules.boolean_or("auto"),
        "OpenTelemetry spans around each enqueue call and each attempt, linked through the trace context"
        " stored on the job's row, so a trace goes from the web request to the job (needs the `otel`"
        ' extra, `opentelemetry-api`: `asyncjobs.E015`). `"auto"`: on when `opentelemetry-api` is'
        " installed. See [tracing.md](tracing.md).",
    )
    AGGREGATION_MAX_CATCH_UP: Setting[int] = Setting(
        100,
        rules.count(),
        "Most windows of one aggregation a scheduler starts in one pass after a gap; older missed windows"
        " are left for `asyncjobs_aggregate` to backfill. See [aggregation.md](aggregation.md).",
    )
    STATS_RETENTION: Setting[str | float | timedelta] = Setting(
        "7d",
        rules.duration(),
        "Job statistics rollups, and aggregation window records (the latest window of each aggregation is"
        " kept), older than this are deleted. See [aggregation.md](aggregation.md).",
    )

    METRICS_TOKEN: Setting[str | None] = Setting(
        None,
        rules.secret_or_none(min_length=16),
        "A bearer token that lets a scraper read the Prometheus metrics view (`Authorization: Bearer "
        "<token>`, compared in constant time). `None`: no token is accepted. See "
        "[monitoring.md](monitoring.md#protecting-the-endpoint).",
    )
    METRICS_ALLOWED_IPS: Setting[Sequence[str]] = Setting(
        (),
        rules.ip_networks(),
        "Addresses or networks (`REMOTE_ADDR`) allowed to read the metrics view without logging in or a"
        ' token, e.g. `["10.0.0.0/8"]`. Behind a proxy `REMOTE_ADDR` is the proxy\'s. Otherwise only users '
        "with the `view_dashboard` permission may read it. See [monitoring.md](monitoring.md#protecting-the-endpoint).",
    )

    def __init__(self) -> None:
        self._values: dict[str, Any] | None = None
        self._rq_queues: dict[str, dict[str, Any]] | None = None

    @classmethod
    def declared(cls) -> dict[str, Setting[Any]]:
        """Every key, in declaration order."""
        return {name: value for name, value in vars(cls).items() if isinstance(value, Setting)}

    def values(self) -> dict[str, Any]:
        """Every key's value: the user's where ``ASYNCJOBS`` sets it, else the default."""
        values = self._values
        if values is None:
            user = user_settings()
            values = self._values = {name: user.get(name, key.default) for name, key in SETTINGS.items()}
        return values

    @property
    def rq_queues(self) -> dict[str, dict[str, Any]]:
        """django-rq's ``RQ_QUEUES`` (empty when missing or not a dict)."""
        queues = self._rq_queues
        if queues is None:
            value = getattr(settings, "RQ_QUEUES", None)
            queues = self._rq_queues = value if isinstance(value, dict) else {}
        return queues

    def reset(self) -> None:
        """Forget the values read: the next access reads the settings again."""
        self._values = None
        self._rq_queues = None


def user_settings() -> dict[str, Any]:
    """``settings.ASYNCJOBS`` as the user wrote it (empty when missing or not a dict: E003)."""
    value = getattr(settings, "ASYNCJOBS", {})
    return value if isinstance(value, dict) else {}


SETTINGS: dict[str, Setting[Any]] = AppSettings.declared()
DEFAULTS: dict[str, Any] = {name: key.default for name, key in SETTINGS.items()}
app_settings = AppSettings()


def _reset(setting: str, **kwargs: Any) -> None:
    if setting in ("ASYNCJOBS", "RQ_QUEUES"):
        app_settings.reset()


setting_changed.connect(_reset, dispatch_uid="django_asyncjobs.conf.reset")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m django_asyncjobs.conf [--write docs/settings.md]``: see :mod:`.settings_reference`."""
    from .settings_reference import main as reference_main  # lazy: the reference reads this module's declaration

    return reference_main(argv)


if __name__ == "__main__":
    sys.exit(main())
