"""Django's own expectations of a task backend, run against AsyncJobsBackend.

Mirrors the behaviours that Django's test suite checks for its backends and for the
Task API (django/django, tests/tasks/: test_tasks.py, test_dummy_backend.py,
test_immediate_backend.py), where they apply to a backend that runs tasks later, on a
worker: the Dummy backend's expectations right after ``enqueue``, the Immediate
backend's once a worker ran the task. Same tasks (tests/testapp/standard_tasks.py),
same assertions; the worker is real and so are Redis and the database.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime

import django
import pytest

pytest.importorskip(
    "django.tasks",
    reason=f"Django {django.get_version()} has no django.tasks (Django 6.0+); see test_django_tasks_unsupported.py",
)

from asgiref.sync import async_to_sync
from django.db import transaction
from django.tasks import TaskResultStatus, default_task_backend, task, task_backends
from django.tasks.base import TASK_MAX_PRIORITY, TASK_MIN_PRIORITY
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist, TaskResultMismatch
from django.utils import timezone
from django.utils.module_loading import import_string

from django_asyncjobs.backends import AsyncJobsBackend
from tests.testapp import standard_tasks as test_tasks

pytestmark = pytest.mark.django_db(transaction=True)

SYNC_AND_ASYNC = [test_tasks.noop_task, test_tasks.noop_task_async]


def test_using_correct_backend() -> None:
    assert default_task_backend == task_backends["default"]
    assert isinstance(task_backends["default"], AsyncJobsBackend)
    assert default_task_backend.alias == "default"
    assert default_task_backend.options == {}
    assert task_backends["retrying"].options == {"MAX_ATTEMPTS": 3, "RETRY_BACKOFF": 0}


def test_feature_flags() -> None:
    assert AsyncJobsBackend.supports_defer
    assert AsyncJobsBackend.supports_async_task
    assert AsyncJobsBackend.supports_get_result
    assert AsyncJobsBackend.supports_priority


def test_check() -> None:
    assert list(default_task_backend.check()) == []


# -- right after enqueue (DummyBackendTestCase) -------------------------------------------


@pytest.mark.parametrize("task_", SYNC_AND_ASYNC, ids=["sync", "async"])
def test_enqueue_task(task_) -> None:
    result = task_.enqueue(1, two=3)
    assert result.status == TaskResultStatus.READY
    assert result.is_finished is False
    assert result.started_at is None
    assert result.last_attempted_at is None
    assert result.finished_at is None
    with pytest.raises(ValueError, match="Task has not finished yet"):
        result.return_value  # noqa: B018
    assert result.task == task_
    assert result.args == [1]
    assert result.kwargs == {"two": 3}
    assert result.attempts == 0
    assert result.errors == []


@pytest.mark.parametrize("task_", SYNC_AND_ASYNC, ids=["sync", "async"])
def test_enqueue_task_async(task_) -> None:
    result = async_to_sync(task_.aenqueue)()
    assert result.status == TaskResultStatus.READY
    assert result.task == task_
    assert (result.args, result.kwargs, result.attempts) == ([], {}, 0)


def test_get_result() -> None:
    result = default_task_backend.enqueue(test_tasks.noop_task, (), {})
    assert default_task_backend.get_result(result.id) == result
    assert test_tasks.noop_task.get_result(result.id) == result


def test_get_result_async() -> None:
    result = async_to_sync(default_task_backend.aenqueue)(test_tasks.noop_task, (), {})
    assert async_to_sync(default_task_backend.aget_result)(result.id) == result
    assert async_to_sync(test_tasks.noop_task.aget_result)(result.id) == result


def test_refresh_result_unchanged() -> None:
    result = async_to_sync(test_tasks.noop_task.aenqueue)()
    original = dataclasses.asdict(result)
    result.refresh()
    assert dataclasses.asdict(result) == original
    async_to_sync(result.arefresh)()
    assert dataclasses.asdict(result) == original


def test_get_missing_result() -> None:
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result("123")
    with pytest.raises(TaskResultDoesNotExist):
        async_to_sync(default_task_backend.aget_result)("123")
    with pytest.raises(TaskResultDoesNotExist):
        test_tasks.noop_task.get_result("123")


def test_get_incorrect_result() -> None:
    result = default_task_backend.enqueue(test_tasks.noop_task_async, (), {})
    with pytest.raises(TaskResultMismatch, match="Task does not match"):
        test_tasks.noop_task.get_result(result.id)
    with pytest.raises(TaskResultMismatch, match="Task does not match"):
        async_to_sync(test_tasks.noop_task.aget_result)(result.id)


def test_enqueue_logs(caplog) -> None:
    with caplog.at_level("DEBUG", logger="django.tasks"):
        result = test_tasks.noop_task.enqueue()
    (record,) = [r for r in caplog.records if r.name == "django.tasks"]
    assert "enqueued" in record.getMessage() and result.id in record.getMessage()


def test_takes_context_enqueue() -> None:
    assert test_tasks.get_task_id.enqueue().status == TaskResultStatus.READY


def test_validate_on_enqueue(settings) -> None:
    task_with_custom_queue_name = test_tasks.noop_task.using(queue_name="low")
    settings.TASKS = {"default": {"BACKEND": "django_asyncjobs.backends.AsyncJobsBackend", "QUEUES": ["default"]}}
    with pytest.raises(InvalidTask, match="Queue 'low' is not valid for backend"):
        task_with_custom_queue_name.enqueue()
    with pytest.raises(InvalidTask, match="Queue 'low' is not valid for backend"):
        async_to_sync(task_with_custom_queue_name.aenqueue)()


def test_doesnt_wait_until_transaction_commit() -> None:
    # Like Django's backends, enqueue() returns a result at once inside a transaction (only
    # the message to the worker waits for the commit: see test_django_tasks.py).
    with transaction.atomic():
        result = test_tasks.noop_task.enqueue()
        assert result.enqueued_at is not None
        assert default_task_backend.get_result(result.id) == result


# -- the Task API (TaskTestCase) ------------------------------------------------------------


def test_enqueue_with_invalid_argument() -> None:
    with pytest.raises(TypeError, match="Unsupported type"):
        test_tasks.noop_task.enqueue(datetime.now())
    with pytest.raises(TypeError, match="Unsupported type"):
        async_to_sync(test_tasks.noop_task.aenqueue)(datetime.now())


def test_using_priority_and_run_after() -> None:
    now = timezone.now()
    assert test_tasks.noop_task.using(priority=1).priority == 1
    assert test_tasks.noop_task.using(run_after=now).run_after == now
    chained = test_tasks.noop_task.using(run_after=now).using(priority=10)
    assert (chained.priority, chained.run_after) == (10, now)
    assert test_tasks.noop_task.priority == 0


def test_naive_datetime() -> None:
    with pytest.raises(InvalidTask, match=re.escape("run_after must be an aware datetime.")):
        test_tasks.noop_task.using(run_after=datetime.now())


def test_invalid_priority() -> None:
    message = f"priority must be a whole number between {TASK_MIN_PRIORITY} and {TASK_MAX_PRIORITY}."
    for priority in (-101, 101, 3.1):
        with pytest.raises(InvalidTask, match=re.escape(message)):
            test_tasks.noop_task.using(priority=priority)
    for priority in (100, -100, 0):
        test_tasks.noop_task.using(priority=priority)


def test_unknown_queue_name() -> None:
    with pytest.raises(InvalidTask, match=re.escape("Queue 'queue-2' is not valid for backend.")):
        test_tasks.noop_task.using(queue_name="queue-2")


def test_invalid_function() -> None:
    def local() -> None: ...

    for invalid_function in (any, local):
        with pytest.raises(InvalidTask, match=re.escape("Task function must be defined at a module level.")):
            task()(invalid_function)


def test_takes_context_without_taking_context() -> None:
    with pytest.raises(
        InvalidTask, match=re.escape("Task takes context but does not have a first argument of 'context'.")
    ):
        task(takes_context=True)(test_tasks.calculate_meaning_of_life.func)


def test_module_path() -> None:
    assert test_tasks.noop_task.module_path == "tests.testapp.standard_tasks.noop_task"
    assert import_string(test_tasks.noop_task.module_path) is test_tasks.noop_task


# -- once a worker ran the task (ImmediateBackendTestCase) ----------------------------------


@pytest.mark.parametrize("task_", SYNC_AND_ASYNC, ids=["sync", "async"])
def test_task_runs(task_, run_worker) -> None:
    result = task_.enqueue(1, two=3)
    run_worker()
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.is_finished is True
    assert result.started_at is not None
    assert result.last_attempted_at is not None
    assert result.finished_at is not None
    assert result.started_at >= result.enqueued_at
    assert result.finished_at >= result.started_at
    assert result.return_value is None
    assert result.task == task_
    assert (result.args, result.kwargs, result.attempts) == ([1], {"two": 3}, 1)


def test_catches_exception(run_worker, caplog) -> None:
    result = test_tasks.failing_task_value_error.enqueue()
    with caplog.at_level("ERROR", logger="django.tasks"):
        run_worker()
    assert any("state=FAILED" in r.getMessage() and result.id in r.getMessage() for r in caplog.records)
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    with pytest.raises(ValueError, match="Task failed"):
        result.return_value  # noqa: B018
    assert result.is_finished is True
    assert result.started_at >= result.enqueued_at
    assert result.finished_at >= result.started_at
    assert result.errors[0].exception_class is ValueError
    assert result.errors[0].traceback.endswith("ValueError: This Task failed due to ValueError\n")
    assert (result.args, result.kwargs) == ([], {})


@pytest.mark.parametrize(
    ("task_", "exception", "text"),
    [
        (test_tasks.complex_exception, ValueError, 'ValueError(ValueError("This task failed"))'),
        (test_tasks.complex_return_value, TypeError, "Unsupported type"),
    ],
    ids=["complex_exception", "complex_return_value"],
)
def test_complex_failures(task_, exception, text, run_worker) -> None:
    result = task_.enqueue()
    run_worker()
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result._return_value is None
    assert result.errors[0].exception_class is exception
    assert text in result.errors[0].traceback


def test_result(run_worker) -> None:
    result = default_task_backend.enqueue(test_tasks.calculate_meaning_of_life, [], {})
    run_worker()
    result.refresh()
    assert (result.status, result.return_value) == (TaskResultStatus.SUCCESSFUL, 42)


def test_takes_context(run_worker) -> None:
    result = test_tasks.get_task_id.enqueue()
    run_worker()
    result.refresh()
    assert result.return_value == result.id


def test_task_logs(run_worker, caplog) -> None:
    with caplog.at_level("DEBUG", logger="django.tasks"):
        result = test_tasks.noop_task.enqueue()
        run_worker()
    messages = [r.getMessage() for r in caplog.records if r.name == "django.tasks"]
    assert len(messages) == 3
    assert "enqueued" in messages[0] and result.id in messages[0]
    assert "state=RUNNING" in messages[1] and result.id in messages[1]
    assert "state=SUCCESSFUL" in messages[2] and result.id in messages[2]
