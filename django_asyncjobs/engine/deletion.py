"""Deleting finished jobs with the files their rows name, by primary key, in one transaction.

A job function says which stored files its rows own (:meth:`.JobFunction.stored_files`;
an offloaded view's uploads and large response); they live in ``OFFLOAD_STORAGE`` and
are deleted before their rows, so a failure leaves rows to retry, never files no row names.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.core.files.storage import Storage, storages
from django.db import connections, router, transaction

from ..conf import app_settings
from ..models import FINISHED_STATUSES, Job
from .registry import registered

#: One job as deletion reads it: pk, finished_at, name, result, args.
Row = tuple[Any, datetime | None, str, Any, Any]
ROW_FIELDS = ("pk", "finished_at", "name", "result", "args")


def files_of(row: Row) -> list[str]:
    """Names in ``OFFLOAD_STORAGE`` of the files one job's row owns (none for a job whose
    function this process does not know)."""
    _, _, name, result, args = row
    job_function = registered(name)
    return job_function.stored_files(args, result) if job_function is not None else []


def file_storage() -> Storage:
    return storages[app_settings.OFFLOAD_STORAGE]


def count_existing(files: list[str]) -> int:
    storage = file_storage()
    return sum(1 for name in files if storage.exists(name))


def delete_files(files: list[str]) -> int:
    """Delete the files that exist; a file already gone is not an error. The number deleted."""
    storage = file_storage()
    deleted = 0
    for name in files:
        if storage.exists(name):
            storage.delete(name)
            deleted += 1
    return deleted


def delete_jobs_and_files(pks: Sequence[Any]) -> int:
    """Delete the finished jobs among ``pks`` with their stored files; the number deleted.

    For a selection (the admin's delete action); unfinished jobs are left alone.
    """
    db = router.db_for_write(Job)
    rows: list[Row] = list(
        Job.objects.using(db).filter(pk__in=list(pks), status__in=FINISHED_STATUSES).values_list(*ROW_FIELDS)
    )
    delete_files([name for row in rows for name in files_of(row)])
    return delete_jobs(db, FINISHED_STATUSES, [row[0] for row in rows])


def delete_jobs(db: str, statuses: Sequence[str], pks: list[Any]) -> int:
    """Delete the jobs ``pks`` (still in ``statuses``) in one transaction; the number deleted.

    Through the ORM, so that rows referring to them are set to NULL (or whatever
    their ``on_delete`` says) and delete signals are sent, for this batch only.
    """
    deleted = 0
    # One parameter per pk and per status, within what the database takes (SQLite: 999).
    limit = (connections[db].features.max_query_params or len(pks) + len(statuses)) - len(statuses)
    with transaction.atomic(using=db):
        for start in range(0, len(pks), limit):
            _, per_model = Job.objects.using(db).filter(pk__in=pks[start : start + limit], status__in=statuses).delete()
            deleted += per_model.get(Job._meta.label, 0)
    return deleted
