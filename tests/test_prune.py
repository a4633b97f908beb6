"""Pruning finished jobs: prune_jobs() and manage.py asyncjobs_prune, on real rows and real files."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.db import connection
from django.http import HttpResponse
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_asyncjobs import Job, JobStatus
from django_asyncjobs.models import AggregationWindow, Schedule
from django_asyncjobs.offloading.requests import stored_uploads
from django_asyncjobs.offloading.responses import store_response, stored_response_file
from django_asyncjobs.scheduling.pruning import PruneReport, check_statuses, prune_jobs

pytestmark = pytest.mark.django_db(transaction=True)

OFFLOADED_VIEW = "django_asyncjobs.offloaded_view"
WEEK = timedelta(days=7)


def make_jobs(status: str, count: int, *, age: timedelta = timedelta(days=30), **fields: Any) -> list[Job]:
    fields = {"name": "tests.add", "queue": "default", "finished_at": timezone.now() - age, **fields}
    return Job.objects.bulk_create(Job(status=status, **fields) for _ in range(count))


@pytest.fixture
def file_results(settings) -> None:
    """Every stored response body goes to a file under MEDIA_ROOT."""
    settings.ASYNCJOBS = {**settings.ASYNCJOBS, "OFFLOAD_INLINE_RESPONSE_SIZE": 0}


def offloaded_job_with_file(status: str = JobStatus.SUCCEEDED, age: timedelta = timedelta(days=30)) -> Job:
    job = make_jobs(status, 1, age=age, name=OFFLOADED_VIEW, args=["tests.testapp.views.report_file", {}])[0]
    job.result = store_response(HttpResponse(b"a,b\n1,2\n"), job)
    job.save(update_fields=["result"])
    assert default_storage.exists(stored_response_file(job.result))
    return job


def test_old_finished_jobs_are_deleted_in_batches_and_nothing_else() -> None:
    make_jobs(JobStatus.SUCCEEDED, 7)
    make_jobs(JobStatus.FAILED, 5)
    make_jobs(JobStatus.CANCELLED, 3)
    recent = make_jobs(JobStatus.SUCCEEDED, 2, age=timedelta(days=1)) + make_jobs(JobStatus.FAILED, 1, age=timedelta(0))
    # Unfinished rows keep an old finished_at from a failed attempt awaiting its retry: never pruned.
    unfinished = [
        *make_jobs(JobStatus.QUEUED, 2),
        *make_jobs(JobStatus.SCHEDULED, 2),
        *make_jobs(JobStatus.RUNNING, 2),
    ]
    never_finished = make_jobs(JobStatus.SUCCEEDED, 1, age=timedelta(0))
    Job.objects.filter(pk=never_finished[0].pk).update(finished_at=None)
    batches: list[int] = []

    report = prune_jobs(WEEK, batch_size=2, progress=batches.append)

    assert report.deleted == {"succeeded": 7, "failed": 5, "cancelled": 3}
    assert report.total == 15
    assert report.batches == 4 + 3 + 2 == len(batches)
    assert batches == [2, 2, 2, 1, 2, 2, 1, 2, 1]
    assert not report.dry_run and report.files_deleted == 0
    kept = {job.pk for job in [*recent, *unfinished, *never_finished]}
    assert set(Job.objects.values_list("pk", flat=True)) == kept


def test_batch_size_equal_to_the_row_count_and_larger() -> None:
    make_jobs(JobStatus.SUCCEEDED, 4)
    assert prune_jobs(WEEK, batch_size=4).batches == 1
    make_jobs(JobStatus.SUCCEEDED, 4)
    assert prune_jobs(WEEK, batch_size=100).deleted["succeeded"] == 4
    assert not Job.objects.exists()


def test_a_batch_larger_than_the_databases_parameter_limit() -> None:
    """SQLite's Django backend allows 999 parameters per query; the delete is split, the batch is not."""
    make_jobs(JobStatus.SUCCEEDED, 1001)
    report = prune_jobs(WEEK, batch_size=1001)
    assert (report.deleted["succeeded"], report.batches) == (1001, 1)
    assert not Job.objects.exists()


def test_only_the_given_statuses_are_pruned() -> None:
    make_jobs(JobStatus.SUCCEEDED, 3)
    failed = make_jobs(JobStatus.FAILED, 2)
    cancelled = make_jobs(JobStatus.CANCELLED, 2)

    report = prune_jobs(WEEK, ["succeeded"])
    assert report.deleted == {"succeeded": 3}
    assert set(Job.objects.values_list("pk", flat=True)) == {job.pk for job in failed + cancelled}

    report = prune_jobs(WEEK, (JobStatus.CANCELLED, JobStatus.CANCELLED))
    assert report.deleted == {"cancelled": 2}
    assert set(Job.objects.values_list("pk", flat=True)) == {job.pk for job in failed}


