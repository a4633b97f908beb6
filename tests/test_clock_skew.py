"""Hosts whose clocks are off: every time that hosts compare comes from the database's clock.

A process's clock is set off with the test hook of tests/settings.py
(``ASYNCJOBS_TEST_CLOCK_OFFSET``: ``django.utils.timezone.now()`` runs that many seconds
off in that process). The database, its clock and Redis are the real ones.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest
from django.utils import timezone

from django_asyncjobs import Job, JobStatus
from django_asyncjobs.models import Schedule
from django_asyncjobs.scheduling.recovery import recover
from tests.conftest import wait_for
from tests.testapp.jobs import add, waits_for_release
from tests.testapp.models import Call

pytestmark = pytest.mark.django_db(transaction=True)

SKEW = 75.0  # seconds, as in the report of issue 13
HEARTBEAT = {"ASYNCJOBS_TEST_HEARTBEAT_INTERVAL": "0.2", "ASYNCJOBS_TEST_HEARTBEAT_TIMEOUT": "2"}


def run_scheduler_once(env: dict[str, str]) -> str:
    command = [sys.executable, "-m", "django", "asyncjobs_scheduler", "--once", "--verbosity", "2"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def start_long_job(start_worker, subprocess_env: dict[str, str], label: str, worker_offset: float) -> Job:
    """A job that runs until released, on a worker subprocess beating every 0.2 s, past HEARTBEAT_TIMEOUT."""
    job = waits_for_release.enqueue(label, max_attempts=2)
    subprocess_env.update(HEARTBEAT, ASYNCJOBS_TEST_CLOCK_OFFSET=str(worker_offset))
    start_worker("default", "--burst")
    running = wait_for(lambda: Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING).first(), what="the job to start")
    # Longer than HEARTBEAT_TIMEOUT (2 s) since it started, by the clock that wrote both times.
    wait_for(
        lambda: Job.objects.get(pk=job.pk).heartbeat_at - running.started_at > timedelta(seconds=3),
        what="the job to run past HEARTBEAT_TIMEOUT",
    )
    return running


def finish(job: Job, label: str) -> Job:
    Call.objects.create(label="release")
    wait_for(lambda: Job.objects.get(pk=job.pk).status == JobStatus.SUCCEEDED, seconds=60, what="the job to succeed")
    # Nothing else to run: a second attempt, if any, would have run before the burst worker quit.
    return Job.objects.get(pk=job.pk)


def test_a_scheduler_whose_clock_is_fast_does_not_take_a_live_job_for_lost(start_worker, subprocess_env) -> None:
    job = start_long_job(start_worker, subprocess_env, "fast-scheduler", worker_offset=0)

    output = run_scheduler_once({**subprocess_env, **HEARTBEAT, "ASYNCJOBS_TEST_CLOCK_OFFSET": str(SKEW)})

    assert "0 lost" in output, output
    row = Job.objects.get(pk=job.pk)
    assert (row.status, row.attempts) == (JobStatus.RUNNING, 1)
    row = finish(job, "fast-scheduler")
    assert (row.attempts, row.error, row.failed_attempts) == (1, "", [])
    assert Call.objects.filter(label="fast-scheduler").count() == 1  # it ran once


def test_a_worker_whose_clock_is_slow_keeps_its_long_job(start_worker, subprocess_env) -> None:
    job = start_long_job(start_worker, subprocess_env, "slow-worker", worker_offset=-SKEW)

    assert recover(heartbeat_timeout=2).lost == []
    from django_asyncjobs.times.clock import database_now

    # The claim and the heartbeats were written with the database's clock, not the worker's.
    assert database_now() - Job.objects.get(pk=job.pk).started_at < timedelta(seconds=SKEW / 2)

    row = finish(job, "slow-worker")
    assert (row.attempts, row.error) == (1, "")
    assert Call.objects.filter(label="slow-worker").count() == 1


def test_a_scheduler_whose_clock_is_fast_fires_and_queues_nothing_early(subprocess_env) -> None:
    soon = timezone.now() + timedelta(seconds=SKEW / 2)
    delayed = add.enqueue(1, 2, run_at=soon)
    schedule = Schedule.objects.create(name="soon", job_name=add.name, args=[1, 1], interval=timedelta(hours=1))
    Schedule.objects.filter(pk=schedule.pk).update(next_run_at=soon)

    run_scheduler_once({**subprocess_env, "ASYNCJOBS_TEST_CLOCK_OFFSET": str(SKEW)})

    assert Job.objects.get(pk=delayed.pk).status == JobStatus.SCHEDULED
    assert not Job.objects.filter(schedule=schedule).exists()
    assert Schedule.objects.get(pk=schedule.pk).next_run_at == soon


def test_the_database_clock_compares_right_with_stored_times() -> None:
    from django_asyncjobs.engine.states import claim
    from django_asyncjobs.times.clock import database_now

    job = add.enqueue(1, 1)
    before = database_now()
    claimed = claim(job.pk, "w")
    after = database_now()
    assert claimed is not None
    assert before <= claimed.started_at <= after
    assert claimed.heartbeat_at == claimed.started_at
    row = Job.objects.get(pk=job.pk)
    assert (row.started_at, row.heartbeat_at) == (claimed.started_at, claimed.started_at)
    # The same comparisons in SQL, as recovery and the scheduler make them.
    rows = Job.objects.filter(pk=job.pk)
    assert rows.filter(started_at__gte=before, started_at__lte=after, heartbeat_at__lte=database_now()).exists()
    assert not rows.filter(heartbeat_at__lt=before).exists()
    assert recover(heartbeat_timeout=3600).lost == []
