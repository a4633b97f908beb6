"""AsyncJobsBackend: tasks of Django's Tasks framework as durable jobs, run by a real worker
against the test Redis (Django 6.0+)."""

from __future__ import annotations

import sys
from datetime import timedelta
from functools import partial

import django
import pytest

pytest.importorskip(
    "django.tasks",
    reason=f"Django {django.get_version()} has no django.tasks (Django 6.0+); see test_django_tasks_unsupported.py",
)

from asgiref.sync import async_to_sync
from django.db import transaction
from django.tasks import TaskResultStatus, task_backends
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist, TaskResultMismatch
from django.tasks.signals import task_enqueued, task_finished, task_started
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from redis import Redis

from django_asyncjobs import ConfigurationError, Job, JobNotRegistered, JobStatus, QueueFull, SerializationError
from django_asyncjobs.backends import AsyncJobsBackend
from django_asyncjobs.engine.outcomes import Outcome
from django_asyncjobs.engine.registry import get_job_function, registered_jobs, unregister
from django_asyncjobs.models import Schedule
from django_asyncjobs.scheduling.firing import fire_due_schedules
from django_asyncjobs.signals import job_created, job_finished, job_started, job_succeeded
from django_asyncjobs.tasks.jobs import TaskJobFunction, connect_signals, connect_signals_if_used
from tests.testapp import jobs as plain_jobs
from tests.testapp import standard_tasks as tasks
from tests.testapp.models import Call

pytestmark = pytest.mark.django_db(transaction=True)

backend = partial(task_backends.__getitem__, "default")


@pytest.fixture
def received():
    """The signals sent, in order: (name, status) of each."""
    seen: list[tuple[str, str]] = []

    def on_task(name):
        def receiver(sender, task_result, **kwargs):
            assert issubclass(sender, AsyncJobsBackend)
            seen.append((name, str(task_result.status)))

        return receiver

    def on_job(name):
        return lambda sender, job, **kwargs: seen.append((name, str(job.status)))

    receivers = [
        (task_enqueued, on_task("task_enqueued")),
        (task_started, on_task("task_started")),
        (task_finished, on_task("task_finished")),
        (job_started, on_job("job_started")),
        (job_succeeded, on_job("job_succeeded")),
    ]
    for signal, receiver in receivers:
        signal.connect(receiver)
    yield seen
    for signal, receiver in receivers:
        signal.disconnect(receiver)


# -- enqueue: a Job row ------------------------------------------------------------------


def test_enqueue_saves_a_job_row_named_after_the_task(redis: Redis) -> None:
    result = tasks.record.enqueue("hello", extra=1)
    job = Job.objects.get(pk=result.id)
    assert (job.name, job.queue, job.status) == ("tests.testapp.standard_tasks.record", "high", JobStatus.QUEUED)
    assert (job.args, job.kwargs, job.priority) == (["hello"], {"extra": 1}, 0)
    assert job.django_task == {"backend": "default", "run_after": None}
    assert (result.status, result.attempts, result.worker_ids, result.errors) == (TaskResultStatus.READY, 0, [], [])
    assert result.enqueued_at == job.created_at
    assert result.backend == "default"
    assert redis.lrange("rq:queue:high", 0, -1) == [result.id.encode()]  # the message carries only the id


def test_worker_runs_the_task_and_get_result_reads_the_row(run_worker, received) -> None:
    result = tasks.add.enqueue(2, 3)
    worker = run_worker()
    stored = backend().get_result(result.id)
    assert stored.status == TaskResultStatus.SUCCESSFUL
    assert (stored.return_value, stored.attempts, stored.worker_ids, stored.errors) == (5, 1, [worker.name], [])
    assert stored.enqueued_at <= stored.started_at == stored.last_attempted_at <= stored.finished_at
    assert stored.task == tasks.add
    assert tasks.add.get_result(result.id) == stored
    result.refresh()
    assert (result.status, result.return_value) == (TaskResultStatus.SUCCESSFUL, 5)
    # Django's task signals are sent by receivers of the job signals, connected at start-up,
    # so task_started comes before the job_started receivers connected later (this test's).
    assert received == [
        ("task_enqueued", "READY"),
        ("task_started", "RUNNING"),
        ("job_started", "running"),
        ("job_succeeded", "succeeded"),
        ("task_finished", "SUCCESSFUL"),
    ]