@pytest.mark.parametrize("status", ["queued", "scheduled", "running"])
def test_unfinished_statuses_are_refused(status: str) -> None:
    make_jobs(status, 1)
    with pytest.raises(ValueError, match=rf"'{status}' are not finished .* choose succeeded, failed, cancelled"):
        prune_jobs(WEEK, ["failed", status])
    assert Job.objects.count() == 1


def test_unknown_and_missing_statuses_are_refused() -> None:
    with pytest.raises(ValueError, match=r"Unknown status 'done'.*succeeded, failed, cancelled"):
        check_statuses(["succeeded", "done"])
    with pytest.raises(ValueError, match="at least one status"):
        check_statuses([])
    assert check_statuses("failed") == ("failed",)
    assert check_statuses(["failed", "succeeded", "failed"]) == ("failed", "succeeded")


def test_bad_duration_and_batch_size_are_refused() -> None:
    with pytest.raises(ValueError, match="older_than must be a timedelta longer than zero"):
        prune_jobs(timedelta(0))
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, got 0"):
        prune_jobs(WEEK, batch_size=0)


def test_dry_run_counts_and_deletes_nothing(file_results) -> None:
    make_jobs(JobStatus.SUCCEEDED, 5)
    make_jobs(JobStatus.CANCELLED, 1)
    job = offloaded_job_with_file(JobStatus.FAILED)
    make_jobs(JobStatus.FAILED, 3, age=timedelta(hours=1))
    batches: list[int] = []

    dry = prune_jobs(WEEK, dry_run=True, batch_size=2, progress=batches.append)

    assert dry.dry_run
    assert dry.deleted == {"succeeded": 5, "failed": 1, "cancelled": 1}
    assert (dry.files_deleted, dry.batches, batches) == (1, 5, [2, 2, 1, 1, 1])
    assert dry.summary().startswith("Would delete 7 job(s) finished before ")
    assert Job.objects.count() == 10
    assert default_storage.exists(stored_response_file(job.result))

    real = prune_jobs(WEEK, batch_size=2)
    assert (real.deleted, real.files_deleted, real.batches) == (dry.deleted, 1, 5)
    assert real.summary().startswith("Deleted 7 job(s)")


def test_stored_response_files_are_deleted_and_missing_ones_are_fine(file_results) -> None:
    old = [offloaded_job_with_file(status) for status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.SUCCEEDED)]
    recent = offloaded_job_with_file(age=timedelta(hours=2))
    gone = offloaded_job_with_file()
    default_storage.delete(stored_response_file(gone.result))

    report = prune_jobs(WEEK, batch_size=2)

    assert report.deleted == {"succeeded": 3, "failed": 1, "cancelled": 0}
    assert report.files_deleted == 3
    for job in old:
        assert not default_storage.exists(stored_response_file(job.result))
    assert default_storage.exists(stored_response_file(recent.result))
    assert list(Job.objects.values_list("pk", flat=True)) == [recent.pk]


def test_end_to_end_offloaded_view_files_and_uploads_never_discarded(file_results, django_user_model, run_worker):
    client = Client()
    client.force_login(django_user_model.objects.create_user("ann", password="pw"))
    # A view that ran: its response body is a file.
    ran = client.get("/report/")
    assert ran.status_code == 202
    run_worker()
    # A view that never ran (cancelled while queued): its upload is still stored.
    upload = SimpleUploadedFile("notes.txt", b"file body", content_type="text/plain")
    cancelled = client.post("/echo/1/", {"attachment": upload})
    assert cancelled.status_code == 202
    ran_job = Job.objects.get(status=JobStatus.SUCCEEDED)
    cancelled_job = Job.objects.exclude(pk=ran_job.pk).get()
    assert cancelled_job.cancel()
    response_file = stored_response_file(ran_job.result)
    (upload_file,) = stored_uploads(cancelled_job.args[1])
    assert default_storage.exists(response_file) and default_storage.exists(upload_file)

    assert prune_jobs(WEEK).total == 0  # both finished just now
    Job.objects.update(finished_at=timezone.now() - timedelta(days=8))
    report = prune_jobs(WEEK)

    assert report.deleted == {"succeeded": 1, "failed": 0, "cancelled": 1}
    assert report.files_deleted == 2
    assert not default_storage.exists(response_file) and not default_storage.exists(upload_file)
    assert not Job.objects.exists()


