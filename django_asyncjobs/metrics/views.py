"""The metrics view: the Prometheus text exposition of :mod:`.collector`, for those
:mod:`.access` allows."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from .access import Access, access_of
from .collector import CONTENT_TYPE_LATEST, exposition


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """``GET``: every metric of :mod:`.families`, read now. 401 without credentials (with
    ``WWW-Authenticate: Bearer``), 403 with credentials that do not allow it."""
    access = access_of(request)
    if access is Access.ANONYMOUS:
        response = HttpResponse("Authentication required.\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="asyncjobs-metrics"'
        return response
    if access is Access.DENIED:
        return HttpResponse("Forbidden.\n", status=403, content_type="text/plain")
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