def test_task_signals_are_receivers_of_the_job_signals_for_task_jobs_only(run_worker) -> None:
    seen: list[tuple[str, str]] = []
    receivers = [
        (job_created, lambda sender, job, job_function, **kw: seen.append(("job_created", job.name))),
        (job_finished, lambda sender, job, job_function, **kw: seen.append(("job_finished", job.name))),
        (task_enqueued, lambda sender, task_result, **kw: seen.append(("task_enqueued", task_result.task.name))),
        (task_finished, lambda sender, task_result, **kw: seen.append(("task_finished", task_result.task.name))),
    ]
    for signal, receiver in receivers:
        signal.connect(receiver)
    try:
        tasks.add.enqueue(1, 2)
        plain_jobs.add.enqueue(1, 2)  # a plain job: job signals only
        run_worker()
    finally:
        for signal, receiver in receivers:
            signal.disconnect(receiver)
    task_name, plain_name = "tests.testapp.standard_tasks.add", plain_jobs.add.name
    assert seen[:3] == [("task_enqueued", "add"), ("job_created", task_name), ("job_created", plain_name)]
    assert sorted(seen[3:]) == sorted(
        [("task_finished", "add"), ("job_finished", task_name), ("job_finished", plain_name)]
    )


def test_the_task_receivers_are_connected_at_start_up_only_with_the_backend(settings) -> None:
    for signal in (job_created, job_started, job_finished):
        assert signal.has_listeners(Job)  # TASKS names AsyncJobsBackend (tests/settings.py)
        signal.disconnect(dispatch_uid=f"django_asyncjobs.tasks.task_{signal_names[signal]}")
    try:
        settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}}
        connect_signals_if_used()
        assert not any(signal.has_listeners(Job) for signal in (job_created, job_started, job_finished))
    finally:
        connect_signals()
    assert all(signal.has_listeners(Job) for signal in (job_created, job_started, job_finished))


signal_names = {job_created: "enqueued", job_started: "started", job_finished: "finished"}


def test_aenqueue_and_aget_result(run_worker) -> None:
    result = async_to_sync(tasks.add.aenqueue)(20, 22)
    assert async_to_sync(backend().aget_result)(result.id) == result
    run_worker()
    async_to_sync(result.arefresh)()
    assert result.return_value == 42
    assert async_to_sync(tasks.add.aget_result)(result.id).return_value == 42


def test_get_result_of_what_is_not_a_task_result() -> None:
    job = plain_jobs.add.enqueue(1, 2)
    for result_id in ["123", "0b9c1c36-9d0c-4a39-8d44-4a8f3c1f6d2e", str(job.pk)]:
        with pytest.raises(TaskResultDoesNotExist, match=result_id):
            backend().get_result(result_id)
    with pytest.raises(TaskResultMismatch):
        tasks.noop_task.get_result(tasks.add.enqueue(1, 1).id)


def test_arguments_are_normalised_and_stored_as_json() -> None:
    result = tasks.noop_task.enqueue((1, 2), b"bytes", {"nested": (3,)})
    assert result.args == [[1, 2], "bytes", {"nested": [3]}]
    assert Job.objects.get(pk=result.id).args == result.args
    with pytest.raises(TypeError, match="Unsupported type"):
        tasks.noop_task.enqueue(timezone.now())
    assert Job.objects.count() == 1


# -- failures, retries and the TaskResult mapping ----------------------------------------


def test_an_exception_is_stored_as_a_task_error(run_worker, received) -> None:
    result = tasks.failing_task_value_error.enqueue()
    run_worker()
    result.refresh()
    assert result.status == TaskResultStatus.FAILED and result.is_finished
    with pytest.raises(ValueError, match="Task failed"):
        result.return_value  # noqa: B018
    (error,) = result.errors
    assert error.exception_class is ValueError
    assert error.traceback.endswith("ValueError: This Task failed due to ValueError\n")
    assert result.attempts == 1
    assert received[-1] == ("task_finished", "FAILED")


