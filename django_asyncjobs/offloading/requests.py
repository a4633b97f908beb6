"""Carrying a request to a worker: capture it as JSON, sign it, rebuild it, run the view there.

What is carried: method, path, query string, form data, a non-form body (JSON,
text, bytes), the headers in ``OFFLOAD_HEADERS``, the scheme and host, the
user (by id), the client's CSRF secret (so that forms the view renders can be
submitted) and uploaded files (saved to ``OFFLOAD_STORAGE`` under a folder of
this request's own, deleted with the job). What is not: the session, messages,
streams, and anything attached to the request object by middleware; see
docs/offload.md.

The captured request names a user and files, so it is signed (HMAC with
``SECRET_KEY``) where it is captured and verified on the worker: whoever can
write job arguments (a schedule, ``enqueue()`` by name, Redis) cannot make a
worker act as another user or read another file. See docs/security.md.
"""

from __future__ import annotations

import base64
import inspect
import json
import posixpath
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from io import BytesIO
from typing import TYPE_CHECKING, Any

from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.core import signing
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.handlers.wsgi import WSGIRequest
from django.http import HttpRequest, HttpResponseBase, QueryDict
from django.middleware.csrf import get_token
from django.urls import get_resolver, resolve
from django.utils import translation
from django.utils.datastructures import MultiValueDict

from ..conf import app_settings
from ..engine.execution import current_job
from ..engine.functions import JobFunction, JobOptions
from ..engine.registry import register_job_function
from ..exceptions import ConfigurationError, OffloadError
from ..payloads import check_json
from .responses import OFFLOADED_VIEW_JOB, _storage, store_response, stored_response_file

if TYPE_CHECKING:
    from ..models import Job

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
#: Where a request's uploads are saved: a folder per captured request.
UPLOADS_PREFIX = "asyncjobs/uploads/"
_REQUEST_ID = re.compile(r"[0-9a-f]{32}")
_SIGNING_SALT = "django_asyncjobs.offloaded-request"


@dataclass(frozen=True)
class OffloadedView:
    name: str
    view: Callable[..., Any]
    is_async: bool
    queue: str | None = None
    #: Its database writes commit with its outcome (``@offload(atomic=True)``).
    atomic: bool = False


_views: dict[str, OffloadedView] = {}


def register_view(
    name: str, view: Callable[..., Any], is_async: bool, queue: str | None = None, *, atomic: bool = False
) -> None:
    existing = _views.get(name)
    if existing is not None and not _same_view(existing.view, view):
        raise ConfigurationError(
            f"Two different views are offloaded as {name!r}. Offloaded views are found on the worker by "
            "module and name, so each must have its own."
        )
    _views[name] = OffloadedView(name, view, is_async, queue, atomic)


def offloaded_views() -> list[tuple[str, str | None]]:
    """``(name, configured queue)`` of every offloaded view registered in this process."""
    return sorted((view.name, view.queue) for view in _views.values())


def atomic_views() -> list[str]:
    """Names of the offloaded views registered in this process with ``atomic=True``."""
    return sorted(view.name for view in _views.values() if view.atomic)


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


def is_offloaded_view(name: str) -> bool:
    """Whether ``name`` is an offloaded view of this site (the URLconf is imported first)."""
    try:
        get_view(name)
    except OffloadError:
        return False
    return True


def get_view(name: str) -> OffloadedView:
    if name not in _views:
        get_resolver().url_patterns  # noqa: B018 - importing the URLconf imports (and registers) the views
    try:
        return _views[name]
    except KeyError:
        raise OffloadError(
            f"No offloaded view is registered as {name!r} in this worker: is it reachable from ROOT_URLCONF, "
            "and was the worker restarted since the view was added or renamed?"
        ) from None


