"""``async def`` jobs of a threaded worker: tasks of one event loop, in a thread of their own.

An async job is claimed and recorded by the executor thread that took its id, like any
job (so it holds one of the worker's ``--threads`` slots while it runs). Its coroutine runs
as a task of the worker's one event loop (:class:`EventLoopThread`), so many async jobs
share a loop and its connection pools; the executor thread meanwhile runs the task's
thread-sensitive ``sync_to_async`` calls (the ORM's, Django's ``a*`` methods), so the job
uses that thread's database connection, never another thread's, exactly as under
``async_to_sync`` in the single-thread worker. (``asgiref`` sends such calls to the executor
it finds in ``AsyncToSync.executors.current``, which is what ``async_to_sync`` sets too.)

The job's time limit is an ``asyncio.timeout`` around the coroutine; a cancel or a cold
stop cancels its task (:meth:`.slots.Slot.to_coroutine`). A coroutine that blocks the loop
(a ``time.sleep`` in ``async def``) blocks every async job of the worker meanwhile.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Executor, Future
from queue import SimpleQueue
from typing import Any

from asgiref.sync import AsyncToSync

from ..exceptions import JobTimeout
from .slots import Slot, timeout_message

#: What the loop hands back for a coroutine: ``(True, result)`` or ``(False, exception)``.
Outcome = tuple[bool, Any]


class CallingThreadExecutor(Executor):
    """Runs the functions submitted to it in the thread that calls :meth:`run_until`, while it waits."""

    def __init__(self) -> None:
        self._items: SimpleQueue[tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]] | None]
        self._items = SimpleQueue()
        self._open = True

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        if not self._open:
            raise RuntimeError("the async job has ended: tasks it started must finish before it returns")
        future: Future[Any] = Future()
        self._items.put((future, fn, args, kwargs))
        return future

    def run_until(self, done: Future[Any]) -> None:
        done.add_done_callback(lambda _: self._items.put(None))
        try:
            while (item := self._items.get()) is not None:
                future, fn, args, kwargs = item
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    future.set_result(fn(*args, **kwargs))
                except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
                    future.set_exception(exc)
        finally:
            self._open = False


class EventLoopThread(threading.Thread):
    """The worker's event loop, running in this thread until :meth:`stop`."""

    def __init__(self) -> None:
        super().__init__(name="asyncjobs-event-loop", daemon=True)
        self.loop = asyncio.new_event_loop()

    def run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            tasks = asyncio.all_tasks(self.loop)
            for task in tasks:
                task.cancel()
            if tasks:
                self.loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    def stop(self, timeout: float = 5.0) -> None:
        if self.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.join(timeout)

    def run_job_coroutine(self, slot: Slot, call: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``call()`` as a task of the loop under ``slot``'s time limit and interrupts, from the
        slot's executor thread, running its thread-sensitive calls meanwhile; its result, or raise."""
        executor = CallingThreadExecutor()
        task = _PendingTask(self.loop)
        remaining, seconds = slot.to_coroutine(task.cancel)
        context = contextvars.copy_context()  # the job's: current_job() works in the coroutine
        task.start(_run(call, executor, remaining, seconds), context)
        executor.run_until(task.future)
        ok, value = task.future.result()
        if ok:
            return value
        fired = slot.fired()
        if fired is not None and isinstance(value, asyncio.CancelledError):
            raise fired() from value
        raise value


class _PendingTask:
    """A task to be created on ``loop`` from another thread, which that thread may cancel at any time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.future: Future[Outcome] = Future()
        self._task: asyncio.Task[Outcome] | None = None
        self._cancelled = False

    def start(self, coroutine: Coroutine[Any, Any, Outcome], context: contextvars.Context) -> None:
        def create() -> None:
            task = self.loop.create_task(coroutine, context=context)
            self._task = task
            if self._cancelled:
                task.cancel()
            task.add_done_callback(self._done)

        self.loop.call_soon_threadsafe(create)

    def cancel(self) -> None:
        """Thread-safe; runs on the loop after the task was created (callbacks run in order)."""
        self.loop.call_soon_threadsafe(self._cancel)

    def _cancel(self) -> None:
        self._cancelled = True
        if self._task is not None:
            self._task.cancel()

    def _done(self, task: asyncio.Task[Outcome]) -> None:
        if task.cancelled():  # cancelled before it ran a step
            self.future.set_result((False, asyncio.CancelledError()))
        else:
            self.future.set_result(task.result())


async def _run(call: Callable[[], Awaitable[Any]], executor: Executor, remaining: float, seconds: int) -> Outcome:
    # This task's thread-sensitive sync_to_async calls (and those of tasks it starts, which copy
    # its context) run in the job's executor thread, with that thread's database connection.
    AsyncToSync.executors.current = executor
    scope = asyncio.timeout(remaining)
    try:
        async with scope:
            return True, await call()
    except TimeoutError as exc:
        if scope.expired():
            error = JobTimeout(timeout_message(seconds))
            error.__cause__ = exc
            return False, error
        return False, exc
    except BaseException as exc:  # noqa: BLE001 - the job's (SystemExit too): handed to its thread, not the loop's
        return False, exc
