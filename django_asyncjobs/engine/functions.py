"""Job functions: ``@job`` and the ``JobFunction`` it makes (its options: :mod:`.options`).

``JobFunction.enqueue()`` hands its calls to :mod:`.enqueueing`; the table of registered
functions by name is :mod:`.registry`.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, cast, overload

from asgiref.sync import async_to_sync, sync_to_async

from ..exceptions import ConfigurationError
from ..times.durations import parse_duration
from ..times.recurrence import validate_cron
from .calls import CallSpec, Signature, split_call
from .options import JobOptions as JobOptions  # re-exported: where it was declared before
from .registry import register_job_function

if TYPE_CHECKING:
    from ..models import Job

P = ParamSpec("P")
R = TypeVar("R")

#: Keyword arguments of ``enqueue()`` that configure the job instead of reaching the function.
JOB_OPTIONS = frozenset(
    {"queue", "max_attempts", "run_at", "delay", "owner", "idempotency_key", "strict", "after", "after_any"}
)


#: Runs an ``async def`` job function's call (a coroutine function without arguments) and
#: returns its result; see :func:`use_coroutine_runner`.
CoroutineRunner = Callable[[Callable[[], Awaitable[Any]]], Any]

_coroutine_runner: contextvars.ContextVar[CoroutineRunner | None] = contextvars.ContextVar(
    "asyncjobs_coroutine_runner", default=None
)


def use_coroutine_runner(runner: CoroutineRunner | None) -> None:
    """Run the ``async def`` job functions invoked in the current context (a thread's, for
    the rest of its life) with ``runner`` instead of ``async_to_sync``; ``None`` restores it.
    A threaded worker's executor threads run them as tasks of one shared event loop."""
    _coroutine_runner.set(runner)


