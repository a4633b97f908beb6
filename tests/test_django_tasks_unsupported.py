"""Without Django's Tasks framework (Django < 6.0), AsyncJobsBackend refuses clearly."""

from __future__ import annotations

import importlib
import importlib.util

import django
import pytest
from django.core.exceptions import ImproperlyConfigured

from django_asyncjobs.checks import check_task_backends
from django_asyncjobs.engine.registry import get_job_function
from django_asyncjobs.exceptions import ConfigurationError, JobNotRegistered

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("django.tasks") is not None,
    reason=f"Django {django.get_version()} has django.tasks (see test_django_tasks.py)",
)


def test_importing_the_backend_names_the_django_version_needed() -> None:
    with pytest.raises(ImproperlyConfigured) as raised:
        importlib.import_module("django_asyncjobs.backends")
    assert isinstance(raised.value, ConfigurationError)
    message = str(raised.value)
    assert "Django 6.0 or later" in message
    assert f"this is Django {django.get_version()}" in message


def test_using_it_in_tasks_is_reported_by_a_system_check(settings) -> None:
    settings.TASKS = {"default": {"BACKEND": "django_asyncjobs.backends.AsyncJobsBackend"}}
    (message,) = check_task_backends()
    assert message.id == "asyncjobs.E013"
    assert "Django 6.0 or later" in message.msg and django.get_version() in message.msg


def test_a_row_naming_a_task_module_path_is_just_unregistered() -> None:
    with pytest.raises(JobNotRegistered):
        get_job_function("tests.testapp.standard_tasks.add")
