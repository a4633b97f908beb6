"""The job lifecycle's one hook protocol: Django signals, sent by the core at each step.

Every signal's ``sender`` is the ``Job`` class and every one carries ``job``, the
``Job`` instance. The core sends them; everything else that reacts to a job's life
connects receivers: the django.tasks backend (``django_asyncjobs.tasks.jobs``) turns
``job_created``, ``job_started`` and ``job_finished`` into Django's ``task_enqueued``,
``task_started`` and ``task_finished`` for its own jobs, and users connect theirs.

=================  ===========================================================  ====================================
signal             sent (extra keyword arguments)                               in which process
=================  ===========================================================  ====================================
``job_created``    on commit of the transaction that saved the row, once per    the one that enqueued
                   job, due or delayed, after the push of due ones (also when
                   Redis was unreachable). ``job_function``
``job_enqueued``   after the job's message was pushed to Redis: on enqueue,     the one that pushed
                   promotion of a due delayed job or retry, immediate retry
``job_started``    after the row was claimed, before the function runs;         worker
                   ``job_function``. A receiver's exception fails the attempt
``job_succeeded``  after the result was stored                                  worker
``job_failed``     after a failed attempt was recorded; ``will_retry``          worker; recovery for lost workers
``job_cancelled``  after ``cancel()`` cancelled the job                         the one that cancelled
``job_finished``   once, after the job reached a final status (succeeded,       worker; recovery; the one that
                   failed without retry, cancelled), after the signal above;    cancelled
                   ``job_function`` (``None`` where this process lacks the
                   job's code)
=================  ===========================================================  ====================================

All but ``job_started`` announce a state already recorded and are sent with
:func:`notify` (``send_robust``: a failing receiver is logged, not raised). The core
checks ``has_listeners()`` before doing work only a receiver would need (the
on-commit callback of ``job_created``), so a signal nobody listens to costs nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import Signal

from .logs import log_event, signals_logger

#: On commit of the transaction that saved the job's row (due or delayed). ``job_function``.
job_created = Signal()
#: After a job's message was pushed to Redis (on commit of the creating transaction, on promotion, on retry).
job_enqueued = Signal()
#: On the worker, after the row was claimed and before the function runs. ``job_function``.
job_started = Signal()
#: On the worker, after the function returned and its result was stored.
job_succeeded = Signal()
#: On the worker (or recovery), after an attempt failed. Also carries ``will_retry`` (bool).
job_failed = Signal()
#: After a job was cancelled.
job_cancelled = Signal()
#: Once, after the job reached a final status, following the signal of that status. ``job_function``.
job_finished = Signal()


def notify(signal: Signal, job: Any, **kwargs: Any) -> None:
    """Send ``signal`` about a state already recorded: a failing receiver is logged, not raised."""
    if not signal.receivers:
        return
    for receiver, response in signal.send_robust(sender=type(job), job=job, **kwargs):
        if isinstance(response, Exception):
            fields = {"job": job.pk, "name": job.name, "receiver": repr(receiver)}
            log_event(signals_logger, logging.ERROR, "signal.receiver_failed", **fields, exc_info=response)