class JobFunction(Generic[P, R]):
    """A registered function. Call it to run inline, or ``.enqueue()`` it to run on a worker.

    The methods after ``enqueue_many`` are what a worker calls; subclasses (such as the
    jobs of Django's Tasks framework, ``django_asyncjobs.tasks.jobs``) adapt them.
    """

    #: Jobs with a priority above 0 are pushed to the front of their queue.
    priority = 0

    def __init__(
        self,
        func: Callable[P, R],
        name: str,
        options: JobOptions,
        schedule: str | timedelta | None = None,
        *,
        internal: bool = False,
    ) -> None:
        self.func = func
        self.name = name
        self.options = options
        #: Run by the package itself: never enqueued by name, scheduled or run from the admin.
        self.internal = internal
        #: A cron expression or an interval declared with ``@job(schedule=...)``.
        self.schedule = schedule
        self.is_async = inspect.iscoroutinefunction(func)
        functools.update_wrapper(self, func)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.func(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<JobFunction {self.name}>"

    def enqueue(
        self,
        *args: Any,
        queue: str | None = None,
        max_attempts: int | None = None,
        run_at: datetime | None = None,
        delay: timedelta | float | None = None,
        owner: Any = None,
        idempotency_key: str | None = None,
        strict: bool | None = None,
        after: Iterable[Job | uuid.UUID | str] | Job | None = None,
        after_any: bool = False,
        **kwargs: Any,
    ) -> Job:
        """Save a ``Job`` row for ``func(*args, **kwargs)`` and push its message on commit.

        The keywords named in :data:`JOB_OPTIONS` configure the job; every other
        argument is passed to the function. With ``after`` (jobs or their ids), the job
        waits until all of them succeeded (finished, with ``after_any``); if one failed or
        was cancelled, it is cancelled.
        """
        options = dict(
            queue=queue,
            max_attempts=max_attempts,
            run_at=run_at,
            delay=delay,
            owner=owner,
            idempotency_key=idempotency_key,
            strict=strict,
            after=after,
            after_any=after_any,
        )
        # lazy: @job is used in modules imported while apps load; enqueueing imports the models
        from .enqueueing import enqueue_calls

        return enqueue_calls(self, [(args, kwargs)], **options)[0]

    def enqueue_many(
        self,
        calls: Iterable[CallSpec],
        *,
        queue: str | None = None,
        max_attempts: int | None = None,
        run_at: datetime | None = None,
        delay: timedelta | float | None = None,
        owner: Any = None,
        strict: bool | None = None,
    ) -> list[Job]:
        """Enqueue many calls at once: one INSERT batch and one pipelined push.

        Each item is a tuple (or list) of positional arguments, a dict of keyword
        arguments, or a :class:`Call` for both: ``[(1,), {"b": 2}, Call((1,), {"b": 2})]``.
        """
        # lazy: @job is used in modules imported while apps load; enqueueing imports the models
        from .enqueueing import enqueue_calls

        return enqueue_calls(
            self,
            [split_call(call) for call in calls],
            queue=queue,
            max_attempts=max_attempts,
            run_at=run_at,
            delay=delay,
            owner=owner,
            strict=strict,
        )

    def s(self, *args: Any, **kwargs: Any) -> Signature:
        """This function with arguments (and :data:`JOB_OPTIONS`), not enqueued yet: a step of
        :func:`~django_asyncjobs.chain` or a group's ``then``."""
        return Signature(self, args, kwargs)

    async def aenqueue(self, *args: Any, **kwargs: Any) -> Job:
        """:meth:`enqueue` for async code, same arguments and the same transaction semantics: it
        runs in Django's thread for sync code (``sync_to_async``), in autocommit there unless that
        thread is inside ``transaction.atomic()`` (see docs/jobs.md#from-async-code)."""
        return await sync_to_async(self.enqueue)(*args, **kwargs)

    async def aenqueue_many(self, calls: Iterable[CallSpec], **options: Any) -> list[Job]:
        """:meth:`enqueue_many` for async code, as :meth:`aenqueue`."""
        return await sync_to_async(self.enqueue_many)(list(calls), **options)

    # -- what a worker calls ------------------------------------------------------------------

    def options_for(self, job: Job) -> JobOptions:
        """The options that apply to ``job`` (its timeout and retry policy)."""
        return self.options

    def invoke(self, job: Job) -> Any:
        """Run the function with ``job``'s arguments (``async def`` ones with ``async_to_sync``, or
        the runner of :func:`use_coroutine_runner`; either way their thread-sensitive
        ``sync_to_async`` calls use this thread's database connection)."""
        if self.is_async:
            coroutine_function = cast(Callable[..., Awaitable[Any]], self.func)
            runner = _coroutine_runner.get()
            if runner is not None:
                return runner(functools.partial(coroutine_function, *job.args, **job.kwargs))
            return async_to_sync(coroutine_function)(*job.args, **job.kwargs)
        return self.func(*job.args, **job.kwargs)

    def prepare_result(self, value: Any) -> Any:
        """The return value as it is stored; ``TypeError``/``ValueError`` fail the job."""
        return value

    def display_name(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str | None:
        """What a row of this call is shown, filtered and counted as, if not the job's name
        (``Job.display_name``): the view of an offloaded view's row. ``None``: the name."""
        return None

    def counts_as(self, display_name: str) -> bool:
        """Whether the metrics may label a row by ``display_name`` (its value, untrusted): one
        this process declared, so that the labels stay bounded."""
        return False

    def stored_files(self, args: Any, result: Any) -> list[str]:
        """Names in ``OFFLOAD_STORAGE`` of the files a row of this job owns (its ``args`` and
        ``result`` as stored, untrusted): deleted with the row (:mod:`.deletion`)."""
        return []


@overload
def job(func: Callable[P, R], /) -> JobFunction[P, R]: ...


@overload
def job(
    *,
    name: str | None = None,
    queue: str | None = None,
    max_attempts: int | None = None,
    timeout: int | None = None,
    retry_backoff: float | None = None,
    retry_backoff_max: float | None = None,
    retry_jitter: bool | None = None,
    schedule: str | timedelta | float | None = None,
    unique_for: timedelta | float | str | None = None,
    debounce: timedelta | float | str | None = None,
    rate_limit: str | tuple[int, float | timedelta] | None = None,
    max_concurrency: int | None = None,
    concurrency_key: Callable[..., Any] | None = None,
    atomic: bool = False,
) -> Callable[[Callable[P, R]], JobFunction[P, R]]: ...


def job(
    func: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    queue: str | None = None,
    max_attempts: int | None = None,
    timeout: int | None = None,
    retry_backoff: float | None = None,
    retry_backoff_max: float | None = None,
    retry_jitter: bool | None = None,
    schedule: str | timedelta | float | None = None,
    unique_for: timedelta | float | str | None = None,
    debounce: timedelta | float | str | None = None,
    rate_limit: str | tuple[int, float | timedelta] | None = None,
    max_concurrency: int | None = None,
    concurrency_key: Callable[..., Any] | None = None,
    atomic: bool = False,
) -> JobFunction[P, R] | Callable[[Callable[P, R]], JobFunction[P, R]]:
    """Register a function as a job. Usable bare (``@job``) or with options (``@job(queue=...)``).

    The job's name is ``module.qualname`` unless ``name`` is given; it is what the
    database stores, so renaming a function renames its job. ``schedule`` (a cron
    expression such as ``"*/5 * * * *"``, or an interval such as ``"10m"``) also runs
    it periodically, without arguments, under a schedule named after the job.
    ``unique_for`` and ``debounce`` (a ``timedelta``, seconds, or ``"5m"``) make it a unique
    job: see docs/jobs.md#unique-jobs-and-debounce. ``rate_limit`` (``"100/m"``) bounds how
    many of its attempts start per period across all workers: docs/jobs.md#rate-limits;
    ``max_concurrency`` (per ``concurrency_key(*args, **kwargs)``) how many run at once:
    docs/jobs.md#concurrency-limits. ``atomic``: the function's database writes commit together
    with its outcome, or not at all: docs/jobs.md#atomic-jobs.
    """
    options = JobOptions(
        queue=queue,
        max_attempts=max_attempts,
        timeout=timeout,
        retry_backoff=retry_backoff,
        retry_backoff_max=retry_backoff_max,
        retry_jitter=retry_jitter,
        unique_for=unique_for,  # type: ignore[arg-type]  # turned into a timedelta by JobOptions
        debounce=debounce,  # type: ignore[arg-type]
        rate_limit=rate_limit,  # type: ignore[arg-type]  # parsed by JobOptions
        max_concurrency=max_concurrency,
        concurrency_key=concurrency_key,
        atomic=atomic,
    )

    declared = _checked_schedule(schedule, name or "this job")

    def decorate(f: Callable[P, R]) -> JobFunction[P, R]:
        return register(f, name=name, options=options, schedule=declared)

    return decorate(func) if func is not None else decorate


def _checked_schedule(schedule: str | timedelta | float | None, job_name: str) -> str | timedelta | None:
    """A cron expression (five fields) or an interval, else ``ConfigurationError``."""
    if schedule is None:
        return None
    try:
        if isinstance(schedule, str) and len(schedule.split()) > 1:
            return validate_cron(schedule)
        return parse_duration(schedule, what="schedule")
    except ValueError as exc:
        raise ConfigurationError(f"@job(schedule=...) of {job_name}: {exc}") from None


def register(
    func: Callable[P, R],
    *,
    name: str | None = None,
    options: JobOptions | None = None,
    schedule: str | timedelta | None = None,
    internal: bool = False,
) -> JobFunction[P, R]:
    """Register ``func`` (the function form of ``@job``). ``internal`` jobs are the package's
    own (see :class:`~django_asyncjobs.exceptions.InternalJob`)."""
    if not callable(func):
        raise TypeError(f"@job decorates functions, got {func!r}")
    if "<locals>" in getattr(func, "__qualname__", "") and name is None:
        raise ConfigurationError(
            f"{func.__qualname__} is defined inside another function; give it an explicit "
            "@job(name=...) so that workers can find it."
        )
    job_name = name or f"{func.__module__}.{func.__qualname__}"
    _check_parameter_names(func, job_name)
    return register_job_function(JobFunction(func, job_name, options or JobOptions(), schedule, internal=internal))


def _check_parameter_names(func: Callable[..., Any], job_name: str) -> None:
    try:
        parameters = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return
    clashes = sorted(JOB_OPTIONS.intersection(parameters))
    if clashes:
        raise ConfigurationError(
            f"Job {job_name!r} has parameter(s) {', '.join(clashes)}, which enqueue() reserves for job "
            f"options ({', '.join(sorted(JOB_OPTIONS))}). Rename the parameter(s)."
        )
