"""URLconf of the benchmark settings (``ROOT_URLCONF = "benchmarks.urls"``), for ``bench_web.py``."""

from __future__ import annotations

from django.urls import include, path

from benchmarks.benchapp import views

urlpatterns = [
    path("hello/", views.hello),
    path("inline/", views.inline),
    path("offload/", views.offloaded),
    path("offload/limited/", views.offloaded_limited),
    path("offload/saturated/", views.offloaded_saturated),
    path("async/", include("django_asyncjobs.urls")),
]
