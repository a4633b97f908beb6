"""``manage.py asyncjobs_aggregate``: one window, backfills inline and enqueued, dry runs,
--list, and a clear error for every bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from django_asyncjobs.aggregations.declarations import get_aggregation
from django_asyncjobs.aggregations.windows import run_window
from django_asyncjobs.models import AggregationWindow, Job, JobStatus, WindowStatus
from tests.testapp.models import Call

pytestmark = pytest.mark.django_db(transaction=True)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def aggregate(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("asyncjobs_aggregate", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def called_windows(label: str) -> list[str]:
    return [row.data["since"] for row in Call.objects.filter(label=label).order_by("id")]


def test_backfill_inline_with_progress_and_summary() -> None:
    out, _ = aggregate("tests.hourly", "--since", "2024-05-01T10:00", "--until", "2024-05-01T13:00")

    assert called_windows("tests.hourly") == [
        "2024-05-01T10:00:00+00:00",
        "2024-05-01T11:00:00+00:00",
        "2024-05-01T12:00:00+00:00",
    ]
    assert AggregationWindow.objects.filter(name="tests.hourly", status=WindowStatus.DONE).count() == 3
    lines = out.splitlines()
    assert lines[-2] == "[" + "#" * 30 + "] 3/3 windows  ran 3"  # plain lines without a terminal
    assert "\r" not in out
    assert lines[-1].startswith("tests.hourly: 3 window(s): 3 ran, 0 skipped, 0 failed, in ")

    out, _ = aggregate("tests.hourly", "--since", "2024-05-01T10:00", "--until", "2024-05-01T14:00")
    assert "4 window(s): 1 ran, 3 skipped (already done: 3), 0 failed" in out
    assert len(called_windows("tests.hourly")) == 4

    out, _ = aggregate("tests.hourly", "--since", "2024-05-01T10:00", "--until", "2024-05-01T11:00", "--force")
    assert "1 window(s): 1 ran, 0 skipped" in out
    assert len(called_windows("tests.hourly")) == 5


def test_backfill_by_enqueueing_one_job_per_window(run_worker) -> None:
    run_window("tests.hourly", at("2024-05-01 11:00"), at("2024-05-01 12:00"))
    out, _ = aggregate("tests.hourly", "--since", "2024-05-01T10:30", "--until", "2024-05-01T13:00", "--enqueue")

    assert "3 window(s): 2 enqueued, 1 skipped (already done: 1), 0 failed" in out
    jobs = list(Job.objects.order_by("created_at"))
    assert [job.args[0] for job in jobs] == ["2024-05-01T10:00:00+00:00", "2024-05-01T12:00:00+00:00"]
    assert len(called_windows("tests.hourly")) == 1
    run_worker("default")
    assert sorted(called_windows("tests.hourly")) == [
        "2024-05-01T10:00:00+00:00",
        "2024-05-01T11:00:00+00:00",
        "2024-05-01T12:00:00+00:00",
    ]
    assert set(AggregationWindow.objects.values_list("status", flat=True)) == {WindowStatus.DONE}
    assert set(Job.objects.values_list("status", flat=True)) == {JobStatus.SUCCEEDED}


def test_without_dates_it_runs_the_last_completed_window() -> None:
    before = get_aggregation("tests.hourly").last_completed()[0].isoformat()
    out, _ = aggregate("tests.hourly")
    after = get_aggregation("tests.hourly").last_completed()[0].isoformat()
    assert called_windows("tests.hourly") in ([before], [after])  # the clock may pass the hour meanwhile
    assert "1 window(s): 1 ran" in out
    assert "#" not in out  # no progress bar for a single window


def test_until_alone_runs_the_window_ending_there() -> None:
    aggregate("tests.hourly", "--until", "2024-05-01T12:00")
    aggregate("tests.hourly", "--until", "2024-05-01T09:30")
    assert called_windows("tests.hourly") == ["2024-05-01T11:00:00+00:00", "2024-05-01T09:00:00+00:00"]


def test_naive_dates_are_in_the_current_time_zone() -> None:
    with timezone.override("Europe/Paris"):  # UTC+2 in May
        aggregate("tests.hourly", "--since", "2024-05-01T12:00", "--until", "2024-05-01 13:00")
    aggregate("tests.hourly", "--since", "2024-05-01T15:00+02:00", "--until", "2024-05-01T14:00Z")
    assert called_windows("tests.hourly") == ["2024-05-01T10:00:00+00:00", "2024-05-01T13:00:00+00:00"]


def test_a_date_alone_means_midnight() -> None:
    aggregate("tests.async_daily", "--since", "2024-05-01", "--until", "2024-05-03")
    assert called_windows("tests.async_daily") == ["2024-05-01T00:00:00+00:00", "2024-05-02T00:00:00+00:00"]


def test_dry_run_lists_the_windows_and_writes_nothing(redis) -> None:
    run_window("tests.hourly", at("2024-05-01 11:00"), at("2024-05-01 12:00"))
    before = (AggregationWindow.objects.count(), Job.objects.count(), Call.objects.count())

    out, _ = aggregate("tests.hourly", "--since", "2024-05-01T10:00", "--until", "2024-05-01T13:00", "--dry-run")
    assert out.splitlines() == [
        "[2024-05-01T10:00:00+00:00, 2024-05-01T11:00:00+00:00)  not recorded       would run",
        "[2024-05-01T11:00:00+00:00, 2024-05-01T12:00:00+00:00)  recorded done      skip: already done",
        "[2024-05-01T12:00:00+00:00, 2024-05-01T13:00:00+00:00)  not recorded       would run",
        "Dry run of tests.hourly: 3 window(s): 2 would run, 1 already done. Nothing was written.",
    ]
    out, _ = aggregate(
        "tests.hourly",
        "--since",
        "2024-05-01T11:00",
        "--until",
        "2024-05-01T13:00",
        "--dry-run",
        "--enqueue",
        "--force",
    )
    assert "recorded done      would enqueue" in out
    assert "2 would enqueue" in out

    assert (AggregationWindow.objects.count(), Job.objects.count(), Call.objects.count()) == before
    assert redis.llen("rq:queue:default") == 0


def test_failed_windows_are_reported_and_make_the_command_fail() -> None:
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError, match=r"2 window\(s\) of tests\.odd_hours_fail failed"):
        call_command(
            "asyncjobs_aggregate",
            "tests.odd_hours_fail",
            "--since=2024-05-01T10:00",
            "--until=2024-05-01T14:00",
            stdout=out,
            stderr=err,
        )
    assert "4 window(s): 2 ran, 0 skipped, 2 failed" in out.getvalue()
    assert err.getvalue().splitlines() == [
        "[2024-05-01T11:00:00+00:00, 2024-05-01T12:00:00+00:00) failed: RuntimeError: odd hour 11",
        "[2024-05-01T13:00:00+00:00, 2024-05-01T14:00:00+00:00) failed: RuntimeError: odd hour 13",
    ]
    statuses = dict(AggregationWindow.objects.values_list("since__hour", "status"))
    assert statuses == {10: "done", 11: "failed", 12: "done", 13: "failed"}


def test_list_shows_aggregations_schedules_and_last_window_done() -> None:
    run_window("tests.hourly", at("2024-05-01 10:00"), at("2024-05-01 11:00"))
    run_window("tests.odd_hours_fail", at("2024-05-01 10:00"), at("2024-05-01 11:00"))
    run_window("tests.odd_hours_fail", at("2024-05-01 11:00"), at("2024-05-01 12:00"))

    out, _ = aggregate("--list")
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "EVERY", "RUNS", "LAST", "WINDOW", "DONE", "LATEST", "WINDOW"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert {"asyncjobs.job_stats", "tests.hourly", "tests.inline", "tests.odd_hours_fail"} <= set(rows)
    assert rows["asyncjobs.job_stats"].split()[1:5] == ["1m", "in", "the", "scheduler"]
    assert rows["tests.inline"].split()[1:] == ["15m", "in", "the", "scheduler", "never"]
    assert rows["tests.hourly"].split()[1:] == [
        "1h",
        "job",
        "on",
        "default",
        "[2024-05-01T10:00:00+00:00,",
        "2024-05-01T11:00:00+00:00)",
    ]
    assert rows["tests.odd_hours_fail"].split()[1:] == [
        "1h",
        "job",
        "on",
        "low",
        "[2024-05-01T10:00:00+00:00,",
        "2024-05-01T11:00:00+00:00)",
        "failed",
        "[2024-05-01T11:00:00+00:00,",
        "2024-05-01T12:00:00+00:00)",
    ]
    assert rows["tests.async_daily"].split()[1] == "1d"

    out, _ = aggregate("--list", "tests.hourly")
    assert [line.split()[0] for line in out.splitlines()] == ["NAME", "tests.hourly"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tests.nope"], "No aggregation is registered as 'tests.nope' (registered: "),
        ([], "Name the aggregation to run (registered: "),
        (["tests.hourly", "--since", "2024-05-01T12:00", "--until", "2024-05-01T10:00"], "is not before --until"),
        (["tests.hourly", "--since", "2024-05-01T12:00", "--until", "2024-05-01T12:00"], "is not before --until"),
        (["tests.hourly", "--since", "yesterday"], "argument --since: 'yesterday' is not an ISO 8601 date"),
        (["tests.hourly", "--until", "2024-13-45"], "argument --until: '2024-13-45' is not"),
        (["tests.hourly", "--since", "2024-05-01T25:00"], "argument --since: '2024-05-01T25:00' is not a valid date"),
        (["--list", "--since", "2024-05-01"], "--list cannot be combined with --since."),
        (["--list", "--dry-run", "--force"], "--list cannot be combined with --dry-run, --force."),
        (["--list", "tests.nope"], "No aggregation is registered as 'tests.nope'"),
    ],
)
def test_bad_input_is_a_clear_command_error(args: list[str], message: str) -> None:
    with pytest.raises(CommandError) as caught:
        aggregate(*args)
    assert message in str(caught.value)
    assert not AggregationWindow.objects.exists()


def test_windows_that_have_not_ended_are_refused() -> None:
    hourly = get_aggregation("tests.hourly")
    future = (timezone.now() + timedelta(hours=2)).isoformat()
    with pytest.raises(CommandError, match="has not ended yet; pass an --until at or before"):
        aggregate("tests.hourly", "--since", "2024-05-01T10:00", "--until", future)
    start = hourly.window_start(timezone.now()).isoformat()
    with pytest.raises(CommandError, match=r"no window of tests\.hourly has ended since then"):
        aggregate("tests.hourly", "--since", start)
    assert not AggregationWindow.objects.exists()
