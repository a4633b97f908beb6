"""OpenTelemetry: a span around each enqueue in the caller's trace, a span around each attempt
on a real burst worker as its child (through ``Job.trace_context``), read back with the SDK's
in-memory exporter."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.checks import run_checks
from django.http import HttpRequest, JsonResponse
from django.test import Client, override_settings
from django.urls import path

from django_asyncjobs import Job, QueueFull
from django_asyncjobs.engine.capacity import forget_states
from django_asyncjobs.worker import ThreadedWorker
from tests.testapp.jobs import add, always_fails, async_makes_span, makes_span

trace = pytest.importorskip("opentelemetry.trace", reason="the otel extra is not installed")
sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
in_memory = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.trace import SpanKind, StatusCode  # noqa: E402

pytestmark = pytest.mark.django_db(transaction=True)

TRACED = {"OPENTELEMETRY": True}

_exporter = in_memory.InMemorySpanExporter()


def _install_provider() -> None:
    """The SDK's provider, once per process (OpenTelemetry lets the global one be set once)."""
    if not isinstance(trace.get_tracer_provider(), sdk_trace.TracerProvider):
        provider = sdk_trace.TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_exporter))
        trace.set_tracer_provider(provider)


@pytest.fixture
def spans(settings) -> Iterator[in_memory.InMemorySpanExporter]:
    _install_provider()
    settings.ASYNCJOBS = {**settings.ASYNCJOBS, **TRACED}
    _exporter.clear()
    yield _exporter
    _exporter.clear()


def named(exporter: Any, prefix: str) -> list[Any]:
    return [span for span in exporter.get_finished_spans() if span.name.startswith(prefix)]


# A view that enqueues inside the request's span, as a server instrumentation would have started it.


def enqueue_view(request: HttpRequest) -> JsonResponse:
    tracer = trace.get_tracer("tests")
    with tracer.start_as_current_span("GET /traced/", kind=SpanKind.SERVER):
        job = add.enqueue(2, 3)
    return JsonResponse({"job": str(job.pk)})


urlpatterns = [path("traced/", enqueue_view)]


@pytest.mark.urls(__name__)
@pytest.mark.parametrize(
    ("prefetch", "worker_options"),
    [(1, {}), (20, {}), (1, {"worker_class": ThreadedWorker, "threads": 2})],
    ids=["one-at-a-time", "batched", "threaded"],
)
def test_a_trace_goes_from_the_web_request_to_the_job(spans, settings, run_worker, prefetch, worker_options) -> None:
    settings.ASYNCJOBS = {**settings.ASYNCJOBS, "WORKER_PREFETCH": prefetch}
    response = Client().get("/traced/")
    job = Job.objects.get(pk=response.json()["job"])
    worker = run_worker("default", **worker_options)

    (request,) = named(spans, "GET /traced/")
    (enqueue,) = named(spans, "enqueue ")
    (attempt,) = named(spans, "run ")
    assert enqueue.name == f"enqueue {add.name}" and attempt.name == f"run {add.name}"
    trace_id = request.context.trace_id
    assert enqueue.context.trace_id == attempt.context.trace_id == trace_id
    assert enqueue.parent.span_id == request.context.span_id
    assert attempt.parent.span_id == enqueue.context.span_id  # a child, not only a link
    assert (enqueue.kind, attempt.kind) == (SpanKind.PRODUCER, SpanKind.CONSUMER)

    assert dict(enqueue.attributes) == {
        "messaging.system": "asyncjobs",
        "messaging.operation.type": "send",
        "messaging.operation.name": "enqueue",
        "messaging.destination.name": "default",
        "messaging.message.id": str(job.pk),
        "asyncjobs.job.name": add.name,
        "asyncjobs.job.id": str(job.pk),
    }
    assert dict(attempt.attributes) == {
        "messaging.system": "asyncjobs",
        "messaging.operation.type": "process",
        "messaging.operation.name": "run",
        "messaging.destination.name": "default",
        "messaging.message.id": str(job.pk),
        "asyncjobs.job.id": str(job.pk),
        "asyncjobs.job.name": add.name,
        "asyncjobs.job.attempt": 1,
        "asyncjobs.worker": worker.name,
        "asyncjobs.job.outcome": "succeeded",
    }
    assert attempt.status.status_code is StatusCode.UNSET
    # What the row carries: the enqueue span's context, in W3C form.
    traceparent = job.trace_context["traceparent"]
    flags = int(enqueue.context.trace_flags)
    assert flags & 1  # sampled
    assert traceparent == f"00-{trace_id:032x}-{enqueue.context.span_id:016x}-{flags:02x}"
    job.refresh_from_db()
    assert job.status == "succeeded"


@pytest.mark.parametrize("threads", [1, 2])
def test_spans_made_inside_a_job_are_children_of_its_attempt(spans, run_worker, threads) -> None:
    makes_span.enqueue("inside-sync")
    async_makes_span.enqueue("inside-async")  # its coroutine runs with the attempt's context
    options: dict[str, Any] = {"worker_class": ThreadedWorker, "threads": threads} if threads > 1 else {}
    run_worker("default", **options)
    attempts = {span.attributes["asyncjobs.job.name"]: span for span in named(spans, "run ")}
    for label, job_function in [("inside-sync", makes_span), ("inside-async", async_makes_span)]:
        (inner,) = named(spans, label)
        attempt = attempts[job_function.name]
        assert inner.parent.span_id == attempt.context.span_id
        assert inner.context.trace_id == attempt.context.trace_id
        assert attempt.attributes["asyncjobs.job.outcome"] == "succeeded"


