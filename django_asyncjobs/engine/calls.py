"""Calls of job functions not enqueued yet: the items of ``enqueue_many()``, and signatures
(``fn.s(...)``), the steps of a chain and the callback of a group."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from django.db import router, transaction

if TYPE_CHECKING:
    from ..models import Job
    from .functions import JobFunction


class Call(NamedTuple):
    """One call for ``enqueue_many`` with both positional and keyword arguments."""

    args: Sequence[Any] = ()
    kwargs: Mapping[str, Any] = {}


CallSpec = Sequence[Any] | Mapping[str, Any] | Call


def split_call(call: CallSpec) -> tuple[Sequence[Any], Mapping[str, Any]]:
    if isinstance(call, Call):
        return tuple(call.args), dict(call.kwargs)
    if isinstance(call, Mapping):
        return (), call
    if isinstance(call, list | tuple):
        return call, {}
    raise TypeError(
        f"enqueue_many() items are tuples of positional arguments, dicts of keyword arguments "
        f"or Call(args, kwargs); got {call!r}"
    )


@dataclass(frozen=True)
class Signature:
    """A job function with its arguments, to enqueue later (``my_job.s(1, key="a")``).

    Keywords named in ``JOB_OPTIONS`` (``queue``, ``max_attempts``, ...) configure the job, as
    they do for ``enqueue()``."""

    function: JobFunction[Any, Any]
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def enqueue(self, **options: Any) -> Job:
        return self.function.enqueue(*self.args, **{**self.kwargs, **options})

    def split(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(the job's options, the function's keyword arguments)."""
        # lazy: functions imports this module
        from .functions import JOB_OPTIONS

        options = {key: value for key, value in self.kwargs.items() if key in JOB_OPTIONS}
        return options, {key: value for key, value in self.kwargs.items() if key not in JOB_OPTIONS}

    def enqueue_waiting(self, waiting: str, **extra: Any) -> Job:
        """Enqueue it waiting (``scheduled`` without a ``run_at``) until released; ``extra`` are
        options of :func:`.enqueueing.enqueue_calls` (``after``, ``pass_result``)."""
        # lazy: @job is used in modules imported while apps load; enqueueing imports the models
        from .enqueueing import enqueue_calls

        options, kwargs = self.split()
        return enqueue_calls(self.function, [(self.args, kwargs)], **options, waiting=waiting, **extra)[0]


def chain(*steps: Signature) -> list[Job]:
    """Enqueue ``steps`` to run one after the other, each given the previous one's result as its
    first argument; a step that fails (or is cancelled) cancels the rest, with the reason. One
    transaction; returns the jobs, first step first."""
    # lazy: @job is used in modules imported while apps load; this module with it
    from ..models import Job as JobModel

    if not steps:
        raise ValueError("chain() needs at least one step")
    bad = [step for step in steps if not isinstance(step, Signature)]
    if bad:
        raise TypeError(f"chain() takes signatures such as my_job.s(1, 2), got {bad[0]!r}")
    if any("after" in step.kwargs for step in steps[1:]):
        raise ValueError("a chain's step waits for the step before it: only the first one takes after=")
    jobs: list[Job] = []
    with transaction.atomic(using=router.db_for_write(JobModel)):
        jobs.append(steps[0].enqueue())
        for step in steps[1:]:
            jobs.append(step.enqueue_waiting("waiting for the previous step", after=[jobs[-1]], pass_result=True))
    return jobs
