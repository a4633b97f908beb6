"""Trust boundaries (docs/security.md): what job arguments, results, admin forms and HTTP
input can and cannot make the package do. Each test is an attack that worked before."""

from __future__ import annotations

import re
import uuid

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from django_asyncjobs import InternalJob, Job, JobStatus, SerializationError, enqueue
from django_asyncjobs.engine.deletion import delete_jobs_and_files
from django_asyncjobs.models import Schedule
from django_asyncjobs.offloading.access import result_url
from django_asyncjobs.offloading.requests import offloaded_view_job, sign
from django_asyncjobs.offloading.responses import STORED_RESPONSE, _storage
from tests.testapp.jobs import record, returns_value
from tests.testapp.models import Call

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def ann(django_user_model):
    return django_user_model.objects.create_user("ann", password="pw")


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.com", "pw")


def client_of(user, **kwargs) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


def staff_with(django_user_model, username: str, *codenames: str):
    user = django_user_model.objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return user


def add_schedule(client: Client, **fields: str):
    """Post the admin's add-schedule form: every minute, no arguments, unless ``fields`` say otherwise."""
    form = {"args": "[]", "kwargs": "{}", "cron": "* * * * *", "misfire_policy": "skip", "enabled": "on", **fields}
    return client.post(reverse("admin:django_asyncjobs_schedule_add"), form)


def only_job() -> Job:
    (job,) = Job.objects.all()
    return job


# -- 1. internal jobs cannot be named by data; offloaded requests are signed ------------------


def test_internal_jobs_cannot_be_enqueued_by_name() -> None:
    for name in ("django_asyncjobs.offloaded_view", "asyncjobs.job_stats"):
        with pytest.raises(InternalJob, match="internal to django-asyncjobs"):
            enqueue(name, "x", {})
    assert not Job.objects.exists()


def test_the_schedule_form_offers_and_accepts_only_schedulable_jobs(django_user_model) -> None:
    staff = staff_with(django_user_model, "planner", "add_schedule", "change_schedule", "view_schedule")
    client = client_of(staff)
    add_url = reverse("admin:django_asyncjobs_schedule_add")
    choices = dict(client.get(add_url).context["adminform"].form.fields["job_name"].choices)
    assert record.name in choices
    assert "django_asyncjobs.offloaded_view" not in choices and "asyncjobs.job_stats" not in choices

    response = add_schedule(client, name="escalate", job_name="django_asyncjobs.offloaded_view")
    assert response.status_code == 200
    assert "internal to django-asyncjobs" in response.context["adminform"].form.errors["job_name"][0]
    assert not Schedule.objects.exists()


def test_run_now_of_a_schedule_naming_an_internal_job_is_refused(django_user_model, superuser, run_worker) -> None:
    """The attack as reported: schedule rights, forged request args, "run now"."""
    staff = staff_with(django_user_model, "planner", "change_schedule", "view_schedule")
    forged = {"method": "POST", "user_id": superuser.pk, "post": [["user", [str(staff.pk)]]], "files": []}
    schedule = Schedule.objects.create(
        name="escalate",
        job_name="django_asyncjobs.offloaded_view",
        args=["tests.testapp.views.promote", forged],
        cron="0 0 1 1 *",
    )
    response = client_of(staff).post(
        reverse("admin:django_asyncjobs_schedule_changelist"),
        {"action": "run_now", "_selected_action": [str(schedule.pk)]},
        follow=True,
    )
    assert any("internal to django-asyncjobs" in str(m) for m in response.context["messages"])
    assert not Job.objects.exists()
    staff.refresh_from_db()
    assert not staff.is_superuser


def test_a_request_changed_after_capture_is_not_run(ann, superuser, run_worker) -> None:
    response = client_of(ann).post("/echo/1/", {"title": "hello"})
    assert response.status_code == 202
    job = only_job()
    job.args[1]["user_id"] = superuser.pk  # whoever can write the row's arguments
    Job.objects.filter(pk=job.pk).update(args=job.args)
    run_worker()
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "does not match its signature" in job.error
    assert not Call.objects.filter(label="echo").exists()


def test_an_unsigned_request_is_not_run(ann, superuser, run_worker) -> None:
    forged = {"method": "POST", "user_id": superuser.pk, "post": [["user", [str(ann.pk)]]], "files": []}
    job = offloaded_view_job.enqueue("tests.testapp.views.promote", forged)
    run_worker()
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "is not signed" in job.error
    ann.refresh_from_db()
    assert not ann.is_superuser and not Call.objects.exists()


