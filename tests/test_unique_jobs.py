"""Unique and debounced jobs (``@job(unique_for=...)``, ``@job(debounce=...)``): one waiting
job per name and arguments, on real databases, with real workers for what ends the wait."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from django_asyncjobs import Job, JobStatus
from django_asyncjobs.engine.enqueueing import unique_key
from django_asyncjobs.engine.functions import JobOptions
from django_asyncjobs.engine.operations import retry_jobs
from django_asyncjobs.engine.outcomes import Outcome
from tests.testapp.jobs import debounced_sync, unique_fails, unique_limited, unique_report
from tests.testapp.models import Call

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_same_call_while_one_waits_returns_the_waiting_job() -> None:
    first = unique_report.enqueue(1)
    assert unique_report.enqueue(1).pk == first.pk
    assert unique_report.enqueue(account=1).pk != first.pk  # other arguments: another call
    assert unique_report.enqueue(1, fmt="pdf").pk != first.pk
    assert unique_report.enqueue(2).pk != first.pk
    assert Job.objects.filter(name=unique_report.name).count() == 4


def test_the_key_is_the_name_and_the_arguments_with_keys_in_any_order() -> None:
    assert unique_key("a", [1], {"x": 1, "y": 2}) == unique_key("a", [1], {"y": 2, "x": 1})
    assert unique_key("a", [1], {}) != unique_key("b", [1], {})
    assert unique_key("a", [1], {}) != unique_key("a", ["1"], {})


def test_once_it_runs_the_same_call_makes_a_new_job(asyncjobs_worker) -> None:
    first = unique_report.enqueue(3)
    asyncjobs_worker()
    first.refresh_from_db()
    assert (first.status, first.unique_key) == (JobStatus.SUCCEEDED, None)
    second = unique_report.enqueue(3)
    assert second.pk != first.pk and second.status == JobStatus.QUEUED
    asyncjobs_worker()
    assert Call.objects.filter(label="unique-3-csv").count() == 2


def test_a_waiting_job_older_than_unique_for_no_longer_holds_the_key() -> None:
    old = unique_report.enqueue(4)
    Job.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(minutes=6))
    new = unique_report.enqueue(4)
    assert new.pk != old.pk
    assert Job.objects.get(pk=old.pk).status == JobStatus.QUEUED  # it still runs, it no longer coalesces
    assert unique_report.enqueue(4).pk == new.pk


def test_a_cancelled_job_frees_its_key() -> None:
    first = unique_report.enqueue(5)
    assert first.cancel()
    assert Job.objects.get(pk=first.pk).unique_key is None
    assert unique_report.enqueue(5).pk != first.pk


def test_retrying_a_failed_job_while_the_same_call_waits_is_not_refused(asyncjobs_worker) -> None:
    failed = unique_fails.enqueue(6)
    asyncjobs_worker()
    assert Job.objects.get(pk=failed.pk).status == JobStatus.FAILED
    waiting = unique_fails.enqueue(6)
    assert waiting.pk != failed.pk
    assert retry_jobs(Job.objects.filter(pk=failed.pk)).done == 1  # no unique key: it cannot collide
    assert Job.objects.get(pk=failed.pk).status == JobStatus.QUEUED


def test_enqueue_many_coalesces_equal_calls() -> None:
    jobs = unique_report.enqueue_many([(7,), (8,), (7,)])
    assert jobs[0].pk == jobs[2].pk != jobs[1].pk
    assert Job.objects.filter(name=unique_report.name).count() == 2


def test_calls_at_the_same_moment_in_several_threads_make_one_job() -> None:
    barrier = threading.Barrier(6)
    found: list[object] = []
    errors: list[BaseException] = []

    def enqueue() -> None:
        try:
            barrier.wait(10)
            found.append(unique_report.enqueue(9).pk)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=enqueue) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert len(set(found)) == 1 and len(found) == 6
    assert Job.objects.filter(name=unique_report.name).count() == 1


def test_a_debounced_job_waits_and_each_enqueue_moves_its_start() -> None:
    first = debounced_sync.enqueue(10)
    assert first.status == JobStatus.SCHEDULED
    assert first.run_at is not None and first.run_at >= first.created_at + timedelta(seconds=29)
    Job.objects.filter(pk=first.pk).update(run_at=timezone.now() + timedelta(seconds=5))
    again = debounced_sync.enqueue(10)
    assert again.pk == first.pk
    assert Job.objects.get(pk=first.pk).run_at >= timezone.now() + timedelta(seconds=29)  # its wait started again
    assert Job.objects.filter(name=debounced_sync.name).count() == 1


def test_a_debounced_job_already_due_is_returned_as_it_is(asyncjobs_worker) -> None:
    first = debounced_sync.enqueue(11)
    Job.objects.filter(pk=first.pk).update(run_at=timezone.now() - timedelta(seconds=1))
    asyncjobs_worker()  # promotes it, runs it
    assert Job.objects.get(pk=first.pk).status == JobStatus.SUCCEEDED
    assert debounced_sync.enqueue(11).pk != first.pk


@pytest.mark.parametrize(
    ("options", "named"),
    [({"unique_for": "soon"}, "unique_for"), ({"debounce": -1}, "debounce"), ({"unique_for": True}, "unique_for")],
)
def test_bad_options_name_themselves(options: dict[str, object], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        JobOptions(**options)  # type: ignore[arg-type]


def test_options_from_a_tasks_setting() -> None:
    assert JobOptions.from_setting({"UNIQUE_FOR": 60}).unique_for == timedelta(seconds=60)


def test_a_unique_job_takes_no_idempotency_key_and_a_debounced_one_no_start_time() -> None:
    with pytest.raises(ValueError, match="idempotency_key"):
        unique_report.enqueue(12, idempotency_key="k")
    with pytest.raises(ValueError, match="debounced"):
        debounced_sync.enqueue(12, delay=5)


def test_any_text_in_the_arguments_makes_a_key() -> None:
    assert unique_key("a", ["\ud800 lone surrogate", "é"], {}) != unique_key("a", ["é"], {})


def test_a_job_that_waits_for_its_rate_limit_still_holds_its_key(asyncjobs_worker) -> None:
    unique_limited.enqueue("first")
    asyncjobs_worker()  # the hour's one start
    waiting = unique_limited.enqueue("again")
    run = asyncjobs_worker()
    assert run.outcomes[Outcome.DEFERRED] == 1
    assert Job.objects.get(pk=waiting.pk).status == JobStatus.SCHEDULED  # it never started...
    assert unique_limited.enqueue("again").pk == waiting.pk  # ...so the same call is the same job
    assert Job.objects.filter(name=unique_limited.name).count() == 2


def test_a_call_made_while_the_job_was_claimed_keeps_the_key_when_the_job_is_deferred(asyncjobs_worker) -> None:
    from django_asyncjobs.engine.outcomes import record_deferral
    from django_asyncjobs.engine.states import claim

    claimed = claim(unique_limited.enqueue("meanwhile").pk, "a-worker")
    assert claimed is not None
    newer = unique_limited.enqueue("meanwhile")  # the claimed one no longer holds the key
    assert newer.pk != claimed.pk
    key = unique_key(claimed.name, claimed.args, claimed.kwargs)
    assert record_deferral(claimed, 60, "waiting: rate limit", unique_key=key) == Outcome.DEFERRED
    assert Job.objects.get(pk=claimed.pk).status == JobStatus.SCHEDULED
    assert unique_limited.enqueue("meanwhile").pk == newer.pk


def _claimed_in_a_batch(job: Job) -> Job:
    """``job``'s row claimed as a batching worker claims it (``heartbeat_at`` NULL: not started)."""
    from django_asyncjobs.engine import batched

    [row] = batched.claim_many([job.pk, job.pk], "a-worker")
    assert row.unique_key is None  # the claim clears it: a call now makes a new job
    return row