def test_rows_pointing_at_pruned_jobs_are_kept_and_cleared_with_bounded_queries() -> None:
    jobs = make_jobs(JobStatus.SUCCEEDED, 12)
    kept = make_jobs(JobStatus.SUCCEEDED, 1, age=timedelta(0))[0]
    schedules = [
        Schedule.objects.create(name=f"every hour {i}", job_name="tests.add", interval=timedelta(hours=1), last_job=job)
        for i, job in enumerate([*jobs, kept])
    ]
    now = timezone.now()
    windows = [
        AggregationWindow.objects.create(name="totals", since=now - timedelta(hours=i + 1), until=now, job=job)
        for i, job in enumerate(jobs)
    ]

    with CaptureQueriesContext(connection) as queries:
        report = prune_jobs(WEEK, batch_size=6)

    assert (report.total, report.batches) == (12, 2)
    # Per batch: select the batch; load it for the delete; clear Schedule.last_job,
    # AggregationWindow.job and JobGroup.callback for the batch; delete its JobDependency rows
    # (both sides); delete. Plus one empty select per status, and the emptied groups' delete.
    # Twelve rows per query would show up here as twelve queries per batch.
    assert len(queries) <= 11 * report.batches + len(report.statuses) + 2, [q["sql"] for q in queries]
    assert Schedule.objects.count() == len(schedules)
    assert list(Schedule.objects.exclude(last_job=None).values_list("last_job", flat=True)) == [kept.pk]
    assert AggregationWindow.objects.count() == len(windows)
    assert not AggregationWindow.objects.exclude(job=None).exists()


def test_jobs_finished_at_the_same_moment_are_all_pruned_across_batches() -> None:
    """The batches continue after (finished_at, pk), so ties on finished_at are neither skipped nor repeated."""
    make_jobs(JobStatus.FAILED, 9)  # one bulk_create: one finished_at for all
    seen: list[int] = []
    dry = prune_jobs(WEEK, ["failed"], dry_run=True, batch_size=4, progress=seen.append)
    assert (dry.deleted, seen) == ({"failed": 9}, [4, 4, 1])
    assert prune_jobs(WEEK, ["failed"], batch_size=4).deleted == {"failed": 9}


def test_report_summary() -> None:
    report = PruneReport(cutoff=timezone.now(), statuses=("failed",), deleted={"failed": 2}, files_deleted=1)
    assert report.summary().endswith("(2 failed) and 1 stored file(s), in 0 batch(es).")


# The command


def prune_command(*args: str) -> str:
    out = StringIO()
    call_command("asyncjobs_prune", *args, stdout=out)
    return out.getvalue()


def test_command_prunes_with_progress_and_summary(file_results) -> None:
    make_jobs(JobStatus.SUCCEEDED, 3)
    make_jobs(JobStatus.FAILED, 2)
    make_jobs(JobStatus.CANCELLED, 1)
    offloaded_job_with_file()
    recent = make_jobs(JobStatus.FAILED, 1, age=timedelta(hours=3))

    output = prune_command("--older-than", "1d", "--status", " succeeded, failed ", "--batch-size", "2")

    lines = output.splitlines()
    assert lines[:4] == [
        "Deleting succeeded, failed jobs that finished more than 1d ago, 2 per batch.",
        "Batch 1: deleted 2 job(s), 2 so far.",
        "Batch 2: deleted 2 job(s), 4 so far.",
        "Batch 3: deleted 2 job(s), 6 so far.",
    ]
    assert len(lines) == 5
    assert lines[4].startswith("Deleted 6 job(s) finished before ")
    assert lines[4].endswith("(4 succeeded, 2 failed) and 1 stored file(s), in 3 batch(es).")
    assert set(Job.objects.values_list("status", flat=True)) == {"cancelled", "failed"}
    assert Job.objects.filter(status="failed").get().pk == recent[0].pk


def test_command_dry_run_and_quiet() -> None:
    make_jobs(JobStatus.CANCELLED, 3)
    output = prune_command("--older-than", "12h", "--dry-run")
    assert output.splitlines()[0].startswith("Dry run: counting succeeded, failed, cancelled jobs")
    assert "Batch 1: would delete 3 job(s), 3 so far." in output
    assert "Would delete 3 job(s)" in output
    assert Job.objects.count() == 3
    assert prune_command("--older-than", "90m", "-v", "0") == ""
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--older-than", "7x"], r'--older-than must be a duration such as "90s"'),
        (["--older-than", "0d"], "--older-than must be longer than zero"),
        (["--older-than", "7d", "--status", "queued"], "--status: Jobs with status 'queued' are not finished"),
        (["--older-than", "7d", "--status", "succeeded,done"], "--status: Unknown status 'done'"),
        (["--older-than", "7d", "--status", ","], "--status: Give at least one status"),
        (["--older-than", "7d", "--batch-size", "0"], "--batch-size must be at least 1, got 0"),
        ([], "the following arguments are required: --older-than"),
    ],
)
def test_command_errors(args: list[str], message: str) -> None:
    make_jobs(JobStatus.SUCCEEDED, 1)
    with pytest.raises(CommandError, match=message):
        prune_command(*args)
    assert Job.objects.count() == 1
