"""The proof of atomic jobs: 500 jobs that each insert one row, worker processes SIGKILLed at
random moments while they run them (and some right after a job's insert), recovery after each
death. Atomic jobs end with exactly one row per job; the same jobs without ``atomic=True``
end with duplicates: the attempts that inserted and died before their outcome was written
ran again. On SQLite and PostgreSQL (set DATABASE_URL)."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from rq.worker import Worker as RQWorker

from django_asyncjobs import Job, JobStatus
from django_asyncjobs.scheduling.firing import promote_due_jobs
from django_asyncjobs.scheduling.recovery import recover
from tests.testapp.atomic_jobs import atomic_insert, plain_insert
from tests.testapp.models import Call

pytestmark = pytest.mark.django_db(transaction=True)

JOBS = 500
#: Jobs whose worker kills itself right after their insert, on their first attempt.
DYING = range(25, JOBS, 50)
#: Kills from the outside, at random moments, at least.
KILLS = 20
WORKERS = 3
HEARTBEAT_TIMEOUT = 1.0


class Workers:
    """Worker subprocesses, one per slot, each started again when it dies."""

    def __init__(self, env: dict[str, str], logs: Path, redis: Any) -> None:
        self.env, self.logs, self.redis = env, logs, redis
        self.started = 0
        self.deaths = 0
        self.processes = [self._start(slot) for slot in range(WORKERS)]

    def _start(self, slot: int) -> subprocess.Popen[bytes]:
        self.started += 1
        # One slot runs its jobs in threads, whose successes a writer thread writes (not an atomic job's).
        threads = ["--threads", "2"] if slot == 0 else []
        with open(self.logs / f"worker-{self.started}.log", "wb") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "django", "asyncjobs_worker", "default", *threads, "-v", "2"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def replace_dead(self) -> None:
        for slot, process in enumerate(self.processes):
            if process.poll() is not None:
                self.deaths += 1
                self.processes[slot] = self._start(slot)

    def working(self) -> list[subprocess.Popen[bytes]]:
        """The live processes that registered as workers (past their start-up)."""
        registered = {int(worker.pid) for worker in RQWorker.all(connection=self.redis) if worker.pid}
        return [p for p in self.processes if p.poll() is None and p.pid in registered]

    def stop(self) -> None:
        for process in self.processes:
            process.kill()
            process.wait()


def _unfinished() -> int:
    return Job.objects.exclude(status__in=(JobStatus.SUCCEEDED, JobStatus.FAILED)).count()


def _run_with_kills(function: Any, subprocess_env: dict[str, str], tmp_path: Path, redis: Any) -> int:
    """Run the jobs to the end while killing workers; the number of kills from the outside."""
    deaths = tmp_path / "deaths"
    deaths.mkdir()
    env = dict(
        subprocess_env,
        ASYNCJOBS_TEST_HEARTBEAT_INTERVAL="0.2",
        ASYNCJOBS_TEST_HEARTBEAT_TIMEOUT=str(HEARTBEAT_TIMEOUT),
        ASYNCJOBS_TEST_DEATHS=str(deaths),
    )
    function.enqueue_many([(f"job-{i}", i in DYING) for i in range(JOBS)])
    rng = random.Random()
    # A kill each time this many jobs have finished (paced by the jobs, which do not move on
    # while the workers start again), at a random moment in between.
    due = sorted(rng.sample(range(5, JOBS - 20), KILLS + 2))
    workers = Workers(env, tmp_path, redis)
    kills = 0
    deadline = time.monotonic() + 300
    recovered_at = time.monotonic()
    try:
        while unfinished := _unfinished():
            assert time.monotonic() < deadline, f"{unfinished} jobs unfinished; logs in {tmp_path}"
            time.sleep(rng.uniform(0.01, 0.1))
            working = workers.working()
            if due and JOBS - unfinished >= due[0] and working:
                victim = rng.choice(working)
                victim.kill()  # SIGKILL: nothing of the running attempt is recorded
                victim.wait()
                kills += 1
                due.pop(0)
            workers.replace_dead()
            if time.monotonic() - recovered_at > 0.5:
                # Jobs of dead workers back (retried, or put back if claimed and not started),
                # and the messages they had popped but not claimed pushed again.
                recover(heartbeat_timeout=HEARTBEAT_TIMEOUT, grace=1.0)
                promote_due_jobs()
                recovered_at = time.monotonic()
    finally:
        workers.stop()
    # (A kill may land on a worker that has just killed itself: not more deaths than that.)
    assert workers.deaths >= kills
    # Each of the dying jobs killed its worker once, right after its insert.
    assert sorted(path.name for path in deaths.iterdir()) == sorted(f"job-{i}" for i in DYING)
    return kills


def test_atomic_jobs_write_once_whatever_kills_their_workers(subprocess_env, tmp_path, redis) -> None:
    kills = _run_with_kills(atomic_insert, subprocess_env, tmp_path, redis)
    assert kills >= KILLS
    assert not Job.objects.filter(status=JobStatus.RUNNING).exists()
    assert Job.objects.filter(status=JobStatus.SUCCEEDED).count() == JOBS
    runs = Counter(Call.objects.values_list("label", flat=True))
    # The dying jobs among them: their first insert is gone with the worker that made it.
    assert runs == Counter({f"job-{i}": 1 for i in range(JOBS)})


def test_plain_jobs_write_again_when_their_worker_dies_after_the_insert(subprocess_env, tmp_path, redis) -> None:
    """Why atomic=True exists: the same run without it leaves duplicates (at least one per
    job whose worker died right after its insert, so the test does not depend on luck)."""
    kills = _run_with_kills(plain_insert, subprocess_env, tmp_path, redis)
    assert kills >= KILLS
    assert not Job.objects.filter(status=JobStatus.RUNNING).exists()
    runs = Counter(Call.objects.values_list("label", flat=True))
    assert set(runs) == {f"job-{i}" for i in range(JOBS)}
    assert all(runs[f"job-{i}"] >= 2 for i in DYING)
    assert sum(runs.values()) > JOBS