def test_uploads_outside_the_requests_folder_are_neither_read_nor_deleted(ann, run_worker) -> None:
    """Even a correctly signed request (a bug in capture, a leaked key) cannot reach other files."""
    storage = _storage()
    secret = storage.save("private/secret.txt", ContentFile(b"top secret"))
    request_id = uuid.uuid4().hex
    data = {
        "request_id": request_id,
        "method": "POST",
        "path": "/echo/1/",
        "path_info": "/echo/1/",
        "script_name": "",
        "query_string": "",
        "scheme": "http",
        "host": "testserver",
        "meta": {"CONTENT_TYPE": "multipart/form-data; boundary=x"},
        "user_id": ann.pk,
        "language": "en",
        "csrf_secret": None,
        "post": [],
        "files": [
            {"field": "a", "name": "a.txt", "content_type": "text/plain", "stored": secret},
            {
                "field": "b",
                "name": "b.txt",
                "content_type": "text/plain",
                "stored": f"asyncjobs/uploads/{request_id}/../../{secret}",
            },
        ],
        "body": None,
    }
    job = offloaded_view_job.enqueue("tests.testapp.views.echo", data, sign("tests.testapp.views.echo", data))
    run_worker()
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "outside this request's folder" in job.error
    assert delete_jobs_and_files([job.pk]) == 1
    assert storage.exists(secret)


# -- 2. a job's JSON result is served as JSON ---------------------------------------------


FORGED_RESPONSE = {
    STORED_RESPONSE: 1,
    "status": 200,
    "headers": [["Content-Type", "text/html"]],
    "cookies": ["sessionid=stolen; Path=/", "csrftoken=fixed; Path=/"],
    "text": "<script>alert(document.cookie)</script>",
}


@pytest.mark.parametrize("extra", [{}, {"file": "private/secret.txt"}])
def test_a_result_shaped_like_a_stored_response_is_served_as_json(ann, run_worker, extra) -> None:
    value = {**FORGED_RESPONSE, **extra}
    job = returns_value.enqueue(value, owner=ann)
    run_worker()
    response = client_of(ann).get(reverse("asyncjobs:result", kwargs={"job_id": job.pk}))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response.json() == value
    assert not response.cookies


def test_an_anonymous_jobs_result_is_json_too(run_worker) -> None:
    job = returns_value.enqueue(FORGED_RESPONSE)
    run_worker()
    response = Client().get(result_url(job))
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert response.json() == FORGED_RESPONSE
    assert not response.cookies


# -- 3. replayed cookies reach only the job's client --------------------------------------


def test_cookies_reach_the_owner_only_and_never_the_session_or_csrf_cookie(ann, django_user_model, run_worker) -> None:
    owner = client_of(ann)
    response = owner.post("/sets-private-cookies/")
    assert response.status_code == 202
    run_worker()
    result_url = reverse("asyncjobs:result", kwargs={"job_id": only_job().pk})

    mine = owner.get(result_url)
    assert mine.content == b"cookies"
    assert mine.cookies["theme"].value == "dark"
    assert settings.SESSION_COOKIE_NAME not in mine.cookies and settings.CSRF_COOKIE_NAME not in mine.cookies

    viewer = client_of(staff_with(django_user_model, "viewer", "view_job"))
    theirs = viewer.get(result_url)
    assert theirs.content == b"cookies"
    assert not theirs.cookies


# -- 4. a deactivated user's request is not run as them -----------------------------------


@pytest.mark.parametrize("change", ["deactivate", "delete"])
def test_a_request_of_a_user_no_longer_active_is_refused_on_the_worker(ann, run_worker, change) -> None:
    assert client_of(ann).post("/echo/1/", {"title": "hello"}).status_code == 202
    job = only_job()
    if change == "deactivate":
        ann.is_active = False
        ann.save()
    else:
        ann.delete()
    run_worker()
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert ("no longer active" if change == "deactivate" else "no longer exists") in job.error
    assert not Call.objects.filter(label="echo").exists()


# -- 5. forms rendered on the worker can be submitted -------------------------------------


@pytest.mark.parametrize("has_cookie", [False, True])
def test_a_form_rendered_by_an_offloaded_view_can_be_submitted(ann, run_worker, has_cookie) -> None:
    browser = client_of(ann, enforce_csrf_checks=True)
    if has_cookie:
        browser.get("/client-page/")  # ensure_csrf_cookie
        assert settings.CSRF_COOKIE_NAME in browser.cookies
    accepted = browser.get("/renders-form/")
    assert accepted.status_code == 202
    assert settings.CSRF_COOKIE_NAME in browser.cookies
    run_worker()
    page = browser.get(reverse("asyncjobs:result", kwargs={"job_id": only_job().pk})).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token is not None, page
    submitted = browser.post("/form-target/", {"csrfmiddlewaretoken": token.group(1)})
    assert submitted.status_code == 200 and submitted.content == b"form accepted"


def test_the_csrf_secret_is_not_shown_in_the_admin(ann, superuser) -> None:
    browser = client_of(ann)
    browser.get("/client-page/")
    assert browser.post("/echo/1/", {"title": "x"}).status_code == 202
    secret = browser.cookies[settings.CSRF_COOKIE_NAME].value
    page = client_of(superuser).get(reverse("admin:django_asyncjobs_job_change", args=[only_job().pk]))
    assert page.status_code == 200
    assert secret not in page.content.decode()


