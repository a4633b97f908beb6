"""A worker keeps its database connection across jobs, whatever ``CONN_MAX_AGE`` says.

``CONN_MAX_AGE`` is for web requests; the test settings keep Django's default ``0``.
Each job reports which connection ran it (``connection_probe``: a token in a temporary
table, and PostgreSQL's backend pid). Real worker, real database and Redis, no mocks.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from django.conf import settings
from django.db import connection, connections
from django.test import override_settings

from django_asyncjobs import Job, JobStatus
from django_asyncjobs.signals import job_finished
from tests.faults import needs_own_server_session, needs_postgresql, side_connection
from tests.testapp.jobs import connection_probe
from tests.testapp.models import Call

pytestmark = pytest.mark.django_db(transaction=True)

T = TypeVar("T")


def worker_conn_max_age(value: float | None) -> override_settings:
    return override_settings(ASYNCJOBS={**settings.ASYNCJOBS, "WORKER_CONN_MAX_AGE": value})


def committed(query: Callable[[], T]) -> T:
    """``query()`` on a connection of another thread: it sees only what was committed."""
    results: list[T] = []

    def read() -> None:
        try:
            results.append(query())
        finally:
            connections.close_all()

    thread = threading.Thread(target=read)
    thread.start()
    thread.join()
    return results[0]


def probes(jobs: list[Job]) -> list[dict[str, Any]]:
    rows = {row.pk: row for row in committed(lambda: list(Job.objects.filter(pk__in=[job.pk for job in jobs])))}
    assert [rows[job.pk].status for job in jobs] == [JobStatus.SUCCEEDED] * len(jobs), [
        rows[job.pk].error for job in jobs
    ]
    return [rows[job.pk].result for job in jobs]


def test_the_default_settings_are_djangos_per_request_reconnect() -> None:
    assert connection.settings_dict["CONN_MAX_AGE"] == 0  # what a newcomer runs


def test_one_worker_runs_all_its_jobs_on_one_connection(run_worker) -> None:
    jobs = connection_probe.enqueue_many([() for _ in range(5)])
    run_worker("default")
    seen = probes(jobs)
    assert len({probe["token"] for probe in seen}) == 1
    if not os.environ.get("ASYNCJOBS_TEST_PGBOUNCER"):  # behind a pooler, any server session may serve it
        assert len({probe["pid"] for probe in seen}) == 1


def test_a_worker_process_keeps_its_connection(start_worker) -> None:
    jobs = connection_probe.enqueue_many([() for _ in range(5)])
    process = start_worker("default", "--burst")
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert len({probe["token"] for probe in probes(jobs)}) == 1


def test_worker_conn_max_age_0_reconnects_for_every_job(run_worker) -> None:
    jobs = connection_probe.enqueue_many([() for _ in range(5)])
    with worker_conn_max_age(0):
        run_worker("default")
    assert len({probe["token"] for probe in probes(jobs)}) == 5


def test_worker_conn_max_age_recycles_a_connection_older_than_it(run_worker) -> None:
    jobs = connection_probe.enqueue_many([() for _ in range(3)])
    with worker_conn_max_age(1e-6):  # older than that by the next job, whatever the machine
        run_worker("default")
    assert len({probe["token"] for probe in probes(jobs)}) == 3

    jobs = connection_probe.enqueue_many([() for _ in range(3)])
    with worker_conn_max_age(3600):
        run_worker("default")
    assert len({probe["token"] for probe in probes(jobs)}) == 1


def test_a_connection_killed_between_jobs_is_replaced_before_the_next_claim(run_worker, caplog, settings) -> None:
    needs_postgresql()
    needs_own_server_session("the worker's connection is to PgBouncer, which drops a killed idle server alone")
    settings.ASYNCJOBS = {**settings.ASYNCJOBS, "WORKER_PREFETCH": 1}  # a claim per job (a batch claims both at once)
    first, second = connection_probe.enqueue_many([(), ()])
    killed: list[int] = []

    def kill_after_the_first(sender: Any, job: Job, **kwargs: Any) -> None:
        if job.pk == first.pk:
            with side_connection(autocommit=True) as side:
                pid = Job.objects.get(pk=first.pk).result["pid"]
                # With a timeout, pg_terminate_backend waits until the backend is gone.
                (ended,) = side.execute("SELECT pg_terminate_backend(%s, 30000)", [pid]).fetchone()
                assert ended
                killed.append(pid)

    job_finished.connect(kill_after_the_first, dispatch_uid="test-kill-after-the-first")
    try:
        with caplog.at_level(logging.WARNING, logger="django_asyncjobs"):
            run_worker("default")
    finally:
        job_finished.disconnect(dispatch_uid="test-kill-after-the-first")
    one, two = probes([first, second])
    assert killed == [one["pid"]]
    assert two["pid"] != one["pid"] and two["token"] != one["token"]
    # Found by the check between the jobs, not by a failed claim and its retry.
    assert "database.write_failed" not in caplog.text


@pytest.mark.parametrize("leave", ["open", "broken", "autocommit"])
def test_a_transaction_a_job_leaves_behind_ends_with_it(run_worker, caplog, leave) -> None:
    if leave == "broken" and connection.vendor != "postgresql":
        pytest.skip("only PostgreSQL aborts a transaction on a failed statement")
    first = connection_probe.enqueue(leave=leave, label="left behind")
    after = connection_probe.enqueue_many([(), ()])
    with caplog.at_level(logging.WARNING, logger="django_asyncjobs"):
        run_worker("default")
    seen = probes([first, *after])  # every outcome committed, the first job's included
    # What the job left uncommitted was rolled back, not committed with its outcome or a later job.
    assert not committed(lambda: Call.objects.filter(label="left behind").exists())
    assert "database.transaction_rolled_back" in caplog.text
    assert connection.get_autocommit()
    tokens = [probe["token"] for probe in seen]
    if leave == "autocommit":  # closed, as Django closes a connection whose autocommit was left off
        assert tokens[1] == tokens[2] != tokens[0]
    else:  # rolled back, and the connection kept
        assert len(set(tokens)) == 1
