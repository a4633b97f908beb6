"""The admin in a real headless Chromium, against a live server and a real worker process.

Skipped, saying why, when no Chromium or no playwright package is found (``.ci/run``
installs both). With ``ASYNCJOBS_SCREENSHOTS=docs/img`` (``make screenshots``) the
pages are also saved as PNG files for the documentation.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from django_asyncjobs import Job, JobStatus, enqueue_group
from tests.conftest import wait_for
from tests.testapp.jobs import add, always_fails, record, reports_progress, steps_when_released
from tests.testapp.models import Call

pytestmark = pytest.mark.django_db(transaction=True)

SCREENSHOTS = os.environ.get("ASYNCJOBS_SCREENSHOTS")
#: A laptop screen: every admin page of ours fits it with Django's sidebar open.
VIEWPORT = {"width": 1280, "height": 800}

#: What scrolls sideways: the page itself and every element whose content is wider than its box
#: and that may scroll (Django's changelist table sits in such a box).
OVERFLOWS = """() => {
  const wide = [];
  const root = document.documentElement;
  if (root.scrollWidth > root.clientWidth) wide.push(`page: ${root.scrollWidth} > ${root.clientWidth}`);
  for (const el of document.querySelectorAll("body *")) {
    const overflow = getComputedStyle(el).overflowX;
    if ((overflow === "auto" || overflow === "scroll") && el.scrollWidth > el.clientWidth + 1) {
      wide.push(`${el.tagName.toLowerCase()}#${el.id}.${el.className}: ${el.scrollWidth} > ${el.clientWidth}`);
    }
  }
  return wide;
}"""


def open_sidebar(page) -> None:
    if not page.is_visible("#nav-sidebar"):
        page.click("#toggle-nav-sidebar")
    page.wait_for_selector("#nav-sidebar", state="visible")


def assert_fits(page) -> None:
    open_sidebar(page)
    assert page.evaluate(OVERFLOWS) == [], page.url


def fully_visible(page, selector: str) -> bool:
    """Every element ``selector`` finds lies inside the viewport's width (none is scrolled away)."""
    return page.eval_on_selector_all(
        selector,
        "els => els.length > 0 && els.every((el) => {"
        " const box = el.getBoundingClientRect();"
        " return box.width > 0 && box.left >= 0 && box.right <= document.documentElement.clientWidth; })",
    )


def screenshot(page, name: str, tmp_path: Path) -> Path:
    """The page as a user of a 1280 px screen sees it: Django's navigation sidebar open."""
    open_sidebar(page)
    folder = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@pytest.fixture
def admin_page(page, live_server, django_user_model):
    django_user_model.objects.create_superuser("admin", "admin@example.com", "secret-pw")
    page.set_viewport_size(VIEWPORT)
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "secret-pw")
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")
    return page


def bar_width(page, job: Job) -> str:
    return page.eval_on_selector(f'[data-job="{job.pk}"] .asyncjobs-progress > span', "el => el.style.width")


def test_progress_bar_moves_while_a_worker_runs_the_job(admin_page, live_server, start_worker, tmp_path) -> None:
    reports_progress.enqueue(4)
    always_fails.enqueue()
    job = steps_when_released.enqueue("moving", 4)
    worker = start_worker("default")
    wait_for(lambda: Job.objects.filter(status=JobStatus.FAILED).exists(), what="the failing job")
    admin_page.goto(f"{live_server.url}/admin/django_asyncjobs/job/")
    assert bar_width(admin_page, job) == "0%"
    for step, width in ((1, "25%"), (2, "50%")):
        Call.objects.create(label=f"moving:{step}")  # let the job take its next step
        admin_page.wait_for_function(
            "([id, width]) => document.querySelector(`[data-job='${id}'] .asyncjobs-progress > span`)"
            ".style.width === width",
            arg=[str(job.pk), width],
        )
    badge = admin_page.text_content(f'[data-job-status="{job.pk}"]')
    assert badge == "Running"
    screenshot(admin_page, "admin-changelist", tmp_path)
    for step in (3, 4):
        Call.objects.create(label=f"moving:{step}")
    admin_page.wait_for_function(
        "id => document.querySelector(`[data-job-status='${id}']`).textContent === 'Succeeded'", arg=str(job.pk)
    )
    assert bar_width(admin_page, job) == "100%"
    worker.terminate()


