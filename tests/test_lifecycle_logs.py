"""Every event of a job's life is one record of ``django_asyncjobs.jobs`` with its fields in
``extra``: enqueued, refused, started, succeeded, retrying, failed, cancelled, lost; real jobs
on real burst workers (one at a time, batched, threaded)."""

from __future__ import annotations

import json
import logging
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from django_asyncjobs import Job, QueueFull
from django_asyncjobs.engine import states
from django_asyncjobs.engine.capacity import forget_states
from django_asyncjobs.logs import JSONFormatter, jobs_logger, log_event
from django_asyncjobs.scheduling.recovery import recover
from django_asyncjobs.worker import ThreadedWorker
from tests.testapp.jobs import add, always_fails, flaky

pytestmark = pytest.mark.django_db(transaction=True)

JOBS = "django_asyncjobs.jobs"


def events(caplog: pytest.LogCaptureFixture, event: str | None = None) -> list[logging.LogRecord]:
    """The records of the jobs logger (of one ``event``, if given), in order."""
    records = [r for r in caplog.records if r.name == JOBS]
    return [r for r in records if event is None or r.event == event]  # type: ignore[attr-defined]


def fields(record: logging.LogRecord) -> dict[str, Any]:
    standard = {*vars(logging.makeLogRecord({})), "message", "asctime"}
    return {k: v for k, v in vars(record).items() if k not in standard}


@pytest.fixture
def jobs_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="django_asyncjobs")
    return caplog


# -- enqueued -------------------------------------------------------------------------------


def test_each_enqueued_job_is_one_debug_record_once_committed(jobs_log) -> None:
    single = add.enqueue(1, 2)
    later = add.enqueue(3, 4, delay=timedelta(hours=1), queue="high")
    many = add.enqueue_many([(i, i) for i in range(3)])

    records = events(jobs_log, "job.enqueued")
    assert [r.job for r in records] == [single.pk, later.pk, *(job.pk for job in many)]  # type: ignore[attr-defined]
    assert {r.levelno for r in records} == {logging.DEBUG}
    first, delayed = fields(records[0]), fields(records[1])
    assert first == {"event": "job.enqueued", "job": single.pk, "job_name": add.name, "queue": "default"} | {
        "status": "queued"
    }
    assert (delayed["status"], delayed["queue"], delayed["run_at"]) == ("scheduled", "high", later.run_at)
    assert records[0].getMessage() == f"job.enqueued job={single.pk} name={add.name} queue=default status=queued"


def test_an_enqueue_rolled_back_logs_nothing(jobs_log) -> None:
    from django.db import transaction

    with pytest.raises(RuntimeError), transaction.atomic():
        add.enqueue(1, 2)
        raise RuntimeError("roll back")
    assert events(jobs_log, "job.enqueued") == []
    assert not Job.objects.exists()


def test_with_debug_off_an_enqueue_adds_no_on_commit_work(caplog, django_capture_on_commit_callbacks) -> None:
    from django.db import transaction

    caplog.set_level(logging.INFO, logger="django_asyncjobs")
    with transaction.atomic(), django_capture_on_commit_callbacks() as quiet:
        add.enqueue_many([(1, 1), (2, 2)])
    assert events(caplog, "job.enqueued") == []
    caplog.set_level(logging.DEBUG, logger="django_asyncjobs")
    with transaction.atomic(), django_capture_on_commit_callbacks() as logged:
        add.enqueue_many([(1, 1), (2, 2)])
    assert len(logged) == len(quiet) + 1  # the log's own callback, only when DEBUG is on
    assert len(events(caplog, "job.enqueued")) == 2


# -- started, succeeded ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefetch", "worker_options"),
    [(1, {}), (20, {}), (1, {"worker_class": ThreadedWorker, "threads": 2})],
    ids=["one-at-a-time", "batched", "threaded"],
)
def test_each_success_is_one_started_and_one_succeeded_record_with_worker_and_wait(
    settings, jobs_log, run_worker, prefetch, worker_options
) -> None:
    settings.ASYNCJOBS = {**settings.ASYNCJOBS, "WORKER_PREFETCH": prefetch}
    jobs = add.enqueue_many([(i, i) for i in range(5)])
    worker = run_worker("default", **worker_options)

    for event, level in [("job.started", logging.DEBUG), ("job.succeeded", logging.INFO)]:
        records = events(jobs_log, event)
        assert sorted(str(r.job) for r in records) == sorted(str(job.pk) for job in jobs), event  # type: ignore[attr-defined]
        assert {r.levelno for r in records} == {level}
    for record in events(jobs_log, "job.succeeded"):
        row = Job.objects.get(pk=record.job)  # type: ignore[attr-defined]
        logged = fields(record)
        assert (logged["job_name"], logged["queue"], logged["attempt"], logged["worker"]) == (
            add.name,
            "default",
            1,
            worker.name,
        )
        assert logged["wait_ms"] == pytest.approx((row.started_at - row.enqueued_at).total_seconds() * 1000)
        assert logged["duration_ms"] == pytest.approx((row.finished_at - row.started_at).total_seconds() * 1000)
        line = record.getMessage()
        assert re.fullmatch(
            rf"job\.succeeded job={row.pk} name={re.escape(add.name)} queue=default attempt=1 "
            rf"worker={re.escape(worker.name)} wait_ms=\d+\.\d duration_ms=\d+\.\d",
            line,
        )
    started = fields(events(jobs_log, "job.started")[0])
    assert "duration_ms" not in started and started["worker"] == worker.name and started["wait_ms"] >= 0