@pytest.mark.parametrize("give_back", ["batch_release", "recovery_put_back"])
def test_every_way_a_claimed_job_is_given_back_unstarted_restores_its_key(settings, give_back: str) -> None:
    """Not started, it waits again (its attempt given back): it is the call's one waiting job
    again, as one deferred by a limit is."""
    import time

    from django_asyncjobs.engine import batched
    from django_asyncjobs.scheduling.recovery import recover

    job = unique_report.enqueue(42)
    row = _claimed_in_a_batch(job)
    if give_back == "batch_release":
        assert batched.release([row]) == [row]
    else:
        settings.ASYNCJOBS = {**settings.ASYNCJOBS, "HEARTBEAT_INTERVAL": 0.05, "HEARTBEAT_TIMEOUT": 0.15}
        time.sleep(0.2)
        assert recover(heartbeat_timeout=0).put_back == [str(job.pk)]
    assert Job.objects.get(pk=job.pk).status in (JobStatus.QUEUED, JobStatus.SCHEDULED)
    assert unique_report.enqueue(42).pk == job.pk
    assert Job.objects.filter(name=unique_report.name).count() == 1


def test_a_job_given_back_after_the_same_call_was_made_again_leaves_the_key_to_the_new_one() -> None:
    from django_asyncjobs.engine import batched

    job = unique_report.enqueue(43)
    row = _claimed_in_a_batch(job)
    newer = unique_report.enqueue(43)  # while it was claimed: a new job, holding the key
    assert batched.release([row]) == [row]
    assert Job.objects.get(pk=job.pk).status == JobStatus.QUEUED
    assert Job.objects.get(pk=job.pk).unique_key is None
    assert unique_report.enqueue(43).pk == newer.pk
