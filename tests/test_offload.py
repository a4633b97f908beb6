"""@offload end to end: request, 202, a real worker, status and result endpoints."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from django_asyncjobs import Job, JobStatus
from django_asyncjobs.engine.capacity import forget_states
from tests.testapp.models import Call

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("ann", password="pw")


@pytest.fixture
def ann(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def follow_to_result(client: Client, response, run_worker):
    assert response.status_code == 202, response.content
    status_url = response["Location"]
    run_worker()
    status = client.get(status_url)
    assert status.status_code == 200
    assert status.json()["status"] == "succeeded", status.json()
    return client.get(status.json()["result_url"])


def test_post_is_answered_202_and_the_view_runs_on_the_worker(ann, run_worker) -> None:
    upload = SimpleUploadedFile("notes.txt", b"file body", content_type="text/plain")
    response = ann.post(
        "/echo/7/?page=2",
        {"title": "hello", "tags": ["a", "b"], "attachment": upload},
        HTTP_ACCEPT_LANGUAGE="fr",
    )
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued" and body["status_url"] == response["Location"]
    assert not Call.objects.exists()  # nothing ran in the request

    result = follow_to_result(ann, response, run_worker)
    assert result.status_code == 201
    assert result["X-Echo"] == "yes"
    assert result.json() == {
        "method": "POST",
        "path": "/echo/7/",
        "query": {"page": "2"},
        "post": {"title": ["hello"], "tags": ["a", "b"]},
        "json": None,
        "files": {"attachment": [["notes.txt", "file body"]]},
        "user": "ann",
        "accept_language": "fr",
        "kwargs": {"number": "7"},
        "is_secure": False,
    }
    assert Call.objects.filter(label="echo").count() == 1


def test_json_body_is_carried(ann, run_worker) -> None:
    response = ann.post("/echo/1/", data=json.dumps({"a": [1, 2]}), content_type="application/json")
    assert follow_to_result(ann, response, run_worker).json()["json"] == {"a": [1, 2]}


def test_async_view(ann, run_worker) -> None:
    response = ann.post("/echo-async/")
    assert follow_to_result(ann, response, run_worker).json() == {"async": True, "method": "POST"}


def test_async_stack_offloads_async_views(user, run_worker) -> None:
    from asgiref.sync import async_to_sync
    from django.test import AsyncClient

    client = AsyncClient()
    client.force_login(user)
    response = async_to_sync(client.post)("/echo-async/")
    assert response.status_code == 202
    run_worker()
    assert Job.objects.get().result["status"] == 200


def test_optimistic_response_is_shown_at_once(ann, run_worker) -> None:
    response = ann.post("/tweet/", {"text": "hi all"})
    assert response.status_code == 202
    assert response.content == b"<li class='pending'>hi all</li>"
    assert response["Location"].startswith("/async/jobs/")
    assert not Call.objects.exists()
    run_worker()
    assert Call.objects.filter(label="tweet:hi all").exists()


def test_methods_limit_offloading(ann) -> None:
    response = ann.get("/tweet/")
    assert (response.status_code, response.content) == (200, b"timeline")
    assert not Job.objects.exists()


def test_sync_if_runs_cheap_requests_inline(ann) -> None:
    assert ann.get("/maybe-cheap/?cheap=1").content == b"computed"
    assert not Job.objects.exists()
    assert ann.get("/maybe-cheap/").status_code == 202


@pytest.mark.parametrize("url", ["/login-outside/", "/login-inside/"])
def test_login_required_either_way_is_checked_in_the_request(url, ann, run_worker) -> None:
    anonymous = Client().get(url)
    assert anonymous.status_code == 302 and "/login" in anonymous["Location"]
    assert not Job.objects.exists()
    assert follow_to_result(ann, ann.get(url), run_worker).content == b"hello ann"


def test_async_view_with_login_required_inside(user, run_worker) -> None:
    from asgiref.sync import async_to_sync
    from django.test import AsyncClient

    anonymous = async_to_sync(AsyncClient().get)("/async-login-inside/")
    assert anonymous.status_code == 302
    assert not Job.objects.exists()
    client = AsyncClient()
    client.force_login(user)
    assert async_to_sync(client.get)("/async-login-inside/").status_code == 202
    run_worker()
    job = Job.objects.get()
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.result["text"] == "async hello ann"


def test_permission_required_is_checked_in_the_request(ann, user, run_worker) -> None:
    assert ann.get("/needs-permission/").status_code == 403
    assert not Job.objects.exists()
    user.user_permissions.add(Permission.objects.get(codename="add_call"))
    assert follow_to_result(ann, ann.get("/needs-permission/"), run_worker).content == b"allowed"


@pytest.mark.parametrize("inline_limit", [256 * 1024, 0])
def test_file_response_is_stored_and_served(settings, ann, run_worker, inline_limit) -> None:
    settings.ASYNCJOBS = {**settings.ASYNCJOBS, "OFFLOAD_INLINE_RESPONSE_SIZE": inline_limit}
    result = follow_to_result(ann, ann.get("/report/"), run_worker)
    assert result.getvalue() == b"a,b\n1,2\n"
    assert "report.csv" in result["Content-Disposition"]
    assert ("file" in Job.objects.get().result) is (inline_limit == 0)


def test_session_use_fails_with_a_clear_error(ann, run_worker) -> None:
    response = ann.get("/uses-session/")
    run_worker()
    job = Job.objects.get()
    assert job.status == JobStatus.FAILED
    assert "request.session is not available in an offloaded view" in job.error
    assert "request.session is not available" in ann.get(response["Location"]).json()["error"]


def test_html_clients_get_html_that_opens_the_result_and_links_to_it_when_done(ann, run_worker) -> None:
    response = ann.post("/echo/1/", HTTP_ACCEPT="text/html")
    assert response.status_code == 202 and b"being processed" in response.content
    page = ann.get(response["Location"], HTTP_ACCEPT="text/html")
    assert page.status_code == 200 and b"Queued" in page.content and page["Retry-After"]
    run_worker()
    done = ann.get(response["Location"], HTTP_ACCEPT="text/html")
    html = done.content.decode()
    result_url = ann.get(response["Location"]).json()["result_url"]
    assert done.status_code == 200 and "Succeeded" in html and "Retry-After" not in done
    # it opens the result (a download leaves the browser here) and keeps a link to it
    assert f'<meta http-equiv="refresh" content="0;url={result_url}">' in html
    assert f'<a class="button" href="{result_url}">See the result</a>' in html


def test_the_fallback_pages_are_styled_and_self_contained(ann) -> None:
    accepted = ann.post("/echo/1/", HTTP_ACCEPT="text/html")
    status = ann.get(accepted["Location"], HTTP_ACCEPT="text/html")
    for html in (accepted.content.decode(), status.content.decode()):
        assert "<style>" in html and 'role="progressbar"' in html
        assert "<link" not in html and "<script" not in html and "url(" not in html  # no external assets


def test_redirect_parameter(ann, run_worker) -> None:
    response = ann.post("/echo/1/")
    run_worker()
    assert ann.get(response["Location"] + "?redirect=1").status_code == 303


def test_status_while_queued_has_position_and_retry_after(ann) -> None:
    first = ann.post("/echo/1/")
    second = ann.post("/echo/2/")
    assert ann.get(first["Location"]).json()["position"] == 0
    status = ann.get(second["Location"])
    assert status.json()["position"] == 1
    assert int(status["Retry-After"]) >= 1


def test_result_before_the_job_finished_is_409(ann) -> None:
    response = ann.post("/echo/1/")
    job = Job.objects.get()
    result = ann.get(f"/async/jobs/{job.pk}/result/")
    assert result.status_code == 409 and result.json()["status"] == "queued"
    assert result["Location"] == response["Location"]


def test_others_get_404_and_view_job_permission_grants_access(ann, django_user_model) -> None:
    url = ann.post("/echo/1/")["Location"]
    bob = django_user_model.objects.create_user("bob")
    other = Client()
    other.force_login(bob)
    assert other.get(url).status_code == 404
    assert Client().get(url).status_code == 404
    bob.user_permissions.add(Permission.objects.get(codename="view_job"))
    assert other.get(url).status_code == 200


def test_anonymous_jobs_are_reached_with_their_token(run_worker) -> None:
    client = Client()
    url = client.post("/echo/1/")["Location"]
    assert "?token=" in url
    assert client.get(url).status_code == 200
    assert client.get(url.split("?")[0]).status_code == 404
    assert client.get(url.split("?")[0] + "?token=forged").status_code == 404
    run_worker()
    result_url = client.get(url).json()["result_url"]
    assert client.get(result_url).status_code == 201


def test_queue_full_turns_into_503(settings, ann) -> None:
    settings.ASYNCJOBS = {**settings.ASYNCJOBS, "QUEUE_LIMITS": {"default": {"MAX_DEPTH": 1}}}
    forget_states()
    assert ann.post("/echo/1/").status_code == 202
    forget_states()
    busy = ann.post("/echo/2/")
    assert busy.status_code == 503
    assert busy.json()["error"] == "queue_full"
    assert int(busy["Retry-After"]) >= 1
    assert Job.objects.count() == 1


def test_too_large_upload_is_413(settings, ann) -> None:
    settings.ASYNCJOBS = {**settings.ASYNCJOBS, "OFFLOAD_MAX_UPLOAD_SIZE": 10}
    upload = SimpleUploadedFile("big.bin", b"x" * 100)
    response = ann.post("/echo/1/", {"f": upload})
    assert response.status_code == 413
    assert not Job.objects.exists()


def test_class_based_views_are_offloaded_by_class(ann, run_worker) -> None:
    result = follow_to_result(ann, ann.post("/cbv/"), run_worker)
    assert result.content == b"class-based POST"


def test_two_views_under_one_name_are_refused() -> None:
    from django_asyncjobs import offload
    from django_asyncjobs.exceptions import ConfigurationError

    def clash(request): ...

    offload(clash)
    with pytest.raises(ConfigurationError, match="Two different views"):

        def clash(request):
            return None

        offload(clash)


def test_cookies_set_by_the_view_come_back_with_the_result(ann, run_worker) -> None:
    result = follow_to_result(ann, ann.post("/sets-cookie/"), run_worker)
    assert result.cookies["theme"].value == "dark"
    assert result.cookies["theme"]["httponly"]


def test_session_writes_fail_clearly_too(ann, run_worker) -> None:
    ann.post("/writes-session/")
    run_worker()
    assert "request.session is not available" in Job.objects.get().error


def test_views_from_one_factory_are_refused_under_one_name() -> None:
    from django_asyncjobs import offload
    from django_asyncjobs.exceptions import ConfigurationError

    def make(greeting: str):
        def greet(request):
            return greeting

        return greet

    hello = make("hello")
    offload(hello)
    offload(hello)  # the same view decorated again is fine
    with pytest.raises(ConfigurationError, match="Two different views"):
        offload(make("bye"))


# The estimated wait of a queued job


@pytest.mark.parametrize(
    ("position", "throughput", "workers", "run_time", "wait"),
    [
        (0, 1 / 60, 1, 0.2, 0.1),  # idle queue, one worker, fast jobs: not 60 s
        (9, 0.0, 1, 2.0, 19.0),  # nine ahead of it, and half of the one running
        (3, 0.0, 2, 1.0, 1.75),
        (0, 100.0, 1, 1.0, 0.005),  # the measured throughput when it is higher
        (0, 1 / 60, 0, 0.2, None),  # no live worker: nothing starts it
        (0, 0.5, None, None, 2.0),  # unknown workers or run time: Little's law
        (4, 0.0, 2, None, None),
    ],
)
def test_estimate_start(position, throughput, workers, run_time, wait) -> None:
    from django_asyncjobs.engine.capacity import estimate_start

    found = estimate_start(position, throughput, workers=workers, run_time=run_time)
    assert found == (None if wait is None else pytest.approx(wait))


def test_position_0_on_an_idle_queue_is_a_short_wait(ann, run_worker) -> None:
    """One job finished in the last minute (throughput 1/min), one live worker, jobs that run in
    0.2 s: the next job's wait is a fraction of a second, not the minute Little's law says."""
    from datetime import timedelta

    from django.utils import timezone

    from django_asyncjobs.models import JobStats
    from django_asyncjobs.worker import build_worker
    from tests.testapp.jobs import noop

    noop.enqueue()
    run_worker()
    minute = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=1)
    JobStats.objects.create(queue="default", period_start=minute, succeeded=30, run_p50=0.2, run_p95=0.3)
    forget_states()
    response = ann.post("/echo/1/")
    without_workers = ann.get(response["Location"]).json()
    assert without_workers["position"] == 0
    assert without_workers["estimated_wait"] is None  # no live worker
    listening = build_worker(["default"], name="w-listening")  # registered in Redis, pops nothing
    listening.register_birth()
    try:
        status = ann.get(response["Location"])
    finally:
        listening.register_death()
    assert status.json()["position"] == 0
    assert status.json()["estimated_wait"] == pytest.approx(0.1)
    assert status["Retry-After"] == "1"