def capture(request: HttpRequest) -> dict[str, Any]:
    """A JSON-safe description of ``request``. Saves uploads; raises OffloadError when too large
    and SerializationError, naming the field, for what a job row cannot store (a NUL character)."""
    limit = app_settings.OFFLOAD_MAX_UPLOAD_SIZE
    content_type = request.content_type or ""
    declared = int(request.META.get("CONTENT_LENGTH") or 0)
    if declared > limit:
        raise OffloadError(f"The request body is {declared} bytes; offloaded views accept up to {limit}.")
    user = getattr(request, "user", None)
    data: dict[str, Any] = {
        "request_id": uuid.uuid4().hex,
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
        "csrf_secret": _csrf_secret(request),
        "post": None,
        "files": [],
        "body": None,
    }
    if content_type in FORM_TYPES:
        data["post"] = [[key, values] for key, values in request.POST.lists()]
    elif request.method not in ("GET", "HEAD", "OPTIONS") and request.body:
        data["body"] = base64.b64encode(request.body).decode("ascii")
    _check_storable(data, request)
    if content_type in FORM_TYPES:
        data["files"] = _save_files(request, limit, data["request_id"])
    return data


def _csrf_secret(request: HttpRequest) -> str | None:
    """The client's CSRF secret; a new one if it has none yet, which CsrfViewMiddleware
    sends with the 202 response."""
    if "CSRF_COOKIE" not in request.META:
        get_token(request)
    secret = request.META.get("CSRF_COOKIE")
    return secret if isinstance(secret, str) else None


def _check_storable(data: dict[str, Any], request: HttpRequest) -> None:
    """SerializationError naming the part of the request a job row cannot store."""
    for key, values in data["post"] or []:
        check_json([key, values], f"Form field {key[:100]!r}")
    for field, uploads in request.FILES.lists():
        check_json([field, [upload.name for upload in uploads]], f"The name of uploaded file field {field[:100]!r}")
    for key, value in data["meta"].items():
        check_json(value, f"Header {key}")
    check_json([data["path"], data["path_info"], data["query_string"]], "The URL")
    check_json(data, "The request")


def _json_pk(pk: Any) -> Any:
    return pk if isinstance(pk, int | str) else str(pk)


def _save_files(request: HttpRequest, limit: int, request_id: str) -> list[dict[str, Any]]:
    total = sum(upload.size or 0 for _, uploads in request.FILES.lists() for upload in uploads)
    if total > limit:
        raise OffloadError(f"The uploaded files are {total} bytes; offloaded views accept up to {limit}.")
    saved = []
    storage = _storage()
    for field, uploads in request.FILES.lists():
        for index, upload in enumerate(uploads):
            # The client's file name is kept in the data, not in the path.
            name = storage.save(f"{upload_folder(request_id)}{field_slug(field)}-{index}", upload)
            saved.append({"field": field, "name": upload.name, "content_type": upload.content_type, "stored": name})
    return saved


def upload_folder(request_id: str) -> str:
    return f"{UPLOADS_PREFIX}{request_id}/"


