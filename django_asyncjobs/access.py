"""Who may see a job: its owner, users with the ``view_job`` permission, or a
holder of the job's signed status token (for jobs without an owner)."""

from __future__ import annotations

from typing import Any

from django.core import signing
from django.urls import reverse
from django.utils.crypto import constant_time_compare
from django.utils.http import urlencode

from .models import Job

_SALT = "django_asyncjobs.status-token"


def status_token(job: Job) -> str:
    """An unguessable token bound to the job id (HMAC with SECRET_KEY)."""
    return signing.Signer(salt=_SALT).signature(str(job.pk))


def token_matches(job: Job, token: str | None) -> bool:
    return bool(token) and constant_time_compare(status_token(job), str(token))


def can_view(user: Any, job: Job, token: str | None = None) -> bool:
    if token_matches(job, token):
        return True
    if not getattr(user, "is_authenticated", False):
        return False
    if job.owner_id is not None and job.owner_id == user.pk:
        return True
    return bool(user.has_perm("django_asyncjobs.view_job"))


def _with_token(url: str, job: Job) -> str:
    return f"{url}?{urlencode({'token': status_token(job)})}" if job.owner_id is None else url


def status_url(job: Job) -> str:
    """The job's status URL; jobs without an owner carry their token in it."""
    return _with_token(reverse("asyncjobs:status", kwargs={"job_id": job.pk}), job)


def result_url(job: Job) -> str:
    return _with_token(reverse("asyncjobs:result", kwargs={"job_id": job.pk}), job)
