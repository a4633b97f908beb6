"""Carrying a request to a worker: capture it as JSON, rebuild it, run the view there.

What is carried: method, path, query string, form data, a non-form body (JSON,
text, bytes), the headers in ``OFFLOAD_HEADERS``, the scheme and host, the
user (by id) and uploaded files (saved to ``OFFLOAD_STORAGE``, deleted after the
view ran). What is not: the session, messages, streams, and anything attached
to the request object by middleware; see docs/offload.md.
"""

from __future__ import annotations

import base64
import inspect
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO
from typing import Any

from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.handlers.wsgi import WSGIRequest
from django.http import HttpRequest, HttpResponseBase, QueryDict
from django.urls import get_resolver, resolve
from django.utils import translation
from django.utils.datastructures import MultiValueDict

from .conf import app_settings
from .exceptions import AsyncJobsError, ConfigurationError
from .execution import current_job
from .registry import job
from .responses import _storage, store_response

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class OffloadError(AsyncJobsError):
    """A request cannot be carried to a worker (too large, or needs what cannot be carried)."""


@dataclass(frozen=True)
class OffloadedView:
    name: str
    view: Callable[..., Any]
    is_async: bool
    queue: str | None = None


_views: dict[str, OffloadedView] = {}


def register_view(name: str, view: Callable[..., Any], is_async: bool, queue: str | None = None) -> None:
    existing = _views.get(name)
    if existing is not None and not _same_view(existing.view, view):
        raise ConfigurationError(
            f"Two different views are offloaded as {name!r}. Offloaded views are found on the worker by "
            "module and name, so each must have its own."
        )
    _views[name] = OffloadedView(name, view, is_async, queue)


def offloaded_views() -> list[tuple[str, str | None]]:
    """``(name, configured queue)`` of every offloaded view registered in this process."""
    return sorted((view.name, view.queue) for view in _views.values())


def _same_view(a: Callable[..., Any], b: Callable[..., Any]) -> bool:
    """Whether two registrations are the same view (decorated again), not two views of one name."""
    if a is b:
        return True
    if getattr(a, "view_initkwargs", None) != getattr(b, "view_initkwargs", None):
        return False
    inner_a = getattr(a, "view_class", None) or inspect.unwrap(a)
    inner_b = getattr(b, "view_class", None) or inspect.unwrap(b)
    if inner_a is inner_b:
        return True
    # Views made by one factory share their code and differ in what their closures hold.
    cells_a = [c.cell_contents for c in getattr(inner_a, "__closure__", None) or ()]
    cells_b = [c.cell_contents for c in getattr(inner_b, "__closure__", None) or ()]
    return (
        getattr(inner_a, "__code__", None) is getattr(inner_b, "__code__", object())
        and len(cells_a) == len(cells_b)
        and all(x is y for x, y in zip(cells_a, cells_b, strict=True))
    )


def get_view(name: str) -> OffloadedView:
    if name not in _views:
        get_resolver().url_patterns  # noqa: B018 - importing the URLconf imports (and registers) the views
    try:
        return _views[name]
    except KeyError:
        raise OffloadError(
            f"No offloaded view is registered as {name!r} in this worker; is it reachable from ROOT_URLCONF?"
        ) from None


def capture(request: HttpRequest) -> dict[str, Any]:
    """A JSON-safe description of ``request``. Saves uploads; raises OffloadError when too large."""
    limit = int(app_settings.OFFLOAD_MAX_UPLOAD_SIZE)
    content_type = request.content_type or ""
    declared = int(request.META.get("CONTENT_LENGTH") or 0)
    if declared > limit:
        raise OffloadError(f"The request body is {declared} bytes; offloaded views accept up to {limit}.")
    user = getattr(request, "user", None)
    data: dict[str, Any] = {
        "method": request.method,
        "path": request.path,
        "path_info": request.path_info,
        "script_name": request.META.get("SCRIPT_NAME", ""),
        "query_string": request.META.get("QUERY_STRING", ""),
        "scheme": request.scheme,
        "host": request.get_host(),
        "meta": {key: request.META[key] for key in app_settings.OFFLOAD_HEADERS if key in request.META},
        "user_id": _json_pk(user.pk) if user is not None and user.is_authenticated else None,
        "language": getattr(request, "LANGUAGE_CODE", None) or translation.get_language(),
        "post": None,
        "files": [],
        "body": None,
    }
    if content_type in FORM_TYPES:
        data["post"] = [[key, values] for key, values in request.POST.lists()]
        data["files"] = _save_files(request, limit)
    elif request.method not in ("GET", "HEAD", "OPTIONS") and request.body:
        data["body"] = base64.b64encode(request.body).decode("ascii")
    return data