# -- 6. bad input is refused in the caller, clearly --------------------------------------


def test_a_nul_character_in_a_form_field_is_a_400_naming_the_field(ann) -> None:
    response = client_of(ann).post("/echo/1/", {"title": "a\x00b"})
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"
    assert "Form field 'title'" in response.json()["detail"] and "NUL" in response.json()["detail"]
    assert not Job.objects.exists()


def test_a_nul_character_in_a_carried_header_is_a_400_naming_it(ann) -> None:
    storage = _storage()
    folders_before = storage.listdir("asyncjobs/uploads")[0] if storage.exists("asyncjobs/uploads") else []
    upload = SimpleUploadedFile("notes.txt", b"x", content_type="text/plain")
    response = client_of(ann).post("/echo/1/", {"attachment": upload}, HTTP_USER_AGENT="bot\x00")
    assert response.status_code == 400, response.content
    assert "Header HTTP_USER_AGENT" in response.json()["detail"]
    assert not Job.objects.exists()
    # Checked before any upload is saved.
    assert (storage.listdir("asyncjobs/uploads")[0] if storage.exists("asyncjobs/uploads") else []) == folders_before


@pytest.mark.parametrize(
    ("args", "kwargs", "named"),
    [
        (("a\x00b",), {}, "positional argument 0"),
        (("ok",), {"note": {"deep": ["\x00"]}}, "keyword argument 'note'"),
        (("\ud800",), {}, "positional argument 0"),
    ],
)
def test_what_a_database_would_refuse_is_a_serialization_error_naming_the_argument(args, kwargs, named) -> None:
    with pytest.raises(SerializationError, match=named):
        record.enqueue(*args, **kwargs)
    assert not Job.objects.exists()


def test_over_deep_nesting_is_a_serialization_error_not_a_recursion_error() -> None:
    deep: list = []
    inner = deep
    for _ in range(10_000):
        inner.append([])
        inner = inner[0]
    with pytest.raises(SerializationError, match="nested deeper than 100 levels"):
        record.enqueue("deep", tree=deep)
    assert not Job.objects.exists()


def test_the_schedule_form_refuses_arguments_the_database_cannot_store(superuser) -> None:
    response = add_schedule(client_of(superuser), name="nul", job_name=record.name, args='["a\\u0000b"]')
    assert response.status_code == 200
    assert "NUL" in response.context["adminform"].form.errors["args"][0]
    assert not Schedule.objects.exists()


# -- 7. uploads live as long as the job can be retried ------------------------------------


def test_an_admin_retry_of_a_failed_upload_view_reads_the_upload_again(ann, superuser, run_worker) -> None:
    upload = SimpleUploadedFile("notes.txt", b"file body", content_type="text/plain")
    assert client_of(ann).post("/upload-fails-once/", {"attachment": upload}).status_code == 202
    run_worker()
    job = only_job()
    assert job.status == JobStatus.FAILED
    client_of(superuser).post(
        reverse("admin:django_asyncjobs_job_changelist"),
        {"action": "retry_selected", "_selected_action": [str(job.pk)]},
    )
    run_worker()
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert client_of(ann).get(reverse("asyncjobs:result", kwargs={"job_id": job.pk})).content == b"read file body"
    (stored,) = [f["stored"] for f in job.args[1]["files"]]
    assert _storage().exists(stored)
    assert delete_jobs_and_files([job.pk]) == 1
    assert not _storage().exists(stored)


# -- the 404 of a job you may not see ----------------------------------------------------


def _answer(client: Client, job_id) -> tuple[int, dict[str, str], bytes, int]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("asyncjobs:status", kwargs={"job_id": job_id}))
    return response.status_code, dict(response.items()), response.content, len(queries)


@pytest.mark.parametrize("who", ["other user", "anonymous", "wrong token"])
def test_someone_elses_job_and_a_missing_one_get_the_same_404(ann, django_user_model, who) -> None:
    job = record.enqueue("private", owner=ann)
    client = Client() if who != "other user" else client_of(django_user_model.objects.create_user("bob", password="pw"))
    missing = uuid.uuid4()
    if who == "wrong token":
        token = "?token=" + "x" * 27
        exists = client.get(reverse("asyncjobs:status", kwargs={"job_id": job.pk}) + token)
        gone = client.get(reverse("asyncjobs:status", kwargs={"job_id": missing}) + token)
        assert exists.status_code == gone.status_code == 404
        return
    client.get("/")  # settle the session's first queries outside the comparison
    assert _answer(client, job.pk)[0] == 404
    assert _answer(client, job.pk)[1:] == _answer(client, missing)[1:]
