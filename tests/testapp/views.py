"""Views used by the offload tests."""

from __future__ import annotations

import json

from django.conf import settings
from django.contrib.auth.decorators import login_required, permission_required
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views import View
from django.views.decorators.csrf import csrf_exempt, ensure_csrf_cookie

from django_asyncjobs import Job, offload

from .models import Call


def echo_data(request: HttpRequest, **kwargs: object) -> dict[str, object]:
    files = {field: [(f.name, f.read().decode()) for f in uploads] for field, uploads in request.FILES.lists()}
    body = None
    if request.content_type == "application/json":
        body = json.loads(request.body)
    return {
        "method": request.method,
        "path": request.path,
        "query": request.GET.dict(),
        "post": {key: values for key, values in request.POST.lists()},
        "json": body,
        "files": files,
        "user": request.user.get_username() if request.user.is_authenticated else None,
        "accept_language": request.headers.get("Accept-Language"),
        "kwargs": {k: str(v) for k, v in kwargs.items()},
        "is_secure": request.is_secure(),
    }


@offload
def echo(request: HttpRequest, **kwargs: object) -> JsonResponse:
    Call.objects.create(label="echo")
    return JsonResponse(echo_data(request, **kwargs), status=201, headers={"X-Echo": "yes"})


@offload
async def echo_async(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"async": True, "method": request.method})


def pending_tweet(request: HttpRequest, job: Job) -> HttpResponse:
    return HttpResponse(f"<li class='pending'>{request.POST.get('text', '')}</li>")


@offload(optimistic=pending_tweet, methods=("POST",))
def tweet(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return HttpResponse("timeline")
    Call.objects.create(label=f"tweet:{request.POST['text']}")
    return HttpResponse("fanned out")


@offload(sync_if=lambda request: request.GET.get("cheap") == "1")
def maybe_cheap(request: HttpRequest) -> HttpResponse:
    return HttpResponse("computed")


@login_required
@offload
def login_outside(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"hello {request.user.get_username()}")


@offload
@login_required
def login_inside(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"hello {request.user.get_username()}")


@offload
@permission_required("testapp.add_call", raise_exception=True)
def needs_permission(request: HttpRequest) -> HttpResponse:
    return HttpResponse("allowed")


@offload
def report_file(request: HttpRequest) -> FileResponse:
    from io import BytesIO

    return FileResponse(BytesIO(b"a,b\n1,2\n"), as_attachment=True, filename="report.csv")


@offload
def uses_session(request: HttpRequest) -> HttpResponse:
    return HttpResponse(str(request.session.get("x")))


def plain_upload(request: HttpRequest) -> HttpResponse:
    """Not offloaded: guarded by ASYNCJOBS["BACKPRESSURE_PATHS"] in the tests."""
    return HttpResponse("uploaded")


@csrf_exempt
@offload(methods=("POST",))
def api_echo(request: HttpRequest) -> JsonResponse:
    """A service-to-service endpoint (no CSRF), for the Python client tests."""
    return JsonResponse({"received": json.loads(request.body or b"null")}, status=201)


@ensure_csrf_cookie
def client_page(request: HttpRequest) -> HttpResponse:
    """A page that loads asyncjobs.js, for the browser test."""
    return render(request, "testapp/client.html")


@offload
@login_required
async def async_login_inside(request: HttpRequest) -> HttpResponse:
    user = await request.auser()
    return HttpResponse(f"async hello {user.get_username()}")


class ClassBased(View):
    def post(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse("class-based POST")


class_based = offload(ClassBased.as_view())


@offload
def sets_cookie(request: HttpRequest) -> HttpResponse:
    response = HttpResponse("cookie set")
    response.set_cookie("theme", "dark", max_age=3600, httponly=True)
    return response


@offload
def writes_session(request: HttpRequest) -> HttpResponse:
    request.session["seen"] = True
    return HttpResponse("never")


@offload
def sets_private_cookies(request: HttpRequest) -> HttpResponse:
    """Sets an ordinary cookie and tries to set the session and CSRF cookies too."""
    response = HttpResponse("cookies")
    response.set_cookie("theme", "dark")
    response.set_cookie(settings.SESSION_COOKIE_NAME, "attacker-session")
    response.set_cookie(settings.CSRF_COOKIE_NAME, "attacker-csrf")
    return response


@offload
@permission_required("auth.change_user", raise_exception=True)
def promote(request: HttpRequest) -> HttpResponse:
    """A view only user admins may run: makes the user named in the form a superuser."""
    from django.contrib.auth import get_user_model

    get_user_model().objects.filter(pk=request.POST["user"]).update(is_superuser=True, is_staff=True)
    Call.objects.create(label=f"promoted:{request.POST['user']}")
    return HttpResponse("promoted")


@offload
def renders_form(request: HttpRequest) -> HttpResponse:
    """Renders a form with a CSRF token on the worker."""
    from django.template import engines

    template = engines["django"].from_string('<form method="post" action="/form-target/">{% csrf_token %}</form>')
    return HttpResponse(template.render({}, request))


def form_target(request: HttpRequest) -> HttpResponse:
    """A CSRF-protected endpoint the form above posts to."""
    return HttpResponse("form accepted")


@offload
def upload_fails_once(request: HttpRequest) -> HttpResponse:
    """Reads its upload; the first run fails after reading it (for admin retry)."""
    content = request.FILES["attachment"].read().decode()
    if not Call.objects.filter(label="upload-failed-once").exists():
        Call.objects.create(label="upload-failed-once")
        raise RuntimeError("first run fails")
    return HttpResponse(f"read {content}")


async def enqueues_from_async(request: HttpRequest) -> JsonResponse:
    """An async view that enqueues with ``aenqueue`` and reads the row back (tests/test_async_api.py)."""
    from .jobs import add

    job = await add.aenqueue(int(request.GET["a"]), 2)
    await job.arefresh()
    return JsonResponse({"id": str(job.pk), "status": job.status}, status=202)


@offload(atomic=True)
def atomic_writes(request: HttpRequest) -> HttpResponse:
    """Writes a row, then fails if asked: its row commits with the job's success only."""
    Call.objects.create(label=f"atomic-view:{request.GET.get('label', '')}")
    if request.GET.get("fail") == "1":
        raise RuntimeError("the atomic view failed after its write")
    return HttpResponse("written")
