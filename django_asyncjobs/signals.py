"""Signals sent over a job's life. Every signal's sender is the ``Job`` class and
every one carries ``job``, the ``Job`` instance."""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import Signal

logger = logging.getLogger("django_asyncjobs")

#: After a job's message was pushed to Redis (on commit of the creating transaction).
job_enqueued = Signal()
#: On the worker, after the row was claimed and before the function runs.
job_started = Signal()
#: On the worker, after the function returned and its result was stored.
job_succeeded = Signal()
#: On the worker, after an attempt failed. Also carries ``will_retry`` (bool).
job_failed = Signal()
#: After a job was cancelled.
job_cancelled = Signal()


def notify(signal: Signal, job: Any, **kwargs: Any) -> None:
    """Send ``signal`` about a state already recorded: a failing receiver is logged, not raised."""
    if not signal.receivers:
        return
    for receiver, response in signal.send_robust(sender=type(job), job=job, **kwargs):
        if isinstance(response, Exception):
            logger.error("Receiver %r of a job signal failed for job %s", receiver, job.pk, exc_info=response)
