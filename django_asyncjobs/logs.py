"""The package's loggers, one per area, and the one shape of their lines.

Every line is a short event word, then ``key=value`` fields::

    job.succeeded job=5b0c… name=reports.build queue=default attempt=1 duration_ms=12.3

Values are written as they are when they hold only ASCII letters, digits and ``_.,:/@+-``;
anything else is double-quoted with backslash escapes, so a newline, a quote or any
other control or line-separator character in a value (an argument, an error message,
a schedule name: text that comes from jobs and users) cannot start a line of its own
or fake a field. Long values are cut. The same fields go to ``extra=`` unchanged, for
structured handlers (``name`` as ``job_name``: ``LogRecord`` has a ``name`` of its own).
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Any

#: The root of all of them: configure this one to see everything.
ROOT = "django_asyncjobs"

#: A job's outcome, in whichever process records it: succeeded, retrying, failed, put back.
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
