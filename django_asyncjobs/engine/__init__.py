"""The engine: what a job is and how it moves from enqueue to its recorded outcome.

Owns the registry of job functions, what may be stored in a row (:mod:`.payloads`), the
job state machine (every status write), enqueueing, Redis (:mod:`.broker`, the only
module that speaks to it), the back-pressure estimate (:mod:`.capacity`), running one
job and recording its outcome (:mod:`.execution`, :mod:`.outcomes`, :mod:`.heartbeat`,
:mod:`.reconnecting`) and operations on many jobs (:mod:`.operations`).

May import the foundation (exceptions, conf, signals, times) and :mod:`django_asyncjobs.models`;
never aggregations, scheduling, the worker, the web side or the admin.
"""
