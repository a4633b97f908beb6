"""The Job and Schedule admin: pages, filters, search, actions and their permissions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from django_asyncjobs import Job, JobStatus
from django_asyncjobs.aggregations.declarations import get_aggregation
from django_asyncjobs.engine.operations import retry_jobs
from django_asyncjobs.models import Schedule
from django_asyncjobs.scheduling.declared import sync_declared_schedules
from tests.testapp.jobs import add, always_fails, record, reports_progress, whoami
from tests.testapp.models import Call

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "admin:django_asyncjobs_job_changelist"


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("admin", "admin@example.com", "pw")


@pytest.fixture
def admin_client(superuser) -> Client:
    client = Client()
    client.force_login(superuser)
    return client


def staff_client(django_user_model, *codenames: str) -> Client:
    user = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="django_asyncjobs", codename__in=codenames)
    )
    client = Client()
    client.force_login(user)
    return client


def act(client: Client, action: str, jobs, url: str = CHANGELIST):
    return client.post(reverse(url), {"action": action, "_selected_action": [str(job.pk) for job in jobs]}, follow=True)


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


# -- the job list and page --------------------------------------------------------------


def test_changelist_shows_jobs_with_their_progress(admin_client, run_worker) -> None:
    done = reports_progress.enqueue(4)
    failed = always_fails.enqueue()
    run_worker()
    queued = add.enqueue(1, 2)
    response = admin_client.get(reverse(CHANGELIST))
    assert response.status_code == 200
    html = response.content.decode()
    for job in (done, failed, queued):
        assert str(job.pk)[:8] in html
    assert 'class="asyncjobs-progress"' in html
    assert "asyncjobs-status-failed" in html and "asyncjobs-status-succeeded" in html
    assert 'value="delete_selected"' not in html  # the stock action would delete running jobs


def test_filters_and_search(admin_client, run_worker) -> None:
    failed = always_fails.enqueue()
    run_worker()
    other = record.enqueue("x")
    url = reverse(CHANGELIST)
    by_status = admin_client.get(url, {"status__exact": "failed"}).context["cl"].result_list
    assert list(by_status) == [failed]
    by_queue = admin_client.get(url, {"queue": "high"}).context["cl"].result_list
    assert list(by_queue) == [other]
    by_name = admin_client.get(url, {"name": always_fails.name}).context["cl"].result_list
    assert list(by_name) == [failed]
    by_id = admin_client.get(url, {"q": str(other.pk)}).context["cl"].result_list
    assert list(by_id) == [other]
    by_name_search = admin_client.get(url, {"q": always_fails.name}).context["cl"].result_list
    assert list(by_name_search) == [failed]
    assert list(admin_client.get(url, {"q": "ALWAYS_fails"}).context["cl"].result_list) == [failed]
    assert list(admin_client.get(url, {"q": "nothing-like-it"}).context["cl"].result_list) == []


def test_search_by_owner_and_date_hierarchy(admin_client, superuser, run_worker) -> None:
    from django.db.models import F

    mine = add.enqueue(1, 1, owner=superuser)
    old = add.enqueue(2, 2)
    Job.objects.filter(pk=old.pk).update(created_at=F("created_at") - timedelta(days=40))
    url = reverse(CHANGELIST)
    assert list(admin_client.get(url, {"q": "ADMIN"}).context["cl"].result_list) == [mine]
    page = admin_client.get(url)
    hierarchy = page.context["cl"].date_hierarchy
    assert hierarchy == "created_at"
    html = page.content.decode()
    now, then = timezone.localtime(mine.created_at), timezone.localtime(Job.objects.get(pk=old.pk).created_at)
    months = {(then.year, then.month), (now.year, now.month)}
    for year, month in months:  # every month from the first job to the last
        assert f"created_at__month={month}" in html or f"created_at__year={year}" in html
    day = admin_client.get(url, {"created_at__year": now.year, "created_at__month": now.month})
    assert f"created_at__day={now.day}" in day.content.decode()
    assert list(day.context["cl"].result_list) == [mine]


def test_job_page_is_read_only_with_the_details(admin_client, superuser, run_worker) -> None:
    job = always_fails.enqueue(owner=superuser)
    run_worker()
    url = reverse("admin:django_asyncjobs_job_change", args=[job.pk])
    response = admin_client.get(url)
    assert response.status_code == 200
    html = response.content.decode()
    assert "ValueError: this job always fails" in html  # the traceback
    assert 'class="asyncjobs-timeline"' in html and "started" in html and "finished" in html
    assert reverse("admin:auth_user_change", args=[superuser.pk]) in html  # owner link
    assert 'name="_save"' not in html
    assert admin_client.post(url, {"name": "changed"}).status_code == 403
    assert Job.objects.get(pk=job.pk).name == always_fails.name
    assert admin_client.get(reverse("admin:django_asyncjobs_job_add")).status_code == 403


def test_job_name_filter_lists_the_names_that_have_jobs(admin_client) -> None:
    add.enqueue(1, 1)
    html = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert f"?name={add.name}" in html
    assert f"?name={whoami.name}" not in html  # registered, but no job of it
    chosen = admin_client.get(reverse(CHANGELIST), {"name": whoami.name}).content.decode()
    assert f"?name={whoami.name}" in chosen  # the one chosen stays listed


def test_job_page_links_to_its_schedule(admin_client) -> None:
    schedule = Schedule.objects.create(name="nightly", job_name=add.name, args=[1, 2], cron="0 3 * * *")
    from django_asyncjobs.scheduling.firing import run_schedule_now

    job = run_schedule_now(schedule)
    html = admin_client.get(reverse("admin:django_asyncjobs_job_change", args=[job.pk])).content.decode()
    assert reverse("admin:django_asyncjobs_schedule_change", args=[schedule.pk]) in html


# -- actions ----------------------------------------------------------------------------


def test_retry_action_runs_failed_jobs_again(admin_client, run_worker) -> None:
    flaky_job = always_fails.enqueue()
    ok = add.enqueue(1, 1)
    run_worker()
    response = act(admin_client, "retry_selected", [flaky_job, ok])
    assert messages_of(response) == ["1 job queued again, 1 skipped: not failed or cancelled (succeeded)."]
    row = Job.objects.get(pk=flaky_job.pk)
    assert (row.status, row.max_attempts, row.finished_at) == (JobStatus.QUEUED, 2, None)
    run_worker()
    row.refresh_from_db()
    assert (row.status, row.attempts) == (JobStatus.FAILED, 2)


def test_two_operators_retrying_at_once_queue_a_job_once(run_worker, redis) -> None:
    job = always_fails.enqueue()
    run_worker()
    stale_selection = Job.objects.filter(pk=job.pk)
    first, second = retry_jobs(stale_selection), retry_jobs(Job.objects.filter(pk=job.pk))
    assert (first.done, second.done) == (1, 0)
    assert dict(second.skipped) == {"not failed or cancelled (queued)": 1}
    assert redis.llen("rq:queue:default") == 1


def test_retry_respects_back_pressure(settings, run_worker) -> None:
    job = always_fails.enqueue()
    run_worker()
    add.enqueue(1, 1)
    settings.ASYNCJOBS = {
        **settings.ASYNCJOBS,
        "QUEUE_LIMITS": {"default": {"MAX_DEPTH": 1}},
        "BACKPRESSURE_CACHE_SECONDS": 0,
    }
    report = retry_jobs(Job.objects.filter(pk=job.pk))
    assert report.done == 0
    assert "on queue 'default', which is full" in report.describe_skipped()
    assert Job.objects.get(pk=job.pk).status == JobStatus.FAILED


def test_cancel_action(admin_client, run_worker) -> None:
    queued = record.enqueue("never")
    done = add.enqueue(1, 1)
    run_worker("default")
    response = act(admin_client, "cancel_selected", [queued, done])
    assert messages_of(response) == ["1 job cancelled, 1 skipped: already finished (succeeded)."]
    run_worker()
    assert Job.objects.get(pk=queued.pk).status == JobStatus.CANCELLED
    assert not Call.objects.filter(label="never").exists()


def test_action_messages_count_every_selected_row(admin_client, run_worker) -> None:
    queued = [record.enqueue(f"never-{i}") for i in range(5)]
    done, failed = add.enqueue(1, 1), always_fails.enqueue()
    run_worker("default")
    gone = add.enqueue(2, 2)
    Job.objects.filter(pk=gone.pk).delete()  # selected on the page, deleted before the action ran
    response = act(admin_client, "cancel_selected", [*queued, done, failed, gone])
    assert messages_of(response) == [
        "5 jobs cancelled, 3 skipped: 1 already finished (failed); 1 already finished (succeeded); "
        "1 gone (deleted meanwhile)."
    ]
    response = act(admin_client, "retry_selected", [done])
    assert messages_of(response) == ["0 jobs queued again, 1 skipped: not failed or cancelled (succeeded)."]


def test_push_again_action_recovers_a_lost_message(admin_client, redis, run_worker) -> None:
    job = add.enqueue(2, 2)
    redis.flushall()
    response = act(admin_client, "push_selected_again", [job])
    assert messages_of(response) == ["1 job pushed again."]
    run_worker()
    assert Job.objects.get(pk=job.pk).result == 4


def test_delete_action_keeps_unfinished_jobs(admin_client, run_worker) -> None:
    done = add.enqueue(1, 1)
    run_worker()
    queued = add.enqueue(2, 2)
    response = act(admin_client, "delete_selected_finished", [done, queued])
    assert messages_of(response) == ["1 job deleted, 1 skipped: not finished (queued)."]
    assert list(Job.objects.values_list("pk", flat=True)) == [queued.pk]


def test_actions_need_their_permission(django_user_model, run_worker) -> None:
    job = always_fails.enqueue()
    run_worker()
    viewer = staff_client(django_user_model, "view_job")
    page = viewer.get(reverse(CHANGELIST))
    assert page.status_code == 200
    assert "retry_selected" not in page.content.decode()
    act(viewer, "retry_selected", [job])
    assert Job.objects.get(pk=job.pk).status == JobStatus.FAILED

    django_user_model.objects.filter(username="staff").delete()
    operator = staff_client(django_user_model, "view_job", "change_job")
    html = operator.get(reverse(CHANGELIST)).content.decode()
    assert "retry_selected" in html and "delete_selected_finished" not in html
    act(operator, "retry_selected", [job])
    assert Job.objects.get(pk=job.pk).status == JobStatus.QUEUED


def test_staff_without_permission_cannot_see_jobs(django_user_model) -> None:
    client = staff_client(django_user_model)
    assert client.get(reverse(CHANGELIST)).status_code == 403


# -- schedules --------------------------------------------------------------------------


def test_schedule_list_shows_the_next_runs_and_last_outcome(admin_client, run_worker) -> None:
    schedule = Schedule.objects.create(name="every-5", job_name=add.name, args=[1, 1], interval=timedelta(minutes=5))
    from django_asyncjobs.scheduling.firing import run_schedule_now

    run_schedule_now(schedule)
    run_worker()
    html = admin_client.get(reverse("admin:django_asyncjobs_schedule_changelist")).content.decode()
    first = timezone.localtime(Schedule.objects.get(pk=schedule.pk).next_run_at)
    for step in range(3):
        assert (first + step * timedelta(minutes=5)).strftime("%Y-%m-%d %H:%M:%S") in html
    assert "every 5m" in html
    assert "asyncjobs-status-succeeded" in html


def test_schedule_list_shows_the_aggregations_declared_in_code(admin_client) -> None:
    from django_asyncjobs.aggregations.windows import run_window

    since, until = get_aggregation("tests.inline").last_completed()
    run_window("tests.inline", since, until)
    response = admin_client.get(reverse("admin:django_asyncjobs_schedule_changelist"))
    rows = {agg.name: agg for agg in response.context["declared_aggregations"]}
    assert {"tests.hourly", "tests.inline", "tests.async_daily"} <= set(rows)
    assert (rows["tests.hourly"].every, rows["tests.hourly"].latest) == ("1h", None)
    assert rows["tests.inline"].latest.status == "done" and rows["tests.inline"].runs == "in the scheduler"
    html = response.content.decode()
    windows = reverse("admin:django_asyncjobs_aggregationwindow_changelist")
    assert f'<a href="{windows}?name=tests.hourly">tests.hourly</a>' in html
    assert "Aggregations declared in code" in html


def test_schedule_form_shows_clear_errors(admin_client) -> None:
    response = admin_client.post(
        reverse("admin:django_asyncjobs_schedule_add"),
        {
            "name": "bad",
            "job_name": "no.such.job",
            "args": "[]",
            "kwargs": "{}",
            "cron": "61 * * * *",
            "misfire_policy": "skip",
            "enabled": "on",
        },
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "a field is out of range" in errors["cron"][0]
    assert "No job is registered as 'no.such.job'" in errors["job_name"][0]
    assert not Schedule.objects.exists()


def test_schedule_declared_in_code_can_only_be_switched(admin_client) -> None:
    sync_declared_schedules()
    declared = Schedule.objects.get(declared_in_code=True)
    url = reverse("admin:django_asyncjobs_schedule_change", args=[declared.pk])
    form = admin_client.get(url).context["adminform"].form
    assert list(form.fields) == ["enabled"]
    admin_client.post(url, {"enabled": ""})
    declared.refresh_from_db()
    assert declared.enabled is False
    response = admin_client.get(reverse("admin:django_asyncjobs_schedule_delete", args=[declared.pk]), follow=True)
    assert response.redirect_chain == [(url, 302)]
    assert messages_of(response)[-1:] == [  # after the one of the change above
        f"1 schedule not deleted: {declared.name} is declared in code (@job(schedule=...) or ASYNCJOBS['SCHEDULES']) "
        "and would come back at the next scheduler start. Remove it from the code, or switch it off here (Enabled)."
    ]
    assert admin_client.post(reverse("admin:django_asyncjobs_schedule_delete", args=[declared.pk]), {"post": "yes"})
    assert Schedule.objects.filter(pk=declared.pk).exists()


def test_deleting_selected_schedules_keeps_those_declared_in_code_and_says_why(admin_client) -> None:
    sync_declared_schedules()
    declared = Schedule.objects.get(declared_in_code=True)
    mine = Schedule.objects.create(name="mine", job_name=add.name, args=[1, 2], cron="0 3 * * *")
    changelist = "admin:django_asyncjobs_schedule_changelist"
    confirm = act(admin_client, "delete_selected", [declared, mine], url=changelist)
    assert f"{declared.name} is declared in code" in messages_of(confirm)[0]
    assert [str(obj) for obj in confirm.context["queryset"]] == ["mine"]  # what the confirmation lists
    done = admin_client.post(
        reverse(changelist),
        {"action": "delete_selected", "_selected_action": [str(declared.pk), str(mine.pk)], "post": "yes"},
        follow=True,
    )
    assert "Successfully deleted 1 schedule." in messages_of(done)
    assert list(Schedule.objects.values_list("name", flat=True)) == [declared.name]


def test_run_now_action(admin_client, run_worker) -> None:
    schedule = Schedule.objects.create(name="adhoc", job_name=record.name, args=["adhoc"], cron="0 3 * * *")
    response = act(admin_client, "run_now", [schedule], url="admin:django_asyncjobs_schedule_changelist")
    assert messages_of(response) == ["1 schedule run now."]
    run_worker()
    assert Call.objects.filter(label="adhoc").count() == 1


def test_progress_endpoint_for_the_live_bars(admin_client, django_user_model, run_worker) -> None:
    done = reports_progress.enqueue(4)
    run_worker()
    queued = add.enqueue(1, 1)
    url = reverse("admin:django_asyncjobs_job_progress")
    data = admin_client.get(url, {"id": [str(done.pk), str(queued.pk), "not-a-uuid"]}).json()
    assert data["jobs"] == {
        str(done.pk): {"status": "succeeded", "label": "Succeeded", "progress": 100, "message": "step 4 of 4"},
        str(queued.pk): {"status": "queued", "label": "Queued", "progress": 0, "message": ""},
    }
    page = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert f'data-job="{queued.pk}" data-status="queued" data-url="{url}"' in page
    assert "django_asyncjobs/admin_progress.js" in page
    assert staff_client(django_user_model).get(url).status_code == 403


def test_deleting_a_finished_job_from_its_page(admin_client, run_worker) -> None:
    done = add.enqueue(1, 1)
    run_worker()
    url = reverse("admin:django_asyncjobs_job_delete", args=[done.pk])
    assert admin_client.post(url, {"post": "yes"}).status_code == 302
    assert not Job.objects.filter(pk=done.pk).exists()
    queued = add.enqueue(2, 2)
    assert admin_client.get(reverse("admin:django_asyncjobs_job_delete", args=[queued.pk])).status_code == 403