def test_job_page_and_retry_and_cancel_actions(admin_page, live_server, run_worker, tmp_path) -> None:
    failed = always_fails.enqueue()
    run_worker("default")
    admin_page.goto(f"{live_server.url}/admin/django_asyncjobs/job/{failed.pk}/change/")
    assert "ValueError: this job always fails" in admin_page.text_content(".asyncjobs-traceback")
    assert admin_page.is_visible(".asyncjobs-timeline")
    screenshot(admin_page, "admin-job", tmp_path)

    queued = record.enqueue("never-runs")
    admin_page.goto(f"{live_server.url}/admin/django_asyncjobs/job/")
    admin_page.check(f'input[name="_selected_action"][value="{failed.pk}"]')
    admin_page.select_option('select[name="action"]', "retry_selected")
    admin_page.click('button[name="index"]')
    assert "1 job queued again." in admin_page.text_content(".messagelist")
    assert Job.objects.get(pk=failed.pk).status == JobStatus.QUEUED

    admin_page.check(f'input[name="_selected_action"][value="{queued.pk}"]')
    admin_page.select_option('select[name="action"]', "cancel_selected")
    admin_page.click('button[name="index"]')
    assert "1 job cancelled." in admin_page.text_content(".messagelist")
    assert Job.objects.get(pk=queued.pk).status == JobStatus.CANCELLED
    add.enqueue(1, 1)
    run_worker()
    assert not Call.objects.filter(label="never-runs").exists()
    assert Job.objects.get(pk=failed.pk).attempts == 2


def test_dashboard_shows_what_the_database_and_redis_hold(admin_page, live_server, run_worker, tmp_path) -> None:
    from datetime import timedelta

    from django.db.models import F
    from django.utils import timezone

    from django_asyncjobs.aggregations.stats import NAME as JOB_STATS
    from django_asyncjobs.aggregations.windows import backfill, windows_between
    from django_asyncjobs.templatetags.asyncjobs_dashboard import asyncjobs_percent

    ok = add.enqueue_many([(i, i) for i in range(40)])
    bad = [always_fails.enqueue() for _ in range(4)]
    run_worker("default")
    for minutes, job in enumerate([*ok, *bad], start=2):  # spread over the last hour, then roll up
        shift = timedelta(minutes=minutes % 58 + 2)
        Job.objects.filter(pk=job.pk).update(
            created_at=F("created_at") - shift,
            enqueued_at=F("enqueued_at") - shift,
            started_at=F("started_at") - shift,
            finished_at=F("finished_at") - shift,
        )
    now = timezone.now().replace(second=0, microsecond=0)
    backfill(JOB_STATS, windows_between(JOB_STATS, now - timedelta(hours=1), now))
    waiting = record.enqueue_many([("waiting",)] * 3)  # on "high", no worker: they wait

    admin_page.goto(f"{live_server.url}/admin/django_asyncjobs/dashboard/")
    default = admin_page.locator('tr.asyncjobs-queue[data-queue="default"]')
    high = admin_page.locator('tr.asyncjobs-queue[data-queue="high"]')
    assert high.locator(".asyncjobs-depth .asyncjobs-figure").text_content() == str(len(waiting))
    assert default.locator(".asyncjobs-running").text_content() == "0"
    failure_rate = default.locator("td").nth(7).text_content()
    rate = asyncjobs_percent(len(bad) / (len(ok) + len(bad)))  # the page's own formatting
    assert " ".join(failure_rate.split()) == f"{rate} ({len(bad)})"
    failures = admin_page.locator(".asyncjobs-failures a")
    assert failures.count() == len(bad)
    assert {link.get_attribute("href").rstrip("/").split("/")[-2] for link in failures.all()} == {
        str(job.pk) for job in bad
    }
    assert admin_page.locator(".asyncjobs-chart-figure svg").count() == 6
    screenshot(admin_page, "admin-dashboard", tmp_path)


