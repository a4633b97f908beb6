"""URLconf of ``benchmarks.admin_settings``: the admin site (with the dashboard, when there is one)."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("async/", include("django_asyncjobs.urls")),
]