def test_retries_use_the_backend_options_and_keep_every_error(run_worker, received) -> None:
    result = tasks.always_fails.enqueue("thrice")
    job = Job.objects.get(pk=result.id)
    assert job.max_attempts == 3  # TASKS["retrying"]["OPTIONS"]["MAX_ATTEMPTS"]
    worker = run_worker("default")
    result.refresh()
    assert (result.status, result.attempts, Call.objects.filter(label="thrice").count()) == ("FAILED", 3, 3)
    assert [error.exception_class for error in result.errors] == [LookupError] * 3
    assert result.worker_ids == [worker.name] * 3
    assert [name for name, _ in received].count("task_finished") == 1  # only when it is finished
    attempts = Job.objects.get(pk=result.id).failed_attempts
    assert [(a["attempt"], a["exception_class"], a["worker"]) for a in attempts] == [
        (n, "builtins.LookupError", worker.name) for n in (1, 2, 3)
    ]


def test_the_context_carries_the_attempt_and_the_result(run_worker) -> None:
    first = tasks.describe_context.enqueue("ctx")
    second = tasks.fails_once.enqueue("again")
    worker = run_worker("default")
    first.refresh()
    assert first.return_value == {
        "label": "ctx",
        "attempt": 1,
        "id": first.id,
        "status": "RUNNING",
        "worker_ids": [worker.name],
        "started": True,
    }
    second.refresh()
    assert (second.status, second.return_value, second.attempts) == (TaskResultStatus.SUCCESSFUL, 2, 2)
    assert [error.exception_class for error in second.errors] == [RuntimeError]
    assert second.started_at < second.last_attempted_at  # the first attempt's start, then the last one's


def test_async_tasks_run_on_the_worker(run_worker) -> None:
    result = tasks.async_record.enqueue("async", queue="not-a-job-option")
    run_worker()
    result.refresh()
    assert result.return_value == {"label": "async", "calls": 1}
    assert Call.objects.get(label="async").data == {"queue": "not-a-job-option"}
    assert Job.objects.get(pk=result.id).queue == "default"


def test_return_values_are_normalised_like_django_does(run_worker) -> None:
    good = tasks.returns_tuple_and_bytes.enqueue()
    bad = tasks.complex_return_value.enqueue()
    run_worker()
    good.refresh()
    bad.refresh()
    assert good.return_value == [1, "two", {"three": [3]}]
    assert bad.status == TaskResultStatus.FAILED
    assert bad.errors[0].exception_class is TypeError
    assert "Unsupported type" in bad.errors[0].traceback


def test_a_cancelled_job_is_a_failed_result(received) -> None:
    result = tasks.add.enqueue(1, 1)
    assert Job.objects.get(pk=result.id).cancel()
    result.refresh()
    assert (result.status, result.attempts, result.is_finished) == (TaskResultStatus.FAILED, 0, True)
    (error,) = result.errors
    assert error.exception_class_path == "django_asyncjobs.exceptions.JobInterrupted"
    assert "cancelled" in error.traceback
    assert received[-1] == ("task_finished", "FAILED")


def test_progress_and_current_job_work_inside_tasks(run_worker) -> None:
    result = tasks.progress.enqueue(4)
    run_worker()
    assert Job.objects.get(pk=result.id).progress == 100
    assert backend().get_result(result.id).return_value == 4


# -- defer, priority, queues -------------------------------------------------------------


def test_run_after_makes_a_delayed_job(run_worker) -> None:
    later = timezone.now() + timedelta(hours=1)
    result = tasks.add.using(run_after=later).enqueue(1, 2)
    job = Job.objects.get(pk=result.id)
    assert (job.status, job.run_at) == (JobStatus.SCHEDULED, later)
    assert result.status == TaskResultStatus.READY
    run_worker()
    assert Job.objects.get(pk=result.id).status == JobStatus.SCHEDULED  # not due yet
    assert backend().get_result(result.id).task.run_after == later
    Job.objects.filter(pk=result.id).update(run_at=timezone.now() - timedelta(seconds=1))  # time passes
    run_worker()
    result.refresh()
    assert (result.status, result.return_value) == (TaskResultStatus.SUCCESSFUL, 3)
    assert result.task.run_after == later


