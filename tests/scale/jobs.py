"""The harness's one job: it records each run, so that runs can be counted per job."""

from __future__ import annotations

import os
import time

from django_asyncjobs import current_job, job

from .models import Run


@job(max_attempts=3)
def record_run(n: int) -> int:
    began = time.time()
    running = current_job()
    assert running is not None
    host = os.environ["ASYNCJOBS_SCALE_HOST"]
    Run.objects.create(job_id=running.pk, attempt=running.attempts, host=host, pid=os.getpid(), began=began)
    pause = float(os.environ.get("ASYNCJOBS_SCALE_JOB_MS", "0"))
    if pause:
        time.sleep(pause / 1000)
    return n
