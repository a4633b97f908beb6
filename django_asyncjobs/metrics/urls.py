"""``path("metrics/", include("django_asyncjobs.metrics.urls"))``: the Prometheus metrics view."""

from __future__ import annotations

from django.urls import path

from .views import metrics_view

app_name = "asyncjobs_metrics"

urlpatterns = [
    path("", metrics_view, name="metrics"),
]
