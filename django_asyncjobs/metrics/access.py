"""Who may read the metrics: a scraper with the bearer token (``METRICS_TOKEN``, compared
in constant time) or from an allowed address (``METRICS_ALLOWED_IPS``), or a logged-in
active user with the dashboard's ``view_dashboard`` permission. Nobody else."""

from __future__ import annotations

import hmac
import ipaddress
from enum import Enum

from django.http import HttpRequest

from ..conf import app_settings

#: The permission that also opens the admin's dashboard.
PERMISSION = "django_asyncjobs.view_dashboard"


class Access(Enum):
    ALLOWED = "allowed"
    #: No credentials at all (401, asking for a bearer token).
    ANONYMOUS = "anonymous"
    #: Credentials that do not allow it: a wrong token, a user without the permission (403).
    DENIED = "denied"


def access_of(request: HttpRequest) -> Access:
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials:
        return Access.ALLOWED if _token_matches(credentials.strip()) else Access.DENIED
    if _address_allowed(request.META.get("REMOTE_ADDR", "")):
        return Access.ALLOWED
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return Access.ANONYMOUS
    return Access.ALLOWED if user.is_active and user.has_perm(PERMISSION) else Access.DENIED


def _token_matches(given: str) -> bool:
    token = app_settings.METRICS_TOKEN
    if not token:
        return False
    return hmac.compare_digest(given.encode(), token.encode())


def _address_allowed(address: str) -> bool:
    networks = app_settings.METRICS_ALLOWED_IPS
    if not networks or not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(network, strict=False) for network in networks)
