"""A job whose code a worker lacks (a rolling deploy): put back for another worker, failed
only after UNKNOWN_JOB_TIMEOUT. The old and the new worker are separate processes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from django_asyncjobs import Job, JobStatus
from django_asyncjobs.engine.broker import ring
from tests.testapp.models import Call

pytestmark = pytest.mark.django_db(transaction=True)

NEW_JOB = "tests.testapp.jobs.deployed_later"  # registered only with ASYNCJOBS_TEST_NEW_CODE
NOT_REGISTERED = "django_asyncjobs.exceptions.JobNotRegistered"


def new_job(label: str) -> Job:
    job = Job.objects.create(name=NEW_JOB, queue="default", kwargs={"label": label}, max_attempts=1)
    ring([job])
    return job


def test_an_old_worker_puts_the_job_back_and_a_new_one_runs_it(start_worker, subprocess_env) -> None:
    job = new_job("deployed")
    old = start_worker("default", "--burst")
    output, _ = old.communicate(timeout=60)
    assert old.returncode == 0, output
    job.refresh_from_db()
    assert (job.status, job.attempts) == (JobStatus.SCHEDULED, 0), job.error  # the attempt is not used up
    assert job.run_at is not None and job.run_at > job.created_at
    [entry] = job.failed_attempts
    assert (entry["exception_class"], entry["put_back"]) == (NOT_REGISTERED, 1)
    assert "put back" in job.error

    Job.objects.filter(pk=job.pk).update(run_at=timezone.now())  # its delay is over
    subprocess_env["ASYNCJOBS_TEST_NEW_CODE"] = "1"
    new = start_worker("default", "--burst")
    output, _ = new.communicate(timeout=60)
    assert new.returncode == 0, output
    job.refresh_from_db()
    assert (job.status, job.attempts, job.result) == (JobStatus.SUCCEEDED, 1, "deployed"), job.error
    assert Call.objects.filter(label="deployed").count() == 1


def test_put_backs_are_counted_in_one_entry(run_worker) -> None:
    job = new_job("counted")
    run_worker("default")
    Job.objects.filter(pk=job.pk).update(run_at=timezone.now())
    run_worker("default")  # promotes it, meets it again
    job.refresh_from_db()
    assert job.status == JobStatus.SCHEDULED
    [entry] = job.failed_attempts
    assert entry["put_back"] == 2


def test_the_job_fails_once_no_worker_had_its_code_for_unknown_job_timeout(run_worker, settings) -> None:
    settings.ASYNCJOBS = {**settings.ASYNCJOBS, "UNKNOWN_JOB_TIMEOUT": 3600}
    job = new_job("too-late")
    run_worker("default")
    first_seen = (timezone.now() - timedelta(hours=2)).isoformat()
    entry = {**Job.objects.get(pk=job.pk).failed_attempts[0], "first_put_back_at": first_seen}
    Job.objects.filter(pk=job.pk).update(run_at=timezone.now(), failed_attempts=[entry])
    run_worker("default")
    job.refresh_from_db()
    assert (job.status, job.attempts) == (JobStatus.FAILED, 1)
    assert job.error.startswith("JobNotRegistered: ")
    assert "UNKNOWN_JOB_TIMEOUT" in job.error and "put back 1 time(s)" in job.error
    assert job.failed_attempts[-1]["exception_class"] == NOT_REGISTERED


def test_unknown_job_timeout_zero_fails_at_once(run_worker, settings) -> None:
    settings.ASYNCJOBS = {**settings.ASYNCJOBS, "UNKNOWN_JOB_TIMEOUT": 0}
    job = new_job("at-once")
    run_worker("default")
    job.refresh_from_db()
    assert (job.status, job.attempts) == (JobStatus.FAILED, 1)
    assert "No job is registered as 'tests.testapp.jobs.deployed_later'" in job.error
