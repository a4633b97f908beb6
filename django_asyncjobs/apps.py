"""The app's configuration: what is loaded and connected at start-up."""

from __future__ import annotations

from importlib.util import find_spec

from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules
from django.utils.translation import gettext_lazy as _

from .conf import app_settings


class AsyncJobsConfig(AppConfig):
    name = "django_asyncjobs"
    verbose_name = _("Async jobs")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # lazy: app loading: these import the models, ready only now. They register the
        # checks, signal receivers, the offload job and the job statistics rollup.
        from . import checks  # noqa: F401
        from .aggregations import stats  # noqa: F401
        from .engine import broker, capacity, tallies  # noqa: F401
        from .offloading import requests  # noqa: F401

        modules = app_settings.AUTODISCOVER
        if isinstance(modules, str):
            modules = (modules,)
        if modules:
            autodiscover_modules(*modules)
        if find_spec("django.tasks") is not None:  # Django 6.0+
            # lazy: django.tasks exists only on Django 6.0+; the task finder and receivers
            from .tasks.jobs import connect_signals_if_used

            connect_signals_if_used()