def test_a_task_enqueued_through_another_backend_runs_within_that_backends_limits(settings, run_worker) -> None:
    """The limits of a task's run are those of the backend that enqueued it (``OPTIONS``), as
    its retries and timeout are: here a rate the task's own backend does not have."""
    limited = {"BACKEND": "django_asyncjobs.backends.AsyncJobsBackend", "QUEUES": ["default"]}
    settings.TASKS = {**settings.TASKS, "limited": {**limited, "OPTIONS": {"RATE_LIMIT": "1/h"}}}
    for label in ("limited-1", "limited-2"):
        tasks.record.using(backend="limited", queue_name="default").enqueue(label)
    worker = run_worker("default")
    assert Call.objects.filter(label__startswith="limited-").count() == 1
    assert worker.outcomes[Outcome.DEFERRED] == 1


def test_priority_above_zero_goes_to_the_front_of_the_queue(run_worker, redis: Redis) -> None:
    normal = [tasks.record.using(queue_name="default").enqueue(f"normal-{i}") for i in range(3)]
    low = tasks.record.using(queue_name="default", priority=-100).enqueue("low")
    urgent = tasks.urgent.enqueue("urgent")
    more = tasks.record.using(queue_name="default", priority=100).enqueue("more urgent")
    queued = [item.decode() for item in redis.lrange("rq:queue:default", 0, -1)]
    assert queued == [more.id, urgent.id, *[r.id for r in normal], low.id]
    run_worker("default")
    labels = list(Call.objects.order_by("pk").values_list("label", flat=True))
    assert labels == ["more urgent", "urgent", "normal-0", "normal-1", "normal-2", "low"]
    assert backend().get_result(more.id).task.priority == 100
    assert backend().get_result(low.id).task == tasks.record.using(queue_name="default", priority=-100)


def test_recovery_pushes_a_priority_job_to_the_front_again(redis: Redis) -> None:
    from django_asyncjobs.engine.broker import push

    normal = tasks.add.enqueue(1, 1)
    urgent = tasks.urgent.enqueue("again")
    redis.delete("rq:queue:default")
    push(list(Job.objects.filter(pk__in=[normal.id, urgent.id]).only("pk", "name", "queue", "priority")))
    assert [item.decode() for item in redis.lrange("rq:queue:default", 0, -1)] == [urgent.id, normal.id]


def test_queue_names_are_validated_with_djangos_errors(settings) -> None:
    with pytest.raises(InvalidTask, match="Queue 'nope' is not valid for backend"):
        tasks.add.using(queue_name="nope")
    settings.TASKS = {**settings.TASKS, "open": {"BACKEND": "django_asyncjobs.backends.AsyncJobsBackend", "QUEUES": []}}
    assert tasks.add.using(backend="open", queue_name="low").queue_name == "low"  # any queue of RQ_QUEUES
    with pytest.raises(InvalidTask, match="Queue 'nope' is not valid for backend: it is not in RQ_QUEUES"):
        tasks.add.using(backend="open", queue_name="nope")


def test_invalid_options_fail_the_enqueue(settings) -> None:
    settings.TASKS = {"default": {"BACKEND": "django_asyncjobs.backends.AsyncJobsBackend", "OPTIONS": {"RETRIES": 3}}}
    with pytest.raises(
        ConfigurationError, match=r"TASKS\['default'\]\['OPTIONS'\] is invalid: unknown key\(s\) RETRIES"
    ):
        tasks.add.enqueue(1, 2)
    assert not Job.objects.exists()


def test_back_pressure_raises_queue_full_and_saves_nothing(settings) -> None:
    settings.ASYNCJOBS = {"QUEUE_LIMITS": {"default": {"MAX_DEPTH": 1}}, "BACKPRESSURE_CACHE_SECONDS": 0}
    tasks.add.enqueue(1, 1)
    with pytest.raises(QueueFull) as raised:
        tasks.add.enqueue(2, 2)
    assert raised.value.queue == "default" and raised.value.retry_after >= 1
    assert Job.objects.count() == 1
    tasks.add.using(run_after=timezone.now() + timedelta(minutes=5)).enqueue(3, 3)  # delayed: not checked now
    assert Job.objects.count() == 2


# -- transactions ------------------------------------------------------------------------


