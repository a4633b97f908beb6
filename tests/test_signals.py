"""The job lifecycle's one hook protocol: the signals of ``django_asyncjobs.signals``,
sent by the core at each step, on a real worker against the test Redis."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.db import connection, transaction

from django_asyncjobs import Job, JobStatus
from django_asyncjobs.signals import (
    job_cancelled,
    job_created,
    job_enqueued,
    job_failed,
    job_finished,
    job_started,
    job_succeeded,
)
from tests.testapp.jobs import add, flaky

pytestmark = pytest.mark.django_db(transaction=True)

SIGNALS = {
    "created": job_created,
    "enqueued": job_enqueued,
    "started": job_started,
    "succeeded": job_succeeded,
    "failed": job_failed,
    "cancelled": job_cancelled,
    "finished": job_finished,
}


@pytest.fixture
def seen() -> Iterator[list[tuple[str, Any]]]:
    """(signal, what it carried) of each signal sent, in order."""
    sent: list[tuple[str, Any]] = []

    def on(name: str) -> Any:
        def receiver(sender: Any, job: Job, **kwargs: Any) -> None:
            assert sender is Job
            extra = kwargs.get("will_retry", kwargs.get("job_function", ...))
            sent.append((name, extra if extra is not ... else str(job.status)))

        return receiver

    receivers = [(signal, on(name)) for name, signal in SIGNALS.items()]
    for signal, receiver in receivers:
        signal.connect(receiver)
    yield sent
    for signal, receiver in receivers:
        signal.disconnect(receiver)


def test_a_successful_job_sends_each_signal_of_its_life_once(run_worker, seen) -> None:
    add.enqueue(1, 2)
    run_worker()
    assert seen == [
        ("enqueued", "queued"),
        ("created", add),
        ("started", add),
        ("succeeded", "succeeded"),
        ("finished", add),
    ]


def test_job_finished_is_sent_once_after_the_last_attempt_not_after_retried_ones(run_worker, seen) -> None:
    flaky.enqueue("signals", fail_times=5)
    run_worker()
    names = [name for name, _ in seen]
    assert names.count("started") == 3
    assert [extra for name, extra in seen if name == "failed"] == [True, True, False]
    assert seen[-1] == ("finished", flaky)
    assert names.count("finished") == 1


def test_job_created_is_sent_on_commit_also_for_delayed_jobs(seen) -> None:
    with transaction.atomic():
        add.enqueue(1, 2, delay=timedelta(hours=1))
        assert seen == []
    assert seen == [("created", add)]  # not pushed, so no job_enqueued


def test_a_cancelled_job_is_finished_with_its_function(seen) -> None:
    job = add.enqueue(1, 2, delay=timedelta(hours=1))
    seen.clear()
    assert job.cancel()
    assert seen == [("cancelled", "cancelled"), ("finished", add)]


def test_enqueue_adds_no_on_commit_callback_when_nobody_listens_to_job_created() -> None:
    def callbacks_of_a_delayed_enqueue() -> int:
        with transaction.atomic():
            add.enqueue(1, 2, delay=timedelta(hours=1))  # delayed: no push on commit
            return len(connection.run_on_commit)

    with mock.patch.object(job_created, "receivers", []):  # as in a project without the tasks backend
        assert callbacks_of_a_delayed_enqueue() == 0
        job_created.connect(_listener)
        assert callbacks_of_a_delayed_enqueue() == 1


def _listener(sender: Any, **kwargs: Any) -> None:
    pass


def test_a_failing_job_started_receiver_fails_the_attempt(run_worker, seen) -> None:
    def broken(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("receiver bug")

    job_started.connect(broken)
    try:
        job = add.enqueue(1, 2, max_attempts=1)
        run_worker()
    finally:
        job_started.disconnect(broken)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "receiver bug" in job.error
    assert seen[-1] == ("finished", add)
