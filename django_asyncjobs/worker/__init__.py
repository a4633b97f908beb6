"""The worker: pop a job id, claim its row, run it, record the outcome, repeat.

Owns the worker process (:mod:`.loop`), its threaded form running several jobs at once
(:mod:`.threads`, with per-thread time limits and interrupts in :mod:`.slots` and the
event loop of ``async def`` jobs in :mod:`.aio`), the supervisor of several worker
processes (:mod:`.supervisor`) and its liveness for orchestrators (:mod:`.health`). The
top layer of the job side: it may import the engine and scheduling (a worker can run the
scheduler in a thread), nothing imports it but the management commands.
``django_asyncjobs.worker.Worker`` is the dotted path of ``asyncjobs_worker --worker-class``.
"""

from .loop import Worker, build_worker
from .supervisor import run_workers
from .threads import ThreadedWorker

__all__ = ["ThreadedWorker", "Worker", "build_worker", "run_workers"]
