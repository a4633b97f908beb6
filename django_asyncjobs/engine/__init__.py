"""The engine: what a job is and how it moves from enqueue to its recorded outcome.

- :mod:`.functions` (``@job``, ``JobFunction``, ``JobOptions``) and :mod:`.registry`
  (job functions by name: the only code a worker runs);
- :mod:`.states`: the job state machine, the only module that writes ``Job.status``;
- :mod:`.enqueueing`: validate, insert, push on commit; :mod:`.inserts`: new rows and
  their one ``INSERT`` (without ``Model.save()``);
- :mod:`.broker`: the only code that speaks to Redis and RQ (its key schema);
- :mod:`.capacity`: the back-pressure estimate (how full a queue is, how long the wait);
- :mod:`.execution`, :mod:`.outcomes`, :mod:`.heartbeat`, :mod:`.reconnecting`: claim and
  run one job, record its outcome, keep its heartbeat, survive a broken connection;
  :mod:`.atomic`: an atomic job's function and success in one transaction;
- :mod:`.connections`: a worker's database connections, kept across jobs and checked
  between them (used by the worker and the scheduler too);
- :mod:`.operations` (retry, cancel, push again, delete many jobs) and :mod:`.deletion`
  (rows with the files their function says they own).

May import the foundation (exceptions, conf, validators, logs, signals, payloads, times)
and :mod:`django_asyncjobs.models`; never aggregations, scheduling, the worker, the web
side or the admin.
"""
