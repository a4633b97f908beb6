"""Who may see a job or a group of jobs: its owner, users with the ``view_job`` (or
``view_jobgroup``) permission, or a holder of its signed status token (for jobs and groups
without an owner)."""

from __future__ import annotations

import uuid
from typing import Any

from django.core import signing
from django.urls import NoReverseMatch, reverse
from django.utils.crypto import constant_time_compare
from django.utils.http import urlencode

from ..exceptions import ConfigurationError
from ..links import see
from ..models import Job, JobGroup

_SALT = "django_asyncjobs.status-token"
#: A salt of its own: a group's token never opens a job of the same id, nor the reverse.
_GROUP_SALT = "django_asyncjobs.group-status-token"


def status_token(job: Job | Any) -> str:
    """An unguessable token bound to the job id (HMAC with SECRET_KEY); takes a job or its id."""
    return signing.Signer(salt=_SALT).signature(str(getattr(job, "pk", job)))


def token_matches(job: Job | Any, token: str | None) -> bool:
    """Whether ``token`` is the status token of ``job`` (a job or its id)."""
    return bool(token) and constant_time_compare(status_token(job), str(token))


def group_status_token(group: JobGroup | Any) -> str:
    """The status token of a group (or its id): as :func:`status_token`, with another salt."""
    return signing.Signer(salt=_GROUP_SALT).signature(str(getattr(group, "pk", group)))


def group_token_matches(group: JobGroup | Any, token: str | None) -> bool:
    return bool(token) and constant_time_compare(group_status_token(group), str(token))


def _with_token(url: str, job: Job) -> str:
    return f"{url}?{urlencode({'token': status_token(job)})}" if job.owner_id is None else url


def status_url(job: Job) -> str:
    """The job's status URL; jobs without an owner carry their token in it."""
    return _with_token(reverse("asyncjobs:status", kwargs={"job_id": job.pk}), job)


def status_urls_included() -> bool:
    """Whether the URLconf includes ``django_asyncjobs.urls`` (the status URLs resolve)."""
    try:
        reverse("asyncjobs:status", kwargs={"job_id": uuid.UUID(int=0)})
    except NoReverseMatch:
        return False
    return True


def require_status_urls() -> None:
    """``ConfigurationError`` unless the status URLs resolve: asked before an offloaded request
    is enqueued, so that a site without them fails without writing a job (asyncjobs.W003)."""
    if not status_urls_included():
        raise ConfigurationError(
            "@offload answers with the job's status URL, but django_asyncjobs.urls is not included in the "
            "URLconf: add path('async/', include('django_asyncjobs.urls')). Nothing was enqueued. "
            + see("checks", "asyncjobsw003")
        )


def result_url(job: Job) -> str:
    return _with_token(reverse("asyncjobs:result", kwargs={"job_id": job.pk}), job)


def group_status_url(group: JobGroup) -> str:
    """The group's status URL; groups without an owner carry their token in it."""
    url = reverse("asyncjobs:group_status", kwargs={"group_id": group.pk})
    return f"{url}?{urlencode({'token': group_status_token(group)})}" if group.owner_id is None else url