def test_the_wait_of_a_delayed_job_counts_from_its_due_time(jobs_log, run_worker) -> None:
    job = add.enqueue(1, 1, delay=timedelta(hours=1))
    due = timezone.now() - timedelta(seconds=30)
    Job.objects.filter(pk=job.pk).update(run_at=due)  # it came due half a minute ago
    run_worker("default")
    (record,) = events(jobs_log, "job.succeeded")
    assert record.wait_ms >= 30_000  # type: ignore[attr-defined]
    assert Job.objects.get(pk=job.pk).enqueued_at > due  # promoted later: the wait is not from that


# -- retrying, failed -----------------------------------------------------------------------


def test_a_retried_then_failed_job_is_one_record_per_attempt(jobs_log, run_worker) -> None:
    job = always_fails.enqueue(max_attempts=2)
    worker = run_worker("default")

    (retrying,) = events(jobs_log, "job.retrying")
    (failed,) = events(jobs_log, "job.failed")
    assert events(jobs_log, "job.succeeded") == []
    assert (retrying.levelno, failed.levelno) == (logging.WARNING, logging.ERROR)
    assert (retrying.attempt, failed.attempt) == (1, 2)  # type: ignore[attr-defined]
    for record in (retrying, failed):
        logged = fields(record)
        assert (logged["job"], logged["worker"], logged["exception"]) == (job.pk, worker.name, "builtins.ValueError")
        assert logged["wait_ms"] >= 0 and logged["duration_ms"] >= 0
    assert retrying.retry_in_s == 0  # type: ignore[attr-defined]
    row = Job.objects.get(pk=job.pk)
    # The second attempt's wait counts from the retry's enqueue, not from the first one.
    assert failed.wait_ms == pytest.approx((row.started_at - row.enqueued_at).total_seconds() * 1000)  # type: ignore[attr-defined]


def test_a_flaky_job_logs_retrying_then_succeeded(jobs_log, run_worker) -> None:
    job = flaky.enqueue("twice", 1, max_attempts=3)
    run_worker("default")
    assert [r.event for r in events(jobs_log) if r.event != "job.started"] == [  # type: ignore[attr-defined]
        "job.enqueued",
        "job.retrying",
        "job.succeeded",
    ]
    assert events(jobs_log, "job.succeeded")[0].attempt == 2  # type: ignore[attr-defined]
    assert Job.objects.get(pk=job.pk).status == "succeeded"


# -- cancelled ------------------------------------------------------------------------------


def test_cancelling_a_waiting_job_is_one_info_record(jobs_log) -> None:
    job = add.enqueue(1, 1)
    assert job.cancel()
    assert not job.cancel()  # already cancelled: nothing happens, nothing is logged
    (record,) = events(jobs_log, "job.cancelled")
    assert record.levelno == logging.INFO
    assert fields(record) == {
        "event": "job.cancelled",
        "job": job.pk,
        "job_name": add.name,
        "queue": "default",
        "attempt": 0,
        "was": "waiting",
    }


def test_cancelling_a_running_job_names_its_worker(jobs_log) -> None:
    job = add.enqueue(1, 1)
    claimed = states.claim(job.pk, "worker-x")  # a worker's claim: the job is running there
    assert claimed is not None
    assert job.cancel()
    (record,) = events(jobs_log, "job.cancelled")
    logged = fields(record)
    assert (logged["was"], logged["worker"], logged["attempt"]) == ("running", "worker-x", 1)
    assert logged["duration_ms"] >= 0


# -- lost -----------------------------------------------------------------------------------


def test_a_job_of_a_dead_worker_is_one_lost_record_with_what_became_of_it(jobs_log, run_worker) -> None:
    job = add.enqueue(2, 3, max_attempts=2)
    claimed = states.claim(job.pk, "worker-gone")  # claimed and started (a heartbeat), then the worker died
    assert claimed is not None
    report = recover(heartbeat_timeout=0)
    assert report.retried == [str(job.pk)]

    (lost,) = events(jobs_log, "job.lost")
    assert lost.levelno == logging.WARNING
    logged = fields(lost)
    assert (logged["job"], logged["worker"], logged["attempt"], logged["outcome"]) == (
        job.pk,
        "worker-gone",
        1,
        "retrying",
    )
    assert logged["last_seen"] == claimed.heartbeat_at
    assert recover(heartbeat_timeout=0).lost == []  # nothing lost any more: no second record
    assert len(events(jobs_log, "job.lost")) == 1
    run_worker("default")
    assert Job.objects.get(pk=job.pk).status == "succeeded"


