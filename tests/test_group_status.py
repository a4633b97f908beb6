"""The status endpoint of a group (``groups/<id>/``): who may see it, what it says, and the
Python client polling it against a live server and a real worker."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from django_asyncjobs import JobGroup, enqueue_group
from django_asyncjobs.client import AsyncJobsClient, ClientError, GroupFailed, Timeout
from django_asyncjobs.offloading.access import group_status_token, group_status_url, status_token
from tests.testapp.jobs import add, group_done, raises

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def ann(django_user_model):
    return django_user_model.objects.create_user("ann", password="pw")


def client_of(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def url_of(group_id) -> str:
    return reverse("asyncjobs:group_status", kwargs={"group_id": group_id})


def test_the_owner_sees_counts_progress_and_the_callback_until_it_finished(ann, asyncjobs_worker) -> None:
    group = enqueue_group(add, [(1, 2), (3, 4)], then=group_done.s("done", queue="high"), owner=ann)
    url = group_status_url(group)
    assert "token" not in url  # an owned group: the URL grants nothing by itself
    response = client_of(ann).get(url)
    assert response.status_code == 200
    assert response["Retry-After"] == "1" and response["Cache-Control"] == "no-store"
    data = response.json()
    assert (data["id"], data["name"], data["status"], data["size"]) == (
        str(group.pk),
        "tests.testapp.jobs.add",
        "running",
        2,
    )
    assert data["counts"]["queued"] == 2 and data["progress"] == 0 and data["finished"] is False
    assert data["callback"]["status"] == "scheduled" and data["finished_at"] is None

    asyncjobs_worker("default")  # the group's jobs: the group finishes, its callback is released
    data = client_of(ann).get(url).json()
    assert (data["status"], data["progress"], data["counts"]["succeeded"]) == ("succeeded", 100, 2)
    assert data["callback"]["status"] == "queued" and data["finished"] is False

    asyncjobs_worker("high")
    response = client_of(ann).get(url)
    data = response.json()
    assert data["finished"] is True and data["finished_at"] is not None
    assert "Retry-After" not in response
    callback = data["callback"]
    assert callback["status"] == "succeeded"
    assert client_of(ann).get(callback["result_url"]).json() == {**dict.fromkeys(data["counts"], 0), "succeeded": 2}


@pytest.mark.parametrize("who", ["other user", "anonymous", "wrong token", "a job's token"])
def test_someone_elses_group_and_a_missing_one_get_the_same_404(ann, django_user_model, who) -> None:
    group = enqueue_group(add, [(1, 1)], owner=ann)
    missing = uuid.uuid4()
    client = Client() if who != "other user" else client_of(django_user_model.objects.create_user("bob"))
    token = {"wrong token": "?token=" + "x" * 27, "a job's token": f"?token={status_token(group.pk)}"}.get(who, "")
    client.get("/")  # settle the session's first queries outside the comparison

    def answer(group_id) -> tuple[int, dict[str, str], bytes, int]:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url_of(group_id) + token)
        return response.status_code, dict(response.items()), response.content, len(queries)

    assert answer(group.pk)[0] == 404
    assert answer(group.pk)[1:] == answer(missing)[1:]


def test_an_ownerless_group_is_reached_with_its_token_only(asyncjobs_worker) -> None:
    group = enqueue_group(add, [(1, 1)], then=group_done.s("anon"))
    url = group_status_url(group)
    assert url == f"{url_of(group.pk)}?token={group_status_token(group)}"
    client = Client()
    assert client.get(url_of(group.pk)).status_code == 404
    assert client.get(url).status_code == 200
    asyncjobs_worker("default", "high")
    callback = client.get(url).json()["callback"]
    # An ownerless callback: the group's token holder gets its token URL, and follows it.
    assert "token=" in callback["status_url"]
    assert client.get(callback["result_url"]).status_code == 200


def test_the_view_jobgroup_permission_sees_any_group_without_the_callbacks_token(ann, django_user_model) -> None:
    group = enqueue_group(add, [(1, 1)], then=group_done.s("x"))
    bob = django_user_model.objects.create_user("bob")
    assert client_of(bob).get(url_of(group.pk)).status_code == 404
    bob.user_permissions.add(Permission.objects.get(codename="view_jobgroup"))
    data = client_of(bob).get(url_of(group.pk)).json()
    assert data["size"] == 1
    assert set(data["callback"]) == {"id", "name", "status"}  # the ownerless callback's token is not handed out


def test_a_failed_group_says_why_its_callback_was_cancelled(ann, asyncjobs_worker) -> None:
    group = enqueue_group(raises, [("boom",), ("bang",)], then=group_done.s("never"), owner=ann)
    asyncjobs_worker("default")
    data = client_of(ann).get(group_status_url(group)).json()
    assert (data["status"], data["finished"], data["counts"]["failed"]) == ("failed", True, 2)
    assert data["callback"]["status"] == "cancelled"
    assert "2 of the 2 jobs of group" in data["callback"]["error"]


def test_a_browser_gets_a_page_that_refreshes_until_finished(ann, asyncjobs_worker) -> None:
    group = enqueue_group(add, [(1, 1), (2, 2), (3, 3)], owner=ann)
    page = client_of(ann).get(group_status_url(group), HTTP_ACCEPT="text/html")
    assert page.status_code == 200 and page["Content-Type"].startswith("text/html")
    html = page.content.decode()
    assert '<meta http-equiv="refresh" content="1">' in html
    assert "0 of 3 jobs succeeded" in html
    asyncjobs_worker("default")
    html = client_of(ann).get(group_status_url(group), HTTP_ACCEPT="text/html").content.decode()
    assert "refresh" not in html and "3 of 3 jobs succeeded" in html and "Succeeded" in html


def test_only_safe_methods(ann) -> None:
    group = enqueue_group(add, [(1, 1)], owner=ann)
    assert client_of(ann).post(group_status_url(group)).status_code == 405


# -- the Python client ---------------------------------------------------------------------------


def test_wait_group_polls_to_the_end_reporting_progress(live_server, start_worker) -> None:
    group = enqueue_group(add, [(n, n) for n in range(5)], then=group_done.s("client"))
    seen: list[tuple[str, int]] = []
    client = AsyncJobsClient(live_server.url, poll_min=0.05, poll_max=0.2)
    start_worker("default", "high")
    final = client.wait_group(group_status_url(group), on_progress=lambda g: seen.append((g["status"], g["progress"])))
    assert final["finished"] and final["status"] == "succeeded" and final["counts"]["succeeded"] == 5
    assert final["callback"]["status"] == "succeeded"
    assert seen[-1] == ("succeeded", 100)
    assert JobGroup.objects.get(pk=group.pk).status == "succeeded"


def test_wait_group_raises_group_failed_with_the_document(live_server, start_worker) -> None:
    group = enqueue_group(raises, [("boom",)], then=group_done.s("never"))
    start_worker("default")
    with pytest.raises(GroupFailed) as failed:
        AsyncJobsClient(live_server.url, poll_min=0.05, poll_max=0.2).wait_group(group_status_url(group))
    assert failed.value.group["status"] == "failed"
    assert failed.value.group["callback"]["status"] == "cancelled"


def test_wait_group_times_out_and_refuses_a_url_it_may_not_see(live_server) -> None:
    group = enqueue_group(add, [(1, 1)])  # no worker: it stays queued
    client = AsyncJobsClient(live_server.url, poll_min=0.01, timeout=0, sleep=lambda seconds: None)
    with pytest.raises(Timeout) as timed_out:
        client.wait_group(group_status_url(group))
    assert timed_out.value.job["id"] == str(group.pk)
    with pytest.raises(ClientError, match="answered 404"):
        client.wait_group(url_of(group.pk))  # without its token
