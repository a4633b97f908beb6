"""Workflows at their edges: recovery with many dependants still waiting, a callback or chain
step given ``after=`` of its own, the admin's retry of a job that never left its wait, and a
group whose failed job was deleted before the group finished. Real Redis, database, workers."""

from __future__ import annotations

import pytest

from django_asyncjobs import Job, JobStatus, chain, enqueue_group
from django_asyncjobs.engine import outcomes, states
from django_asyncjobs.engine.operations import cancel_jobs, delete_finished_jobs, retry_jobs
from django_asyncjobs.models import FINISHED_STATUSES, GroupStatus, JobGroup
from django_asyncjobs.scheduling.recovery import recover
from tests.testapp.jobs import add, group_done, raises, waits
from tests.testapp.models import Call

pytestmark = pytest.mark.django_db(transaction=True)


def status(job: Job) -> str:
    return Job.objects.get(pk=job.pk).status


def test_recovery_settles_a_stranded_dependant_behind_many_that_still_wait() -> None:
    """Jobs one of whose dependencies finished while another still runs cannot be settled: they
    must not take the places of a pass whose batch is smaller than their number."""
    done, running = add.enqueue(0, 0), add.enqueue(0, 1)
    Job.objects.filter(pk=done.pk).update(status=JobStatus.SUCCEEDED)
    blocked = [add.enqueue(i, i, after=[done, running]) for i in range(40)]
    other = add.enqueue(5, 5)
    stranded = add.enqueue(1, 1, after=[other])
    Job.objects.filter(pk=other.pk).update(status=JobStatus.SUCCEEDED)  # its worker died before settling
    assert recover(grace=0, batch_size=1).settled == 1
    assert status(stranded) == JobStatus.QUEUED
    assert {status(job) for job in blocked} == {JobStatus.SCHEDULED}


def test_a_groups_callback_takes_no_after_of_its_own() -> None:
    """It would be released by whichever came first, its own dependencies or the group's end
    (then without the group's id); ``then_any`` is how a callback runs whatever the outcome."""
    other = add.enqueue(1, 1)
    with pytest.raises(ValueError, match="then= waits for its group"):
        enqueue_group(add, [(1, 2)], then=group_done.s("x", after=[other]))
    assert not JobGroup.objects.exists()


def test_a_chain_step_after_the_first_takes_no_after() -> None:
    other = add.enqueue(1, 1)
    with pytest.raises(ValueError, match="waits for the step before it"):
        chain(add.s(1, 2), add.s(3, after=[other]))
    assert list(Job.objects.values_list("pk", flat=True)) == [other.pk]


def test_the_admins_retry_leaves_a_chain_step_cancelled_while_it_waited(asyncjobs_worker) -> None:
    """It never got the previous step's result: queued again, it would run without it."""
    first, second = chain(raises.s("boom"), add.s(1))
    asyncjobs_worker("default")
    assert status(second) == JobStatus.CANCELLED
    report = retry_jobs(Job.objects.filter(pk__in=[first.pk, second.pk]))
    assert report.done == 1 and "waited for other jobs" in report.describe_skipped()
    assert status(second) == JobStatus.CANCELLED
    asyncjobs_worker("default")
    assert (status(first), status(second)) == (JobStatus.FAILED, JobStatus.CANCELLED)


def test_the_admins_retry_leaves_a_cancelled_group_callback(asyncjobs_worker) -> None:
    group = enqueue_group(raises, [("a",)], then=group_done.s("retried"))
    asyncjobs_worker("default")
    assert status(group.callback) == JobStatus.CANCELLED
    assert retry_jobs(Job.objects.filter(pk=group.callback_id)).done == 0
    asyncjobs_worker("default")
    assert not Call.objects.filter(label="retried").exists()


def test_a_dependant_that_ran_and_failed_may_be_retried(asyncjobs_worker) -> None:
    _, second = chain(add.s(1, 2), raises.s())
    asyncjobs_worker("default")
    assert status(second) == JobStatus.FAILED
    assert retry_jobs(Job.objects.filter(pk=second.pk)).done == 1
    assert Job.objects.get(pk=second.pk).args == [3]


