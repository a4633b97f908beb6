"""Dependencies (``after=``), chains and groups with a ``then`` callback: rows that wait
``scheduled`` without a ``run_at``, settled after the commit of what they wait for, once.
Real Redis, real database, real workers (several processes for the callback race)."""

from __future__ import annotations

import uuid

import pytest
from django.db import transaction

from django_asyncjobs import Job, JobGroup, JobStatus, chain, enqueue_group
from django_asyncjobs.engine import batched, outcomes, states
from django_asyncjobs.engine.batched import Success
from django_asyncjobs.engine.broker import keys
from django_asyncjobs.models import GroupStatus, JobDependency
from django_asyncjobs.scheduling.recovery import recover
from tests.conftest import wait_for
from tests.testapp.jobs import add, group_done, meets, raises, record
from tests.testapp.models import Call

pytestmark = pytest.mark.django_db(transaction=True)


def status(job: Job) -> str:
    return Job.objects.get(pk=job.pk).status


# -- after= ---------------------------------------------------------------------------------------


def test_a_dependant_waits_without_a_message_until_its_dependency_succeeded(asyncjobs_worker, redis) -> None:
    first = add.enqueue(1, 2)
    second = record.enqueue("after", after=[first])
    row = Job.objects.get(pk=second.pk)
    assert (row.status, row.run_at, row.enqueued_at) == (JobStatus.SCHEDULED, None, None)
    assert row.progress_message == "waiting for 1 job"
    assert Job.objects.get(pk=first.pk).has_dependants
    assert str(second.pk) not in [x.decode() for x in redis.lrange(keys.queue_key("high"), 0, -1)]
    asyncjobs_worker("default")
    assert status(second) == JobStatus.QUEUED  # released, its message pushed
    asyncjobs_worker("high")
    assert status(second) == JobStatus.SUCCEEDED
    assert Job.objects.get(pk=second.pk).progress_message == ""


def test_waiting_for_several_starts_after_the_last(asyncjobs_worker) -> None:
    a, b = add.enqueue(1, 1), add.enqueue(2, 2, queue="high")
    last = record.enqueue("both", after=[a, str(b.pk)])
    assert JobDependency.objects.filter(job=last).count() == 2
    asyncjobs_worker("default")
    assert status(last) == JobStatus.SCHEDULED
    asyncjobs_worker("high")
    assert status(b) == JobStatus.SUCCEEDED
    asyncjobs_worker("high")
    assert status(last) == JobStatus.SUCCEEDED


def test_a_failed_dependency_cancels_its_dependants_in_turn_with_the_reason(asyncjobs_worker) -> None:
    failing = raises.enqueue("boom")
    child = add.enqueue(1, 1, after=[failing])
    grandchild = add.enqueue(2, 2, after=[child])
    asyncjobs_worker("default")
    assert status(failing) == JobStatus.FAILED
    child_row, grandchild_row = Job.objects.get(pk=child.pk), Job.objects.get(pk=grandchild.pk)
    assert child_row.status == grandchild_row.status == JobStatus.CANCELLED
    assert f"job tests.testapp.jobs.raises {failing.pk} it waited for failed" in child_row.error
    assert f"{child.pk} it waited for was cancelled" in grandchild_row.error
    assert child_row.attempts == grandchild_row.attempts == 0


def test_after_any_runs_whatever_the_outcome(asyncjobs_worker) -> None:
    failing = raises.enqueue("boom")
    cleanup = add.enqueue(5, 5, after=[failing], after_any=True)
    asyncjobs_worker("default")
    assert Job.objects.get(pk=cleanup.pk).result == 10


def test_cancelling_a_dependency_cancels_what_waits_for_it() -> None:
    first = add.enqueue(1, 2, delay=3600)
    second = add.enqueue(3, 4, after=[first])
    assert first.cancel()
    assert status(second) == JobStatus.CANCELLED


def test_after_a_job_already_finished_is_released_at_the_commit(asyncjobs_worker) -> None:
    done = add.enqueue(1, 2)
    asyncjobs_worker("default")
    with transaction.atomic():
        later = add.enqueue(3, 4, after=[done])
        assert status(later) == JobStatus.SCHEDULED  # not before the commit
    assert status(later) == JobStatus.QUEUED
    asyncjobs_worker("default")
    assert Job.objects.get(pk=later.pk).result == 7


def test_after_an_unknown_job_is_refused_and_writes_nothing() -> None:
    missing = uuid.uuid4()
    with pytest.raises(ValueError, match=f"after: no job {missing}"):
        add.enqueue(1, 2, after=[missing])
    assert not Job.objects.exists()
    with pytest.raises(ValueError, match="is not a job id"):
        add.enqueue(1, 2, after=["nope"])
    with pytest.raises(TypeError, match="after takes jobs or job ids"):
        add.enqueue(1, 2, after=[42])
    with pytest.raises(ValueError, match="does not combine with"):
        add.enqueue(1, 2, after=[add.enqueue(0, 0)], delay=5)


