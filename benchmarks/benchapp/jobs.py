"""Registered jobs for the benchmarks (found by ``ASYNCJOBS["AUTODISCOVER"]``)."""

from __future__ import annotations

import time

from django_asyncjobs import job
from django_asyncjobs.engine.broker import get_connection

#: Redis list the latency probe reports to, so the benchmark waits with BLPOP instead of polling the database.
PROBE_DONE_KEY = "asyncjobs-bench:probe-done"


@job
def noop() -> None:
    """Does nothing: what is measured is the machinery around it."""
    return None


@job(atomic=True)
def atomic_noop() -> None:
    """:func:`noop` as an atomic job: its success in a transaction of its own (docs/jobs.md#atomic-jobs)."""
    return None


@job
def latency_probe() -> float:
    """Reports when the function itself started (the row's ``started_at`` is set earlier, by the claim)."""
    started = time.time()
    get_connection("default").rpush(PROBE_DONE_KEY, repr(started))
    return started


@job
def peer_noop(mark: bool = False) -> None:
    """``bench_peers.py``'s no-op: only the marked ones (first, last, latency probes) report their start."""
    if mark:
        from benchmarks.peers.marks import mark as report_start

        report_start()


@job
def io_sleep(seconds: float) -> None:
    """``bench_io.py``'s I/O-bound job: blocks its thread ``seconds``, then reports its end."""
    from benchmarks.peers.marks import mark_end

    time.sleep(seconds)
    mark_end()


@job
async def io_async_sleep(seconds: float) -> None:
    """The same as a coroutine: ``asyncio.sleep`` (reporting its end is a quick blocking call)."""
    import asyncio

    from benchmarks.peers.marks import mark_end

    await asyncio.sleep(seconds)
    mark_end()


@job
def group_done(group_id: str) -> None:
    """A group's callback that does nothing (``bench_workflows.py``)."""
    return None
