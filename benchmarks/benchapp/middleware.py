"""A control for ``benchmarks/bench_web.py``: what any ``MiddlewareMixin`` with a ``process_view`` costs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponseBase
from django.utils.deprecation import MiddlewareMixin


class NullViewMiddleware(MiddlewareMixin):
    """Built like ``BackpressureMiddleware`` (``MiddlewareMixin``, a ``process_view``), doing nothing."""

    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., Any],
        view_args: tuple[Any, ...],
        view_kwargs: dict[str, Any],
    ) -> HttpResponseBase | None:
        return None
