"""Running worker processes: one in this process, or ``concurrency`` forked and supervised.

The supervising parent passes SIGINT/SIGTERM on to its children (a warm stop, a
second signal a cold one) and restarts a child that died unexpectedly (a non-zero
exit or a signal it did not ask for), after a delay that grows while children keep
dying. A child that exits 0 stopped on request, finished its burst or its
``--max-jobs``, and is not restarted. Exit status: 0 for a requested stop or a
finished burst; otherwise the highest status of a child that quit on an error.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import connections

from ..conf import app_settings
from ..engine.broker import reset_connections
from ..logs import log_event, worker_logger
from ..scheduling.scheduler import Scheduler
from ..validators import require_count
from .health import numbered_path
from .loop import Worker, build_worker
from .threads import threaded

if TYPE_CHECKING:
    from multiprocessing.context import ForkProcess


#: Delay before restarting a child that died, doubled per death in a row, up to the max.
RESTART_DELAY = 1.0
RESTART_MAX_DELAY = 30.0
#: A child that ran this long before it died starts its slot's delay over.
STABLE_AFTER = 60.0


def run_workers(
    queue_names: Sequence[str],
    *,
    concurrency: int = 1,
    burst: bool = False,
    name: str | None = None,
    max_jobs: int | None = None,
    logging_level: str = "INFO",
    worker_class: type[Worker] | None = None,
    with_scheduler: bool = False,
    threads: int | None = None,
    health_file: str | None = None,
) -> int:
    """Run ``concurrency`` worker processes until they stop; returns an exit status.

    ``threads`` (default ``ASYNCJOBS["WORKER_THREADS"]``) above 1 runs that many jobs at once
    in each process (``worker_class`` with :class:`~.threads.ThreadedWorker`'s loop).
    ``with_scheduler`` runs the scheduler loop in a thread of the (first) worker.
    ``health_file`` (default ``ASYNCJOBS["WORKER_HEALTH_FILE"]``) is kept fresh while the
    worker is live (:mod:`.health`); supervised children each have ``<health_file>-<index>``.
    With ``concurrency > 1`` the current process forks that many workers (after
    closing its database and Redis connections, which must not be shared across a
    fork) and supervises them.
    """
    require_count(concurrency, "concurrency")
    if max_jobs is not None:
        require_count(max_jobs, "max_jobs")
    threads = require_count(app_settings.WORKER_THREADS if threads is None else threads, "threads")
    work = WorkerRun(
        queue_names=queue_names,
        name=name,
        numbered=concurrency > 1,
        burst=burst,
        max_jobs=max_jobs,
        logging_level=logging_level,
        worker_class=worker_class or Worker,
        with_scheduler=with_scheduler,
        threads=threads,
        health_file=app_settings.WORKER_HEALTH_FILE if health_file is None else health_file,
    )
    if with_scheduler:
        Scheduler().sync()  # here, so that a bad declaration stops the command, not one child
    if concurrency == 1:
        return work(0)
    return Supervisor(work, concurrency, restart=not burst).run()


@dataclass(frozen=True)
class WorkerRun:
    """What one worker process does: build a worker and run it; ``work(index)`` returns its exit status."""

    queue_names: Sequence[str]
    name: str | None
    #: Supervised children are named ``<name>-<index>``; a single worker is ``name`` itself.
    numbered: bool
    burst: bool
    max_jobs: int | None
    logging_level: str
    worker_class: type[Worker]
    #: The scheduler thread runs in the worker of index 0.
    with_scheduler: bool
    #: Jobs run at once in each process.
    threads: int = 1
    #: The liveness file; supervised children's are numbered like their names.
    health_file: str | None = None

    def __call__(self, index: int) -> int:
        worker_name = f"{self.name}-{index}" if self.name and self.numbered else self.name
        health_file = self.health_file
        if health_file and self.numbered:
            health_file = numbered_path(health_file, index)
        options: dict[str, Any] = {"name": worker_name, "health_file": health_file}
        if self.threads > 1:
            worker_class = threaded(self.worker_class)
            worker = build_worker(self.queue_names, worker_class=worker_class, threads=self.threads, **options)
        else:
            worker = build_worker(self.queue_names, worker_class=self.worker_class, **options)
        if self.with_scheduler and index == 0:
            worker.start_scheduler(sync=False)
        worker.work(burst=self.burst, max_jobs=self.max_jobs, logging_level=self.logging_level)
        return worker.exit_status


class Supervisor:
    """Forks ``concurrency`` children running ``work(index)`` and watches them."""

    def __init__(self, work: Callable[[int], int], concurrency: int, *, restart: bool) -> None:
        self.work = work
        self.concurrency = concurrency
        self.restart = restart
        self.stopping = False
        self.children: dict[int, ForkProcess] = {}
        self.started_at: dict[int, float] = {}
        self.deaths: dict[int, int] = dict.fromkeys(range(concurrency), 0)
        self.restart_at: dict[int, float] = {}
        self.status = 0

    def run(self) -> int:
        for index in range(self.concurrency):
            self._start(index)
        previous = {sig: signal.signal(sig, self._forward) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            while self.children or (self.restart_at and not self.stopping):
                self._reap()
                self._restart_due()
                time.sleep(0.2)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return self.status

    def _start(self, index: int) -> None:
        connections.close_all()
        reset_connections()
        process = multiprocessing.get_context("fork").Process(
            target=_child, args=(self.work, index), name=f"asyncjobs-worker-{index}"
        )
        process.start()
        self.children[index] = process
        self.started_at[index] = time.monotonic()

    def _reap(self) -> None:
        for index, process in list(self.children.items()):
            if process.is_alive():
                continue
            process.join()
            del self.children[index]
            code = process.exitcode or 0
            if code == 0 or (self.stopping and code < 0):
                continue  # stopped on request, finished, or ended by the signal passed on to it
            if not self.restart or self.stopping:
                self.status = max(self.status, code if code > 0 else 128 - code)
                continue
            self._schedule_restart(index, process, code)

    def _schedule_restart(self, index: int, process: ForkProcess, code: int) -> None:
        """The child ``index`` died: start it again after a delay that doubles per death in a row."""
        if time.monotonic() - self.started_at[index] >= STABLE_AFTER:
            self.deaths[index] = 0
        delay = min(RESTART_MAX_DELAY, RESTART_DELAY * 2 ** self.deaths[index])
        self.deaths[index] += 1
        self.restart_at[index] = time.monotonic() + delay
        how = f"exit status {code}" if code > 0 else f"signal {_signal_name(-code)}"
        fields = {"child": index, "pid": process.pid, "how": how, "restart_in_s": delay}
        log_event(worker_logger, logging.WARNING, "worker.child_died", **fields)

    def _restart_due(self) -> None:
        now = time.monotonic()
        for index, due in list(self.restart_at.items()):
            if self.stopping:
                del self.restart_at[index]
            elif now >= due:
                del self.restart_at[index]
                self._start(index)
                fields = {"child": index, "pid": self.children[index].pid}
                log_event(worker_logger, logging.WARNING, "worker.child_restarted", **fields)

    def _forward(self, signum: int, frame: Any) -> None:
        self.stopping = True
        for process in self.children.values():
            if process.pid and process.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signum)


def _child(work: Callable[[int], int], index: int) -> None:
    # Until the worker installs its own handlers, a stop signal just ends this child.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _exit_quietly)
    raise SystemExit(work(index))


def _exit_quietly(signum: int, frame: Any) -> None:
    raise SystemExit(0)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)
