"""Redis behind Sentinel: a master, a replica and three Sentinels (tests/sentinel.py), and a
failover while jobs are enqueued and drained.

``RQ_QUEUES`` names the Sentinels and the master (django-rq's ``SENTINELS`` and
``MASTER_NAME``). The enqueuer (this process) and the worker (a subprocess with the
scheduler thread) keep their clients across the failover; messages lost with the old
master are pushed again by ``asyncjobs_recover``. In the end every job succeeded, each run
once. The gaps are printed (``-s``) and recorded in docs/deployment.md#redis-sentinel.
"""

from __future__ import annotations

import io
import itertools
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.management import call_command

from django_asyncjobs import Job, JobStatus
from django_asyncjobs.engine import broker
from django_asyncjobs.engine.broker import keys
from django_asyncjobs.engine.broker.connections import MASTER_CHECK_INTERVAL, script
from django_asyncjobs.engine.broker.messages import PUSH_SCRIPT
from django_asyncjobs.engine.broker.reads import STATS_SCRIPT, WAITING_IDS_SCRIPT
from django_asyncjobs.signals import job_enqueued
from django_asyncjobs.testing import RedisServer
from django_asyncjobs.worker.loop import REDIS_RETRY_MAX, build_worker
from tests.conftest import wait_for
from tests.faults import Output
from tests.sentinel import MASTER_NAME, SentinelCluster, sentinel_binary
from tests.testapp.jobs import add, notes, waits_for_file

pytestmark = pytest.mark.django_db(transaction=True)

#: The failovers under load take a minute or two: ``make test-sentinel`` runs them (and CI).
long_failover = pytest.mark.skipif(
    not os.environ.get("ASYNCJOBS_TEST_FAILOVER"), reason="a failover under load: run with `make test-sentinel`"
)


@pytest.fixture
def cluster() -> Iterator[SentinelCluster]:
    sentinel_binary()  # skips with the reason when redis-sentinel is not installed
    started = SentinelCluster().start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def through_sentinel(settings: Any, cluster: SentinelCluster) -> SentinelCluster:
    """This process's queues reach Redis through the Sentinels; ``high`` has a depth limit, so
    every enqueue reads the queue's state (back pressure) too."""
    settings.RQ_QUEUES = {name: cluster.rq_queue() for name in ("default", "high", "low")}
    settings.ASYNCJOBS = {**settings.ASYNCJOBS, "QUEUE_LIMITS": {"high": {"MAX_DEPTH": 1_000_000}}}
    return cluster


@pytest.fixture
def sentinel_worker(
    start_worker: Callable[..., Any], subprocess_env: dict[str, str], through_sentinel: SentinelCluster
) -> Callable[..., Any]:
    subprocess_env["ASYNCJOBS_TEST_SENTINELS"] = through_sentinel.sentinels_setting
    subprocess_env["ASYNCJOBS_TEST_SENTINEL_MASTER"] = MASTER_NAME
    return start_worker


def test_the_connection_follows_the_failover_and_loads_its_scripts_again(through_sentinel, tmp_path, caplog) -> None:
    cluster = through_sentinel
    connection = broker.get_connection("high")
    notes.enqueue(str(tmp_path / "runs"), "before")
    assert broker.queue_stats("high").depth == 1
    old = cluster.failover()
    new = cluster.wait_for_new_master(old)
    # The old master still takes writes until the Sentinels demote it (~10 s): the client
    # must not wait for that. It asks the Sentinels again after MASTER_CHECK_INTERVAL.
    assert cluster.client(old).info("replication")["role"] == "master"
    time.sleep(MASTER_CHECK_INTERVAL)
    # A replica promoted to master has none of the old master's scripts (Redis does not
    # replicate SCRIPT LOAD); flushed here so that the check does not depend on it.
    cluster.client(new).script_flush()
    # The same cached client: its next command finds the new master through the Sentinels,
    # and EVALSHA's NOSCRIPT makes it load each script again.
    with caplog.at_level(logging.INFO, logger="django_asyncjobs.broker"):
        after = notes.enqueue(str(tmp_path / "runs"), "after")
    assert broker.get_connection("high") is connection
    waiting_on_new = cluster.client(new).lrange(keys.queue_key("high"), 0, -1)
    assert str(after.pk).encode() in waiting_on_new
    assert str(after.pk).encode() not in cluster.client(old).lrange(keys.queue_key("high"), 0, -1)
    assert str(after.pk) in (broker.waiting_ids("high") or set())
    assert broker.queue_stats("high").depth == len(waiting_on_new)
    assert [r.getMessage() for r in caplog.records if "redis.master_changed" in r.getMessage()]
    for source in (PUSH_SCRIPT, STATS_SCRIPT, WAITING_IDS_SCRIPT):
        assert cluster.client(new).script_exists(script(connection, source).sha) == [True]