def test_the_message_is_pushed_and_task_enqueued_sent_when_the_transaction_commits(redis: Redis, received) -> None:
    with transaction.atomic():
        result = tasks.add.enqueue(1, 2)
        assert Job.objects.filter(pk=result.id).exists()  # the row is part of the transaction
        assert result.enqueued_at is not None
        assert redis.llen("rq:queue:default") == 0
        assert received == []
    assert redis.lrange("rq:queue:default", 0, -1) == [result.id.encode()]
    assert received == [("task_enqueued", "READY")]


def test_a_rolled_back_enqueue_leaves_nothing(redis: Redis, received) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        result = tasks.add.enqueue(1, 2)
        raise RuntimeError("roll back")
    assert not Job.objects.filter(pk=result.id).exists()
    assert redis.llen("rq:queue:default") == 0
    assert received == []
    with pytest.raises(TaskResultDoesNotExist):
        backend().get_result(result.id)


def test_enqueue_wrapped_in_on_commit_as_djangos_docs_suggest(redis: Redis) -> None:
    with transaction.atomic():
        transaction.on_commit(partial(tasks.add.enqueue, 5, 5))
        assert not Job.objects.exists()
    job = Job.objects.get()
    assert redis.lrange("rq:queue:default", 0, -1) == [str(job.pk).encode()]


# -- registration: admin, schedules, workers in other processes ---------------------------


def test_tasks_are_registered_under_their_module_path_without_a_second_decorator() -> None:
    job_function = registered_jobs()["tests.testapp.standard_tasks.add"]
    assert isinstance(job_function, TaskJobFunction)
    assert job_function.task is tasks.add


def test_a_worker_finds_a_task_whose_module_it_never_imported(start_worker) -> None:
    result = tasks.record.enqueue("in another process")
    process = start_worker("high", "--burst")
    assert process.wait(60) == 0, process.stdout.read() if process.stdout else ""
    assert backend().get_result(result.id).return_value == "in another process"


def test_names_are_looked_up_only_as_tasks_of_our_backend() -> None:
    unregister("tests.testapp.standard_tasks.add")
    assert get_job_function("tests.testapp.standard_tasks.add").task is tasks.add  # imported, found again
    for name in ["os.system", "tests.testapp.standard_tasks.Call", "tests.testapp.standard_tasks.on_dummy"]:
        with pytest.raises(JobNotRegistered):
            get_job_function(name)
    with pytest.raises(JobNotRegistered):
        get_job_function("antigravity.fly")  # not in an installed app: not even imported
    assert "antigravity" not in sys.modules


def test_a_row_naming_a_task_of_another_backend_is_refused(run_worker, settings) -> None:
    """Refused like a job whose code this worker lacks: put back for another worker (see
    UNKNOWN_JOB_TIMEOUT), and failed once none took it; never run."""
    job = Job.objects.create(name="tests.testapp.standard_tasks.on_dummy", queue="default")
    from django_asyncjobs.engine.broker import push

    push([job])
    run_worker("default")
    job.refresh_from_db()
    assert job.status == JobStatus.SCHEDULED and job.attempts == 0
    settings.ASYNCJOBS = {**settings.ASYNCJOBS, "UNKNOWN_JOB_TIMEOUT": 0}
    Job.objects.filter(pk=job.pk).update(status=JobStatus.QUEUED, run_at=None)
    push([job])
    run_worker("default")
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "No job is registered as 'tests.testapp.standard_tasks.on_dummy'" in job.error
    assert job.failed_attempts[0]["exception_class"] == "django_asyncjobs.exceptions.JobNotRegistered"


def test_tasks_appear_in_the_admin_under_their_module_path(django_user_model, run_worker) -> None:
    tasks.add.enqueue(1, 2)
    run_worker()
    client = Client()
    client.force_login(django_user_model.objects.create_superuser("admin", "a@example.com", "pw"))
    response = client.get(
        reverse("admin:django_asyncjobs_job_changelist"), {"name": "tests.testapp.standard_tasks.add"}
    )
    assert [job.name for job in response.context["cl"].result_list] == ["tests.testapp.standard_tasks.add"]
    assert ("tests.testapp.standard_tasks.add", "tests.testapp.standard_tasks.add") in [
        choice for spec in response.context["cl"].filter_specs for choice in getattr(spec, "lookup_choices", [])
    ]


