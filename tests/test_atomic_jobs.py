"""Atomic jobs (``@job(atomic=True)``): the function's writes commit with its outcome, or not
at all. The kill test is tests/test_atomic_kills.py."""

from __future__ import annotations

import logging

import pytest
from django.core.checks import run_checks
from django.db import connection

from django_asyncjobs import Job, JobStatus, job
from django_asyncjobs.engine.functions import JobOptions
from django_asyncjobs.engine.outcomes import Outcome
from django_asyncjobs.exceptions import ConfigurationError
from django_asyncjobs.worker import ThreadedWorker
from tests.conftest import run_stock_rq_worker
from tests.testapp.atomic_jobs import (
    async_atomic_record,
    atomic_breaks_its_transaction,
    atomic_callback_raises,
    atomic_fails_once,
    atomic_holds,
    atomic_loses_its_attempt,
    atomic_loses_its_connection,
    atomic_manages_its_transaction,
    atomic_progress,
    atomic_progress_then_fails,
    atomic_record,
    atomic_times_out,
)
from tests.testapp.jobs import record
from tests.testapp.models import Call

pytestmark = pytest.mark.django_db(transaction=True)


def _job(pk: object) -> Job:
    return Job.objects.get(pk=pk)


def test_a_success_commits_the_functions_writes_with_it(run_worker) -> None:
    job = atomic_record.enqueue("kept", value={"n": 1})
    run_worker()
    row = _job(job.pk)
    assert (row.status, row.result, row.progress) == (JobStatus.SUCCEEDED, {"n": 1}, 100)
    assert Call.objects.filter(label="kept").count() == 1


def test_a_failure_rolls_the_functions_writes_back_and_is_recorded(run_worker) -> None:
    job = atomic_record.enqueue("gone", fail=True)
    run_worker()
    row = _job(job.pk)
    assert row.status == JobStatus.FAILED
    assert "gone failed after its insert" in row.error
    assert row.failed_attempts[-1]["exception_class"] == "builtins.RuntimeError"
    assert not Call.objects.filter(label="gone").exists()


def test_a_return_value_that_cannot_be_stored_rolls_the_writes_back(run_worker) -> None:
    job = atomic_record.enqueue("unstorable", unstorable=True)
    run_worker()
    row = _job(job.pk)
    assert row.status == JobStatus.FAILED
    assert row.error.startswith("result could not be stored")
    assert not Call.objects.filter(label="unstorable").exists()


def test_a_plain_job_keeps_its_writes_when_it_fails(run_worker) -> None:
    """What atomic=True changes: without it, what the function wrote before raising stays."""
    plain = job(name="tests.plain_record_fails", max_attempts=1)(atomic_record.func)
    plain.enqueue("stays", fail=True)
    run_worker()
    assert Call.objects.filter(label="stays").count() == 1


def test_an_attempt_the_row_left_meanwhile_commits_nothing(run_worker) -> None:
    if connection.vendor == "sqlite":
        pytest.skip("SQLite: the job's transaction holds the database's one write lock; nothing takes the row")
    job = atomic_loses_its_attempt.enqueue("lost")
    run_worker()
    row = _job(job.pk)
    assert (row.status, row.worker) == (JobStatus.RUNNING, "another-worker")  # not written over
    assert not Call.objects.filter(label="lost").exists()


def test_progress_of_an_atomic_job_is_written_with_its_outcome_only(run_worker) -> None:
    """Its row is never locked by a progress write: the heartbeat (another connection) can
    write it while the job runs."""
    job = atomic_progress.enqueue("progress")
    run_worker()
    row = _job(job.pk)
    assert (row.status, row.result, row.progress) == (JobStatus.SUCCEEDED, 0, 100)
    assert Call.objects.filter(label="progress").count() == 1


def test_a_failed_atomic_job_keeps_the_progress_it_reported(run_worker) -> None:
    """As a plain job does: the last progress is written with the failure, only the
    function's writes are rolled back."""
    job = atomic_progress_then_fails.enqueue("at 40")
    run_worker()
    row = _job(job.pk)
    assert (row.status, row.progress, row.progress_message) == (JobStatus.FAILED, 40, "almost half")
    assert not Call.objects.exists()