def field_slug(field: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", field)[:50] or "file"


def stored_uploads(data: Any) -> list[str]:
    """Names in ``OFFLOAD_STORAGE`` of the uploads saved by :func:`capture` for ``data``: only
    names inside the request's own folder count, whatever else ``data`` holds."""
    if not isinstance(data, dict):
        return []
    request_id, files = data.get("request_id"), data.get("files")
    if not isinstance(request_id, str) or not _REQUEST_ID.fullmatch(request_id) or not isinstance(files, list):
        return []
    names = (upload.get("stored") for upload in files if isinstance(upload, dict))
    return [name for name in names if isinstance(name, str) and _inside(name, upload_folder(request_id))]


def _inside(name: str, folder: str) -> bool:
    """Whether storage name ``name`` lies in ``folder`` (no ``..``, no absolute path, no backslash)."""
    return (
        name.startswith(folder)
        and "\\" not in name
        and posixpath.normpath(name) == name
        and "/" not in name[len(folder) :]
    )


def discard_uploads(data: dict[str, Any]) -> None:
    storage = _storage()
    for name in stored_uploads(data):
        storage.delete(name)


def sign(view_name: str, data: dict[str, Any]) -> str:
    """The signature of a captured request for view ``view_name``."""
    return signing.Signer(salt=_SIGNING_SALT).signature(_canonical(view_name, data))


def verify(view_name: str, data: Any, signature: Any) -> None:
    """OffloadError unless ``data`` is a request captured for ``view_name`` by this site."""
    if not isinstance(data, dict) or not isinstance(signature, str) or not signature:
        raise OffloadError(
            f"The request of offloaded view {view_name} is not signed; it was not captured by @offload "
            "(or was enqueued before django-asyncjobs signed requests). It is not run."
        )
    try:
        signing.Signer(salt=_SIGNING_SALT).unsign(f"{_canonical(view_name, data)}:{signature}")
    except signing.BadSignature:
        raise OffloadError(
            f"The request of offloaded view {view_name} does not match its signature: it was changed after "
            "it was captured, or SECRET_KEY changed. It is not run."
        ) from None


def _canonical(view_name: str, data: dict[str, Any]) -> str:
    return json.dumps([view_name, data], sort_keys=True, separators=(",", ":"))


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
        confined = set(stored_uploads(data))
        for upload in data.get("files") or []:
            if upload["stored"] not in confined:
                raise OffloadError(f"Upload {upload['stored']!r} is outside this request's folder; not read.")
            with storage.open(upload["stored"], "rb") as stored:
                files.appendlist(
                    upload["field"], SimpleUploadedFile(upload["name"], stored.read(), upload["content_type"])
                )
        request._post, request._files = post, files  # type: ignore[attr-defined]
    if data.get("csrf_secret"):
        request.META["CSRF_COOKIE"] = data["csrf_secret"]  # tokens rendered here match the client's cookie
    user = _active_user(data.get("user_id"))
    request.user = user
    request.LANGUAGE_CODE = data.get("language") or translation.get_language()

    async def auser() -> Any:  # what AuthenticationMiddleware provides for async views
        return user

    request.auser = auser
    request.session = UnavailableSession()  # type: ignore[assignment]
    request.resolver_match = resolve(data["path_info"])
    return request


def _active_user(user_id: Any) -> Any:
    """The request's user, refused as Django's ModelBackend refuses them: gone or inactive."""
    if user_id is None:
        return AnonymousUser()
    user = get_user_model()._default_manager.filter(pk=user_id).first()
    if user is None:
        raise OffloadError(f"The user of this request (id {user_id!r}) no longer exists; the view is not run.")
    is_active = getattr(user, "is_active", None)
    if not (is_active or is_active is None):
        raise OffloadError(f"The user of this request (id {user_id!r}) is no longer active; the view is not run.")
    return user


def run_offloaded_view(view_name: str, request_data: dict[str, Any], signature: str = "") -> dict[str, Any]:
    """The job behind every ``@offload`` view: verify and rebuild the request, run the view,
    keep its response. Uploads stay until the job is deleted, so that a retry finds them."""
    verify(view_name, request_data, signature)
    offloaded = get_view(view_name)
    this = current_job()
    assert this is not None
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
    return store_response(response, this)


class OffloadedViewJob(JobFunction[..., dict[str, Any]]):
    """The job behind every ``@offload`` view: its rows own the uploads they carried and a
    large stored response."""

    def display_name(self, args: Any, kwargs: Any) -> str | None:
        """The view (its dotted name, the job's first argument)."""
        return args[0] if args and isinstance(args[0], str) else None

    def counts_as(self, display_name: str) -> bool:
        """An offloaded view registered in this process (importing the URLconf registers them)."""
        return is_offloaded_view(display_name)

    def options_for(self, job: Job) -> JobOptions:
        """Atomic for a view offloaded with ``atomic=True`` (named by the job's first argument,
        verified when it runs)."""
        name = job.args[0] if isinstance(job.args, list) and job.args else None
        try:
            view = get_view(name) if isinstance(name, str) else None
        except OffloadError:  # the run fails with it
            view = None
        return replace(self.options, atomic=True) if view is not None and view.atomic else self.options

    def stored_files(self, args: Any, result: Any) -> list[str]:
        files = []
        response_file = stored_response_file(result)
        if response_file is not None:
            files.append(response_file)
        if isinstance(args, list) and len(args) > 1:
            files.extend(stored_uploads(args[1]))
        return files


#: Internal: only :func:`enqueue_request` creates its jobs.
offloaded_view_job = register_job_function(
    OffloadedViewJob(run_offloaded_view, OFFLOADED_VIEW_JOB, JobOptions(max_attempts=1), internal=True)
)


def enqueue_request(view_name: str, request: HttpRequest, **options: Any) -> Any:
    """Capture ``request`` for ``view_name``, sign it and enqueue its job (uploads are removed
    again if the job cannot be created). Raises OffloadError, SerializationError, QueueFull."""
    data = capture(request)
    try:
        return offloaded_view_job.enqueue(view_name, data, sign(view_name, data), **options)
    except BaseException:
        discard_uploads(data)
        raise