def test_a_failed_attempt_is_an_error_span_with_the_exception_and_each_attempt_a_child(spans, run_worker) -> None:
    tracer = trace.get_tracer("tests")
    with tracer.start_as_current_span("caller"):
        job = always_fails.enqueue(max_attempts=2)
    run_worker("default")

    (enqueue,) = named(spans, "enqueue ")
    attempts = sorted(named(spans, "run "), key=lambda span: span.attributes["asyncjobs.job.attempt"])
    assert [span.attributes["asyncjobs.job.outcome"] for span in attempts] == ["retrying", "failed"]
    for span in attempts:
        assert span.parent.span_id == enqueue.context.span_id
        assert span.context.trace_id == enqueue.context.trace_id
        assert span.status.status_code is StatusCode.ERROR
        assert span.status.description == "ValueError: this job always fails"
        assert span.attributes["error.type"] == "builtins.ValueError"
        (event,) = span.events
        assert event.name == "exception"
        assert event.attributes["exception.type"] == "ValueError"
        assert event.attributes["exception.message"] == "this job always fails"
    assert Job.objects.get(pk=job.pk).status == "failed"


def test_a_bulk_enqueue_is_one_span_and_each_job_a_child_of_it(spans, run_worker) -> None:
    jobs = add.enqueue_many([(i, i) for i in range(4)])
    run_worker("default")
    (enqueue,) = named(spans, "enqueue ")
    assert enqueue.attributes["messaging.batch.message_count"] == 4
    assert "messaging.message.id" not in enqueue.attributes
    assert enqueue.parent is None  # no caller's span: the enqueue starts the trace
    attempts = named(spans, "run ")
    assert sorted(span.attributes["asyncjobs.job.id"] for span in attempts) == sorted(str(job.pk) for job in jobs)
    assert {span.parent.span_id for span in attempts} == {enqueue.context.span_id}
    assert len({job.trace_context["traceparent"] for job in Job.objects.all()}) == 1


def test_an_enqueue_refused_by_back_pressure_is_an_error_span(spans, settings) -> None:
    settings.ASYNCJOBS = {**settings.ASYNCJOBS, "QUEUE_LIMITS": {"default": {"MAX_DEPTH": 1}}}
    add.enqueue(1, 1)
    forget_states()
    try:
        with pytest.raises(QueueFull):
            add.enqueue(2, 2)
    finally:
        forget_states()
    refused = named(spans, "enqueue ")[-1]
    assert refused.status.status_code is StatusCode.ERROR
    assert [event.attributes["exception.type"] for event in refused.events] == ["django_asyncjobs.exceptions.QueueFull"]
    assert Job.objects.count() == 1


def test_an_idempotent_enqueue_that_finds_its_job_says_so(spans) -> None:
    first = add.enqueue(1, 1, idempotency_key="once")
    again = add.enqueue(1, 1, idempotency_key="once")
    assert again.pk == first.pk
    created, found = named(spans, "enqueue ")
    assert "asyncjobs.job.existing" not in created.attributes
    assert found.attributes["asyncjobs.job.existing"] is True
    assert found.attributes["messaging.message.id"] == str(first.pk)


@pytest.mark.parametrize("setting", [False, "auto"])
def test_off_nothing_is_traced_or_stored_and_auto_follows_the_package(spans, settings, run_worker, setting) -> None:
    settings.ASYNCJOBS = {**settings.ASYNCJOBS, "OPENTELEMETRY": setting}
    job = add.enqueue(1, 1)
    run_worker("default")
    job.refresh_from_db()
    traced = setting == "auto"  # the package is installed here
    assert bool(job.trace_context) is traced
    assert len(named(spans, "enqueue ")) == len(named(spans, "run ")) == int(traced)


def test_a_tampered_trace_context_on_a_row_starts_a_new_trace(spans, run_worker) -> None:
    job = add.enqueue(1, 1)
    Job.objects.filter(pk=job.pk).update(trace_context={"traceparent": ["not", "text"], "x": "y" * 10_000})
    run_worker("default")
    (attempt,) = named(spans, "run ")
    assert attempt.parent is None
    assert Job.objects.get(pk=job.pk).status == "succeeded"


@override_settings(ASYNCJOBS={"OPENTELEMETRY": True})
def test_e015_when_tracing_is_on_without_the_package(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.trace", None)  # as import machinery says "not there"
    (error,) = [m for m in run_checks(tags=["compatibility"]) if m.id == "asyncjobs.E015"]
    assert "opentelemetry-api is not installed" in error.msg
    monkeypatch.undo()
    assert [m for m in run_checks(tags=["compatibility"]) if m.id == "asyncjobs.E015"] == []


WITHOUT_OPENTELEMETRY = """
import sys, importlib.abc

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "opentelemetry":
            raise ModuleNotFoundError(name)
        return None

sys.meta_path.insert(0, Refuse())
import django
from django.conf import settings
django.setup()
settings.ASYNCJOBS = {{"OPENTELEMETRY": {setting}}}
from django_asyncjobs import tracing
from django_asyncjobs.engine import enqueueing, execution  # noqa: F401
from django_asyncjobs.worker import Worker  # noqa: F401
from django.core.checks import run_checks
print(tracing.active(), sorted(m.id for m in run_checks() if m.id == "asyncjobs.E015"))
print([name for name in sys.modules if name.startswith("opentelemetry")])
"""


@pytest.mark.parametrize(("setting", "expected"), [("'auto'", "False []"), ("True", "False ['asyncjobs.E015']")])
def test_without_the_package_nothing_of_it_is_imported(setting: str, expected: str) -> None:
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="tests.settings")
    code = textwrap.dedent(WITHOUT_OPENTELEMETRY.format(setting=setting))
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.splitlines() == [expected, "[]"], result.stderr