@pytest.mark.parametrize("worker_options", [{"threads": 2, "worker_class": ThreadedWorker}, {}])
def test_an_async_atomic_job_writes_in_its_transaction(run_worker, worker_options) -> None:
    kept, failed = async_atomic_record.enqueue("async"), async_atomic_record.enqueue("async-fails", fail=True)
    run_worker(**worker_options)
    assert (_job(kept.pk).status, _job(failed.pk).status) == (JobStatus.SUCCEEDED, JobStatus.FAILED)
    assert list(Call.objects.values_list("label", flat=True)) == ["async"]


@pytest.mark.parametrize("worker_options", [{"threads": 2, "worker_class": ThreadedWorker}, {}])
def test_atomic_and_plain_jobs_together_in_batches_and_threads(run_worker, worker_options) -> None:
    jobs = atomic_record.enqueue_many([(f"a{i}",) for i in range(10)] + [(f"f{i}", True) for i in range(5)])
    jobs += record.enqueue_many([(f"p{i}",) for i in range(10)])
    run_worker(**worker_options)
    statuses = sorted(_job(j.pk).status for j in jobs)
    assert statuses == sorted([JobStatus.SUCCEEDED] * 20 + [JobStatus.FAILED] * 5)
    assert Call.objects.filter(label__startswith="a").count() == 10
    assert not Call.objects.filter(label__startswith="f").exists()


def test_a_transaction_held_long_is_logged(run_worker, settings, caplog) -> None:
    settings.ASYNCJOBS = {**settings.ASYNCJOBS, "ATOMIC_WARN_AFTER": 0.05}
    caplog.set_level(logging.WARNING, logger="django_asyncjobs.jobs")
    quick, slow = atomic_holds.enqueue(0), atomic_holds.enqueue(0.2)
    run_worker()
    logged = [r for r in caplog.records if r.getMessage().startswith("job.long_transaction")]
    assert [str(r.job) for r in logged] == [str(slow.pk)]  # type: ignore[attr-defined]
    assert _job(quick.pk).status == _job(slow.pk).status == JobStatus.SUCCEEDED


def test_atomic_is_true_or_false() -> None:
    with pytest.raises(ValueError, match="atomic must be True or False"):
        JobOptions(atomic="yes")  # type: ignore[arg-type]
    assert JobOptions.from_setting({"ATOMIC": True}).atomic


class _JobsElsewhere:
    def db_for_write(self, model, **hints):
        return "jobs" if model._meta.app_label == "django_asyncjobs" else None


def test_a_check_warns_when_the_jobs_database_is_not_the_default(settings) -> None:
    assert not [m for m in run_checks() if m.id == "asyncjobs.W005"]
    settings.DATABASE_ROUTERS = [f"{__name__}._JobsElsewhere"]
    warnings = [m for m in run_checks() if m.id == "asyncjobs.W005"]
    assert len(warnings) == 1
    assert "'jobs'" in warnings[0].msg and "tests.testapp.atomic_jobs.atomic_record" in warnings[0].msg


def test_an_offloaded_atomic_view_is_rejected_with_a_bad_value() -> None:
    from django_asyncjobs import offload

    with pytest.raises(ConfigurationError):
        offload(atomic="yes")  # type: ignore[arg-type]


def test_an_offloaded_view_can_be_atomic(client, django_user_model, run_worker) -> None:
    client.force_login(django_user_model.objects.create_user("ann", password="pw"))
    kept = client.post("/atomic-writes/?label=kept")
    failed = client.post("/atomic-writes/?label=gone&fail=1")
    assert kept.status_code == failed.status_code == 202
    run_worker()
    statuses = {label: _job(r.json()["id"]).status for label, r in (("kept", kept), ("gone", failed))}
    assert statuses == {"kept": JobStatus.SUCCEEDED, "gone": JobStatus.FAILED}
    assert list(Call.objects.values_list("label", flat=True)) == ["atomic-view:kept"]


def test_a_job_waiting_for_an_atomic_one_runs_after_its_commit(run_worker) -> None:
    first = atomic_record.enqueue("first")
    then = record.enqueue("then", after=[first])
    failing = atomic_record.enqueue("failing", fail=True)
    never = record.enqueue("never", after=[failing])
    run_worker()
    assert (_job(first.pk).status, _job(then.pk).status) == (JobStatus.SUCCEEDED, JobStatus.SUCCEEDED)
    assert (_job(failing.pk).status, _job(never.pk).status) == (JobStatus.FAILED, JobStatus.CANCELLED)
    assert sorted(Call.objects.values_list("label", flat=True)) == ["first", "then"]