def test_a_long_after_list_is_checked_in_chunks_and_the_error_stays_short() -> None:
    """More ids than SQLite takes as parameters of one statement (32,766): a clear error, not
    the database's; and one that names a few of the missing ids, not 40,000."""
    known = add.enqueue(0, 0)
    unknown = [uuid.uuid4() for _ in range(40_000)]
    with pytest.raises(ValueError, match=rf"after: no job {unknown[0]}, .* and 39,995 more$"):
        add.enqueue(1, 2, after=[known, *unknown])
    assert list(Job.objects.values_list("pk", flat=True)) == [known.pk]
    assert not Job.objects.get(pk=known.pk).has_dependants


def test_a_dependant_added_while_its_dependency_runs_is_settled_by_that_outcome() -> None:
    """The outcome's UPDATE reads ``has_dependants`` back: the worker's copy of the row, claimed
    before the dependant existed, does not have it."""
    first = add.enqueue(1, 2)
    claimed = states.claim(first.pk, "w1")
    assert claimed is not None and not claimed.has_dependants
    later = add.enqueue(3, 4, after=[first])
    assert outcomes.record_success(claimed, 3) == outcomes.Outcome.SUCCEEDED
    assert claimed.has_dependants
    assert status(later) == JobStatus.QUEUED


def test_the_same_in_a_batch_commit() -> None:
    first = add.enqueue(1, 2)
    (claimed,) = batched.claim_many([first.pk], "w1", held=True)
    add.enqueue(3, 4, after=[first])
    written, _ = batched.commit([Success(claimed, 3, claimed.started_at)], [], "w1")
    assert written == [True] and claimed.has_dependants


def test_a_dependant_left_waiting_by_a_crash_is_settled_by_recovery() -> None:
    first = add.enqueue(1, 2)
    later = add.enqueue(3, 4, after=[first])
    Job.objects.filter(pk=first.pk).update(status=JobStatus.SUCCEEDED)  # the worker died before settling
    report = recover(grace=0)
    assert report.settled == 1
    assert status(later) == JobStatus.QUEUED


def test_a_released_dependant_whose_message_redis_lost_is_pushed_again(asyncjobs_worker, redis) -> None:
    first = add.enqueue(1, 2, queue="high")
    later = add.enqueue(3, 4, after=[first])
    asyncjobs_worker("high")
    assert status(later) == JobStatus.QUEUED
    redis.delete(keys.queue_key("default"))  # Redis lost the message
    assert str(later.pk) in recover(grace=0).requeued
    asyncjobs_worker("default")
    assert Job.objects.get(pk=later.pk).result == 7


# -- chains ---------------------------------------------------------------------------------------


def test_a_chain_passes_each_result_to_the_next_step(asyncjobs_worker) -> None:
    jobs = chain(add.s(1, 2), add.s(10), add.s(100))
    assert [status(job) for job in jobs] == [JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.SCHEDULED]
    asyncjobs_worker("default")
    assert [Job.objects.get(pk=job.pk).result for job in jobs] == [3, 13, 113]
    assert Job.objects.get(pk=jobs[2].pk).args == [13, 100]


def test_a_failed_step_stops_the_chain_with_the_reason(asyncjobs_worker) -> None:
    jobs = chain(add.s(1, 2), raises.s(), add.s(1))
    asyncjobs_worker("default")
    assert [status(job) for job in jobs] == [JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED]
    assert Job.objects.get(pk=jobs[1].pk).args == [3]
    assert "raises" in Job.objects.get(pk=jobs[2].pk).error


def test_a_chain_takes_signatures_only() -> None:
    with pytest.raises(TypeError, match="signatures"):
        chain(add.s(1, 2), add)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one step"):
        chain()
    assert not Job.objects.exists()


# -- groups ---------------------------------------------------------------------------------------


def test_a_group_runs_its_callback_once_when_every_job_succeeded(asyncjobs_worker) -> None:
    group = enqueue_group(add, [(i, i) for i in range(10)], then=group_done.s("done"))
    assert group.size == 10 and group.jobs.count() == 10
    assert status(group.callback) == JobStatus.SCHEDULED
    assert group.counts()["queued"] == 10 and group.progress() == 0
    asyncjobs_worker("default")
    group.refresh_from_db()
    assert group.status == GroupStatus.SUCCEEDED and group.finished_at is not None
    assert group.results() == [2 * i for i in range(10)]
    assert group.progress() == 100
    callback = Job.objects.get(pk=group.callback_id)
    assert callback.status == JobStatus.SUCCEEDED
    assert callback.args == [str(group.pk), "done"]
    assert callback.result["succeeded"] == 10
    assert Call.objects.filter(label="done").count() == 1


