"""Every exception class of the package lives in ``django_asyncjobs.exceptions`` under
``AsyncJobsError``, keeps the stdlib/Django bases callers catch, and stays importable where it was."""

from __future__ import annotations

import inspect

import pytest
from django.core.exceptions import ImproperlyConfigured

import django_asyncjobs
from django_asyncjobs import exceptions


def defined_exceptions() -> list[type[BaseException]]:
    return [
        value
        for value in vars(exceptions).values()
        if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == exceptions.__name__
    ]


def test_every_exception_but_job_interrupted_is_an_asyncjobs_error() -> None:
    classes = defined_exceptions()
    assert len(classes) >= 16
    outside = [cls.__name__ for cls in classes if not issubclass(cls, exceptions.AsyncJobsError)]
    assert outside == ["JobInterrupted"]  # a BaseException, so that a job's `except Exception` lets it through
    assert not issubclass(exceptions.JobInterrupted, Exception)


@pytest.mark.parametrize(
    ("name", "bases"),
    [
        ("ConfigurationError", (ImproperlyConfigured,)),
        ("UnknownQueue", (exceptions.ConfigurationError, ValueError)),
        ("JobNotRegistered", (LookupError,)),
        ("InternalJob", (exceptions.JobNotRegistered,)),
        ("AggregationNotRegistered", (LookupError,)),
        ("SerializationError", (TypeError,)),
        ("RedisServerError", (RuntimeError,)),
    ],
)
def test_stdlib_and_django_bases_are_kept(name: str, bases: tuple[type[BaseException], ...]) -> None:
    cls = getattr(exceptions, name)
    assert issubclass(cls, exceptions.AsyncJobsError)
    assert all(issubclass(cls, base) for base in bases)


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("django_asyncjobs.engine.capacity", "QueueFull"),
        ("django_asyncjobs.aggregations.declarations", "AggregationNotRegistered"),
        ("django_asyncjobs.offloading.requests", "OffloadError"),
        ("django_asyncjobs.engine.reconnecting", "DatabaseAway"),
        ("django_asyncjobs.engine.outcomes", "OutcomeRefused"),
        ("django_asyncjobs.testing", "RedisServerError"),
    ],
)
def test_old_import_locations_name_the_same_class(module: str, name: str) -> None:
    imported = __import__(module, fromlist=[name])
    assert getattr(imported, name) is getattr(exceptions, name)


def test_public_exceptions_are_exported_from_the_package() -> None:
    for name in ("AsyncJobsError", "QueueFull", "AggregationNotRegistered", "ConfigurationError", "EnqueueError"):
        assert getattr(django_asyncjobs, name) is getattr(exceptions, name)