def test_a_callback_raising_after_the_commit_leaves_the_success_recorded(asyncjobs_worker, caplog) -> None:
    """The job's success committed before its ``on_commit`` callbacks ran: one that raises
    does not make the worker record a failure over it (or discard it), and what waits for
    the job is settled."""
    caplog.set_level(logging.INFO, logger="django_asyncjobs")
    first = atomic_callback_raises.enqueue("committed")
    then = record.enqueue("then", after=[first])
    run = asyncjobs_worker()
    assert (_job(first.pk).status, _job(then.pk).status) == (JobStatus.SUCCEEDED, JobStatus.SUCCEEDED)
    assert run.outcomes[Outcome.SUCCEEDED] == 2
    assert sorted(Call.objects.values_list("label", flat=True)) == ["committed", "then"]
    assert not [r for r in caplog.records if r.getMessage().startswith("job.outcome_discarded")]
    logged = [r for r in caplog.records if r.getMessage().startswith("job.on_commit_failed")]
    assert [str(r.job) for r in logged] == [str(first.pk)]  # type: ignore[attr-defined]


def test_a_statement_error_inside_the_job_fails_it_and_the_worker_goes_on(run_worker) -> None:
    broken = atomic_breaks_its_transaction.enqueue("broken")
    after = atomic_record.enqueue("after")
    run_worker()
    row = _job(broken.pk)
    assert row.status == JobStatus.FAILED
    assert _job(after.pk).status == JobStatus.SUCCEEDED
    assert list(Call.objects.values_list("label", flat=True)) == ["after"]


@pytest.mark.parametrize("how", ["commit", "autocommit", "durable"])
def test_a_job_cannot_end_its_transaction_itself(run_worker, how) -> None:
    managing = atomic_manages_its_transaction.enqueue(how)
    run_worker()
    row = _job(managing.pk)
    assert row.status == JobStatus.FAILED, row.error
    assert not Call.objects.exists()


@pytest.mark.parametrize("worker_options", [{"threads": 2, "worker_class": ThreadedWorker}, {}])
def test_a_retry_starts_from_a_clean_slate(run_worker, worker_options) -> None:
    job = atomic_fails_once.enqueue("again")
    run_worker(**worker_options)
    row = _job(job.pk)
    assert (row.status, row.result, row.attempts) == (JobStatus.SUCCEEDED, 2, 2)
    assert [a["exception_class"] for a in row.failed_attempts] == ["builtins.RuntimeError"]
    assert Call.objects.filter(label="again").count() == 1


def test_a_stock_rq_worker_runs_atomic_jobs_atomically(redis) -> None:
    """The ``perform`` path: what the function wrote commits with its success, and goes with a failure."""
    kept, failed = atomic_record.enqueue("kept"), atomic_record.enqueue("gone", fail=True)
    run_stock_rq_worker()
    assert [_job(j.pk).status for j in (kept, failed)] == [JobStatus.SUCCEEDED, JobStatus.FAILED]
    assert list(Call.objects.values_list("label", flat=True)) == ["kept"]


@pytest.mark.parametrize("worker_options", [{"threads": 2, "worker_class": ThreadedWorker}, {}])
def test_a_timeout_rolls_the_writes_back(run_worker, worker_options) -> None:
    job = atomic_times_out.enqueue("late")
    run_worker(**worker_options)
    row = _job(job.pk)
    assert row.status == JobStatus.FAILED
    assert row.failed_attempts[-1]["exception_class"] == "django_asyncjobs.exceptions.JobTimeout"
    assert not Call.objects.exists()


def test_a_connection_broken_before_the_commit_rolls_back_and_the_attempt_is_retried(run_worker) -> None:
    from tests.faults import needs_own_server_session, needs_postgresql

    needs_postgresql()
    needs_own_server_session("(the job ends its own server session)")
    job = atomic_loses_its_connection.enqueue("cut")
    run_worker()
    row = _job(job.pk)
    assert (row.status, row.result, row.attempts) == (JobStatus.SUCCEEDED, 2, 2)
    assert [a["attempt"] for a in row.failed_attempts] == [1]
    assert list(Call.objects.values_list("label", flat=True)) == ["cut"]
