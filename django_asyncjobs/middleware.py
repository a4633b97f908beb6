"""``BackpressureMiddleware``: answer 503 + Retry-After before a saturated queue is touched."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponseBase
from django.utils.deprecation import MiddlewareMixin

from .conf import app_settings
from .engine.capacity import limits_for, log_refused, queue_state_or_none
from .engine.tallies import count_refused
from .exceptions import QueueFull
from .offloading.decorator import offloaded_queue
from .offloading.responses import busy_response

_compiled_paths: list[tuple[re.Pattern[str], str]] | None = None


@receiver(setting_changed)
def _forget_paths(setting: str, **kwargs: Any) -> None:
    global _compiled_paths
    if setting == "ASYNCJOBS":
        _compiled_paths = None


def _paths() -> list[tuple[re.Pattern[str], str]]:
    # Compiled once per settings change: this runs on every request.
    global _compiled_paths
    if _compiled_paths is None:
        patterns = app_settings.BACKPRESSURE_PATHS
        _compiled_paths = [(re.compile(pattern), queue) for pattern, queue in patterns.items()]
    return _compiled_paths


def queue_for_path(path: str) -> str | None:
    """The queue guarding ``path`` by ``ASYNCJOBS["BACKPRESSURE_PATHS"]``, if any."""
    for pattern, queue in _paths():
        if pattern.search(path):
            return queue
    return None


class BackpressureMiddleware(MiddlewareMixin):
    """For requests that would enqueue (``@offload`` views, ``BACKPRESSURE_PATHS``), answer
    503 with ``Retry-After`` when the target queue is saturated.

    It reads queue state from the per-process cache (one Redis round trip at most
    per ``BACKPRESSURE_CACHE_SECONDS``) and never touches the database.
    Works in sync and async stacks (``MiddlewareMixin``).
    """

    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., Any],
        view_args: tuple[Any, ...],
        view_kwargs: dict[str, Any],
    ) -> HttpResponseBase | None:
        queue = offloaded_queue(view_func, request) or queue_for_path(request.path_info)
        if queue is None or limits_for(queue) == (None, None):
            return None
        state = queue_state_or_none(queue)
        if state is None:
            return None
        reason = state.reason_for(1)
        if not reason:
            return None
        refused = QueueFull(state, reason)
        count_refused(queue, "middleware")
        log_refused(refused, path=request.path_info, by="middleware")
        return busy_response(request, refused)
