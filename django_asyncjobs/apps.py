from __future__ import annotations

from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules
from django.utils.translation import gettext_lazy as _


class AsyncJobsConfig(AppConfig):
    name = "django_asyncjobs"
    verbose_name = _("Async jobs")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import backpressure, checks, offloading, queues  # noqa: F401  (checks, receivers, the offload job)
        from .conf import app_settings

        modules = app_settings.AUTODISCOVER
        if isinstance(modules, str):
            modules = (modules,)
        if modules:
            autodiscover_modules(*modules)
