"""Worker classes the worker-command tests start with ``--worker-class``."""

from __future__ import annotations

from typing import Any

from django_asyncjobs.worker import Worker


class BrokenWorker(Worker):
    """A worker whose loop fails outside any job: it must quit with a non-zero status."""

    def dequeue_job_and_maintain_ttl(self, timeout: int | None, max_idle_time: int | None = None) -> Any:
        raise RuntimeError("broken on purpose")
