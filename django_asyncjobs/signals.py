"""Signals sent over a job's life. Every signal's sender is the ``Job`` class and
every one carries ``job``, the ``Job`` instance."""

from django.dispatch import Signal

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
