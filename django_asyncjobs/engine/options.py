"""How a registered function runs: ``JobOptions``, the options of ``@job`` (and of a Tasks
backend's ``OPTIONS``), each checked when declared."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import timedelta
from typing import Any

from ..conf import app_settings
from ..times.durations import parse_duration
from ..times.rates import RateLimit
from ..validators import require_count


@dataclass(frozen=True)
class JobOptions:
    """How a registered function runs. ``None`` means "use the ASYNCJOBS default"."""

    queue: str | None = None
    max_attempts: int | None = None
    timeout: int | None = None
    retry_backoff: float | None = None
    retry_backoff_max: float | None = None
    retry_jitter: bool | None = None
    #: Enqueueing the same name and arguments while such a job waits (queued or scheduled,
    #: enqueued less than this long ago) returns the waiting job instead of a new one.
    unique_for: timedelta | None = None
    #: Jobs wait this long before they run; an enqueue of the same name and arguments meanwhile
    #: returns the waiting job and starts its wait again (unique, as with ``unique_for``).
    debounce: timedelta | None = None
    #: At most this many attempts start per period, across all workers (``"100/m"``).
    rate_limit: RateLimit | None = None
    #: At most this many run at once across all workers (per ``concurrency_key``'s value).
    max_concurrency: int | None = None
    #: ``(*args, **kwargs) -> str | int``: jobs with the same value share the ``max_concurrency`` slots.
    concurrency_key: Callable[..., Any] | None = None
    #: The function runs in one transaction with the write of its outcome (docs/jobs.md#atomic-jobs).
    atomic: bool = False

    def __post_init__(self) -> None:
        if self.queue is not None and (not isinstance(self.queue, str) or not self.queue):
            raise ValueError(f"queue must be a queue name, got {self.queue!r}")
        if self.max_attempts is not None:
            require_count(self.max_attempts, "max_attempts")
        if self.timeout is not None:
            require_count(self.timeout, "timeout", expected="a whole number of seconds >= 1")
        for name in ("retry_backoff", "retry_backoff_max"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value < 0):
                raise ValueError(f"{name} must be a number of seconds >= 0, got {value!r}")
        for name in ("retry_jitter", "atomic"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        for name in ("unique_for", "debounce"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, parse_duration(value, what=name))  # seconds or "5m" from OPTIONS
        if self.rate_limit is not None:
            object.__setattr__(self, "rate_limit", RateLimit.parse(self.rate_limit))
        if self.max_concurrency is not None:
            require_count(self.max_concurrency, "max_concurrency")
        if self.concurrency_key is not None and not callable(self.concurrency_key):
            raise ValueError(f"concurrency_key must be a function of the job's arguments, got {self.concurrency_key!r}")
        if self.concurrency_key is not None and self.max_concurrency is None:
            raise ValueError("concurrency_key needs max_concurrency: how many may run at once per key")

    @property
    def unique(self) -> bool:
        """Whether a job waiting with the same name and arguments is returned instead of a new one."""
        return self.unique_for is not None or self.debounce is not None

    @classmethod
    def from_setting(cls, options: Mapping[str, Any], *, queue: str | None = None) -> JobOptions:
        """Options from a settings dict with upper-case keys (``{"MAX_ATTEMPTS": 3}``), as in
        the ``OPTIONS`` of a ``TASKS`` entry. ``ValueError`` names an unknown key or a bad value."""
        known = {f.name.upper(): f.name for f in fields(cls) if f.name not in ("queue", "concurrency_key")}
        unknown = sorted(str(key) for key in options if key not in known)
        if unknown:
            raise ValueError(f"unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(queue=queue, **{known[key]: value for key, value in options.items()})

    def resolved_queue(self) -> str:
        return self.queue or app_settings.DEFAULT_QUEUE

    def resolved_max_attempts(self) -> int:
        return self.max_attempts if self.max_attempts is not None else app_settings.MAX_ATTEMPTS

    def resolved_timeout(self) -> int:
        return self.timeout if self.timeout is not None else app_settings.TIMEOUT

    def retry_delay(self, attempt: int, random: Callable[[], float]) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (exponential backoff, full jitter)."""
        base = self.retry_backoff if self.retry_backoff is not None else app_settings.RETRY_BACKOFF
        cap = self.retry_backoff_max if self.retry_backoff_max is not None else app_settings.RETRY_BACKOFF_MAX
        jitter = self.retry_jitter if self.retry_jitter is not None else app_settings.RETRY_JITTER
        delay = min(cap, base * 2.0 ** max(attempt - 1, 0))
        return delay * random() if jitter else delay