@long_failover
@pytest.mark.parametrize("how", ["sentinel-failover", "sigkill-master"])
def test_jobs_enqueued_and_drained_through_a_failover_each_run_once(
    how: str, through_sentinel: SentinelCluster, sentinel_worker, tmp_path
) -> None:
    cluster = through_sentinel
    runs = tmp_path / "runs"
    worker = sentinel_worker("high", "--with-scheduler")
    output = Output(worker)
    pushed: list[float] = []  # when each push reached Redis (job_enqueued is sent after it)

    def on_enqueued(sender: Any, **kwargs: Any) -> None:
        pushed.append(time.monotonic())

    job_enqueued.connect(on_enqueued, weak=False)
    connection = broker.get_connection("high")
    jobs: list[Job] = []
    phases: dict[str, float] = {"start": time.monotonic()}
    old = cluster.master_port()
    immediate = 0
    try:
        # A job every ~5 ms: 3 s before the fault, and until the new master has served 3 s
        # (after SENTINEL FAILOVER: until the old master is a replica, its writes gone).
        while "end" not in phases:
            # Every tenth is due in 2 s: the scheduler (the worker's) promotes and pushes it.
            delayed = len(jobs) % 10 == 5
            jobs.append(notes.enqueue(str(runs), f"j{len(jobs)}", delay=2 if delayed else None))
            immediate += not delayed
            time.sleep(0.005)
            now = time.monotonic()
            if "fault" not in phases and now - phases["start"] >= 3:
                old = cluster.failover() if how == "sentinel-failover" else cluster.kill_master()
                phases["fault"] = time.monotonic()
            elif "fault" in phases and len(jobs) % 10 == 0:
                assert now - phases["fault"] < 120, "no new master after 120s"
                _next_phase(cluster, old, phases, now)
    finally:
        job_enqueued.disconnect(on_enqueued)
    # The enqueuer's client is the one it had: it found the new master by itself.
    assert broker.get_connection("high") is connection
    rows = Job.objects.filter(pk__in=[job.pk for job in jobs])
    lost = _settled_queued(cluster, rows)  # what the worker could not find in Redis

    def drained() -> bool:
        return not rows.exclude(status=JobStatus.SUCCEEDED).exists()

    repushed = 0
    deadline = time.monotonic() + 120
    while not drained() and time.monotonic() < deadline:
        report = io.StringIO()
        call_command("asyncjobs_recover", "--grace", "0", stdout=report)
        repushed += int(report.getvalue().split()[0])  # "N queued job(s) missing from Redis were pushed again."
        time.sleep(1)
    assert drained(), (Counter(rows.values_list("status", flat=True)), output.text[-3000:])
    assert repushed >= lost
    assert worker.poll() is None, output.text[-3000:]  # the same worker process throughout
    ran = Counter(runs.read_text().split())
    assert set(ran) == {f"j{i}" for i in range(len(jobs))}
    assert max(ran.values()) == 1, [label for label, count in ran.items() if count > 1]
    assert set(rows.values_list("attempts", flat=True)) == {1}

    push_gap = max(b - a for a, b in itertools.pairwise(pushed))
    finished = sorted(rows.values_list("finished_at", flat=True))
    run_gap = max((b - a).total_seconds() for a, b in itertools.pairwise(finished))
    worker.terminate()
    text = output.wait(30)
    assert worker.returncode == 0, text[-3000:]
    print(
        f"\n{how}: {len(jobs)} jobs; new master named {phases['promoted'] - phases['fault']:.1f}s after the fault"
        + (
            f", the old one a replica after {phases['demoted'] - phases['fault']:.1f}s; "
            if how == "sentinel-failover"
            else "; "
        )
        + f"longest gap between two pushes {push_gap:.1f}s, between two finished jobs {run_gap:.1f}s; "
        f"{immediate - len(pushed)} push(es) failed; {lost} job(s) left queued without a message, "
        f"{repushed} message(s) pushed again by recovery; each job ran once"
    )


