"""The Prometheus metrics view: real jobs on a real burst worker, then a scrape parsed with
prometheus_client's own parser; access rules; bounded labels; the families defined once."""

from __future__ import annotations

import importlib
import json
import re
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from django_asyncjobs import Job, JobStatus
from django_asyncjobs.engine.capacity import forget_states
from django_asyncjobs.engine.tallies import BUCKETS, OTHER_NAME
from django_asyncjobs.exceptions import MetricsUnavailable, QueueFull
from django_asyncjobs.metrics import families
from django_asyncjobs.models import Schedule
from django_asyncjobs.scheduling.firing import fire_due_schedules
from django_asyncjobs.scheduling.recovery import recover
from django_asyncjobs.times.clock import database_now
from tests.conftest import wait_for
from tests.testapp.jobs import add, flaky, raises, record, sleeps_on_first_attempt

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "a-token-for-the-scraper-0123456789"
DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.fixture(autouse=True)
def token(settings):
    settings.ASYNCJOBS = {**settings.ASYNCJOBS, "METRICS_TOKEN": TOKEN}
    forget_states()
    yield
    forget_states()


def scrape(client: Client | None = None, **headers: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of one scrape: (sample name, sorted labels) -> value."""
    client = client or Client()
    response = client.get("/metrics/", headers=headers or {"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, sample: str, /, **labels: str) -> float | None:
    return samples.get((sample, tuple(sorted(labels.items()))))


def test_jobs_attempts_and_histograms_after_real_jobs(run_worker) -> None:
    add.enqueue_many([(1, 1), (2, 2), (3, 3)])
    raises.enqueue("boom")
    flaky.enqueue("metrics-flaky", 1)  # fails once, retried at once (RETRY_BACKOFF 0), then succeeds
    run_worker("default")
    assert Job.objects.filter(status=JobStatus.SUCCEEDED).count() == 4

    samples = scrape()

    add_name, raises_name, flaky_name = add.name, raises.name, flaky.name
    assert value(samples, "asyncjobs_jobs_total", queue="default", name=add_name, status="succeeded") == 3
    assert value(samples, "asyncjobs_jobs_total", queue="default", name=raises_name, status="failed") == 1
    assert value(samples, "asyncjobs_jobs_total", queue="default", name=flaky_name, status="succeeded") == 1
    assert value(samples, "asyncjobs_jobs_total", queue="default", name=flaky_name, status="failed") is None
    assert value(samples, "asyncjobs_attempts_total", queue="default", name=flaky_name, outcome="retried") == 1
    assert value(samples, "asyncjobs_attempts_total", queue="default", name=flaky_name, outcome="succeeded") == 1
    assert value(samples, "asyncjobs_attempts_total", queue="default", name=raises_name, outcome="failed") == 1
    # Every attempt waited and ran: 3 + 1 + 2 attempts.
    assert value(samples, "asyncjobs_wait_seconds_count", queue="default") == 6
    assert value(samples, "asyncjobs_wait_seconds_bucket", queue="default", le="+Inf") == 6
    assert value(samples, "asyncjobs_run_seconds_count", queue="default", name=add_name) == 3
    assert value(samples, "asyncjobs_run_seconds_count", queue="default", name=flaky_name) == 2
    buckets = [
        value(samples, "asyncjobs_run_seconds_bucket", queue="default", name=add_name, le=repr(float(b)))
        for b in BUCKETS
    ]
    assert buckets == sorted(buckets) and buckets[-1] == 3  # cumulative, all no-ops well under an hour
    assert value(samples, "asyncjobs_run_seconds_sum", queue="default", name=add_name) >= 0
    assert value(samples, "asyncjobs_queue_depth", queue="default") == 0
    assert value(samples, "asyncjobs_queue_running_jobs", queue="default") == 0
    assert value(samples, "asyncjobs_redis_up", queue="default") == 1
    # Nothing ran on "high": its counters are absent, its gauges present.
    assert value(samples, "asyncjobs_queue_depth", queue="high") == 0
    assert not [key for key in samples if key[0] == "asyncjobs_jobs_total" and ("queue", "high") in key[1]]


def test_depth_oldest_age_and_workers_without_a_worker() -> None:
    add.enqueue_many([(1, 1), (2, 2)])
    add.enqueue(3, 3, queue="high")

    samples = scrape()

    assert value(samples, "asyncjobs_queue_depth", queue="default") == 2
    assert value(samples, "asyncjobs_queue_depth", queue="high") == 1
    assert value(samples, "asyncjobs_queue_oldest_age_seconds", queue="default") >= 0
    assert value(samples, "asyncjobs_queue_workers", queue="default") == 0
    assert value(samples, "asyncjobs_backpressure_saturated", queue="default") == 0
    assert value(samples, "asyncjobs_backpressure_max_depth", queue="default") is None  # no limit set


def test_refusals_by_the_middleware_and_by_enqueue_are_counted(settings) -> None:
    settings.ASYNCJOBS = {**settings.ASYNCJOBS, "QUEUE_LIMITS": {"default": {"MAX_DEPTH": 2}}}
    add.enqueue_many([(1, 1), (2, 2)])
    forget_states()
    assert Client().post("/echo/1/").status_code == 503
    assert Client().post("/echo/2/").status_code == 503
    with pytest.raises(QueueFull):
        add.enqueue(3, 3)

    samples = scrape()

    assert value(samples, "asyncjobs_backpressure_refused_total", queue="default", where="middleware") == 2
    assert value(samples, "asyncjobs_backpressure_refused_total", queue="default", where="enqueue") == 1
    assert value(samples, "asyncjobs_backpressure_saturated", queue="default") == 1
    assert value(samples, "asyncjobs_backpressure_max_depth", queue="default") == 2
    # Nothing finished yet: the wait is unknown, so the estimate is absent rather than made up.
    assert value(samples, "asyncjobs_backpressure_estimated_wait_seconds", queue="default") is None


def test_a_name_outside_the_registry_is_counted_as_other() -> None:
    job = add.enqueue(1, 1)
    Job.objects.filter(pk=job.pk).update(name="made.up.by_someone<script>")
    job.refresh_from_db()
    assert job.cancel()

    samples = scrape()

    assert value(samples, "asyncjobs_jobs_total", queue="default", name=OTHER_NAME, status="cancelled") == 1
    assert not [key for key in samples if ("name", "made.up.by_someone<script>") in key[1]]


def test_recovery_counts_lost_jobs_and_workers(start_worker, run_worker) -> None:
    job = sleeps_on_first_attempt.enqueue("metrics-lost", max_attempts=2)
    process = start_worker("default")
    wait_for(lambda: Job.objects.get(pk=job.pk).status == JobStatus.RUNNING, what="the job to start")
    process.kill()
    process.wait()
    assert recover(heartbeat_timeout=0).retried == [str(job.pk)]
    run_worker("default")

    samples = scrape()

    name = sleeps_on_first_attempt.name
    assert value(samples, "asyncjobs_recovery_lost_jobs_total", queue="default") == 1
    assert value(samples, "asyncjobs_recovery_lost_workers_total", queue="default") == 1
    assert value(samples, "asyncjobs_attempts_total", queue="default", name=name, outcome="retried") == 1
    assert value(samples, "asyncjobs_jobs_total", queue="default", name=name, status="succeeded") == 1
    # The lost attempt's end is unknown: only the attempt that ran to its end is in the run time.
    assert value(samples, "asyncjobs_run_seconds_count", queue="default", name=name) == 1


def test_recovery_counts_messages_pushed_again(redis) -> None:
    add.enqueue_many([(1, 1), (2, 2)])
    redis.flushall()
    assert len(recover(grace=0).requeued) == 2

    assert value(scrape(), "asyncjobs_recovery_repushed_total", queue="default") == 2


def test_schedule_runs_and_misses_are_counted() -> None:
    t0 = database_now().replace(second=0, microsecond=0) - timedelta(days=1)
    schedule = Schedule(name="metrics-cron", job_name=record.name, args=["metrics"], cron="* * * * *")
    schedule.save()
    Schedule.objects.filter(pk=schedule.pk).update(next_run_at=t0)
    # 5 min 30 s late: 5 runs missed (skipped), the one 30 s late fires.
    report = fire_due_schedules(now=t0 + timedelta(minutes=5, seconds=30))
    assert report.fired == ["metrics-cron"] and report.missed == {"metrics-cron": 5}

    samples = scrape()

    assert value(samples, "asyncjobs_schedule_runs_total", schedule="metrics-cron") == 1
    assert value(samples, "asyncjobs_schedule_missed_total", schedule="metrics-cron") == 5


def test_access(settings) -> None:
    assert Client().get("/metrics/").status_code == 401
    assert Client().get("/metrics/")["WWW-Authenticate"].startswith("Bearer")
    assert Client().get("/metrics/", headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert Client().get("/metrics/", headers={"Authorization": f"Bearer {TOKEN}x"}).status_code == 403
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    client = Client()
    client.force_login(user)
    assert client.get("/metrics/").status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="view_dashboard"))
    client.force_login(User.objects.get(pk=user.pk))
    scrape(client, X_Unused="1")
    # The address allow-list (the test client's REMOTE_ADDR is 127.0.0.1).
    settings.ASYNCJOBS = {**settings.ASYNCJOBS, "METRICS_ALLOWED_IPS": ["10.0.0.0/8"]}
    assert Client().get("/metrics/").status_code == 401
    settings.ASYNCJOBS = {**settings.ASYNCJOBS, "METRICS_ALLOWED_IPS": ["127.0.0.0/8"]}
    assert Client().get("/metrics/").status_code == 200
    # No token configured: no bearer token opens it.
    settings.ASYNCJOBS = {**settings.ASYNCJOBS, "METRICS_TOKEN": None, "METRICS_ALLOWED_IPS": []}
    assert Client().get("/metrics/", headers={"Authorization": "Bearer "}).status_code == 401
    assert Client().get("/metrics/", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 403
    assert Client().post("/metrics/", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 405


def test_every_family_is_defined_once_with_help_and_exposed() -> None:
    names = [family.name for family in families.FAMILIES]
    assert len(names) == len(set(names))
    assert all(family.name.startswith("asyncjobs_") and family.help for family in families.FAMILIES)
    assert all(f.name.endswith("_total") == (f.kind == "counter") for f in families.FAMILIES)
    defined = {
        getattr(families, attr) for attr in dir(families) if isinstance(getattr(families, attr), families.Family)
    }
    assert defined == set(families.FAMILIES)


def test_the_grafana_dashboard_uses_only_metrics_that_exist() -> None:
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert len(exprs) >= 8
    used = {name for expr in exprs for name in re.findall(r"\basyncjobs_[a-z_]+", expr)}
    assert used and used <= families.sample_names(), used - families.sample_names()
    monitoring = (DOCS / "monitoring.md").read_text()
    named = set(re.findall(r"`(asyncjobs_[a-z_]+)", monitoring)) - {"asyncjobs_worker"}  # the command
    known = families.sample_names() | {family.name for family in families.FAMILIES}
    assert named <= known, named - known
    assert all(family.name in monitoring for family in families.FAMILIES)


def test_without_prometheus_client_the_view_says_what_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    for module in [
        name for name in sys.modules if name.startswith(("prometheus_client.", "django_asyncjobs.metrics."))
    ]:
        monkeypatch.delitem(sys.modules, module)
    with pytest.raises(MetricsUnavailable, match=r"django-asyncjobs\[metrics\]"):
        importlib.import_module("django_asyncjobs.metrics.urls")
    importlib.import_module("django_asyncjobs.metrics.families")  # the definitions need no client
