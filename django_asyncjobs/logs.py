"""The package's loggers, one per area, and the one shape of their lines.

Every line is a short event word, then ``key=value`` fields::

    job.succeeded job=5b0c… name=reports.build queue=default attempt=1 duration_ms=12.3

Values are written as they are when they hold only ASCII letters, digits and ``_.,:/@+-``;
anything else is double-quoted with backslash escapes, so a newline, a quote or any
other control or line-separator character in a value (an argument, an error message,
a schedule name: text that comes from jobs and users) cannot start a line of its own
or fake a field. Long values are cut. The same fields go to ``extra=`` unchanged, for
structured handlers (``name`` as ``job_name``: ``LogRecord`` has a ``name`` of its own);
:class:`JSONFormatter` writes a record and those fields as one JSON object.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, date, datetime, time
from typing import Any

#: The root of all of them: configure this one to see everything.
ROOT = "django_asyncjobs"

#: A job's life, in whichever process it happens: enqueued, refused, started, succeeded, retrying,
#: failed, put back, cancelled, lost.
jobs_logger = logging.getLogger(f"{ROOT}.jobs")
#: The worker process: messages it cannot use, its connections, heartbeats, its supervisor.
worker_logger = logging.getLogger(f"{ROOT}.worker")
#: Enqueueing: pushes to Redis that failed, the back-pressure estimate.
enqueue_logger = logging.getLogger(f"{ROOT}.enqueue")
#: The scheduler loop and firing schedules (declared in code or in the admin).
scheduler_logger = logging.getLogger(f"{ROOT}.scheduler")
#: Recovery: pushing lost messages again, jobs of dead workers.
recovery_logger = logging.getLogger(f"{ROOT}.recovery")
#: Pruning finished jobs.
pruning_logger = logging.getLogger(f"{ROOT}.pruning")
#: Aggregation windows.
aggregation_logger = logging.getLogger(f"{ROOT}.aggregation")
#: The django.tasks backend.
tasks_logger = logging.getLogger(f"{ROOT}.tasks")
#: Receivers of the job signals that raised.
signals_logger = logging.getLogger(f"{ROOT}.signals")
#: The Prometheus metrics: counts not written, queues not read at a scrape.
metrics_logger = logging.getLogger(f"{ROOT}.metrics")
#: Redis through Sentinel: a client finding the master changed.
broker_logger = logging.getLogger(f"{ROOT}.broker")

#: Longest value written in a line; longer ones are cut and say how long they were.
MAX_VALUE_CHARS = 200

_PLAIN = re.compile(r"[\w.,:/@+\-]+", re.ASCII)
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def log_event(logger: logging.Logger, level: int, event: str, /, *, exc_info: Any = None, **fields: Any) -> None:
    """Log ``event`` with ``fields`` (``None`` values left out) as one escaped line."""
    if not logger.isEnabledFor(level):
        return
    present = {key: value for key, value in fields.items() if value is not None}
    extra = {"event": event, **{_extra_key(key): value for key, value in present.items()}}
    logger.log(level, "%s", event_line(event, present), exc_info=exc_info, extra=extra)


def event_line(event: str, fields: dict[str, Any]) -> str:
    return " ".join([event, *(f"{key}={format_value(value)}" for key, value in fields.items())])


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float):
        text = f"{value:.1f}"
    elif isinstance(value, datetime):
        text = value.isoformat()
    elif isinstance(value, list | tuple):
        text = ",".join(str(item) for item in value)
    else:
        text = str(value)
    if len(text) > MAX_VALUE_CHARS:
        text = f"{text[:MAX_VALUE_CHARS]}...({len(text)} chars)"
    if _PLAIN.fullmatch(text):
        return text
    return '"' + "".join(_escaped(char) for char in text) + '"'


def _escaped(char: str) -> str:
    if char in _ESCAPES:
        return _ESCAPES[char]
    # Control characters, and what str.splitlines() (and many log viewers) also break at.
    if char.isprintable() and char not in "\x85\u2028\u2029":
        return char
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _extra_key(key: str) -> str:
    return f"job_{key}" if key in _RECORD_ATTRIBUTES else key


def duration_ms(started_at: datetime | None, finished_at: datetime | None) -> float | None:
    """Milliseconds from ``started_at`` to ``finished_at``; ``None`` if either is missing."""
    if started_at is None or finished_at is None:
        return None
    return max(0.0, (finished_at - started_at).total_seconds() * 1000)


def last_line(text: str) -> str:
    """The last non-empty line of ``text`` (of a traceback: the exception and its message)."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def job_fields(job: Any) -> dict[str, Any]:
    """The fields that name a job in every line about it: id, name, queue, attempt."""
    return {"job": job.pk, "name": job.name, "queue": job.queue, "attempt": job.attempts}


def attempt_fields(job: Any, *, ended: bool = True) -> dict[str, Any]:
    """:func:`job_fields` and the attempt's ``worker`` and ``wait_ms`` (from due to started); if
    ``ended``, its ``duration_ms`` (from started to finished)."""
    fields = {**job_fields(job), "worker": job.worker or None, "wait_ms": wait_ms(job)}
    if ended:
        fields["duration_ms"] = duration_ms(job.started_at, job.finished_at)
    return fields


def wait_ms(job: Any) -> float | None:
    """Milliseconds the attempt waited to start: from ``run_at`` (a delayed job, a retry after a
    backoff) or else ``enqueued_at``, to ``started_at``."""
    return duration_ms(job.run_at or job.enqueued_at, job.started_at)


class JSONFormatter(logging.Formatter):
    """One JSON object per record, on one line: ``time`` (UTC, ISO 8601), ``level``, ``logger``,
    ``message``, then every field given in ``extra=`` (for this package's records: ``event`` and
    its fields), and ``exc_info``/``stack_info`` as text when present. UUIDs, times and any other
    value JSON has no type for are written as text. Works for any logger's records, e.g. as the
    formatter of a handler of the root logger::

        "formatters": {"json": {"()": "django_asyncjobs.logs.JSONFormatter"}}
    """

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_"):
                data.setdefault(key, value)
        if record.exc_info:
            data["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            data["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(data, default=_as_json)


def _as_json(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return list(value)
    try:
        return str(value)
    except Exception:  # noqa: BLE001 - a value that cannot say what it is must not lose the record
        return f"<{type(value).__qualname__}>"
