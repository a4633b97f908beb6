"""Plain functions for the bare-RQ baselines: no Django, no registry, nothing to import but rq."""

from __future__ import annotations

import time

#: Redis list the bare latency probe reports to (the benchmark waits on it with BLPOP).
BARE_PROBE_DONE_KEY = "asyncjobs-bench:bare-probe-done"


def noop() -> None:
    """What a bare ``rq`` worker runs: nothing."""
    return None


def latency_probe() -> float:
    """Reports when the function started; rq's own ``started_at`` is set just before the call."""
    from rq import get_current_job

    started = time.time()
    job = get_current_job()
    if job is None:
        raise RuntimeError("latency_probe must run on an rq worker")
    job.connection.rpush(BARE_PROBE_DONE_KEY, repr(started))
    return started
