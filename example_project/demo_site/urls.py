"""URLs of the example project."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("social.urls")),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("async/", include("django_asyncjobs.urls")),  # status and result endpoints of the jobs
    # Prometheus metrics: for the admin (view_dashboard) or a scraper with ASYNCJOBS["METRICS_TOKEN"].
    path("metrics/", include("django_asyncjobs.metrics.urls")),
]
