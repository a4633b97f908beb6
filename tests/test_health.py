"""Liveness for orchestrators: the worker's health file (``--health-file``) and ``asyncjobs_health``."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from django_asyncjobs import Job, JobStatus
from django_asyncjobs.worker import ThreadedWorker, build_worker
from django_asyncjobs.worker.health import HealthFile
from tests.conftest import wait_for
from tests.testapp.jobs import health_file_state, overruns, waits_for_file

pytestmark = pytest.mark.django_db(transaction=True)


def health(*args: str) -> str:
    """``asyncjobs_health`` in this process: its line when live; ``CommandError`` (returncode 1) when not."""
    from io import StringIO

    out = StringIO()
    call_command("asyncjobs_health", *args, stdout=out)
    return out.getvalue().strip()


def unhealthy(*args: str) -> str:
    with pytest.raises(CommandError) as failed:
        health(*args)
    assert failed.value.returncode == 1
    return str(failed.value)


def mtime(path: Path) -> float:
    return path.stat().st_mtime


# -- the file, touched by real workers -------------------------------------------------------


@pytest.mark.parametrize("threads", [1, 3])
def test_a_burst_worker_touches_its_health_file_while_it_runs_and_removes_it(tmp_path, run_worker, threads) -> None:
    path = tmp_path / "alive"
    path.touch()
    os.utime(path, (0, 0))  # left by an earlier run: the worker touches it as it starts
    job = health_file_state.enqueue(str(path))
    options = {"worker_class": ThreadedWorker, "threads": threads} if threads > 1 else {}
    worker = run_worker("default", health_file=str(path), **options)

    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.result["exists"] is True
    assert job.result["mtime"] > 0
    assert worker.health_file is not None and worker.health_file.path == str(path)
    assert not path.exists()  # removed as the worker exited
    assert "does not exist" in unhealthy("--file", str(path))


def test_the_heartbeat_thread_keeps_the_file_fresh_during_a_long_job(tmp_path, start_worker, subprocess_env) -> None:
    subprocess_env["ASYNCJOBS_TEST_HEARTBEAT_INTERVAL"] = "0.2"
    path, release = tmp_path / "alive", tmp_path / "release"
    job = waits_for_file.enqueue(str(release))
    process = start_worker("default", "--name", "w-long", "--health-file", str(path))
    wait_for(lambda: Job.objects.get(pk=job.pk).status == JobStatus.RUNNING, what="the job to start")
    wait_for(path.exists, what="the health file")
    assert health("--worker", "w-long").startswith("ok: worker 'w-long' is registered")

    os.utime(path, (0, 0))  # stale: only the heartbeat thread can touch it now (the main thread runs the job)
    wait_for(lambda: mtime(path) > 0, what="the heartbeat thread to touch the file")
    assert health("--file", str(path)).startswith(f"ok: {path} touched")
    assert Job.objects.get(pk=job.pk).status == JobStatus.RUNNING

    release.touch()
    wait_for(lambda: Job.objects.get(pk=job.pk).status == JobStatus.SUCCEEDED, what="the job to end")
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    assert not path.exists()
    assert "does not exist" in unhealthy("--file", str(path))
    assert "is not registered" in unhealthy("--worker", "w-long")


def test_a_job_past_its_time_limit_lets_the_file_go_stale(tmp_path, start_worker, subprocess_env) -> None:
    subprocess_env["ASYNCJOBS_TEST_HEARTBEAT_INTERVAL"] = "0.2"
    path, release = tmp_path / "alive", tmp_path / "release"
    job = overruns.enqueue(str(release))
    process = start_worker("default", "--health-file", str(path))
    wait_for(Path(f"{release}.overran").exists, what="the job to swallow its JobTimeout")
    os.utime(path, (0, 0))

    def beat_after(previous: object) -> object:
        return wait_for(
            lambda: (beat := Job.objects.get(pk=job.pk).heartbeat_at) != previous and beat, what="a heartbeat"
        )

    # Beats come at least HEARTBEAT_INTERVAL apart: seven more are over a second of the heartbeat
    # thread's wake-ups after the file was made stale (its touches are at most once a second).
    beat = Job.objects.get(pk=job.pk).heartbeat_at
    for _ in range(7):
        beat = beat_after(beat)
    assert mtime(path) == 0
    assert "worker stuck or gone" in unhealthy("--file", str(path))

    release.touch()  # the job returns: the main loop turns again
    wait_for(lambda: mtime(path) > 0, what="the main loop to touch the file")
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0


def test_each_supervised_child_has_its_own_file(tmp_path, start_worker) -> None:
    path = tmp_path / "alive"
    children = [Path(f"{path}-0"), Path(f"{path}-1")]
    process = start_worker("default", "--concurrency", "2", "--health-file", str(path))
    wait_for(lambda: all(child.exists() for child in children), what="both children's files")
    assert not path.exists()
    assert health("--file", str(children[0]), "--file", str(children[1])).count("touched") == 2

    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    assert not any(child.exists() for child in children)


def test_the_setting_gives_the_file_and_a_bad_directory_stops_the_command(settings, tmp_path, run_worker) -> None:
    path = tmp_path / "from-setting"
    settings.ASYNCJOBS = {**settings.ASYNCJOBS, "WORKER_HEALTH_FILE": str(path)}
    job = health_file_state.enqueue(str(path))
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)}
    level = logging.getLogger("django_asyncjobs").level
    try:
        call_command("asyncjobs_worker", "default", "--burst")
    finally:  # the worker installed its signal handlers, and -v set the logger's level, in this process
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        logging.getLogger("django_asyncjobs").setLevel(level)
    job.refresh_from_db()
    assert job.result["exists"] is True
    assert not path.exists()

    with pytest.raises(CommandError, match="not writable"):
        call_command("asyncjobs_worker", "--burst", "--health-file", str(tmp_path / "missing" / "alive"))


def test_the_heartbeat_touches_only_while_a_job_is_within_its_time_limit(tmp_path, settings) -> None:
    settings.ASYNCJOBS = {**settings.ASYNCJOBS, "HEARTBEAT_INTERVAL": 1.0}
    path = tmp_path / "alive"
    health_file = HealthFile(path, "w", touch_interval=0)  # not once a second: each call counts here
    health_file.start()

    def stale_then_beat() -> float:
        os.utime(path, (0, 0))
        health_file.heartbeat()
        return mtime(path)

    assert stale_then_beat() == 0  # idle: the main loop's turns are what count
    with health_file.busy():  # claiming, recording: no limit
        assert stale_then_beat() > 0
        with health_file.busy(60):  # the job function, well within its limit
            assert stale_then_beat() > 0
        with health_file.busy(-2):  # past its limit and the grace (one heartbeat interval): stuck
            assert stale_then_beat() == 0
        assert stale_then_beat() > 0  # back in the unbounded part
    assert stale_then_beat() == 0

    health_file.remove()
    health_file.remove()  # already gone: nothing to do
    assert not path.exists()
    HealthFile(path).loop_turned()  # the main loop's first turn creates it
    assert path.exists()


# -- asyncjobs_health --------------------------------------------------------------------------


def test_health_of_fresh_and_stale_files(tmp_path) -> None:
    fresh, stale = tmp_path / "fresh", tmp_path / "stale"
    fresh.touch()
    stale.touch()
    old = time.time() - 600
    os.utime(stale, (old, old))

    assert health("--file", str(fresh)).startswith(f"ok: {fresh} touched")
    assert "last touched 600s ago, over 60s" in unhealthy("--file", str(stale))
    assert health("--file", str(stale), "--max-age", "900").startswith("ok:")
    reason = unhealthy("--file", str(fresh), "--file", str(stale))
    assert str(stale) in reason and str(fresh) not in reason
    with pytest.raises(CommandError, match="Give --file PATH or --worker NAME"):
        health()
    with pytest.raises(CommandError, match="--max-age must be above 0"):
        health("--file", str(fresh), "--max-age", "0")


def test_health_of_live_and_dead_worker_names(redis) -> None:
    worker = build_worker(["high"], name="w-registered")
    worker.register_birth()
    try:
        line = health("--worker", "w-registered")
        assert line.startswith("ok: worker 'w-registered' is registered (state ")
        assert "queues high" in line and "expires in" in line
        assert "'w-never' is not registered" in unhealthy("--worker", "w-never")
        assert "w-never" in unhealthy("--worker", "w-registered", "--worker", "w-never")
        redis.hset("rq:worker:w-odd", mapping={"state": "idle\x1b[2J", "queues": "default"})
        assert "state idle?[2J" in health("--worker", "w-odd")  # text from Redis is shown harmless
    finally:
        worker.register_death()
    assert "is not registered" in unhealthy("--worker", "w-registered")


def test_the_file_check_runs_without_a_database(tmp_path, subprocess_env) -> None:
    path = tmp_path / "alive"
    path.touch()
    env = {**subprocess_env, "DATABASE_URL": "postgres://nobody@127.0.0.1:1/none"}  # nothing listens there
    command = [sys.executable, "-m", "django", "asyncjobs_health", "--file"]
    done = subprocess.run([*command, str(path)], env=env, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.startswith(f"ok: {path} touched")) == (0, True), done.stderr
    done = subprocess.run([*command, str(tmp_path / "gone")], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "does not exist" in done.stderr