def _next_phase(cluster: SentinelCluster, old: int, phases: dict[str, float], now: float) -> None:
    """``promoted`` once the Sentinels name a new master; ``demoted`` once the old master is a
    replica (or dead); ``end`` 3 s after both."""
    if "promoted" not in phases:
        try:
            cluster.wait_for_new_master(old, seconds=0.01)
        except AssertionError:
            return
        phases["promoted"] = now
    if "demoted" not in phases:
        if not cluster.demoted(old):
            return
        phases["demoted"] = now
    if now - max(phases["promoted"], phases["demoted"]) >= 3:
        phases["end"] = now


def _settled_queued(cluster: SentinelCluster, rows: Any) -> int:
    """The rows still queued once the worker has taken every message Redis has (none waiting,
    none running or due later, the count unchanged for a second)."""
    queue_key = keys.queue_key("high")
    last = -1
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        waiting = cluster.master().llen(queue_key)
        running = rows.filter(status__in=(JobStatus.RUNNING, JobStatus.SCHEDULED)).exists()
        queued = rows.filter(status=JobStatus.QUEUED).count()
        if not waiting and not running and queued == last:
            return queued
        last = queued if not waiting and not running else -1
        time.sleep(1)
    raise AssertionError("the worker did not settle within 60s")


@long_failover
@pytest.mark.parametrize("how", ["sentinel-failover", "sigkill-master"])
def test_a_running_job_is_stopped_through_the_new_master(
    how: str, through_sentinel: SentinelCluster, sentinel_worker, tmp_path
) -> None:
    """The worker's pub/sub listener (RQ's ``stop-job`` commands) subscribes again on the new
    master once the old one is gone or a replica."""
    cluster = through_sentinel
    worker = sentinel_worker("default")
    output = Output(worker)
    job = waits_for_file.enqueue(str(tmp_path / "never"))  # runs until stopped
    wait_for(lambda: Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING).exists(), what="the job to start")
    job.refresh_from_db()
    old = cluster.failover() if how == "sentinel-failover" else cluster.kill_master()
    new = cluster.wait_for_new_master(old)
    wait_for(lambda: cluster.demoted(old), 60, "the old master to become a replica")
    channel = f"rq:pubsub:{job.worker}"
    wait_for(lambda: dict(cluster.client(new).pubsub_numsub(channel)).get(channel.encode()), 60, "the resubscription")
    assert job.cancel()
    # The worker runs one job at a time: the next one runs only once the stop ended the first.
    after = add.enqueue(1, 2)
    wait_for(lambda: Job.objects.filter(pk=after.pk, status=JobStatus.SUCCEEDED).exists(), 60, output.text[-2000:])
    assert not (tmp_path / "never.done").exists()
    assert Job.objects.get(pk=job.pk).status == JobStatus.CANCELLED
    assert worker.poll() is None, output.text[-3000:]


def test_a_worker_tries_redis_again_at_least_every_few_seconds(settings, monkeypatch) -> None:
    """While the master is away (Sentinel's default ``down-after-milliseconds`` is 30 s) the
    worker's waits between tries grow to REDIS_RETRY_MAX, not to RQ's 60 s: a wait that long
    would leave it idle for up to a minute after the new master is there."""
    with RedisServer() as server:  # the worker is built while its Redis answers, then it is gone
        settings.RQ_QUEUES = {"default": {"URL": server.url}}
        worker = build_worker(["default"])
    waits: list[float] = []

    def pause(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 8:
            worker._stop_requested = True

    monkeypatch.setattr(worker, "_pause", pause)
    assert worker.dequeue_job_and_maintain_ttl(1) is None
    assert waits == [1, 2, 4, REDIS_RETRY_MAX, REDIS_RETRY_MAX, REDIS_RETRY_MAX, REDIS_RETRY_MAX, REDIS_RETRY_MAX]
