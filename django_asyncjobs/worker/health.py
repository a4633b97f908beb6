"""A worker's liveness, for orchestrators: the health file, and the checks of ``asyncjobs_health``.

Liveness means the process is doing its work, not stuck: its main loop turns (an idle
loop wakes at least every second, on the pop's timeout), or it is in a job whose
function has not overrun its time limit. ``asyncjobs_worker --health-file PATH`` keeps
``PATH``'s modification time fresh while that holds:

- the main loop touches it at every turn (at most once a second);
- while the main thread runs a job, the heartbeat thread touches it on its wake-ups
  (every ``HEARTBEAT_INTERVAL``; at most once a second), as long as the job function is not past its time limit
  by more than one ``HEARTBEAT_INTERVAL`` (a job stuck in C code the time limit cannot
  interrupt, or one that swallows its ``JobTimeout``), and the heartbeat thread itself
  lives;
- the worker removes it when it exits.

So the file goes stale when the main loop is wedged (a call that never returns, a
deadlock), when a job function overruns its limit, or when the process is gone. Waiting
for Redis or the database to come back keeps it fresh: restarting would not help.
See docs/worker.md#health-file and docs/kubernetes.md.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING

from ..conf import app_settings
from ..engine.broker import RedisError, worker_registration
from ..logs import log_event, worker_logger

if TYPE_CHECKING:
    from ..engine.execution import JobGuard

#: The file is touched at most this often: the loop turns once per job, and a batching
#: worker's heartbeat thread wakes every few milliseconds; neither may cost a write each time.
TOUCH_INTERVAL = 1.0
#: What ``asyncjobs_health --max-age`` takes by default: six times the default
#: ``HEARTBEAT_INTERVAL``, the period of the touches during a long job.
DEFAULT_MAX_AGE = 60.0


class HealthFile:
    """The liveness file of one worker process (thread-safe)."""

    def __init__(
        self, path: str | os.PathLike[str], worker_name: str = "", *, touch_interval: float = TOUCH_INTERVAL
    ) -> None:
        self.path = os.fspath(path)
        self.worker_name = worker_name
        self.touch_interval = touch_interval
        self._lock = threading.Lock()
        self._touched_at = -math.inf
        #: While the main thread runs a job: until when the heartbeat thread may touch (monotonic).
        self._busy_until: float | None = None
        self._failing = False

    def start(self) -> None:
        """Create or touch the file now; ``OSError`` if it cannot be written."""
        self._write()

    def loop_turned(self) -> None:
        """The main loop turned: touch (at most once per ``touch_interval``)."""
        if time.monotonic() - self._touched_at >= self.touch_interval:
            self._touch()

    def heartbeat(self) -> None:
        """The heartbeat thread woke: touch if the main thread is in a job within its time limit."""
        now = time.monotonic()
        with self._lock:
            busy_until = self._busy_until
        if busy_until is not None and now < busy_until and now - self._touched_at >= self.touch_interval:
            self._touch()

    @contextmanager
    def busy(self, seconds: float = math.inf) -> Iterator[None]:
        """The main thread runs a job (``seconds``: its function's time limit, plus the grace
        of one ``HEARTBEAT_INTERVAL``; unbounded while it claims and records)."""
        grace = 0.0 if math.isinf(seconds) else app_settings.HEARTBEAT_INTERVAL
        with self._lock:
            previous = self._busy_until
            self._busy_until = time.monotonic() + seconds + grace
        try:
            yield
        finally:
            with self._lock:
                self._busy_until = previous

    def remove(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log_event(worker_logger, logging.WARNING, "worker.health_file_not_removed", **self._fields(exc))

    def _touch(self) -> None:
        try:
            self._write()
        except OSError as exc:
            if not self._failing:  # once until it works again: the loop turns every second
                self._failing = True
                log_event(worker_logger, logging.WARNING, "worker.health_file_not_touched", **self._fields(exc))
            return
        self._failing = False

    def _write(self) -> None:
        self._touched_at = time.monotonic()
        with open(self.path, "a"):
            os.utime(self.path)

    def _fields(self, exc: OSError) -> dict[str, str]:
        return {"worker": self.worker_name, "path": self.path, "reason": str(exc)}


class Liveness:
    """What :class:`~.loop.Worker` does with its health file (a mixin; nothing without one)."""

    health_file: HealthFile | None
    if TYPE_CHECKING:
        _guard: JobGuard

    def loop_turned(self) -> None:
        """The main loop is live: touch the health file."""
        if self.health_file is not None:
            self.health_file.loop_turned()

    def _in_job(self, seconds: float = math.inf) -> AbstractContextManager[None]:
        """The main thread runs a job (its function, with ``seconds`` of time limit): the heartbeat
        thread keeps the health file fresh meanwhile."""
        return nullcontext() if self.health_file is None else self.health_file.busy(seconds)

    @property
    def _job_guard(self) -> JobGuard:
        """The job function's guard: with a health file, it also bounds the heartbeat's touches."""
        return self._guard if self.health_file is None else self._guard_and_bound

    @contextmanager
    def _guard_and_bound(self, seconds: int, job_id: str) -> Iterator[None]:
        with self._in_job(seconds), self._guard(seconds, job_id):
            yield


def numbered_path(path: str, index: int) -> str:
    """The health file of the supervised child ``index`` (``--concurrency``): ``PATH-<index>``."""
    return f"{path}-{index}"


def check_file(path: str, max_age: float) -> tuple[bool, str]:
    """Whether the health file ``path`` was touched within ``max_age`` seconds, and why (one line)."""
    try:
        modified = os.stat(path).st_mtime
    except FileNotFoundError:
        return False, f"{path} does not exist (worker not started, or exited)"
    except OSError as exc:
        return False, f"{path} cannot be read: {exc}"
    age = max(0.0, time.time() - modified)
    if age > max_age:
        return False, f"{path} last touched {age:.0f}s ago, over {max_age:g}s (worker stuck or gone)"
    return True, f"{path} touched {age:.0f}s ago (max {max_age:g}s)"


def check_worker(name: str) -> tuple[bool, str]:
    """Whether the worker ``name`` is registered in Redis (its heartbeats keep the registration
    from expiring), and why (one line)."""
    try:
        found = worker_registration(name)
    except RedisError as exc:
        return False, f"cannot read Redis: {type(exc).__name__}: {exc}"
    if found is None:
        return False, f"worker {name!r} is not registered in Redis (never started, exited, or stopped beating)"
    if found.exited:
        return False, f"worker {name!r} is not registered in Redis (it exited)"
    expires = "" if found.expires_in is None else f", expires in {found.expires_in:.0f}s without a heartbeat"
    return True, f"worker {name!r} is registered (state {found.state or '?'}, queues {found.queues or '?'}{expires})"