def test_tasks_can_be_scheduled(run_worker, received) -> None:
    schedule = Schedule(
        name="urgent-tick", job_name="tests.testapp.standard_tasks.urgent", interval=timedelta(minutes=5)
    )
    schedule.args = ["tick"]
    schedule.full_clean()
    schedule.save()
    Schedule.objects.filter(pk=schedule.pk).update(next_run_at=timezone.now() - timedelta(seconds=1))
    assert fire_due_schedules().fired == ["urgent-tick"]
    assert received == [("task_enqueued", "READY")]  # a schedule's run is an enqueue of the task too
    job = Job.objects.get(schedule=schedule)
    assert (job.queue, job.priority, job.django_task) == ("default", 50, None)  # the task's own
    run_worker("default")
    result = backend().get_result(str(job.pk))
    assert (result.status, result.return_value, result.task) == (TaskResultStatus.SUCCESSFUL, "tick", tasks.urgent)


def test_settings_schedules_may_name_tasks(settings) -> None:
    from django_asyncjobs.scheduling.declared import sync_declared_schedules

    settings.ASYNCJOBS = {"SCHEDULES": {"hourly-add": {"job": "tests.testapp.standard_tasks.add", "cron": "0 * * * *",
                                                       "args": [1, 2]}}}  # fmt: skip
    assert "hourly-add" in sync_declared_schedules().created


def test_a_task_enqueued_by_name_is_still_a_task_result(run_worker, received) -> None:
    from django_asyncjobs import enqueue

    job = enqueue("tests.testapp.standard_tasks.add", 1, 2)
    assert received == [("task_enqueued", "READY")]
    run_worker()
    assert backend().get_result(str(job.pk)).return_value == 3
    assert received[-1] == ("task_finished", "SUCCESSFUL")


# -- review: options of the enqueuing backend, history of cancelled attempts -------------


def test_options_left_out_fall_back_to_asyncjobs_not_to_the_declaring_backend(run_worker) -> None:
    # always_fails is declared on "retrying" (MAX_ATTEMPTS 3); "default" sets no MAX_ATTEMPTS,
    # so ASYNCJOBS["MAX_ATTEMPTS"] (1) applies to what "default" enqueues.
    result = tasks.always_fails.using(backend="default").enqueue("once")
    assert Job.objects.get(pk=result.id).max_attempts == 1
    run_worker("default")
    result.refresh()
    assert (result.status, result.attempts, Call.objects.filter(label="once").count()) == ("FAILED", 1, 1)


def test_a_running_attempt_that_was_cancelled_keeps_its_worker_when_retried(run_worker, received) -> None:
    import uuid

    from django_asyncjobs.engine.operations import retry_jobs
    from django_asyncjobs.engine.states import claim

    result = tasks.add.enqueue(1, 2)
    first = claim(uuid.UUID(result.id), "first-worker")  # attempt 1 runs on another worker...
    assert first is not None and Job.objects.get(pk=result.id).cancel()  # ...and is cancelled
    result.refresh()
    assert (result.status, result.worker_ids) == (TaskResultStatus.FAILED, ["first-worker"])
    assert [e.exception_class_path for e in result.errors] == ["django_asyncjobs.exceptions.JobInterrupted"]
    assert received[-1] == ("task_finished", "FAILED")
    assert retry_jobs(Job.objects.filter(pk=result.id)).done == 1
    worker = run_worker("default")
    result.refresh()
    assert (result.status, result.return_value) == (TaskResultStatus.SUCCESSFUL, 3)
    assert result.worker_ids == ["first-worker", worker.name]  # not the second worker twice
    assert result.started_at == first.started_at < result.last_attempted_at  # the first attempt's start
    assert [e.exception_class_path for e in result.errors] == ["django_asyncjobs.exceptions.JobInterrupted"]


@pytest.mark.parametrize(
    ("args", "reason"),
    [(["a\x00b"], "NUL character"), (["\ud800"], "lone surrogate"), ("deep", "nested deeper than 100 levels")],
)
def test_arguments_a_database_cannot_store_are_refused_before_a_row_is_written(args, reason) -> None:
    if args == "deep":
        args = [[]]
        inner = args[0]
        for _ in range(10_000):
            inner.append([])
            inner = inner[0]
    with pytest.raises(SerializationError, match=reason):
        tasks.noop_task.enqueue(*args)
    assert not Job.objects.exists()
