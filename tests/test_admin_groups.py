"""Groups and dependencies in the admin: the group list and page, its live progress, the job
page's workflow fields, and the permissions of each."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from django_asyncjobs import Job, enqueue_group
from django_asyncjobs.models import JobGroup
from tests.testapp.jobs import add, group_done, raises, record

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "admin:django_asyncjobs_jobgroup_changelist"


@pytest.fixture
def admin_client(django_user_model) -> Client:
    client = Client()
    client.force_login(django_user_model.objects.create_superuser("admin", "admin@example.com", "pw"))
    return client


def staff_client(django_user_model, *codenames: str) -> Client:
    user = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="django_asyncjobs", codename__in=codenames)
    )
    client = Client()
    client.force_login(user)
    return client


def page_of(group: JobGroup) -> str:
    return reverse("admin:django_asyncjobs_jobgroup_change", args=[group.pk])


def test_the_group_list_shows_status_size_and_progress(admin_client, asyncjobs_worker) -> None:
    done = enqueue_group(add, [(1, 1), (2, 2)])
    asyncjobs_worker("default")
    waiting = enqueue_group(record, [("a",), ("b",), ("c",), ("d",)])
    Job.objects.filter(group=waiting, group_index=0).update(status="succeeded")
    html = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert str(done.pk)[:8] in html and str(waiting.pk)[:8] in html
    assert f'data-job="{done.pk}" data-status="succeeded"' in html
    assert f'data-job="{waiting.pk}" data-status="running"' in html
    assert '<span class="asyncjobs-progress-text">25%</span>' in html  # 1 of 4 finished
    assert html.count("finished in ") == 1  # the finished group only
    assert "admin_progress.js" in html

    filtered = admin_client.get(reverse(CHANGELIST), {"status": "running"}).content.decode()
    assert str(waiting.pk)[:8] in filtered and str(done.pk)[:8] not in filtered
    by_name = admin_client.get(reverse(CHANGELIST), {"name": "tests.testapp.jobs.add"}).content.decode()
    assert str(done.pk)[:8] in by_name and str(waiting.pk)[:8] not in by_name
    by_id = admin_client.get(reverse(CHANGELIST), {"q": str(waiting.pk)}).content.decode()
    assert str(waiting.pk)[:8] in by_id and str(done.pk)[:8] not in by_id


def test_the_live_progress_endpoint_answers_as_admin_progress_js_reads(
    admin_client, django_user_model, asyncjobs_worker
) -> None:
    group = enqueue_group(add, [(1, 1), (2, 2)])
    url = reverse("admin:django_asyncjobs_jobgroup_progress")
    answer = admin_client.get(url, {"id": [str(group.pk), "not-a-uuid"]}).json()
    assert answer == {"jobs": {str(group.pk): {"status": "running", "label": "Running", "progress": 0, "message": ""}}}
    asyncjobs_worker("default")
    assert admin_client.get(url, {"id": str(group.pk)}).json()["jobs"][str(group.pk)]["progress"] == 100
    assert staff_client(django_user_model).get(url, {"id": str(group.pk)}).status_code == 403


def test_the_group_page_is_read_only_with_counts_callback_and_its_jobs_link(admin_client, asyncjobs_worker) -> None:
    group = enqueue_group(raises, [("boom",), ("bang",)], then=group_done.s("never"))
    asyncjobs_worker("default")
    response = admin_client.get(page_of(group))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="_save"' not in html  # nothing to change
    jobs_url = f"{reverse('admin:django_asyncjobs_job_changelist')}?group__id__exact={group.pk}"
    assert f'href="{jobs_url}"' in html and "2 jobs" in html
    assert f'href="{jobs_url}&amp;status=failed">2</a>' in html
    assert reverse("admin:django_asyncjobs_job_change", args=[group.callback_id]) in html
    assert "asyncjobs-status-cancelled" in html  # the callback, cancelled by the failures
    assert "Failed" in html

    # The link opens the job list filtered to the group's jobs.
    other = add.enqueue(5, 5)
    listed = admin_client.get(jobs_url).content.decode()
    assert all(str(pk)[:8] in listed for pk in group.jobs.values_list("pk", flat=True))
    assert str(other.pk)[:8] not in listed and str(group.callback_id)[:8] not in listed


def test_no_add_no_change_and_only_a_finished_group_may_be_deleted(admin_client, asyncjobs_worker) -> None:
    running = enqueue_group(add, [(1, 1)])
    assert admin_client.get(reverse("admin:django_asyncjobs_jobgroup_add")).status_code == 403
    assert admin_client.post(page_of(running), {"name": "changed"}).status_code == 403
    assert admin_client.get(reverse("admin:django_asyncjobs_jobgroup_delete", args=[running.pk])).status_code == 403
    actions = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert 'value="delete_selected"' not in actions
    asyncjobs_worker("default")
    deleted = admin_client.post(reverse("admin:django_asyncjobs_jobgroup_delete", args=[running.pk]), {"post": "yes"})
    assert deleted.status_code == 302 and not JobGroup.objects.filter(pk=running.pk).exists()
    assert Job.objects.get(name="tests.testapp.jobs.add").group_id is None  # its jobs stay


def test_groups_need_the_view_permission(django_user_model) -> None:
    group = enqueue_group(add, [(1, 1)])
    nobody = staff_client(django_user_model)
    assert nobody.get(reverse(CHANGELIST)).status_code == 403
    assert nobody.get(page_of(group)).status_code == 403
    viewer = Client()
    user = django_user_model.objects.get(username="staff")
    user.user_permissions.add(Permission.objects.get(codename="view_jobgroup"))
    viewer.force_login(user)
    assert viewer.get(reverse(CHANGELIST)).status_code == 200
    assert viewer.get(page_of(group)).status_code == 200


# -- the job page ----------------------------------------------------------------------------------


def test_a_group_job_page_links_its_group_and_a_callback_page_its_group(admin_client) -> None:
    group = enqueue_group(add, [(1, 1), (2, 2)], then=group_done.s("x"))
    second = group.jobs.get(group_index=1)
    html = admin_client.get(reverse("admin:django_asyncjobs_job_change", args=[second.pk])).content.decode()
    assert "Workflow" in html and page_of(group) in html and "job 2 of 2" in html
    callback = admin_client.get(reverse("admin:django_asyncjobs_job_change", args=[group.callback_id]))
    assert page_of(group) in callback.content.decode()


def test_a_waiting_job_page_shows_what_it_waits_for_and_the_other_way(admin_client) -> None:
    first, second = add.enqueue(1, 1), add.enqueue(2, 2)
    last = record.enqueue("after", after=[first, second])
    html = admin_client.get(reverse("admin:django_asyncjobs_job_change", args=[last.pk])).content.decode()
    assert "waiting for 2 jobs" in html
    assert reverse("admin:django_asyncjobs_job_change", args=[first.pk]) in html
    assert reverse("admin:django_asyncjobs_job_change", args=[second.pk]) in html
    before = admin_client.get(reverse("admin:django_asyncjobs_job_change", args=[first.pk])).content.decode()
    assert "Waited for by" in before and reverse("admin:django_asyncjobs_job_change", args=[last.pk]) in before


def test_a_plain_job_page_has_no_workflow_section(admin_client) -> None:
    plain = add.enqueue(1, 1)
    html = admin_client.get(reverse("admin:django_asyncjobs_job_change", args=[plain.pk])).content.decode()
    assert "Workflow" not in html


def test_the_job_list_columns_are_unchanged(admin_client) -> None:
    enqueue_group(add, [(1, 1)])
    html = admin_client.get(reverse("admin:django_asyncjobs_job_changelist")).content.decode()
    assert "column-group_link" not in html
