"""New rows without ``Model.save()`` (``engine/inserts.py``): what they hold, their batches,
and what ``save()`` did that still happens (``pre_save``/``post_save`` receivers, related objects)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection, transaction
from django.db.models.signals import post_save, pre_save
from django.test.utils import CaptureQueriesContext
from redis import Redis

from django_asyncjobs import Job, JobStatus
from django_asyncjobs.engine import inserts
from django_asyncjobs.engine.calls import Call
from django_asyncjobs.engine.inserts import insert_jobs, new_jobs
from django_asyncjobs.models import Schedule
from tests.testapp.jobs import add, record

pytestmark = pytest.mark.django_db(transaction=True)

ARGS = ["text ü €", 3, 2.5, True, None, {"nested": [1, {"deep": "x"}]}, "quote ' \" \\ back"]


def columns(job: Job) -> dict[str, Any]:
    return {field.attname: getattr(job, field.attname) for field in Job._meta.concrete_fields}


def stored(jobs: list[Job]) -> list[dict[str, Any]]:
    """The rows as the database holds them, in the order of ``jobs``."""
    by_pk = {row.pk: columns(row) for row in Job.objects.filter(pk__in=[job.pk for job in jobs])}
    return [by_pk[job.pk] for job in jobs]


def twin_saved_by_django(job: Job) -> dict[str, Any]:
    """The row ``save()`` writes for the same values (another id), as the database holds it."""
    values = columns(job)
    del values["id"]
    twin = Job(**values)
    twin.save(force_insert=True)
    row = columns(Job.objects.get(pk=twin.pk))
    row["id"] = job.pk
    return row


@pytest.fixture
def user() -> Any:
    return get_user_model().objects.create_user("ada", password="x")


@pytest.fixture
def schedule() -> Schedule:
    return Schedule.objects.create(name="nightly", job_name="tests.testapp.jobs.add", interval=timedelta(hours=1))


@pytest.mark.parametrize("count", [1, 2, 45, 120])
@pytest.mark.parametrize("delayed", [False, True])
def test_rows_hold_what_the_instances_hold_and_what_save_would_write(count, delayed, user, schedule) -> None:
    """One row (``VALUES``), many (PostgreSQL: one JSON parameter; SQLite: batches of 39)."""
    calls = [Call((*ARGS, i), {"k": i, "ü": [None]}) for i in range(count)]
    jobs = add.enqueue_many(calls, owner=user, queue="high", max_attempts=4, delay=60 if delayed else None)
    for job in jobs:
        job.schedule, job.priority, job.django_task = schedule, 3, {"backend": "default", "run_after": None}
    Job.objects.all().delete()
    insert_jobs(jobs)
    rows = stored(jobs)
    assert rows == [columns(job) for job in jobs]
    assert rows[0]["status"] == (JobStatus.SCHEDULED if delayed else JobStatus.QUEUED)
    assert (rows[-1]["args"], rows[-1]["kwargs"]) == ([*ARGS, count - 1], {"k": count - 1, "ü": [None]})
    assert (rows[0]["owner_id"], rows[0]["schedule_id"], rows[0]["result"]) == (user.pk, schedule.pk, None)
    assert rows[0] == twin_saved_by_django(jobs[0])
    assert all(not job._state.adding and job._state.db == "default" for job in jobs)


def test_new_jobs_are_what_the_model_builds_from_keywords(user, schedule) -> None:
    fields = {"name": "x", "queue": "low", "max_attempts": 2, "owner": user, "schedule": schedule, "priority": 1}
    built = new_jobs([([1], {"a": 2}), ([], {})], **fields)
    expected = Job(args=[1], kwargs={"a": 2}, **fields)
    for job in built:
        assert job._state.adding and job.id is not None and job.created_at is not None
    different = {"id", "created_at"}
    assert {k: v for k, v in columns(built[0]).items() if k not in different} == {
        k: v for k, v in columns(expected).items() if k not in different
    }
    assert built[0].pk != built[1].pk
    assert built[0].failed_attempts is not built[1].failed_attempts  # defaults made anew
    with CaptureQueriesContext(connection) as queries:
        assert (built[0].owner, built[1].schedule) == (user, schedule)
    assert queries.captured_queries == []


def test_a_wrong_or_unsaved_related_object_is_refused_as_save_refuses_it(user) -> None:
    with pytest.raises(ValueError, match=r'"Job\.owner" must be a "User" instance'):
        new_jobs([([], {})], owner=7)
    with pytest.raises(ValueError, match="unsaved related object 'owner'"):
        add.enqueue(1, 2, owner=get_user_model()(username="not saved"))
    assert not Job.objects.exists()


def test_many_rows_are_inserted_all_or_none() -> None:
    jobs = add.enqueue_many([(i, i) for i in range(1200)])  # 3 statements on PostgreSQL, 31 on SQLite
    Job.objects.all().delete()
    jobs[1100].id = jobs[3].id
    with pytest.raises(IntegrityError):
        insert_jobs(jobs)
    assert not Job.objects.exists()


def test_a_rolled_back_enqueue_many_leaves_no_row_and_pushes_nothing(redis: Redis) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        add.enqueue_many([(i, i) for i in range(100)])
        assert Job.objects.count() == 100
        raise RuntimeError("roll back")
    assert not Job.objects.exists()
    assert redis.llen("rq:queue:default") == 0


def test_enqueue_many_with_mixed_calls_pushes_every_id_in_order(redis: Redis) -> None:
    calls = [(i,) if i % 3 == 0 else {"label": f"l{i}", "n": i} if i % 3 == 1 else [f"x{i}"] for i in range(90)]
    jobs = record.enqueue_many(calls)
    assert [raw.decode() for raw in redis.lrange("rq:queue:high", 0, -1)] == [str(job.pk) for job in jobs]
    by_pk = {row.pk: (row.args, row.kwargs) for row in Job.objects.all()}
    assert [by_pk[job.pk] for job in jobs] == [(job.args, job.kwargs) for job in jobs]
    assert by_pk[jobs[1].pk] == ([], {"label": "l1", "n": 1})


def test_save_signals_reach_their_receivers_for_a_single_job() -> None:
    """``save()`` sent them for one job (``bulk_create`` never did for many): while a receiver
    listens for ``Job``, a single enqueue still goes through ``save()``."""
    seen: list[tuple[str, bool]] = []

    def before(sender: Any, instance: Job, **kwargs: Any) -> None:
        seen.append(("pre_save", instance._state.adding))

    def after(sender: Any, instance: Job, created: bool, **kwargs: Any) -> None:
        seen.append(("post_save", created))

    pre_save.connect(before, sender=Job)
    post_save.connect(after, sender=Job)
    try:
        add.enqueue(1, 2)
        add.enqueue_many([(1, 2), (3, 4)])
    finally:
        pre_save.disconnect(before, sender=Job)
        post_save.disconnect(after, sender=Job)
    assert seen == [("pre_save", True), ("post_save", True)]
    assert Job.objects.count() == 3


def test_receivers_for_other_models_leave_the_plain_insert(monkeypatch) -> None:
    def unexpected(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("save() was called")

    post_save.connect(unexpected, sender=Schedule)
    monkeypatch.setattr(Job, "save", unexpected)
    try:
        job = add.enqueue(1, 2)
    finally:
        post_save.disconnect(unexpected, sender=Schedule)
    assert Job.objects.get(pk=job.pk).args == [1, 2]


def test_no_field_of_a_job_changes_its_value_on_save() -> None:
    """What the plain INSERT skips of save(): a field's pre_save (auto_now and the like)."""
    for field in Job._meta.concrete_fields:
        assert not getattr(field, "auto_now", False) and not getattr(field, "auto_now_add", False), field
        assert type(field).__module__.startswith("django.db.models."), field


def test_the_statement_is_built_once_per_database() -> None:
    inserts._statements.clear()
    add.enqueue(1, 2)
    add.enqueue_many([(3, 4), (5, 6)])
    assert list(inserts._statements) == [("default", connection.vendor)]
