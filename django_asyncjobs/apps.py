from __future__ import annotations

from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules
from django.utils.translation import gettext_lazy as _


class AsyncJobsConfig(AppConfig):
    name = "django_asyncjobs"
    verbose_name = _("Async jobs")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # checks, signal receivers, the offload job, the job statistics rollup
        from . import backpressure, checks, offloading, queues, stats  # noqa: F401
        from .conf import app_settings

        modules = app_settings.AUTODISCOVER
        if isinstance(modules, str):
            modules = (modules,)
        if modules:
            autodiscover_modules(*modules)
