"""Time-based work: moving delayed jobs and retries onto their queues when due."""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from .models import Job, JobStatus

logger = logging.getLogger("django_asyncjobs")


def promote_due_jobs(batch_size: int = 500) -> int:
    """Queue scheduled jobs whose ``run_at`` has passed and ring their doorbells.

    Safe to run from many processes at once: a row moves ``scheduled`` to
    ``queued`` only once, and a doubled push is harmless because a worker claims
    a row only from ``queued``. Returns the number of jobs queued.
    """
    from .enqueueing import ring

    total = 0
    while True:
        now = timezone.now()
        with transaction.atomic():
            due = Job.objects.due(now).order_by("run_at")
            if transaction.get_connection().features.has_select_for_update_skip_locked:
                due = due.select_for_update(skip_locked=True)
            ids = list(due.values_list("pk", flat=True)[:batch_size])
            if not ids:
                return total
            Job.objects.filter(pk__in=ids, status=JobStatus.SCHEDULED).update(status=JobStatus.QUEUED, enqueued_at=now)
        jobs = list(Job.objects.filter(pk__in=ids, status=JobStatus.QUEUED).only("pk", "name", "queue"))
        ring(jobs)
        total += len(jobs)
        logger.debug("Queued %d due job(s).", len(jobs))
        if len(ids) < batch_size:
            return total
