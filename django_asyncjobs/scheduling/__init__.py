"""Scheduling: time-driven work done by ``asyncjobs_scheduler`` (or a worker's thread).

Owns schedules declared in code and their sync into the table (:mod:`.declared`), firing
due schedules and promoting due delayed jobs (:mod:`.firing`), recovery of jobs whose
message or worker was lost (:mod:`.recovery`), pruning old rows (:mod:`.pruning`), walking
the job table in batches (:mod:`.batches`) and the loop that runs them all (:mod:`.scheduler`).

May import the foundation, models, the engine and aggregations; never the worker, the web
side or the admin.
"""