def _json_pk(pk: Any) -> Any:
    return pk if isinstance(pk, int | str) else str(pk)


def _save_files(request: HttpRequest, limit: int) -> list[dict[str, Any]]:
    total = sum(upload.size or 0 for _, uploads in request.FILES.lists() for upload in uploads)
    if total > limit:
        raise OffloadError(f"The uploaded files are {total} bytes; offloaded views accept up to {limit}.")
    saved = []
    storage = _storage()
    for field, uploads in request.FILES.lists():
        for upload in uploads:
            name = storage.save(f"asyncjobs/uploads/{uuid.uuid4().hex}/{upload.name}", upload)
            saved.append({"field": field, "name": upload.name, "content_type": upload.content_type, "stored": name})
    return saved


def stored_uploads(data: Any) -> list[str]:
    """Names in ``OFFLOAD_STORAGE`` of the uploads saved by :func:`capture` (none for other data)."""
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, list):
        return []
    return [str(upload["stored"]) for upload in files if isinstance(upload, dict) and "stored" in upload]


def discard_uploads(data: dict[str, Any]) -> None:
    storage = _storage()
    for name in stored_uploads(data):
        storage.delete(name)


class UnavailableSession:
    """Stands in for ``request.session`` on a worker: any use is a clear error."""

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise OffloadError(
            "request.session is not available in an offloaded view: the worker has no session. "
            "Read what you need in a view that runs in the request and pass it on."
        )

    def __getattr__(self, name: str) -> Any:
        return self._refuse()

    __getitem__ = __setitem__ = __delitem__ = __contains__ = __iter__ = __len__ = __bool__ = _refuse


def rebuild(data: dict[str, Any]) -> HttpRequest:
    """An ``HttpRequest`` equal to the captured one, for the view on the worker."""
    host, _, port = data["host"].partition(":")
    body = base64.b64decode(data["body"]) if data.get("body") else b""
    environ = {
        **data["meta"],
        "REQUEST_METHOD": data["method"],
        "PATH_INFO": data["path_info"],
        "SCRIPT_NAME": data["script_name"],
        "QUERY_STRING": data["query_string"],
        "HTTP_HOST": data["host"],
        "SERVER_NAME": host,
        "SERVER_PORT": port or ("443" if data["scheme"] == "https" else "80"),
        "wsgi.url_scheme": data["scheme"],
        "wsgi.input": BytesIO(body),
        "CONTENT_LENGTH": str(len(body)),
    }
    request = WSGIRequest(environ)
    if data.get("post") is not None:
        post = QueryDict(mutable=True)
        for key, values in data["post"]:
            post.setlist(key, values)
        post._mutable = False
        files: MultiValueDict[str, Any] = MultiValueDict()
        storage = _storage()
        for upload in data.get("files") or []:
            with storage.open(upload["stored"], "rb") as stored:
                files.appendlist(
                    upload["field"], SimpleUploadedFile(upload["name"], stored.read(), upload["content_type"])
                )
        request._post, request._files = post, files  # type: ignore[attr-defined]
    user_id = data.get("user_id")
    user: Any = AnonymousUser()
    if user_id is not None:
        user = get_user_model()._default_manager.filter(pk=user_id).first() or AnonymousUser()
    request.user = user
    request.LANGUAGE_CODE = data.get("language") or translation.get_language()

    async def auser() -> Any:  # what AuthenticationMiddleware provides for async views
        return user

    request.auser = auser
    request.session = UnavailableSession()  # type: ignore[assignment]
    request.resolver_match = resolve(data["path_info"])
    return request


@job(name="django_asyncjobs.offloaded_view", max_attempts=1)
def run_offloaded_view(view_name: str, request_data: dict[str, Any]) -> dict[str, Any]:
    """The job behind every ``@offload`` view: rebuild the request, run the view, keep its response."""
    offloaded = get_view(view_name)
    this = current_job()
    assert this is not None
    done = False
    try:
        # The request's language, as LocaleMiddleware set it; also needed to resolve i18n_patterns.
        with translation.override(request_data.get("language")):
            request = rebuild(request_data)
            match = request.resolver_match
            assert match is not None
            if offloaded.is_async:
                response = async_to_sync(offloaded.view)(request, *match.args, **match.kwargs)
            else:
                response = offloaded.view(request, *match.args, **match.kwargs)
        if not isinstance(response, HttpResponseBase):
            raise OffloadError(f"Offloaded view {view_name} returned {type(response).__name__}, not a response.")
        stored = store_response(response, this)
        done = True
        return stored
    finally:
        if done or this.attempts >= this.max_attempts:
            discard_uploads(request_data)
