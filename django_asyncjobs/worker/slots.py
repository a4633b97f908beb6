"""The executor slots of a threaded worker: which job a thread runs, its time limit, its interrupts.

A signal cannot be aimed at one thread of a process (Python runs handlers in the main
thread; ``SIGALRM`` and ``SIGUSR1`` are what the single-thread worker uses), so a threaded
worker stops one job function the way RQ's ``TimerDeathPenalty`` does: CPython's
``PyThreadState_SetAsyncExc`` makes an exception rise in that thread at its next bytecode.
The :class:`Watchdog` thread does it at a job's deadline; a cancel (``stop-job``) or a cold
stop does it for the jobs concerned. For an ``async def`` job, running as a task of the
worker's event loop (:mod:`.aio`), the task is cancelled instead.

As in the single-thread worker, the exception rises only inside the job function: a
:class:`Slot` opens that window when the function is called and closes it, under a lock
the raising side also takes, when the function returns. At most one exception is raised
per window, and one raised just before the window closed is let rise (and caught) before
the guard is left; it is never cleared with ``PyThreadState_SetAsyncExc(id, NULL)``, which
would leave CPython's "asynchronous exception pending" flag set and every thread of the
process on the interpreter's slow path. So a claim or an outcome write is never
interrupted, and an attempt is interrupted at most once.

Limits (docs/worker.md#threads): the exception is delivered when the thread runs Python
bytecode again. A thread blocked in C (``time.sleep``, a socket read, a database query)
is interrupted only once that call returns; a job that catches ``BaseException`` can
swallow it, as it can swallow the single-thread worker's.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from ..exceptions import JobInterrupted, JobTimeout

#: Longest sleep of the watchdog between two looks at the deadlines.
WATCHDOG_MAX_WAIT = 1.0


#: The time limit of the job function running in this thread (the message of its ``JobTimeout``).
_limits = threading.local()


def timeout_message(seconds: int) -> str:
    """The error of a job past its time limit (the words of RQ's death penalty, as in a single-thread worker)."""
    return f"Task exceeded maximum timeout value ({seconds} seconds)"


class TimeLimitReached(JobTimeout):
    """The ``JobTimeout`` raised asynchronously in a job's thread at its deadline. Whereever it
    rises, it is the public exception (recorded as ``django_asyncjobs.exceptions.JobTimeout``);
    ``PyThreadState_SetAsyncExc`` takes a class, so the message comes from the thread."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args or (timeout_message(getattr(_limits, "seconds", 0)),))


class Interrupted(JobInterrupted):
    """The ``JobInterrupted`` raised asynchronously in a job's thread for a cancel or a cold stop."""


for _raised, _public in ((TimeLimitReached, JobTimeout), (Interrupted, JobInterrupted)):
    # Recorded under the public name (the attempt's ``exception_class``), as in a single-thread worker.
    _raised.__module__ = _public.__module__
    _raised.__qualname__ = _raised.__name__ = _public.__qualname__


#: Calls made to let an exception raised in this thread rise, before taking it for swallowed by the job.
RISE_CHECKPOINTS = 3


def raise_in_thread(ident: int, exception: type[BaseException]) -> None:
    """Make ``exception`` rise in thread ``ident`` at its next bytecode check (a call, a loop)."""
    changed = ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(exception))
    if changed > 1:  # "you've done something wrong": undo, as the C API's documentation says
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), None)


def _checkpoint() -> None:
    """A call: the interpreter raises a pending asynchronous exception as it enters it."""


def let_rise() -> BaseException | None:
    """Let an exception raised in this thread (and not risen yet) rise here; it, or ``None``."""
    for _ in range(RISE_CHECKPOINTS):
        try:
            _checkpoint()
        except (TimeLimitReached, Interrupted) as exc:
            return exc
    return None


