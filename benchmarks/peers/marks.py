"""The one thing every peer's no-op job may do: report when it started, on the run's private Redis.

Only marked jobs call :func:`mark` (the first and last of a drain, and each latency probe); the
others do nothing at all. The benchmark waits for the marks with BLPOP.
"""

from __future__ import annotations

import os
import time
from typing import Any

#: The Redis list the marks go to (the run's private server, database 0, flushed between systems).
MARK_KEY = "asyncjobs-peers:mark"
#: The Redis list where ``bench_io.py``'s jobs report when they ended.
END_KEY = "asyncjobs-io:ends"

_client: Any = None


def redis_url() -> str:
    # Port 1 refuses connections: without the variable nothing can reach a real server by accident.
    return os.environ.get("ASYNCJOBS_BENCH_REDIS_URL", "redis://127.0.0.1:1/0")


def mark() -> None:
    """Push the wall-clock time at which the calling job function started."""
    global _client
    started = time.time()
    if _client is None:
        from redis import Redis

        _client = Redis.from_url(redis_url())
    _client.rpush(MARK_KEY, repr(started))


def mark_end() -> None:
    """Push the wall-clock time at which the calling job ended (``bench_io.py``: every job does it)."""
    global _client
    ended = time.time()
    if _client is None:
        from redis import Redis

        _client = Redis.from_url(redis_url())
    _client.rpush(END_KEY, repr(ended))
