"""A unique job's key (docs/jobs.md#unique-jobs-and-debounce): what tells its calls apart, and
how a job given back before it started (a limit, a batch released, recovery's put-back) holds
it again, so that it is once more the call's one waiting job."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import QuerySet

from ..exceptions import JobNotRegistered
from ..models import Job
from .registry import get_job_function


def unique_key(name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
    """What tells a unique job's calls apart: its name and arguments (JSON, keys sorted), hashed."""
    call = json.dumps([name, list(args), kwargs], sort_keys=True, separators=(",", ":"))  # ASCII: any text hashes
    return hashlib.sha256(call.encode()).hexdigest()


def key_to_restore(job: Job) -> str | None:
    """The key ``job`` holds again when it waits again without having started: its call's, if
    its function is a unique job (``None`` too where this process lacks the function)."""
    try:
        job_function = get_job_function(job.name)
    except JobNotRegistered:
        return None
    if not job_function.options_for(job).unique:
        return None
    return unique_key(job.name, job.args or [], job.kwargs or {})


def update_holding_key(rows: QuerySet[Job], fields: dict[str, Any], key: str | None, alias: str) -> int:
    """``rows.update(**fields)``, with ``unique_key=key`` as well unless a waiting job enqueued
    since the claim holds the key (the unique constraint refuses it: then without, and with no
    ``fields`` nothing). ``fields`` gets ``unique_key`` when it was written."""
    if key is not None:
        try:
            with transaction.atomic(using=alias):
                written = rows.update(**fields, unique_key=key)
        except IntegrityError:
            pass
        else:
            if written:
                fields["unique_key"] = key
            return written
    return rows.update(**fields) if fields else 0
