"""The ``progress/`` endpoint of a changelist whose rows show a live progress bar
(``admin_progress.js`` polls it with the ids of the rows on the page)."""

from __future__ import annotations

import uuid
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, JsonResponse
from django.urls import URLPattern, path, reverse

#: Most ids one poll may ask about (a page of the changelist holds fewer).
MAX_PROGRESS_IDS = 500


class ProgressEndpointMixin:
    """For a ``ModelAdmin``: ``progress/?id=...`` answers ``{"jobs": {id: {status, label,
    progress, message}}}`` from :meth:`progress_rows`, to users with the view permission."""

    admin_site: Any
    opts: Any

    def progress_rows(self, ids: list[uuid.UUID]) -> dict[str, dict[str, Any]]:
        raise NotImplementedError

    def get_urls(self) -> list[URLPattern]:
        name = f"{self.opts.app_label}_{self.opts.model_name}_progress"
        # Before the stock URLs, whose "<object_id>/" would take "progress/".
        return [path("progress/", self.admin_site.admin_view(self.progress_view), name=name), *super().get_urls()]  # type: ignore[misc]

    def progress_view(self, request: HttpRequest) -> JsonResponse:
        if not self.has_view_permission(request):  # type: ignore[attr-defined]
            raise PermissionDenied
        ids = []
        for value in request.GET.getlist("id")[:MAX_PROGRESS_IDS]:
            try:
                ids.append(uuid.UUID(value))
            except ValueError:
                continue
        return JsonResponse({"jobs": self.progress_rows(ids)})

    def progress_url(self) -> str:
        return reverse(f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}_progress")