class Slot:
    """One executor thread of a threaded worker and the job it runs (claim to outcome)."""

    def __init__(self, index: int, watchdog: Watchdog, stopping: Callable[[], bool] = lambda: False) -> None:
        self.index = index
        self.watchdog = watchdog
        #: Whether the worker is stopping cold: a job function then does not start.
        self.stopping = stopping
        self.ident: int | None = None  # the thread's, set when it starts
        self.job_id: str | None = None
        #: When the job function's time is up (``time.monotonic()``), while the watchdog enforces it.
        self.deadline: float | None = None
        self._lock = threading.Lock()
        self._window = False  # inside the job function
        self._ends_at = 0.0
        self._seconds = 0
        self._interrupt = False  # a cancel of this job, or a cold stop, came
        self._fired: type[BaseException] | None = None  # what was raised (or cancelled) in this window
        self._cancel_coroutine: Callable[[], None] | None = None

    def begin(self, job_id: str) -> None:
        with self._lock:
            self.job_id = job_id
            self._interrupt = False

    def end(self) -> None:
        with self._lock:
            self.job_id = None
            self._interrupt = False
            self._window = False  # closed already, unless what was raised rose as the guard was entered
            self.deadline = None
            self._cancel_coroutine = None

    def interrupt(self, job_id: str | None = None) -> bool:
        """Interrupt the job (``job_id``'s, or any with ``None``): at once inside its function, else
        as the function starts; nothing once it has returned. Whether this slot runs that job."""
        with self._lock:
            if self.job_id is None or (job_id is not None and job_id != self.job_id):
                return False
            self._interrupt = True
            if self._window:
                self._fire(Interrupted)
            return True

    def expire(self, now: float) -> None:
        """Called by the watchdog: raise ``TimeLimitReached`` if the job's deadline has passed."""
        with self._lock:
            if self._window and self.deadline is not None and now >= self.deadline:
                self._fire(TimeLimitReached)

    def _fire(self, kind: type[BaseException]) -> None:  # with the lock held
        if self._fired is not None:
            return
        self._fired = kind
        self.deadline = None
        if self._cancel_coroutine is not None:
            self._cancel_coroutine()
        elif self.ident is not None:
            raise_in_thread(self.ident, kind)

    # -- the window: what the executor thread calls -----------------------------------------

    @contextmanager
    def guard(self, seconds: int, job_id: str) -> Iterator[None]:
        """``run_job``'s guard: the job function's time limit, and the only window in which a
        cancel or a cold stop interrupts it (what it raises is ``JobTimeout``/``JobInterrupted``
        wherever it rises, so the attempt is recorded as such)."""
        risen = False
        try:
            self._open(seconds)
            yield
        except (TimeLimitReached, Interrupted):
            risen = True
            raise
        finally:
            self._close(risen)

    def _open(self, seconds: int) -> None:
        with self._lock:
            if self._interrupt or self.stopping():  # came while the job was being claimed or started
                raise JobInterrupted()
            self._window = True
            self._fired = None
            self._seconds = _limits.seconds = seconds
            self._ends_at = time.monotonic() + seconds
            # The watchdog looks at least every WATCHDOG_MAX_WAIT (1 s, the shortest time limit):
            # it need not be woken for a new deadline.
            self.deadline = self._ends_at

    def _close(self, risen: bool) -> None:
        with self._lock:  # from here on, nothing is raised in this thread
            self._window = False
            self.deadline = None
            pending = self._fired is not None and self._cancel_coroutine is None and not risen
            self._cancel_coroutine = None
        if pending:
            # Raised just as the function returned: it rises here, and the outcome is recorded
            # as it happened. (Had it risen inside the lock's block, it would have left this
            # method with the window closed, and the guard turned it into the job's error.)
            let_rise()

    def to_coroutine(self, cancel: Callable[[], None]) -> tuple[float, int]:
        """The job function is a coroutine about to run on the event loop: from now on ``cancel()``
        (thread-safe) interrupts it, and the loop enforces the time left. Returns the seconds
        left and the job's time limit."""
        with self._lock:
            fired = self._fired
            if fired is None:
                self._cancel_coroutine = cancel
                self.deadline = None
                return max(0.0, self._ends_at - time.monotonic()), self._seconds
        # Raised in this thread before the switch: it rises here (or rose already and was caught).
        raise let_rise() or fired()

    def fired(self) -> type[BaseException] | None:
        """What interrupted the job function in this window, if anything did."""
        return self._fired


class Watchdog(threading.Thread):
    """Raises ``TimeLimitReached`` in the threads whose job function is past its deadline."""

    def __init__(self, slots: Sequence[Slot] = ()) -> None:
        super().__init__(name="asyncjobs-watchdog", daemon=True)
        self.slots: list[Slot] = list(slots)
        self._wake = threading.Event()
        self._stopped = False

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()

    def run(self) -> None:
        while not self._stopped:
            now = time.monotonic()
            nearest: float | None = None
            for slot in self.slots:
                deadline = slot.deadline
                if deadline is None:
                    continue
                if deadline <= now:
                    slot.expire(now)
                elif nearest is None or deadline < nearest:
                    nearest = deadline
            wait = WATCHDOG_MAX_WAIT if nearest is None else min(WATCHDOG_MAX_WAIT, nearest - now)
            self._wake.wait(max(0.0, wait))
            self._wake.clear()
