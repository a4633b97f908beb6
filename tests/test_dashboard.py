"""The admin dashboard: access, figures from the database and Redis, charts, failures, queries."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from django_asyncjobs import Job, JobStatus
from django_asyncjobs.admin.figures import (
    DAY,
    DAY_BUCKET,
    HOUR,
    MINUTE,
    chart_series,
    last_line,
    queue_overview,
    recent_failures,
    snapshot,
)
from django_asyncjobs.aggregations.stats import NAME as STATS
from django_asyncjobs.aggregations.windows import run_window
from django_asyncjobs.engine.capacity import forget_states
from django_asyncjobs.models import JobStats
from django_asyncjobs.worker import build_worker
from tests.testapp.jobs import always_fails, noop

pytestmark = pytest.mark.django_db(transaction=True)

DASHBOARD = "admin:django_asyncjobs_dashboard_changelist"
FIGURES = "admin:django_asyncjobs_dashboard_figures"
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(autouse=True)
def fresh_states():
    forget_states()
    yield
    forget_states()


def client_for(django_user_model, name: str = "staff", *codenames: str, **fields) -> Client:
    user = django_user_model.objects.create_user(name, password="pw", **{"is_staff": True, **fields})
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="django_asyncjobs", codename__in=codenames)
    )
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def viewer(django_user_model) -> Client:
    return client_for(django_user_model, "viewer", "view_dashboard")


@pytest.fixture
def superuser_client(django_user_model) -> Client:
    client = Client()
    client.force_login(django_user_model.objects.create_superuser("admin", "admin@example.com", "pw"))
    return client


def stats(queue: str, start: datetime, succeeded: int = 0, failed: int = 0, cancelled: int = 0, **percentiles):
    return JobStats.objects.create(
        queue=queue, period_start=start, succeeded=succeeded, failed=failed, cancelled=cancelled, **percentiles
    )


def this_minute() -> datetime:
    return timezone.now().astimezone(UTC).replace(second=0, microsecond=0)


# -- access ------------------------------------------------------------------------------


def test_anonymous_users_get_the_admin_login() -> None:
    for name in (DASHBOARD, FIGURES):
        response = Client().get(reverse(name))
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))


def test_users_who_are_not_staff_get_the_admin_login(django_user_model) -> None:
    client = client_for(django_user_model, "member", "view_dashboard", is_staff=False)
    response = client.get(reverse(DASHBOARD))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_staff_without_the_permission_get_403(django_user_model) -> None:
    client = client_for(django_user_model, "staff", "view_job", "change_job")
    assert client.get(reverse(DASHBOARD)).status_code == 403
    assert client.get(reverse(FIGURES)).status_code == 403


def test_staff_with_the_permission_and_superusers_see_it(viewer, superuser_client) -> None:
    for client in (viewer, superuser_client):
        response = client.get(reverse(DASHBOARD))
        assert response.status_code == 200
        assert "admin/django_asyncjobs/dashboard.html" in [t.name for t in response.templates]
        html = response.content.decode()
        assert 'class="breadcrumbs"' in html
        assert "django_asyncjobs/dashboard.js" in html and "django_asyncjobs/dashboard.css" in html
        assert [queue.name for queue in response.context["snapshot"].queues] == ["default", "high", "low"]


def test_the_app_index_links_the_dashboard_only_with_the_permission(django_user_model) -> None:
    url = reverse(DASHBOARD)
    app_index = reverse("admin:app_list", args=["django_asyncjobs"])
    without = client_for(django_user_model, "without", "view_job")
    with_it = client_for(django_user_model, "with", "view_job", "view_dashboard")
    for page in (reverse("admin:index"), app_index):
        assert f'href="{url}"' not in without.get(page).content.decode()
        assert f'href="{url}"' in with_it.get(page).content.decode()
    # The dashboard alone opens the app index.
    assert client_for(django_user_model, "only", "view_dashboard").get(app_index).status_code == 200


def test_there_is_nothing_to_add_change_or_delete(superuser_client) -> None:
    html = superuser_client.get(reverse("admin:index")).content.decode()
    assert "/admin/django_asyncjobs/dashboard/add/" not in html
    assert superuser_client.get("/admin/django_asyncjobs/dashboard/1/change/").status_code == 404


# -- figures -----------------------------------------------------------------------------


def test_queue_figures_match_the_database_and_redis(settings, run_worker, redis, viewer) -> None:
    noop.enqueue_many([() for _ in range(3)])
    always_fails.enqueue()
    run_worker("default")  # counts throughput in Redis
    noop.enqueue_many([() for _ in range(5)])  # waiting: the queue is over the limit set below
    settings.ASYNCJOBS = {**settings.ASYNCJOBS, "QUEUE_LIMITS": {"default": {"MAX_DEPTH": 4, "MAX_AGE": 600}}}
    for queue in ("default", "default", "high"):
        Job.objects.create(name="tests.testapp.jobs.noop", queue=queue, status=JobStatus.RUNNING)
    worker = build_worker(["default"])
    worker.register_birth()
    redis.sadd("rq:workers:default", "rq:worker:gone")  # registered, but its hash expired: dead
    minute = this_minute()
    stats("default", minute - 10 * MINUTE, 8, 2, wait_p50=1.0, wait_p95=4.0, run_p50=0.5, run_p95=2.0)
    stats("default", minute - 20 * MINUTE, 30, 0, wait_p50=2.0, wait_p95=10.0, run_p50=0.1, run_p95=0.3)
    stats("default", minute - 40 * MINUTE, 0, 0, 5)  # cancelled before they started: no times
    stats("default", minute - 2 * HOUR, 100, 100, wait_p50=99.0, wait_p95=99.0)  # not in the last hour
    stats("high", minute - 5 * MINUTE, 6, wait_p50=0.5, wait_p95=0.5, run_p50=1.0, run_p95=1.0)

    overview = {queue.name: queue for queue in queue_overview()}

    default = overview["default"]
    assert default.reachable and default.error == ""
    assert (default.depth, default.max_depth, default.max_age) == (5, 4, 600)
    assert default.saturation == pytest.approx(5 / 4)
    assert default.full_reason == "5 waiting, limit 4"
    assert default.oldest_age is not None and default.oldest_age >= 0
    assert default.throughput_per_minute is not None and default.throughput_per_minute > 0
    assert default.estimated_wait == pytest.approx(5 / (default.throughput_per_minute / 60))
    assert (default.running, default.workers) == (2, 1)
    hour = default.last_hour
    assert (hour.succeeded, hour.failed, hour.cancelled, hour.finished) == (38, 2, 5, 45)
    assert hour.per_minute == pytest.approx(45 / 60)
    assert hour.failure_rate == pytest.approx(2 / 40)
    # Each minute's percentile weighted by the jobs that finished in it (the cancelled minute has none).
    assert hour.wait_p50 == pytest.approx((1.0 * 10 + 2.0 * 30) / 40)
    assert hour.wait_p95 == pytest.approx((4.0 * 10 + 10.0 * 30) / 40)
    assert hour.run_p50 == pytest.approx((0.5 * 10 + 0.1 * 30) / 40)
    assert hour.run_p95 == pytest.approx((2.0 * 10 + 0.3 * 30) / 40)

    high = overview["high"]
    assert (high.depth, high.max_depth, high.saturation, high.full_reason) == (0, None, None, "")
    assert (high.running, high.workers, high.estimated_wait) == (1, 0, 0.0)
    assert (high.last_hour.finished, high.last_hour.failure_rate, high.last_hour.wait_p95) == (6, 0.0, 0.5)
    low = overview["low"]
    assert (low.running, low.last_hour.finished, low.last_hour.failure_rate, low.last_hour.wait_p50) == (
        0,
        0,
        None,
        None,
    )

    html = viewer.get(reverse(DASHBOARD)).content.decode()
    row = re.search(r'<tr class="asyncjobs-queue asyncjobs-full" data-queue="default">.*?</tr>', html, re.S)
    assert row is not None
    assert "5 / 4" in row.group() and 'style="width: 100%"' in row.group()
    assert "Full: 5 waiting, limit 4" in row.group()
    assert '<td class="asyncjobs-running">2</td>' in row.group()
    assert '<td class="asyncjobs-workers">1</td>' in row.group()
    assert "5 %" in row.group()  # failure rate
    worker.register_death()


def test_charts_come_from_the_rollups_of_jobs_run_by_a_worker(run_worker) -> None:
    noop.enqueue_many([() for _ in range(3)])
    always_fails.enqueue()
    run_worker("default")
    # Move the jobs into a past minute (wait 1 s, run 2 s) and roll that minute up.
    minute = this_minute() - 5 * MINUTE
    Job.objects.update(
        enqueued_at=minute + timedelta(seconds=1),
        started_at=minute + timedelta(seconds=2),
        finished_at=minute + timedelta(seconds=4),
    )
    run_window(STATS, minute, minute + MINUTE)

    hour = chart_series(HOUR, MINUTE)
    assert len(hour) == 60
    assert hour[-1].start == this_minute() - MINUTE or hour[-1].start == this_minute() - 2 * MINUTE
    point = next(bucket for bucket in hour if bucket.start == minute)
    assert (point.figures.succeeded, point.figures.failed, point.figures.per_minute) == (3, 1, 4.0)
    assert (point.figures.wait_p95, point.figures.run_p95) == pytest.approx((1.0, 2.0))
    assert sum(bucket.figures.finished for bucket in hour) == 4
    day = chart_series(DAY, DAY_BUCKET)
    assert len(day) == 96
    assert sum(bucket.figures.failed for bucket in day) == 1
    assert sum(bucket.figures.finished for bucket in chart_series(HOUR, MINUTE, queue="high")) == 0


def test_chart_buckets_are_aligned_and_the_last_one_is_partial() -> None:
    now = datetime(2024, 5, 1, 12, 7, 30, tzinfo=UTC)
    stats("default", datetime(2024, 5, 1, 12, 6, tzinfo=UTC), 6, 1, wait_p95=3.0)  # the last complete minute
    stats("high", datetime(2024, 5, 1, 12, 6, tzinfo=UTC), 4, 0, wait_p95=8.0)
    stats("default", datetime(2024, 5, 1, 11, 7, tzinfo=UTC), 2)  # the first minute of the hour
    stats("default", datetime(2024, 5, 1, 11, 6, tzinfo=UTC), 50)  # before the hour
    stats("default", datetime(2024, 5, 1, 12, 7, tzinfo=UTC), 50)  # the current minute: not over yet
    stats("default", datetime(2024, 5, 1, 11, 50, tzinfo=UTC), 10, wait_p95=2.0)
    stats("default", datetime(2024, 5, 1, 11, 55, tzinfo=UTC), 30, wait_p95=6.0)
    stats("default", datetime(2024, 4, 30, 12, 14, tzinfo=UTC), 70)  # before the day's first bucket

    hour = chart_series(HOUR, MINUTE, now=now)
    assert [bucket.start for bucket in (hour[0], hour[-1])] == [
        datetime(2024, 5, 1, 11, 7, tzinfo=UTC),
        datetime(2024, 5, 1, 12, 6, tzinfo=UTC),
    ]
    assert (hour[0].figures.finished, hour[-1].figures.finished, hour[-1].figures.failed) == (2, 11, 1)
    assert hour[-1].figures.wait_p95 == pytest.approx((3.0 * 7 + 8.0 * 4) / 11)  # both queues
    assert hour[1].figures.wait_p95 is None  # nothing measured: a gap, not a zero
    only_high = chart_series(HOUR, MINUTE, queue="high", now=now)
    assert (only_high[-1].figures.finished, only_high[-1].figures.wait_p95) == (4, 8.0)

    day = chart_series(DAY, DAY_BUCKET, now=now)
    assert len(day) == 96
    assert day[0].start == datetime(2024, 4, 30, 12, 15, tzinfo=UTC)
    assert day[-1].start == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert day[-1].figures.minutes == 7  # 12:00 to 12:07
    assert day[-1].figures.per_minute == pytest.approx(11 / 7)
    quarter = next(bucket for bucket in day if bucket.start == datetime(2024, 5, 1, 11, 45, tzinfo=UTC))
    assert quarter.figures.finished == 40
    assert quarter.figures.per_minute == pytest.approx(40 / 15)
    assert quarter.figures.wait_p95 == pytest.approx((2.0 * 10 + 6.0 * 30) / 40)
    assert sum(bucket.figures.finished for bucket in day) == 2 + 50 + 40 + 11


# -- charts ------------------------------------------------------------------------------


def test_the_page_shows_six_charts(viewer) -> None:
    html = viewer.get(reverse(DASHBOARD)).content.decode()
    ids = re.findall(r'<title id="(asyncjobs-[a-z0-9-]+)-title">', html)
    assert len(ids) == len(set(ids)) == 6
    svgs = re.findall(r"<svg [^>]*class=\"asyncjobs-chart .*?</svg>", html, re.S)
    assert len(svgs) == 6
    for svg in svgs:
        ET.fromstring(svg)


# -- failures ----------------------------------------------------------------------------


def test_last_line_of_an_error() -> None:
    assert last_line("Traceback (most recent call last):\n  ...\nValueError: bad\n\n") == "ValueError: bad"
    assert last_line("") == ""


def test_recent_failures_show_the_error_and_link_to_the_job(run_worker, superuser_client, viewer) -> None:
    first = always_fails.enqueue()
    run_worker("default")
    second = always_fails.enqueue()
    run_worker("default")
    Job.objects.filter(pk=first.pk).update(finished_at=timezone.now() - HOUR)

    failures = recent_failures()
    assert [f.job_id for f in failures] == [second.pk, first.pk]
    assert failures[0].error == "ValueError: this job always fails"
    assert (failures[0].queue, failures[0].attempts, failures[0].name) == (
        "default",
        1,
        "tests.testapp.jobs.always_fails",
    )
    assert len(recent_failures(limit=1)) == 1

    link = reverse("admin:django_asyncjobs_job_change", args=[second.pk])
    html = superuser_client.get(reverse(DASHBOARD)).content.decode()
    assert f'<a href="{link}">tests.testapp.jobs.always_fails</a>' in html
    assert "<code>ValueError: this job always fails</code>" in html
    # Without permission to see jobs: the error, but no link that would answer 403.
    html = viewer.get(reverse(DASHBOARD)).content.decode()
    assert "ValueError: this job always fails" in html and link not in html


def test_an_error_is_escaped(superuser_client) -> None:
    Job.objects.create(
        name="x", queue="default", status=JobStatus.FAILED, finished_at=timezone.now(), error="E: <script>x</script>"
    )
    html = superuser_client.get(reverse(FIGURES)).content.decode()
    assert "E: &lt;script&gt;x&lt;/script&gt;" in html and "<script>x" not in html


# -- the refresh endpoint ----------------------------------------------------------------


def test_the_figures_fragment_is_the_page_without_its_frame(viewer) -> None:
    page = viewer.get(reverse(DASHBOARD))
    assert f'data-refresh-url="{reverse(FIGURES)}"' in page.content.decode()
    response = viewer.get(reverse(FIGURES), {"queue": "high"})
    assert response.status_code == 200
    assert "no-cache" in response["Cache-Control"] or "no-store" in response["Cache-Control"]
    html = response.content.decode()
    assert "<html" not in html and "breadcrumbs" not in html
    assert 'data-queue="default"' in html and "<svg" in html
    assert response.context["snapshot"].chart_queue == "high"
    assert viewer.get(reverse(FIGURES), {"queue": "nope"}).context["snapshot"].chart_queue is None


# -- cost --------------------------------------------------------------------------------


def add_jobs(count: int) -> None:
    now = timezone.now()
    statuses = [JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.RUNNING, JobStatus.QUEUED]
    Job.objects.bulk_create(
        Job(
            name="tests.testapp.jobs.noop",
            queue=("default", "high", "low")[index % 3],
            status=statuses[index % 4],
            error="ValueError: no" if statuses[index % 4] == JobStatus.FAILED else "",
            finished_at=now - timedelta(seconds=index),
        )
        for index in range(count)
    )
    minute = this_minute()
    JobStats.objects.bulk_create(
        [
            JobStats(queue="default", period_start=minute - (index + 1) * MINUTE, succeeded=index, wait_p95=1.0)
            for index in range(count)
        ],
        ignore_conflicts=True,
    )


def count_queries(client: Client, name: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(reverse(name)).status_code == 200
    return len(queries)


def test_the_number_of_queries_does_not_grow_with_the_jobs(viewer, superuser_client) -> None:
    add_jobs(10)
    small = {(c, n): count_queries(c, n) for c in (viewer, superuser_client) for n in (DASHBOARD, FIGURES)}
    add_jobs(190)
    large = {(c, n): count_queries(c, n) for c in (viewer, superuser_client) for n in (DASHBOARD, FIGURES)}
    assert small == large, (small, large)
    # session + user + permissions, then: running, last hour, two charts, failures, rollup progress.
    assert max(large.values()) <= 10
    with CaptureQueriesContext(connection) as queries:
        snapshot()
    assert len(queries) == 6


# -- Redis trouble -------------------------------------------------------------------------


def test_a_queue_whose_redis_is_unreachable_is_shown_as_such(settings, viewer) -> None:
    settings.RQ_QUEUES = {**settings.RQ_QUEUES, "low": {"URL": "redis://127.0.0.1:1/0"}}
    noop.enqueue()
    Job.objects.create(name="tests.testapp.jobs.noop", queue="low", status=JobStatus.RUNNING)

    overview = {queue.name: queue for queue in queue_overview()}
    low = overview["low"]
    assert not low.reachable
    assert "ConnectionError" in low.error
    assert (low.depth, low.workers, low.saturation, low.estimated_wait, low.full_reason) == (None, None, None, None, "")
    assert low.running == 1  # from the database, which is fine
    assert overview["default"].reachable and overview["default"].depth == 1

    response = viewer.get(reverse(DASHBOARD))
    assert response.status_code == 200
    row = re.search(
        r'<tr class="asyncjobs-queue asyncjobs-unreachable" data-queue="low">.*?</tr>', response.content.decode(), re.S
    )
    assert row is not None and "Redis unreachable" in row.group()
    assert '<td class="asyncjobs-running">1</td>' in row.group()


# -- dashboard.js in a real browser ----------------------------------------------------------


def test_the_page_refreshes_its_figures_and_pauses_while_hidden(
    django_user_model, live_server, page, monkeypatch
) -> None:
    from django.conf import settings

    from django_asyncjobs.admin.dashboard import DashboardAdmin

    monkeypatch.setattr(DashboardAdmin, "refresh_seconds", 1)
    viewer = client_for(django_user_model, "viewer", "view_dashboard")
    session = viewer.cookies[settings.SESSION_COOKIE_NAME].value
    page.context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}])
    fetched: list[str] = []
    page.on("request", lambda request: fetched.append(request.url) if "/figures/" in request.url else None)

    page.goto(f"{live_server.url}{reverse(DASHBOARD)}?queue=high")
    page.evaluate("window.notReloaded = true")
    Job.objects.create(
        name="x", queue="high", status=JobStatus.FAILED, finished_at=timezone.now(), error="RuntimeError: new"
    )
    page.wait_for_function("document.getElementById('asyncjobs-dashboard').textContent.includes('RuntimeError: new')")
    assert page.evaluate("window.notReloaded") is True
    assert fetched[0].endswith("/figures/?queue=high")  # the page's parameters go along

    page.evaluate(
        "Object.defineProperty(document, 'hidden', {value: true, configurable: true});"
        "document.dispatchEvent(new Event('visibilitychange'))"
    )
    page.wait_for_timeout(300)  # a request already under way may still land
    while_hidden = len(fetched)
    page.wait_for_timeout(3000)  # three periods
    assert len(fetched) == while_hidden
    with page.expect_request(lambda request: "/figures/" in request.url):  # at once, when shown again
        page.evaluate(
            "Object.defineProperty(document, 'hidden', {value: false, configurable: true});"
            "document.dispatchEvent(new Event('visibilitychange'))"
        )

    viewer.logout()  # the next refresh is sent to the login page: the page stops refreshing
    page.wait_for_function("document.getElementById('asyncjobs-dashboard').classList.contains('asyncjobs-stale')")
    assert "RuntimeError: new" in page.text_content("#asyncjobs-dashboard")
