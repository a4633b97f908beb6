"""OpenTelemetry spans (the ``otel`` extra): one around each enqueue call, in the caller's trace,
and one around each attempt on the worker, a child of the enqueue's.

The enqueue span's context is written on every row the call creates (``Job.trace_context``,
by the configured propagators: W3C ``traceparent``, and ``tracestate``/``baggage`` when they
have any), and the worker starts the attempt's span with it as parent, so a trace goes web
request → enqueue → attempt(s). Spans follow OpenTelemetry's messaging conventions
(``messaging.system`` = ``"asyncjobs"``, operation types ``send`` and ``process``); see
docs/tracing.md for every attribute.

Off unless ``ASYNCJOBS["OPENTELEMETRY"]`` is ``True`` (or ``"auto"`` and ``opentelemetry-api``
installed). Off, nothing of OpenTelemetry is imported, nothing is written on the rows, and the
callers' cost is one call of :func:`active`. The spans go to the tracer provider the project
configures (an SDK and an exporter of its choice); with none, the API's no-op provider.

Foundation layer: imports only :mod:`.conf` (and OpenTelemetry).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from django.core.signals import setting_changed

from .conf import app_settings

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

#: ``messaging.system`` of every span.
SYSTEM = "asyncjobs"
#: The instrumentation scope's name (``Tracer`` name).
SCOPE = "django_asyncjobs"
#: Longest value of one trace context entry read back from a row; longer ones are ignored.
MAX_CONTEXT_VALUE = 8192

#: Outcomes (``Outcome`` names, lower case) of an attempt that failed: the span's status is ERROR.
FAILED_OUTCOMES = frozenset({"failed", "retrying", "error"})

_active: bool | None = None
_tracer: Tracer | None = None


def active() -> bool:
    """Whether spans are made: ``OPENTELEMETRY`` is ``True``, or ``"auto"``, and
    ``opentelemetry-api`` can be imported. Decided once per settings change."""
    global _active
    if _active is None:
        # True without the package: asyncjobs.E015 says so; the jobs run untraced meanwhile.
        _active = app_settings.OPENTELEMETRY is not False and available()
    return _active


def available() -> bool:
    """Whether ``opentelemetry-api`` is installed (without importing it)."""
    try:
        return importlib.util.find_spec("opentelemetry.trace") is not None
    except ModuleNotFoundError:  # no "opentelemetry" namespace package at all
        return False


def _forget(setting: str, **kwargs: Any) -> None:
    global _active
    if setting == "ASYNCJOBS":
        _active = None


setting_changed.connect(_forget, dispatch_uid="django_asyncjobs.tracing.forget")


def tracer() -> Tracer:
    global _tracer
    if _tracer is None:
        # lazy: an optional dependency (the otel extra), imported only once tracing is on
        from opentelemetry import trace

        _tracer = trace.get_tracer(SCOPE)
    return _tracer


class Enqueueing:
    """The span of one enqueue call, and the trace context the call's rows carry."""

    def __init__(self, span: Span, context: dict[str, str]) -> None:
        self.span = span
        #: What the propagators wrote for this span (stored on each row); ``None`` if nothing.
        self.context = context or None

    def created(self, jobs: Sequence[Any], *, existing: bool = False) -> None:
        """The rows the call created (or, with ``existing``, the one it found by idempotency key)."""
        if len(jobs) == 1:
            job_id = str(jobs[0].pk)
            self.span.set_attributes({"messaging.message.id": job_id, "asyncjobs.job.id": job_id})
        if existing:
            self.span.set_attribute("asyncjobs.job.existing", True)


@contextmanager
def enqueueing(name: str, queue: str, count: int) -> Iterator[Enqueueing]:
    """The span around one enqueue call of ``count`` jobs of ``name`` on ``queue``, made current:
    a child of the caller's current span. An exception (``QueueFull``) is recorded on it."""
    # lazy: an optional dependency (the otel extra), imported only once tracing is on
    from opentelemetry import propagate, trace

    attributes: dict[str, Any] = {
        "messaging.system": SYSTEM,
        "messaging.operation.type": "send",
        "messaging.operation.name": "enqueue",
        "messaging.destination.name": queue,
        "asyncjobs.job.name": name,
    }
    if count != 1:
        attributes["messaging.batch.message_count"] = count
    with tracer().start_as_current_span(f"enqueue {name}", kind=trace.SpanKind.PRODUCER, attributes=attributes) as span:
        carrier: dict[str, str] = {}
        if span.get_span_context().is_valid:
            propagate.inject(carrier)
        yield Enqueueing(span, carrier)


class Attempt:
    """The span of one attempt, ended by :func:`attempt`."""

    def __init__(self, span: Span) -> None:
        self.span = span

    def ended(self, job: Any, outcome: str, raised: BaseException | None) -> None:
        """Record the attempt's ``outcome`` (an ``Outcome`` name in lower case) and what the job raised."""
        # lazy: an optional dependency (the otel extra), imported only once tracing is on
        from opentelemetry.trace import Status, StatusCode

        span = self.span
        span.set_attribute("asyncjobs.job.outcome", outcome)
        if raised is not None and outcome != "cancelled":
            span.record_exception(raised, escaped=True)
        if outcome in FAILED_OUTCOMES:
            history = job.failed_attempts or []
            last = history[-1] if history and isinstance(history[-1], dict) else {}
            error_type = last.get("exception_class") or (_path(type(raised)) if raised else "_OTHER")
            span.set_attribute("error.type", str(error_type))
            described = f"{type(raised).__name__}: {raised}" if raised is not None else str(error_type)
            span.set_status(Status(StatusCode.ERROR, described[:500]))


@contextmanager
def attempt(job: Any) -> Iterator[Attempt]:
    """The span around one attempt of the claimed ``job``, made current while it runs (spans the
    job makes are its children); its parent is the context stored on the row, if any."""
    # lazy: an optional dependency (the otel extra), imported only once tracing is on
    from opentelemetry import propagate, trace
    from opentelemetry.context import Context

    job_id = str(job.pk)
    attributes: dict[str, Any] = {
        "messaging.system": SYSTEM,
        "messaging.operation.type": "process",
        "messaging.operation.name": "run",
        "messaging.destination.name": job.queue,
        "messaging.message.id": job_id,
        "asyncjobs.job.id": job_id,
        "asyncjobs.job.name": job.name,
        "asyncjobs.job.attempt": job.attempts,
    }
    if job.worker:
        attributes["asyncjobs.worker"] = job.worker
    parent = propagate.extract(stored_context(job.trace_context), context=Context())
    kind = trace.SpanKind.CONSUMER
    with tracer().start_as_current_span(f"run {job.name}", context=parent, kind=kind, attributes=attributes) as span:
        yield Attempt(span)


def stored_context(value: object) -> dict[str, str]:
    """A row's ``trace_context`` as a carrier for the propagators: only its text entries of a
    sane length (the row's JSON is not trusted to hold what we wrote)."""
    if not isinstance(value, Mapping):
        return {}
    return {
        key: text
        for key, text in value.items()
        if isinstance(key, str) and isinstance(text, str) and len(key) < 256 and len(text) <= MAX_CONTEXT_VALUE
    }


def _path(exception_class: type[BaseException]) -> str:
    return f"{exception_class.__module__}.{exception_class.__qualname__}"