def test_a_failed_job_deleted_before_its_group_finished_still_fails_the_group(asyncjobs_worker) -> None:
    group = enqueue_group(add, [(1, 1), (2, 2)], then=group_done.s("deleted"))
    failing = group.jobs.get(group_index=0)
    claimed = states.claim(failing.pk, "w1")
    assert claimed is not None
    assert outcomes.record_failure(claimed, "boom", retry=False, job_function=add) == outcomes.Outcome.FAILED
    assert delete_finished_jobs(Job.objects.filter(pk=failing.pk)).done == 1  # an operator tidies up
    asyncjobs_worker("default")
    group.refresh_from_db()
    assert group.status == GroupStatus.FAILED
    assert status(group.callback) == JobStatus.CANCELLED
    assert not Call.objects.filter(label="deleted").exists()


def test_a_callback_cancelled_by_its_groups_failure_is_announced(asyncjobs_worker) -> None:
    """As a dependant cancelled by a failure is: ``job_cancelled`` and ``job_finished`` are sent."""
    from django_asyncjobs.signals import job_cancelled, job_finished

    seen: list[tuple[str, object]] = []

    def on_cancelled(sender: object, job: Job, **kwargs: object) -> None:
        seen.append(("cancelled", job.pk))

    def on_finished(sender: object, job: Job, **kwargs: object) -> None:
        seen.append(("finished", job.pk))

    job_cancelled.connect(on_cancelled)
    job_finished.connect(on_finished)
    try:
        group = enqueue_group(raises, [("a",)], then=group_done.s("announced"))
        asyncjobs_worker("default")
    finally:
        job_cancelled.disconnect(on_cancelled)
        job_finished.disconnect(on_finished)
    assert status(group.callback) == JobStatus.CANCELLED
    assert ("cancelled", group.callback_id) in seen and ("finished", group.callback_id) in seen


def test_cancels_racing_two_workers_settle_the_group_and_its_chains_once(start_worker) -> None:
    """Cancels (``cancel_jobs``, as the admin's action) land while two worker processes run a
    group and chains behind its jobs: whatever wins each race, the group ends by its jobs'
    outcomes without the recovery pass, its callback moves once, and each chain's step does."""
    from tests.conftest import wait_for

    group = enqueue_group(waits, [(f"g{i}", 0.005) for i in range(150)], then=group_done.s("raced"))
    members = list(group.jobs.order_by("group_index"))
    steps = [add.enqueue(1, 1, after=[job]) for job in members[::3]]
    workers = [start_worker("default") for _ in range(2)]
    wait_for(lambda: Call.objects.filter(label__endswith=":end").exists(), seconds=60, what="the workers to start")
    for job in members[::3]:  # some queued, some running, some finished already
        cancel_jobs(Job.objects.filter(pk=job.pk))
    wait_for(lambda: status(group.callback) in FINISHED_STATUSES, seconds=60, what="the callback to finish")
    wait_for(lambda: all(status(step) in FINISHED_STATUSES for step in steps), seconds=60, what="the steps")
    group.refresh_from_db()
    outcomes_by_job = dict(group.jobs.values_list("pk", "status"))
    all_succeeded = set(outcomes_by_job.values()) == {JobStatus.SUCCEEDED}
    assert group.status == (GroupStatus.SUCCEEDED if all_succeeded else GroupStatus.FAILED)
    assert status(group.callback) == (JobStatus.SUCCEEDED if all_succeeded else JobStatus.CANCELLED)
    assert Call.objects.filter(label="raced").count() == (1 if all_succeeded else 0)
    for step, job in zip(steps, members[::3], strict=True):
        expected = JobStatus.SUCCEEDED if outcomes_by_job[job.pk] == JobStatus.SUCCEEDED else JobStatus.CANCELLED
        row = Job.objects.get(pk=step.pk)
        assert row.status == expected and row.attempts == (1 if expected == JobStatus.SUCCEEDED else 0)
    assert all(worker.poll() is None for worker in workers)
