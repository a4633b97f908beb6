"""HTTP responses: content negotiation, the 503 of back pressure, and storing an
offloaded view's response as its job's result (and serving it back).

Only the results of offloaded views are served as HTTP responses, decided by the
job's name, never by what the result holds: any other job's result is JSON.
"""

from __future__ import annotations

import base64
import re
import threading
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.core.signals import request_finished
from django.db import close_old_connections
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.template.loader import render_to_string

from ..conf import app_settings

if TYPE_CHECKING:
    from ..exceptions import QueueFull
    from ..models import Job

#: Key marking a job result that is a stored HTTP response.
STORED_RESPONSE = "asyncjobs_response"
#: The job behind every ``@offload`` view: the only job whose result is served as a response.
OFFLOADED_VIEW_JOB = "django_asyncjobs.offloaded_view"
_RESULT_FILE = re.compile(r"asyncjobs/results/[0-9a-f]{32}/body")


def wants_html(request: HttpRequest) -> bool:
    """Whether the client prefers HTML to JSON (browsers do; API clients and ``*/*`` don't)."""
    accept = request.headers.get("Accept", "")
    if "text/html" not in accept:
        return False
    return request.get_preferred_type(["application/json", "text/html"]) == "text/html"


def busy_response(request: HttpRequest, error: QueueFull) -> HttpResponse:
    """``503 Service Unavailable`` with ``Retry-After``, as JSON or HTML by ``Accept``."""
    if wants_html(request):
        context = {"queue": error.queue, "retry_after": error.retry_after}
        response: HttpResponse = HttpResponse(
            render_to_string("django_asyncjobs/busy.html", context, request=request), status=503
        )
    else:
        response = JsonResponse(
            {"error": "queue_full", "queue": error.queue, "retry_after": error.retry_after, "detail": error.reason},
            status=503,
        )
    response["Retry-After"] = str(error.retry_after)
    response["Cache-Control"] = "no-store"
    return response


def _storage() -> Any:
    return storages[app_settings.OFFLOAD_STORAGE]


#: Held while ``close_old_connections`` is disconnected, so threads do not reconnect it under each other.
_closing = threading.Lock()


def _close_keeping_connections(close: Callable[[], Any]) -> None:
    """``response.close()`` (which sends ``request_finished``) without Django's
    ``close_old_connections``: a worker keeps its connections itself (engine/connections.py),
    and an atomic job's transaction is still open on it (as Django's test client does)."""
    with _closing:
        connected = request_finished.disconnect(close_old_connections)
        try:
            close()
        finally:
            if connected:
                request_finished.connect(close_old_connections)


def store_response(response: HttpResponseBase, job: Job) -> dict[str, Any]:
    """A JSON-safe record of ``response``; large bodies go to ``OFFLOAD_STORAGE``."""
    if hasattr(response, "render") and not getattr(response, "is_rendered", True):
        response.render()
    content: Any = response
    body = b"".join(content.streaming_content) if response.streaming else content.content
    close = getattr(response, "close", None)
    if close:
        _close_keeping_connections(close)
    record: dict[str, Any] = {
        STORED_RESPONSE: 1,
        "status": response.status_code,
        "headers": [[name, value] for name, value in response.items()],
        "cookies": [morsel.OutputString() for morsel in response.cookies.values()],
    }
    if len(body) > app_settings.OFFLOAD_INLINE_RESPONSE_SIZE:
        # A random name, not the job id: the storage may be served publicly (MEDIA_URL).
        record["file"] = _storage().save(f"asyncjobs/results/{uuid.uuid4().hex}/body", ContentFile(body))
    else:
        try:
            record["text"] = body.decode("utf-8")
        except UnicodeDecodeError:
            record["base64"] = base64.b64encode(body).decode("ascii")
    return record


def is_stored_response(result: Any) -> bool:
    return isinstance(result, dict) and result.get(STORED_RESPONSE) == 1


def stored_response_of(job: Job) -> dict[str, Any] | None:
    """The stored HTTP response that is ``job``'s result, if ``job`` ran an offloaded view."""
    result = job.result
    return result if job.name == OFFLOADED_VIEW_JOB and is_stored_response(result) else None


def restore_response(record: dict[str, Any], *, with_cookies: bool) -> HttpResponseBase:
    """The stored response again. Its cookies only ``with_cookies`` (for the client that made
    the request), and never the session or CSRF cookie."""
    response: HttpResponseBase
    file_name = stored_response_file(record)
    if file_name is not None:
        response = FileResponse(_storage().open(file_name, "rb"), status=record["status"])
    else:
        body = record["text"].encode() if "text" in record else base64.b64decode(record.get("base64", ""))
        response = HttpResponse(body, status=record["status"])
    for name, value in record["headers"]:
        if name.lower() not in ("content-length", "set-cookie"):
            response[name] = value
    if with_cookies:
        private = {settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME}
        for cookie in record.get("cookies", []):
            response.cookies.load(cookie)
        for name in private.intersection(response.cookies):
            del response.cookies[name]
    return response


def stored_response_file(record: Any) -> str | None:
    """Name in ``OFFLOAD_STORAGE`` of a stored response's body, if it was large enough to go
    there; only names that :func:`store_response` makes count."""
    if not is_stored_response(record):
        return None
    name = record.get("file")
    return name if isinstance(name, str) and _RESULT_FILE.fullmatch(name) else None