# -- refused --------------------------------------------------------------------------------


@pytest.fixture
def full_queue(settings):
    settings.ASYNCJOBS = {**settings.ASYNCJOBS, "QUEUE_LIMITS": {"default": {"MAX_DEPTH": 2}}, "RETRY_AFTER_MAX": 90}
    add.enqueue_many([(1, 1), (2, 2)])
    forget_states()
    yield
    forget_states()


def test_an_enqueue_refused_by_back_pressure_is_one_warning(full_queue, jobs_log) -> None:
    with pytest.raises(QueueFull):
        add.enqueue_many([(3, 3), (4, 4)])
    (record,) = events(jobs_log, "job.refused")
    assert record.levelno == logging.WARNING
    assert fields(record) == {
        "event": "job.refused",
        "job_name": add.name,
        "jobs": 2,
        "queue": "default",
        "reason": "2 waiting, limit 2",
        "retry_after_s": 90,
    }
    assert Job.objects.count() == 2


def test_a_503_of_the_middleware_is_one_refused_record(full_queue, jobs_log) -> None:
    response = Client().post("/echo/1/")
    assert response.status_code == 503
    (record,) = events(jobs_log, "job.refused")
    logged = fields(record)
    assert (logged["queue"], logged["path"], logged["by"], logged["retry_after_s"]) == (
        "default",
        "/echo/1/",
        "middleware",
        90,
    )


def test_without_the_middleware_the_offload_views_refusal_is_one_record_naming_its_job(
    full_queue, jobs_log, settings
) -> None:
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if not m.endswith("BackpressureMiddleware")]
    response = Client().post("/echo/1/")
    assert response.status_code == 503
    (record,) = events(jobs_log, "job.refused")
    logged = fields(record)
    assert (logged["job_name"], logged["jobs"], logged["queue"]) == ("tests.testapp.views.echo", 1, "default")
    assert "by" not in logged


# -- JSON -----------------------------------------------------------------------------------


def test_the_json_formatter_writes_a_record_and_its_fields_on_one_line(jobs_log, run_worker) -> None:
    job = add.enqueue(1, 2)
    worker = run_worker("default")
    (record,) = events(jobs_log, "job.succeeded")
    line = JSONFormatter().format(record)
    assert "\n" not in line
    data = json.loads(line)
    assert data["level"] == "INFO" and data["logger"] == JOBS and data["message"] == record.getMessage()
    assert data["time"].endswith("+00:00")
    assert (data["event"], data["job"], data["job_name"], data["worker"]) == (
        "job.succeeded",
        str(job.pk),
        add.name,
        worker.name,
    )
    assert isinstance(data["wait_ms"], float) and isinstance(data["attempt"], int)


def test_the_json_formatter_keeps_user_text_on_one_line_with_the_traceback(caplog) -> None:
    caplog.set_level(logging.ERROR, logger="django_asyncjobs")
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        at = timezone.now()
        log_event(jobs_logger, logging.ERROR, "job.failed", error="x\u2028\n y", at=at, tags={"a"}, exc_info=True)
    line = JSONFormatter().format(caplog.records[-1])
    assert len(line.splitlines()) == 1
    data = json.loads(line)
    assert data["error"] == "x\u2028\n y" and data["tags"] == ["a"]
    assert "ValueError: bad\nvalue" in data["exc_info"]
    assert data["at"].endswith("+00:00")


def test_the_documented_logging_snippet_configures_json_lines(capsys) -> None:
    from logging.config import dictConfig

    page = (Path(__file__).resolve().parent.parent / "docs" / "logging.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, re.DOTALL)
    (snippet,) = [block for block in blocks if "JSONFormatter" in block]
    namespace: dict[str, Any] = {}
    exec(snippet, namespace)  # the page's LOGGING, as a user copies it
    before = logging.getLogger("django_asyncjobs"), logging.getLogger("django_asyncjobs").handlers[:]
    try:
        dictConfig(namespace["LOGGING"])
        log_event(jobs_logger, logging.ERROR, "job.failed", job="j", name="n")
        line = capsys.readouterr().err.strip().splitlines()[-1]
    finally:
        logger, handlers = before
        logger.handlers[:] = handlers
        logging.getLogger(JOBS).setLevel(logging.NOTSET)
        logger.setLevel(logging.NOTSET)
        logger.propagate = True
    data = json.loads(line)
    assert (data["event"], data["job"], data["job_name"]) == ("job.failed", "j", "n")
