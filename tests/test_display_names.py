"""An offloaded view's jobs are shown, filtered and counted as their view
(``Job.display_name``), not as the one internal job every such request runs."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from django_asyncjobs import Job, JobStatus
from django_asyncjobs.admin.figures import recent_failures
from django_asyncjobs.engine.capacity import forget_states
from django_asyncjobs.offloading.responses import OFFLOADED_VIEW_JOB
from tests.test_metrics import TOKEN, scrape, value
from tests.testapp.jobs import add

pytestmark = pytest.mark.django_db(transaction=True)

ECHO = "tests.testapp.views.echo"
USES_SESSION = "tests.testapp.views.uses_session"
CHANGELIST = "admin:django_asyncjobs_job_changelist"


@pytest.fixture
def admin_client(django_user_model) -> Client:
    client = Client()
    client.force_login(django_user_model.objects.create_superuser("admin", "admin@example.com", "pw"))
    return client


def offload(client: Client, path: str) -> Job:
    response = client.post(path)
    assert response.status_code == 202, response.content
    return Job.objects.get(pk=response.json()["id"])


def test_an_offloaded_request_records_its_view_other_jobs_nothing(admin_client) -> None:
    job = offload(admin_client, "/echo/1/")
    assert (job.name, job.display_name, job.shown_name) == (OFFLOADED_VIEW_JOB, ECHO, ECHO)
    plain = add.enqueue(1, 2)
    assert Job.objects.get(pk=plain.pk).display_name is None
    assert plain.shown_name == add.name


def test_the_admin_lists_filters_and_searches_by_view(admin_client) -> None:
    echo = offload(admin_client, "/echo/1/")
    session = offload(admin_client, "/uses-session/")
    plain = add.enqueue(1, 2)
    page = admin_client.get(reverse(CHANGELIST))
    assert page.status_code == 200
    html = page.content.decode()
    assert ECHO in html and USES_SESSION in html
    assert f"?name={ECHO}" in html  # a choice of the job name filter

    def listed(**query: str) -> set[uuid.UUID]:
        response = admin_client.get(reverse(CHANGELIST), query)
        assert response.status_code == 200
        return {job.pk for job in response.context["cl"].result_list}

    assert listed(name=ECHO) == {echo.pk}
    assert listed(name=add.name) == {plain.pk}
    assert listed(name=OFFLOADED_VIEW_JOB) == {echo.pk, session.pk}
    assert listed(q="views.uses_sess") == {session.pk}
    detail = admin_client.get(reverse("admin:django_asyncjobs_job_change", args=[echo.pk]))
    assert ECHO in detail.content.decode()


def test_the_dashboard_failures_name_the_view(admin_client, run_worker) -> None:
    failed = offload(admin_client, "/uses-session/")  # request.session on a worker: fails
    run_worker()
    assert Job.objects.get(pk=failed.pk).status == JobStatus.FAILED
    (failure,) = recent_failures()
    assert failure.name == USES_SESSION


def test_metrics_count_registered_views_by_view_others_by_job_name(settings, admin_client, run_worker) -> None:
    settings.ASYNCJOBS = {**settings.ASYNCJOBS, "METRICS_TOKEN": TOKEN}
    forget_states()
    offload(admin_client, "/echo/1/")
    forged = offload(admin_client, "/echo/2/")
    Job.objects.filter(pk=forged.pk).update(display_name="made.up.view<script>")  # untrusted: bounded labels
    run_worker()
    samples = scrape()
    assert value(samples, "asyncjobs_jobs_total", queue="default", name=ECHO, status="succeeded") == 1
    internal = value(samples, "asyncjobs_jobs_total", queue="default", name=OFFLOADED_VIEW_JOB, status="succeeded")
    assert internal == 1  # the forged one (it ran: its request is signed; only its label was changed)
    assert not [key for key in samples if ("name", "made.up.view<script>") in key[1]]


def test_the_migration_names_the_offloaded_rows_written_before(subprocess_env, tmp_path: Path) -> None:
    env = {key: value for key, value in subprocess_env.items() if key != "DATABASE_URL"}
    database = tmp_path / "upgrade.sqlite3"
    env["ASYNCJOBS_TEST_SQLITE"] = str(database)

    def manage(*args: str) -> None:
        done = subprocess.run([sys.executable, "-m", "django", *args], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr

    manage("migrate", "-v", "0")
    manage("migrate", "django_asyncjobs", "0007", "-v", "0")
    with sqlite3.connect(database) as connection:
        columns = [row[1] for row in connection.execute("PRAGMA table_info(django_asyncjobs_job)")]
        assert "display_name" not in columns
        for name, args in [(OFFLOADED_VIEW_JOB, f'["{ECHO}", {{}}, "sig"]'), (add.name, "[1, 2]")]:
            values = {column: None for column in columns}
            values.update(
                id=uuid.uuid4().hex, name=name, queue="default", status="succeeded", args=args, kwargs="{}",
                error="", attempts=1, max_attempts=1, failed_attempts="[]", priority=0, progress=0,
                progress_message="", worker="", created_at="2026-01-01 00:00:00",
            )  # fmt: skip
            marks = ", ".join("?" * len(values))
            connection.execute(
                f"INSERT INTO django_asyncjobs_job ({', '.join(values)}) VALUES ({marks})", [*values.values()]
            )
    manage("migrate", "django_asyncjobs", "-v", "0")
    with sqlite3.connect(database) as connection:
        rows = dict(connection.execute("SELECT name, display_name FROM django_asyncjobs_job").fetchall())
    assert rows == {OFFLOADED_VIEW_JOB: ECHO, add.name: None}


def test_the_status_document_names_the_view(admin_client) -> None:
    job = offload(admin_client, "/echo/1/")
    document = admin_client.get(reverse("asyncjobs:status", args=[job.pk]), HTTP_ACCEPT="application/json")
    assert (document.json()["name"], document.json()["display_name"]) == (OFFLOADED_VIEW_JOB, ECHO)
    plain = add.enqueue(1, 2, owner=Job.objects.get(pk=job.pk).owner)
    document = admin_client.get(reverse("asyncjobs:status", args=[plain.pk]), HTTP_ACCEPT="application/json")
    assert document.json()["display_name"] == add.name
