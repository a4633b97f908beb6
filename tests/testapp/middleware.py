"""A project's own subclass of the back-pressure middleware (tests/test_checks.py, W004)."""

from django_asyncjobs.middleware import BackpressureMiddleware


class OwnBackpressure(BackpressureMiddleware):
    pass