def test_a_failed_job_cancels_the_callback_unless_then_any(asyncjobs_worker) -> None:
    strict = enqueue_group(raises, [("a",), ("b",)], then=group_done.s("strict"))
    lenient = enqueue_group(raises, [("c",)], then=group_done.s("lenient"), then_any=True)
    asyncjobs_worker("default")
    strict.refresh_from_db()
    lenient.refresh_from_db()
    assert strict.status == lenient.status == GroupStatus.FAILED
    assert status(strict.callback) == JobStatus.CANCELLED
    assert "2 of the 2 jobs of group" in Job.objects.get(pk=strict.callback_id).error
    assert status(lenient.callback) == JobStatus.SUCCEEDED
    assert Call.objects.get(label="lenient").data["counts"]["failed"] == 1


def test_an_empty_group_finishes_at_the_commit(asyncjobs_worker) -> None:
    group = JobGroup.enqueue(add, [], then=group_done.s("empty"))
    group.refresh_from_db()
    assert group.status == GroupStatus.SUCCEEDED
    asyncjobs_worker("default")
    assert Call.objects.filter(label="empty").count() == 1


def test_a_group_left_running_by_a_crash_is_finished_by_recovery() -> None:
    group = enqueue_group(add, [(1, 1), (2, 2)], then=group_done.s("crash"))
    group.jobs.update(status=JobStatus.SUCCEEDED)  # the worker died before finishing the group
    assert recover(grace=0).groups_finished == 1
    group.refresh_from_db()
    assert group.status == GroupStatus.SUCCEEDED
    assert status(group.callback) == JobStatus.QUEUED
    assert recover(grace=0).groups_finished == 0


def test_the_callback_fires_once_when_the_last_two_finish_together_on_two_workers(start_worker) -> None:
    group = enqueue_group(meets, [("together", 2), ("together", 2)], then=group_done.s("once"))
    workers = [start_worker("default") for _ in range(2)]
    wait_for(lambda: status(group.callback) == JobStatus.SUCCEEDED, seconds=60, what="the callback")
    threads = {job.worker for job in group.jobs.all()}
    assert len(threads) == 2, "both jobs ran on one worker: the race was not exercised"
    assert Call.objects.filter(label="once").count() == 1
    assert Job.objects.get(pk=group.callback_id).attempts == 1
    assert all(worker.poll() is None for worker in workers)


def test_group_arguments_are_checked() -> None:
    from tests.testapp.jobs import unique_report

    with pytest.raises(TypeError, match="then takes a signature"):
        enqueue_group(add, [(1, 2)], then=add)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="is a unique job"):
        enqueue_group(unique_report, [(1,)])
    with pytest.raises(ValueError, match="does not combine with"):
        enqueue_group(add, [(1, 2)], then=add.s(1, delay=5))
    with pytest.raises(TypeError, match="enqueue_many"):
        enqueue_group(add, [42])
    assert not JobGroup.objects.exists()


def test_a_dependant_added_while_its_dependency_runs_and_then_fails_is_cancelled_by_recovery() -> None:
    """A failure's UPDATE stays one statement and does not read ``has_dependants`` back: the
    recovery pass settles what came to wait meanwhile."""
    first = raises.enqueue("boom")
    claimed = states.claim(first.pk, "w1")
    assert claimed is not None
    later = add.enqueue(3, 4, after=[first])
    outcomes.record_failure(claimed, "boom", retry=False, job_function=raises)
    assert status(later) == JobStatus.SCHEDULED
    assert recover(grace=0).settled == 1
    assert status(later) == JobStatus.CANCELLED


def test_pruning_deletes_finished_groups_once_their_jobs_are_gone(asyncjobs_worker) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from django_asyncjobs.scheduling.pruning import prune_jobs

    finished = enqueue_group(add, [(1, 1)], then=group_done.s("pruned"))
    running = enqueue_group(add, [(2, 2)])
    asyncjobs_worker("default")
    running.jobs.update(status=JobStatus.QUEUED)  # still has a job: kept
    JobGroup.objects.update(finished_at=timezone.now() - timedelta(days=2))
    Job.objects.filter(status=JobStatus.SUCCEEDED).update(finished_at=timezone.now() - timedelta(days=2))
    report = prune_jobs(timedelta(days=1))
    assert report.groups_deleted == 1
    assert not JobGroup.objects.filter(pk=finished.pk).exists()
    assert list(JobGroup.objects.values_list("pk", flat=True)) == [running.pk]
    assert not JobDependency.objects.exists()


def test_the_callback_has_the_groups_owner_unless_its_signature_names_one(django_user_model) -> None:
    alice = django_user_model.objects.create_user("alice")
    bob = django_user_model.objects.create_user("bob")
    inherited = enqueue_group(add, [(1, 1)], then=group_done.s("a"), owner=alice)
    named = enqueue_group(add, [(1, 1)], then=group_done.s("b", owner=bob), owner=alice)
    assert Job.objects.get(pk=inherited.callback_id).owner == alice
    assert Job.objects.get(pk=named.callback_id).owner == bob