def test_a_groups_bar_and_badge_move_while_a_worker_runs_its_jobs(admin_page, live_server, start_worker) -> None:
    group = enqueue_group(add, [(n, n) for n in range(4)])
    admin_page.goto(f"{live_server.url}/admin/django_asyncjobs/jobgroup/")
    cell = f'[data-job="{group.pk}"] .asyncjobs-progress > span'
    assert admin_page.eval_on_selector(cell, "el => el.style.width") == "0%"
    start_worker("default")
    admin_page.wait_for_function(
        "id => document.querySelector(`[data-job-status='${id}']`).textContent === 'Succeeded'", arg=str(group.pk)
    )
    assert admin_page.eval_on_selector(cell, "el => el.style.width") == "100%"


def test_every_page_fits_a_1280_px_screen_with_the_sidebar_open(
    admin_page, live_server, run_worker, settings, tmp_path
) -> None:
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.db.models import F
    from django.utils import timezone

    from django_asyncjobs.aggregations.stats import NAME as JOB_STATS
    from django_asyncjobs.aggregations.windows import backfill, windows_between
    from django_asyncjobs.models import Schedule
    from django_asyncjobs.scheduling.declared import sync_declared_schedules

    settings.ASYNCJOBS = {  # the widest queue row: a limit's bar and figures, an age limit
        **settings.ASYNCJOBS,
        "QUEUE_LIMITS": {"high": {"MAX_DEPTH": 1000, "MAX_AGE": 3600}},
    }
    owner = get_user_model().objects.create_user("a.rather.long.username@example.com")
    add.enqueue_many([(i, i) for i in range(5)])
    always_fails.enqueue()
    run_worker("default")
    Job.objects.update(  # minutes of waiting and running, a while ago: the widest figures
        created_at=F("created_at") - timedelta(minutes=12),
        enqueued_at=F("enqueued_at") - timedelta(minutes=12),
        started_at=F("started_at") - timedelta(minutes=6),
        finished_at=F("finished_at") - timedelta(minutes=2),
    )
    reports_progress.enqueue(4)
    queued = [record.enqueue("waits", owner=owner) for _ in range(3)]
    Job.objects.filter(pk=queued[0].pk).update(progress=40, progress_message="40 of 100 followers")
    now = timezone.now().replace(second=0, microsecond=0)
    backfill(JOB_STATS, windows_between(JOB_STATS, now - timedelta(hours=1), now))
    Schedule.objects.create(
        name="tests.nightly_report_for_every_team", job_name="tests.testapp.jobs.add", args=[1, 2],
        cron="30 2 * * 1-5", time_zone="America/Argentina/Buenos_Aires",
    )  # fmt: skip
    sync_declared_schedules()
    enqueue_group(add, [(n, n) for n in range(3)], then=add.s(1), owner=owner)
    Schedule.objects.create(
        name="tests.every_ten_minutes", job_name="tests.testapp.jobs.noop", interval=timedelta(minutes=10)
    )

    pages = {
        "job list": "/admin/django_asyncjobs/job/",
        "job page": f"/admin/django_asyncjobs/job/{queued[0].pk}/change/",
        "dashboard": "/admin/django_asyncjobs/dashboard/",
        "schedules": "/admin/django_asyncjobs/schedule/",
        "aggregation windows": "/admin/django_asyncjobs/aggregationwindow/",
        "job groups": "/admin/django_asyncjobs/jobgroup/",
    }
    wide = {}
    for what, url in pages.items():
        admin_page.goto(f"{live_server.url}{url}")
        open_sidebar(admin_page)
        wide[what] = admin_page.evaluate(OVERFLOWS)
        if what == "schedules":
            screenshot(admin_page, "admin-schedules", tmp_path)
    assert wide == {what: [] for what in pages}
    admin_page.goto(f"{live_server.url}/admin/django_asyncjobs/job/")
    open_sidebar(admin_page)
    assert fully_visible(admin_page, "th.column-progress_display")
    assert fully_visible(admin_page, ".asyncjobs-progress")
