"""The WSGI application of the benchmark settings: one Django, several middleware stacks.

``bench_web.py`` compares middleware stacks request by request in one process, so
it builds one ``WSGIHandler`` per stack from the same settings (only ``MIDDLEWARE``
differs). Through a real server, the request header ``X-Bench-Stack`` picks the
stack (``base`` when absent), so that one server process, one thread and one
connection serve both sides of a comparison.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.core.handlers.wsgi import WSGIHandler

#: Stack names; the middleware lists are ``BASE_MIDDLEWARE`` etc. in ``benchmarks/settings.py``.
BASE, WITH_MIDDLEWARE, CONTROL = "base", "backpressure", "control"


def stacks() -> dict[str, list[str]]:
    from benchmarks import settings  # the settings module in use: DJANGO_SETTINGS_MODULE=benchmarks.settings

    return {
        BASE: list(settings.BASE_MIDDLEWARE),
        WITH_MIDDLEWARE: list(settings.BACKPRESSURE_MIDDLEWARE),
        CONTROL: list(settings.CONTROL_MIDDLEWARE),
    }


def build_handler(middleware: list[str]) -> WSGIHandler:
    """A ``WSGIHandler`` whose middleware chain is ``middleware``; everything else from the settings."""
    from django.test.utils import override_settings

    with override_settings(MIDDLEWARE=middleware):
        return WSGIHandler()  # the chain is built here, once


def build_handlers() -> dict[str, WSGIHandler]:
    return {name: build_handler(middleware) for name, middleware in stacks().items()}


_handlers: dict[str, WSGIHandler] = {}


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if not _handlers:
        _handlers.update(build_handlers())
    return _handlers[environ.get("HTTP_X_BENCH_STACK", BASE)](environ, start_response)
