"""Loggers by area, and the shape of their lines: an event word, then key=value fields that
a job's own text (arguments, error messages) cannot break into a line of their own."""

from __future__ import annotations

import logging
import re

import pytest

from django_asyncjobs import Job
from django_asyncjobs.logs import event_line, format_value, log_event
from tests.testapp.jobs import add, raises

pytestmark = pytest.mark.django_db(transaction=True)

FORGED = "boom\njob.succeeded job=00000000-0000-0000-0000-000000000000 name=x"


def records_of(caplog: pytest.LogCaptureFixture, logger: str) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == logger]


def test_a_successful_job_is_one_info_line_with_its_fields(run_worker, caplog) -> None:
    job = add.enqueue(1, 2)
    with caplog.at_level(logging.INFO, logger="django_asyncjobs"):
        run_worker()
    (record,) = records_of(caplog, "django_asyncjobs.jobs")
    assert record.levelno == logging.INFO
    pattern = (
        rf"job\.succeeded job={job.pk} name={re.escape(add.name)} queue=default attempt=1 "
        r"worker=\S+ wait_ms=\d+\.\d duration_ms=\d+\.\d"
    )
    assert re.fullmatch(pattern, record.getMessage())
    # The same fields for structured handlers (name as job_name: LogRecord has a name of its own).
    assert (record.event, record.job, record.job_name, record.queue, record.attempt) == (  # type: ignore[attr-defined]
        "job.succeeded",
        job.pk,
        add.name,
        "default",
        1,
    )
    assert record.duration_ms >= 0  # type: ignore[attr-defined]


def test_a_failed_job_is_an_error_line_whose_message_cannot_forge_a_line(run_worker, caplog) -> None:
    job = raises.enqueue(FORGED)
    with caplog.at_level(logging.INFO, logger="django_asyncjobs"):
        run_worker()
    assert Job.objects.get(pk=job.pk).status == "failed"
    (record,) = records_of(caplog, "django_asyncjobs.jobs")
    assert record.levelno == logging.ERROR
    message = record.getMessage()
    assert "\n" not in message
    assert message.startswith(f"job.failed job={job.pk} name={raises.name} queue=default attempt=1 ")
    assert "exception=builtins.ValueError" in message
    assert not any(line.startswith("job.succeeded") for line in caplog.text.splitlines())


def test_values_with_anything_but_plain_characters_are_quoted_and_escaped() -> None:
    assert format_value("default") == "default"
    assert format_value("reports.build:v2/x@y+z-1") == "reports.build:v2/x@y+z-1"
    assert format_value("two words") == '"two words"'
    assert format_value('a"b\\c') == '"a\\"b\\\\c"'
    assert format_value("a\nb\rc\td") == '"a\\nb\\rc\\td"'
    for breaker in ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\x00", "\x1b"]:
        formatted = format_value(f"x{breaker}y")
        assert len(formatted.splitlines()) == 1, repr(breaker)
        assert breaker not in formatted
    assert format_value("") == '""'
    assert format_value(True) == "true"
    assert format_value(12.345) == "12.3"
    assert format_value(["a", "b"]) == "a,b"


def test_long_values_are_cut_and_say_how_long_they_were() -> None:
    formatted = format_value("x" * 1000)
    assert formatted.startswith('"' + "x" * 200 + "...(1000 chars)")
    assert len(formatted) < 230


def test_a_field_cannot_fake_another_field() -> None:
    assert event_line("job.failed", {"error": "x queue=evil"}) == 'job.failed error="x queue=evil"'


def test_none_fields_are_left_out_and_nothing_is_formatted_below_the_level(caplog) -> None:
    logger = logging.getLogger("django_asyncjobs.jobs")

    class Loud:
        def __str__(self) -> str:
            raise AssertionError("formatted although the level is off")

    with caplog.at_level(logging.WARNING, logger="django_asyncjobs"):
        log_event(logger, logging.INFO, "job.succeeded", job=Loud())
        log_event(logger, logging.WARNING, "job.retrying", job="j", error=None)
    assert [r.getMessage() for r in caplog.records] == ["job.retrying job=j"]


@pytest.mark.parametrize(
    "module",
    [
        "django_asyncjobs.engine.outcomes",
        "django_asyncjobs.engine.execution",
        "django_asyncjobs.worker.loop",
        "django_asyncjobs.scheduling.firing",
        "django_asyncjobs.scheduling.recovery",
    ],
)
def test_no_module_logs_on_the_package_logger_itself(module: str) -> None:
    imported = __import__(module, fromlist=["_"])
    assert getattr(imported, "logger", None) is None  # each area logs on its own logger (django_asyncjobs.logs)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("verbosity", "shown"), [("1", True), ("0", False)])
def test_a_worker_shows_each_job_on_stderr_when_logging_gives_the_records_nowhere_to_go(
    start_worker, subprocess_env, verbosity: str, shown: bool
) -> None:
    """A new project's LOGGING (Django's default) has no handler for our loggers: the worker
    prints its lines with their time and level, as rq's and Celery's workers do, at ``-v``'s level."""
    subprocess_env["ASYNCJOBS_TEST_BARE_LOGGING"] = "1"
    job = add.enqueue(2, 3)
    failing = raises.enqueue("boom")
    output, _ = start_worker("default", "--burst", "-v", verbosity).communicate(timeout=60)
    succeeded = re.search(rf"^\d{{4}}-\d\d-\d\d [\d:,]+ INFO job\.succeeded job={job.pk} ", output, re.MULTILINE)
    assert bool(succeeded) is shown, output
    assert re.search(rf"^[\d\-: ,]+ (WARNING|ERROR) job\.\w+ job={failing.pk} ", output, re.MULTILINE), output
