"""A backend for Django's Tasks framework (``django.tasks``, Django 6.0 and later).

```python
TASKS = {
    "default": {
        "BACKEND": "django_asyncjobs.backends.AsyncJobsBackend",
        "QUEUES": ["default", "high"],  # keys of RQ_QUEUES
        "OPTIONS": {"MAX_ATTEMPTS": 3, "TIMEOUT": 600},
    }
}
```

``enqueue`` saves a ``Job`` row named after the task's module path (in the caller's
transaction) and pushes its message on commit; the ``TaskResult``'s id is the job id,
and ``get_result`` reads the row. See docs/django-tasks.md.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from typing import Any

import django
from django.core.checks import CheckMessage

from ..engine.registry import get_job_function
from ..exceptions import ConfigurationError, JobNotRegistered, SerializationError
from ..links import see

try:
    from django.tasks import TaskResult
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import Task
    from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
    from django.utils.json import normalize_json
except ImportError as exc:  # Django < 6.0
    raise ConfigurationError(
        "django_asyncjobs.backends.AsyncJobsBackend is a backend for Django's Tasks framework "
        f"(django.tasks), which Django 6.0 added; this is Django {django.get_version()}. Upgrade to "
        "Django 6.0 or later, or remove AsyncJobsBackend from the TASKS setting. The django-tasks "
        "backport is not supported. " + see("django-tasks", "requirements")
    ) from exc

from ..conf import app_settings
from ..engine.functions import JobOptions
from ..payloads import MAX_JSON_DEPTH
from .checks import task_backend_errors
from .jobs import JobsBackend, TaskJobFunction, build_result, register_task


class AsyncJobsBackend(JobsBackend, BaseTaskBackend):
    """Runs ``django.tasks`` Tasks as django-asyncjobs jobs on ``asyncjobs_worker``.

    ``QUEUES`` are keys of ``RQ_QUEUES`` (an empty list allows every one of them).
    ``OPTIONS`` (all optional) are the ``@job`` options ``MAX_ATTEMPTS``, ``TIMEOUT``,
    ``RETRY_BACKOFF``, ``RETRY_BACKOFF_MAX`` and ``RETRY_JITTER`` for the tasks of this
    backend; left out, they are read from ``ASYNCJOBS``.
    """

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        self._params = params
        self._job_options: JobOptions | None = None

    def job_options(self, queue: str | None = None) -> JobOptions:
        """``OPTIONS`` as job options (``ConfigurationError`` if invalid; checked as asyncjobs.E012)."""
        if self._job_options is None:
            options = self.options if isinstance(self.options, dict) else {}
            try:
                self._job_options = JobOptions.from_setting(options)
            except ValueError as exc:
                raise ConfigurationError(
                    f"TASKS[{self.alias!r}]['OPTIONS'] is invalid: {exc}. {see('django-tasks', 'set-up')}"
                ) from None
        return replace(self._job_options, queue=queue)

    def check(self, **kwargs: Any) -> list[CheckMessage]:
        """This backend's configuration errors (asyncjobs.E001, E011, E012, E014), as
        Django's check of ``TASKS`` collects them. See docs/checks.md."""
        return [*super().check(**kwargs), *task_backend_errors(self.alias, self._params)]

    def validate_task(self, task: Task[Any, Any]) -> None:
        """Django's validation, then: the queue must be in ``RQ_QUEUES``. Registers the task."""
        super().validate_task(task)
        if task.queue_name not in app_settings.rq_queues:
            raise InvalidTask(
                f"Queue '{task.queue_name}' is not valid for backend: it is not in RQ_QUEUES "
                f"(configured: {', '.join(sorted(app_settings.rq_queues)) or 'none'})."
            )
        register_task(task)

    def enqueue(self, task: Task[Any, Any], args: Any, kwargs: Any) -> TaskResult[Any, Any]:
        """Save the job (status ``queued``, or ``scheduled`` until ``run_after``) and push it on commit.

        Raises ``QueueFull`` when the queue is saturated (nothing is saved), Django's
        ``TypeError`` for an argument that is not JSON, and ``SerializationError`` (also a
        ``TypeError``) for one a database cannot store. ``task_enqueued`` is sent once the
        transaction commits.
        """
        # lazy: enqueueing imports the models, which a @task declared while apps load cannot
        from ..engine.enqueueing import enqueue_calls

        self.validate_task(task)
        job_function = register_task(task)
        # Django's normalisation (TypeError "Unsupported type"), then as JSON stores it: the
        # TaskResult returned here equals the one get_result() reads back. What a database
        # refuses (a NUL character) is SerializationError from enqueue_calls.
        try:
            call = json.loads(json.dumps([normalize_json(args), normalize_json(kwargs)]))
        except RecursionError:
            raise SerializationError(
                f"The arguments of task {task.module_path} are nested deeper than {MAX_JSON_DEPTH} levels."
            ) from None
        job = enqueue_calls(
            job_function,
            [(call[0], call[1])],
            queue=task.queue_name,
            # This backend's MAX_ATTEMPTS, else ASYNCJOBS' (not the options of the backend
            # the task was declared on, which a job function registered with).
            max_attempts=self.job_options().resolved_max_attempts(),
            run_at=task.run_after,
            priority=task.priority,
            django_task={"backend": self.alias, "run_after": task.run_after and task.run_after.isoformat()},
        )[0]
        return build_result(job, task, self.alias)  # task_enqueued: TaskJobFunction.enqueued, on commit

    def get_result(self, result_id: str) -> TaskResult[Any, Any]:
        """The ``TaskResult`` of job ``result_id``, read from its row.

        ``TaskResultDoesNotExist`` when there is no such job, or when the job is not a
        task of an ``AsyncJobsBackend`` (a ``@job`` function's, for example).
        """
        # lazy: a @task may be declared while apps load, before the models can be imported
        from ..models import Job

        try:
            pk = uuid.UUID(str(result_id))
        except ValueError:
            raise TaskResultDoesNotExist(result_id) from None
        job = Job.objects.filter(pk=pk).first()
        if job is None:
            raise TaskResultDoesNotExist(result_id)
        try:
            job_function = get_job_function(job.name)
        except JobNotRegistered:
            raise TaskResultDoesNotExist(f"{result_id} (job {job.name!r} is not a registered task)") from None
        if not isinstance(job_function, TaskJobFunction):
            raise TaskResultDoesNotExist(f"{result_id} (job {job.name!r} is not a task of django.tasks)")
        return job_function.result_for(job, self.alias)
