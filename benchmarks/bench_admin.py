"""Admin benchmark: the job changelist, detail page, schedule changelist and dashboard with a big job table.

Run it with ``make bench-admin`` or::

    .venv/bin/python benchmarks/bench_admin.py [--db postgres|sqlite|both] [--rows N] [--small-rows N] [--repeat N]

For each database, in its own child process (``DJANGO_SETTINGS_MODULE=benchmarks.admin_settings``),
the job table is seeded twice, first with ``--small-rows`` rows (default 10,000), then with
``--rows`` (default 1,000,000), and after each seed every admin page is requested in-process
with Django's test ``Client``, logged in as a superuser (DEBUG=False): a warm-up, then
``--repeat`` rounds in which the pages take turns (in an order that rotates), so that whatever
else the machine does slows them alike. Median and p95 render times are reported, and from a
separate, untimed request per page the SQL statements (``CaptureQueriesContext``, with the time
of each) and Redis round trips: the same counts at both sizes show that they do not grow with
the table. For a page over the 300 ms target (or with a statement over 50 ms) its slowest
statements are run again under ``EXPLAIN (ANALYZE, BUFFERS)`` (``EXPLAIN QUERY PLAN`` on SQLite)
and reported with their plans.

Seeding is server-side on PostgreSQL (one ``INSERT ... SELECT FROM generate_series`` per
100,000 rows) and ``executemany`` in big batches on SQLite, from the same distribution (see
``seed_jobs_postgres`` and ``job_row``): rows in time order over 30 days, mostly succeeded,
some failed with a traceback, a few cancelled, and among the newest rows some queued, running
and scheduled; eight job names on five queues; 40 owners; 10% of the jobs from 12 schedules.
Then the last day of per-minute ``JobStats`` is rolled up by the app's own aggregation
(``backfill``), and the tables are vacuumed and analyzed, as autovacuum would have done.

The dashboard pages are found by name: every URL name under ``admin:`` that contains ``asyncjobs`` and
``dashboard`` and reverses without arguments (``--extra-url LABEL=PATH`` adds any other page).
While the dashboard does not exist, the report says so; rerun this benchmark once it does.

As ``bench_core.py`` does, one private Redis server is started for the run (never the
machine's 6379), the PostgreSQL database is created for the run and dropped afterwards, and
the tables are printed as markdown and written to ``docs/benchmarks.md`` between
``<!-- bench_admin:start -->`` and ``<!-- bench_admin:end -->``. Nothing asserts on timings.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import math
import os
import platform
import random
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple, TypedDict

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, sys.path[0] is benchmarks/; the packages live one level up.
if sys.path and Path(sys.path[0]).resolve() == ROOT / "benchmarks":
    sys.path[0] = str(ROOT)
elif str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_core import (  # noqa: E402 - needs the sys.path fix above
    DB_LABELS,
    benchmark_parser,
    code_version,
    cpu_model,
    database_version,
    log,
    measure_databases,
    med,
    percentile,
    run_benchmark,
    table,
    verdict,
)

SECTION = "bench_admin"
SETTINGS_MODULE = "benchmarks.admin_settings"
DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/asyncjobs_bench_admin"
TARGET_MS = 300.0  # each admin page renders in under 300 ms on PostgreSQL (issue target)
SLOW_STATEMENT_MS = 50.0  # a page with a statement this slow has its plans reported even when under the target
EXPLAIN_TOP = 3  # statements explained per such page
EXPLAIN_MIN_MS = 5.0  # ... if they took at least this long

# -- the seeded data ---------------------------------------------------------------------------

SPAN = timedelta(days=30)
#: (job name, queue, weight, mean run time in seconds); the names are registered in benchapp/admin_jobs.py.
JOB_KINDS = (
    ("images.make_thumbnails", "default", 6, 2.0),
    ("exports.export_csv", "default", 3, 8.0),
    ("search.reindex_document", "low", 3, 0.5),
    ("billing.charge_invoice", "high", 2, 1.0),
    ("webhooks.deliver", "high", 2, 0.3),
    ("emails.send_digest", "emails", 2, 1.5),
    ("emails.send_welcome", "emails", 1, 0.8),
    ("reports.build_monthly_report", "reports", 1, 60.0),
)
#: One slot per unit of weight: a uniform pick of a slot is a weighted pick of a kind.
SLOTS = [kind for kind in JOB_KINDS for _ in range(kind[2])]
OWNERS = 40
NO_OWNER = 0.2  # share of jobs without an owner (besides those created by schedules)
FROM_SCHEDULE = 0.1  # share of jobs created by a schedule
MEAN_WAIT = 0.2  # seconds from enqueued to started, exponential
DELAYED = 0.02  # share of older jobs enqueued with a delay (run_at set)
# Older rows: succeeded / failed (3 attempts, a traceback) / cancelled (half before they started).
OLD_MIX = (("succeeded", 0.95), ("failed", 0.99), ("cancelled", 1.0))
# The newest rows (recent_rows()): the backlog and what is running.
RECENT_MIX = (("queued", 0.5), ("running", 0.52), ("scheduled", 0.60), ("succeeded", 0.98), ("failed", 1.0))
TRACEBACK = """Traceback (most recent call last):
  File "/srv/app/.venv/lib/python3.12/site-packages/django_asyncjobs/execution.py", line 214, in run_attempt
    result = function(*job.args, **job.kwargs)
             ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/srv/app/@FILE@.py", line @LINE@, in @FUNC@
    response = client.post(endpoint.url, json=payload, timeout=10)
               ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/srv/app/.venv/lib/python3.12/site-packages/requests/sessions.py", line 637, in post
    return self.request("POST", url, data=data, json=json, **kwargs)
           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/srv/app/.venv/lib/python3.12/site-packages/requests/sessions.py", line 589, in request
    resp = self.send(prep, **send_kwargs)
           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/srv/app/.venv/lib/python3.12/site-packages/requests/sessions.py", line 703, in send
    r = adapter.send(request, **kwargs)
        ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/srv/app/.venv/lib/python3.12/site-packages/requests/adapters.py", line 713, in send
    raise ReadTimeout(e, request=request)
requests.exceptions.ReadTimeout: HTTPSConnectionPool(host='api.example.com', port=443): Read timed out. \
(read timeout=10) while processing record @ID@"""

#: (name, job name, cron, interval in seconds, time zone, enabled, declared in code, misfire policy)
SCHEDULES = (
    ("monthly-reports", "reports.build_monthly_report", "0 3 1 * *", None, "", True, True, "catch_up"),
    ("weekday-digest", "emails.send_digest", "0 7 * * 1-5", None, "Europe/Berlin", True, True, "skip"),
    ("reindex-stale-documents", "search.reindex_document", "", 600, "", True, False, "skip"),
    ("thumbnail-backlog", "images.make_thumbnails", "", 300, "", True, False, "skip"),
    ("hourly-export", "exports.export_csv", "15 * * * *", None, "", True, False, "skip"),
    ("retry-webhooks", "webhooks.deliver", "", 60, "", True, False, "skip"),
    ("charge-due-invoices", "billing.charge_invoice", "30 2 * * *", None, "America/New_York", True, False, "catch_up"),
    ("welcome-catch-up", "emails.send_welcome", "", 1800, "", False, False, "skip"),
    ("nightly-export", "exports.export_csv", "0 1 * * *", None, "", True, False, "skip"),
    ("quarter-hour-reindex", "search.reindex_document", "*/15 * * * *", None, "", True, False, "skip"),
    ("sunday-report", "reports.build_monthly_report", "0 6 * * 0", None, "Europe/London", False, False, "skip"),
    ("invoice-retries", "billing.charge_invoice", "", 3600, "", True, False, "catch_up"),
)


def recent_rows(n: int) -> int:
    """How many of the newest rows are the backlog (queued, running, scheduled among them)."""
    return min(n, max(50, n // 2000))


def pick(mix: Sequence[tuple[str, float]], r: float) -> str:
    for status, upper in mix:
        if r < upper:
            return status
    return mix[-1][0]


def job_id(i: int) -> uuid.UUID:
    """The id of seeded row ``i``: the same on both databases (PostgreSQL: ``md5(...)::uuid``)."""
    return uuid.UUID(hashlib.md5(f"asyncjobs-bench-{i}".encode()).hexdigest())


class Spec(NamedTuple):
    """What the seeding of one table size needs from the database: ids of owners and schedules."""

    n: int
    now: datetime
    owners: list[int]
    schedule_ids: list[int]
    schedule_slots: list[int]  # 0-based index into SLOTS of each schedule's job


def job_row(i: int, spec: Spec, rnd: random.Random) -> tuple[Any, ...]:
    """Row ``i`` (1-based, oldest first) of the seeded job table, in COLUMNS order, for SQLite.

    The same distribution as ``seed_jobs_postgres`` (which does it in SQL on the server).
    """
    r_status, r_slot, r_owner, r_wait, r_run, r_misc, r_sched, r_from = (rnd.random() for _ in range(8))
    n, now = spec.n, spec.now
    recent = i > n - recent_rows(n)
    sched = None
    if r_from < FROM_SCHEDULE and spec.schedule_ids:
        sched = int(r_from / FROM_SCHEDULE * len(spec.schedule_ids))
    slot = spec.schedule_slots[sched] if sched is not None else int(r_slot * len(SLOTS))
    name, queue, _, run_mean = SLOTS[slot]
    status = pick(RECENT_MIX if recent else OLD_MIX, r_status)
    created = now - SPAN * (1 - (i - 0.5) / n)
    delayed = not recent and r_misc < DELAYED
    due = created + timedelta(seconds=60 + r_sched * 3540) if delayed else created
    wait = timedelta(seconds=-math.log(1 - r_wait) * MEAN_WAIT)
    run = timedelta(seconds=-math.log(1 - r_run) * run_mean)
    started = None
    if status not in ("queued", "scheduled") and not (status == "cancelled" and r_sched < 0.5):
        started = min(due + wait, now)
    finished = None
    if status in ("succeeded", "failed") and started is not None:
        finished = min(started + run, now)
    elif status == "cancelled":
        finished = min(started + run / 2 if started else due + wait, now)
    heartbeat = now - timedelta(seconds=r_wait * 5) if status == "running" else started
    enqueued = None if status == "scheduled" else due
    run_at = now + timedelta(seconds=r_sched * 3600) if status == "scheduled" else (due if delayed else None)
    attempts = {
        "queued": 0,
        "scheduled": int(r_run < 0.5),
        "running": 1,
        "succeeded": 1 + int(r_misc > 0.97),
        "failed": 3,
    }.get(status, int(started is not None))
    progress = {"succeeded": 100, "running": int(r_run * 100), "failed": int(r_run * 100)}.get(status, 0)
    message = {"running": f"step {1 + int(r_run * 10)} of 10", "succeeded": "done"}.get(status, "")
    error = ""
    if status == "failed" or (status == "scheduled" and r_run < 0.5):
        error = (
            TRACEBACK.replace("@FILE@", name.replace(".", "/"))
            .replace("@FUNC@", name.split(".")[1])
            .replace("@LINE@", str(20 + i % 180))
            .replace("@ID@", str(i))
        )
    owner = None
    if sched is None and r_owner >= NO_OWNER and spec.owners:
        owner = spec.owners[int((r_owner - NO_OWNER) / (1 - NO_OWNER) * len(spec.owners))]
    return (
        job_id(i).hex,
        name,
        queue,
        status,
        json.dumps([i % 100_000]),
        json.dumps({"account_id": i * 7919 % 50_000, "notify": r_misc < 0.5}),
        json.dumps({"rows": int(r_run * 10_000), "ok": True}) if status == "succeeded" else None,
        error,
        attempts,
        3,
        progress,
        message,
        owner,
        f"key-{i}" if r_misc > 0.95 else None,
        f"worker-{1 + i % 8}.{4000 + i // 50_000}" if started else "",
        sqlite_time(created),
        sqlite_time(enqueued),
        sqlite_time(run_at),
        sqlite_time(started),
        sqlite_time(heartbeat),
        sqlite_time(finished),
        spec.schedule_ids[sched] if sched is not None else None,
    )


def sqlite_time(moment: datetime | None) -> str | None:
    """What Django stores in SQLite for an aware datetime with USE_TZ: naive UTC, as text."""
    return None if moment is None else str(moment.astimezone(UTC).replace(tzinfo=None))


COLUMNS = (
    "id, name, queue, status, args, kwargs, result, error, attempts, max_attempts, progress, progress_message, "
    "owner_id, idempotency_key, worker, created_at, enqueued_at, run_at, started_at, heartbeat_at, finished_at, "
    "schedule_id"
)

# PostgreSQL: the same distribution as job_row(), computed by the server. %(name)s parameters; no literal %.
SEED_SQL = """
INSERT INTO {table} ({columns})
SELECT
    md5('asyncjobs-bench-' || g.i::text)::uuid,
    p.names[s.slot],
    p.queues[s.slot],
    a.status,
    jsonb_build_array(mod(g.i, 100000)),
    jsonb_build_object('account_id', mod(g.i::bigint * 7919, 50000), 'notify', g.r_misc < 0.5),
    CASE WHEN a.status = 'succeeded' THEN jsonb_build_object('rows', floor(g.r_run * 10000)::int, 'ok', true) END,
    CASE WHEN a.status = 'failed' OR (a.status = 'scheduled' AND g.r_run < 0.5) THEN
        replace(replace(replace(replace(p.traceback,
            '@FILE@', replace(p.names[s.slot], '.', '/')),
            '@FUNC@', split_part(p.names[s.slot], '.', 2)),
            '@LINE@', (20 + mod(g.i, 180))::text),
            '@ID@', g.i::text)
    ELSE '' END,
    CASE a.status WHEN 'queued' THEN 0 WHEN 'scheduled' THEN (g.r_run < 0.5)::int WHEN 'running' THEN 1
        WHEN 'succeeded' THEN 1 + (g.r_misc > 0.97)::int WHEN 'failed' THEN 3
        ELSE (c.started_at IS NOT NULL)::int END,
    3,
    CASE WHEN a.status = 'succeeded' THEN 100 WHEN a.status IN ('running', 'failed') THEN floor(g.r_run * 100)
        ELSE 0 END,
    CASE a.status WHEN 'running' THEN 'step ' || (1 + floor(g.r_run * 10))::int || ' of 10'
        WHEN 'succeeded' THEN 'done' ELSE '' END,
    CASE WHEN a.sched IS NULL AND g.r_owner >= %(no_owner)s AND cardinality(p.owners) > 0
        THEN p.owners[1 + floor((g.r_owner - %(no_owner)s) / (1 - %(no_owner)s) * cardinality(p.owners))::int] END,
    CASE WHEN g.r_misc > 0.95 THEN 'key-' || g.i END,
    CASE WHEN c.started_at IS NULL THEN '' ELSE 'worker-' || (1 + mod(g.i, 8)) || '.' || (4000 + g.i / 50000) END,
    a.created_at,
    CASE WHEN a.status = 'scheduled' THEN NULL ELSE b.due_at END,
    CASE WHEN a.status = 'scheduled' THEN p.now + g.r_sched * interval '1 hour'
        WHEN b.delayed THEN b.due_at END,
    c.started_at,
    CASE WHEN a.status = 'running' THEN p.now - g.r_wait * interval '5 seconds' ELSE c.started_at END,
    CASE WHEN a.status IN ('succeeded', 'failed') THEN LEAST(c.started_at + b.run, p.now)
        WHEN a.status = 'cancelled' THEN LEAST(COALESCE(c.started_at + b.run / 2, b.due_at + b.wait), p.now) END,
    p.schedule_ids[a.sched]
FROM (
    SELECT i, random() AS r_status, random() AS r_slot, random() AS r_owner, random() AS r_wait,
           random() AS r_run, random() AS r_misc, random() AS r_sched, random() AS r_from
    FROM generate_series(%(first)s::int, %(last)s::int) AS i
    OFFSET 0  -- evaluate each random() once per row: no pull-up into the expressions below
) AS g
CROSS JOIN (
    SELECT %(names)s::text[] AS names, %(queues)s::text[] AS queues, %(run_means)s::float8[] AS run_means,
           %(owners)s::int[] AS owners, %(schedule_ids)s::bigint[] AS schedule_ids,
           %(schedule_slots)s::int[] AS schedule_slots, %(now)s::timestamptz AS now, %(traceback)s::text AS traceback
) AS p
CROSS JOIN LATERAL (
    SELECT
        CASE WHEN g.r_from < %(from_schedule)s AND cardinality(p.schedule_ids) > 0
            THEN 1 + floor(g.r_from / %(from_schedule)s * cardinality(p.schedule_ids))::int END AS sched,
        p.now - %(span)s::interval * (1 - (g.i - 0.5) / %(n)s::float8) AS created_at,
        CASE WHEN g.i > %(n)s - %(recent)s THEN
            CASE WHEN g.r_status < 0.5 THEN 'queued' WHEN g.r_status < 0.52 THEN 'running'
                 WHEN g.r_status < 0.60 THEN 'scheduled' WHEN g.r_status < 0.98 THEN 'succeeded' ELSE 'failed' END
        ELSE
            CASE WHEN g.r_status < 0.95 THEN 'succeeded' WHEN g.r_status < 0.99 THEN 'failed' ELSE 'cancelled' END
        END AS status
) AS a
CROSS JOIN LATERAL (
    SELECT COALESCE(p.schedule_slots[a.sched], 1 + floor(g.r_slot * cardinality(p.names))::int) AS slot
) AS s
CROSS JOIN LATERAL (
    SELECT
        x.delayed,
        a.created_at + CASE WHEN x.delayed THEN (60 + g.r_sched * 3540) * interval '1 second'
            ELSE interval '0' END AS due_at,
        -ln(1 - g.r_wait) * %(mean_wait)s * interval '1 second' AS wait,
        -ln(1 - g.r_run) * p.run_means[s.slot] * interval '1 second' AS run
    FROM (SELECT g.i <= %(n)s - %(recent)s AND g.r_misc < %(delayed)s AS delayed) AS x
) AS b
CROSS JOIN LATERAL (
    SELECT CASE WHEN a.status IN ('queued', 'scheduled') OR (a.status = 'cancelled' AND g.r_sched < 0.5) THEN NULL
        ELSE LEAST(b.due_at + b.wait, p.now) END AS started_at
) AS c
"""


# -- results ------------------------------------------------------------------------------------


class Statement(TypedDict):
    ms: float
    sql: str


class Plan(TypedDict):
    ms: float
    sql: str
    plan: str


class PageResult(TypedDict):
    label: str
    path: str
    status: int
    error: str  # why a page found by name was not measured
    content_type: str
    kb: float
    times_ms: list[float]
    queries: int
    redis: int
    sql_ms: float
    top: list[Statement]  # the slowest statements of the counted request
    plans: list[Plan]  # EXPLAIN of the slowest statements, for a page over the target


class SizeResult(TypedDict):
    rows: int
    seed_s: float
    rollup_s: float
    composition: dict[str, int]
    stats_rows: int
    schedules: int
    table_mb: float
    pages: dict[str, PageResult]


class DbResult(TypedDict):
    db: str
    db_version: str
    db_settings: str
    repeat: int
    warmup: int
    sizes: list[SizeResult]
    dashboard_note: str
    load_after: float


class Page(NamedTuple):
    key: str
    label: str
    path: str
    dashboard: bool = False  # found by name; a status other than 200 skips it instead of failing the run


# ------------------------------------------------------------------------------------------------
# Child process: one database, Django configured by benchmarks.admin_settings
# ------------------------------------------------------------------------------------------------


class AdminBench:
    """Seeding and measurements for one database. Django must be set up before this is built."""

    def __init__(self, db: str, args: argparse.Namespace) -> None:
        from django.db import connection

        self.db = db
        self.args = args
        self.is_postgres = connection.vendor == "postgresql"
        self.dashboard_note = ""

    # -- seeding ------------------------------------------------------------------------------

    def quoted(self, model: Any) -> str:
        from django.db import connection

        return str(connection.ops.quote_name(model._meta.db_table))

    def clear(self) -> None:
        """Empty the tables the seed fills (sessions and users stay)."""
        from django.db import connection

        from django_asyncjobs.models import AggregationWindow, Job, JobStats, Schedule

        models = (AggregationWindow, JobStats, Job, Schedule)  # in an order that SQLite's foreign keys accept
        with connection.cursor() as cursor:
            if self.is_postgres:
                cursor.execute(f"TRUNCATE {', '.join(self.quoted(m) for m in models)} CASCADE")
            else:
                cursor.execute(f"UPDATE {self.quoted(Schedule)} SET last_job_id = NULL")
                for model in models:
                    cursor.execute(f"DELETE FROM {self.quoted(model)}")

    def users(self) -> tuple[Any, list[int]]:
        from django.contrib.auth import get_user_model

        user_model = get_user_model()
        admin = user_model.objects.create_superuser("admin", "admin@example.com", "not-secret")
        owners = user_model.objects.bulk_create(
            [user_model(username=f"user{k:02d}", email=f"user{k:02d}@example.com", password="!") for k in range(OWNERS)]
        )
        ids = [user.pk for user in owners] or list(user_model.objects.exclude(pk=admin.pk).values_list("pk", flat=True))
        return admin, ids

    def schedules(self, now: datetime) -> tuple[list[int], list[int]]:
        from django_asyncjobs.models import Schedule

        slot_of = {kind[0]: SLOTS.index(kind) for kind in JOB_KINDS}
        ids, slots = [], []
        for name, job_name, cron, interval, zone, enabled, in_code, misfire in SCHEDULES:
            schedule = Schedule(
                name=name,
                job_name=job_name,
                cron=cron,
                interval=timedelta(seconds=interval) if interval else None,
                time_zone=zone,
                enabled=enabled,
                declared_in_code=in_code,
                misfire_policy=misfire,
                kwargs={"source": "schedule"},
                created_at=now - SPAN,
            )
            schedule.save()
            ids.append(schedule.pk)
            slots.append(slot_of[job_name])
        return ids, slots

    def seed(self, n: int, owners: list[int]) -> SizeResult:
        from django.db import connection
        from django.db.models import Count
        from django.utils import timezone

        from django_asyncjobs.models import Job, JobStats, Schedule

        label = DB_LABELS[self.db]
        self.clear()
        now = timezone.now().replace(microsecond=0)
        started = time.perf_counter()
        schedule_ids, schedule_slots = self.schedules(now)
        spec = Spec(n, now, owners, schedule_ids, schedule_slots)
        if self.is_postgres:
            self.seed_jobs_postgres(spec)
        else:
            self.seed_jobs_sqlite(spec)
        with connection.cursor() as cursor:
            job_table, schedule_table = self.quoted(Job), self.quoted(Schedule)
            latest = f"SELECT {{}} FROM {job_table} j WHERE j.schedule_id = {schedule_table}.id"
            cursor.execute(
                f"UPDATE {schedule_table} SET "
                f"last_job_id = ({latest.format('j.id')} ORDER BY j.created_at DESC LIMIT 1), "
                f"last_run_at = ({latest.format('MAX(j.created_at)')})"
            )
        seed_s = time.perf_counter() - started
        log(f"[{label}] seeded {n:,} jobs in {seed_s:.1f} s")
        started = time.perf_counter()
        self.rollups(now)
        rollup_s = time.perf_counter() - started
        log(f"[{label}] rolled up the last day of JobStats in {rollup_s:.1f} s")
        self.analyze()
        composition = dict(Job.objects.order_by().values_list("status").annotate(count=Count("pk")))
        return {
            "rows": Job.objects.count(),
            "seed_s": seed_s,
            "rollup_s": rollup_s,
            "composition": composition,
            "stats_rows": JobStats.objects.count(),
            "schedules": Schedule.objects.count(),
            "table_mb": self.table_mb(),
            "pages": {},
        }

    def seed_jobs_postgres(self, spec: Spec) -> None:
        from django.db import connection

        from django_asyncjobs.models import Job

        sql = SEED_SQL.format(table=self.quoted(Job), columns=COLUMNS)
        params: dict[str, Any] = {
            "names": [kind[0] for kind in SLOTS],
            "queues": [kind[1] for kind in SLOTS],
            "run_means": [kind[3] for kind in SLOTS],
            "owners": spec.owners,
            "schedule_ids": spec.schedule_ids,
            "schedule_slots": [slot + 1 for slot in spec.schedule_slots],
            "now": spec.now,
            "traceback": TRACEBACK,
            "no_owner": NO_OWNER,
            "from_schedule": FROM_SCHEDULE,
            "span": SPAN,
            "n": spec.n,
            "recent": recent_rows(spec.n),
            "mean_wait": MEAN_WAIT,
            "delayed": DELAYED,
        }
        with connection.cursor() as cursor:
            cursor.execute("SELECT setseed(0.42)")  # the same rows on every run
            for first in range(1, spec.n + 1, 100_000):
                last = min(spec.n, first + 99_999)
                cursor.execute(sql, {**params, "first": first, "last": last})
                if spec.n > 100_000:
                    log(f"[PostgreSQL] {last:,} / {spec.n:,} rows")

    def seed_jobs_sqlite(self, spec: Spec) -> None:
        from django.db import connection, transaction

        from django_asyncjobs.models import Job

        sql = f"INSERT INTO {self.quoted(Job)} ({COLUMNS}) VALUES ({', '.join(['%s'] * len(COLUMNS.split(',')))})"
        rnd = random.Random(42)
        batch = 50_000
        for first in range(1, spec.n + 1, batch):
            last = min(spec.n, first + batch - 1)
            rows = [job_row(i, spec, rnd) for i in range(first, last + 1)]
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.executemany(sql, rows)
            if spec.n > batch:
                log(f"[SQLite] {last:,} / {spec.n:,} rows")

    def rollups(self, now: datetime) -> None:
        """The last day of per-minute ``JobStats``, rolled up by the app's own aggregation."""
        from django_asyncjobs.aggregations.declarations import get_aggregation
        from django_asyncjobs.aggregations.stats import NAME
        from django_asyncjobs.aggregations.windows import backfill, windows_between

        _, until = get_aggregation(NAME).last_completed(now)
        backfill(NAME, windows_between(NAME, until - timedelta(days=1), until))

    def analyze(self) -> None:
        from django.db import connection

        with connection.cursor() as cursor:
            # What autovacuum does to a table in a steady state: statistics and the visibility map.
            cursor.execute("VACUUM ANALYZE" if self.is_postgres else "ANALYZE")

    def table_mb(self) -> float:
        from django.db import connection

        from django_asyncjobs.models import Job

        with connection.cursor() as cursor:
            if self.is_postgres:
                cursor.execute("SELECT pg_total_relation_size(%s::regclass)", [Job._meta.db_table])
                return float(cursor.fetchone()[0]) / 2**20
            cursor.execute("SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()")
            return float(cursor.fetchone()[0]) / 2**20  # the whole file

    # -- the pages ------------------------------------------------------------------------------

    def pages(self) -> list[Page]:
        from django.db.models import Count
        from django.db.models.functions import TruncMonth
        from django.urls import reverse
        from django.utils import timezone

        from django_asyncjobs.models import Job, JobStatus

        changelist = reverse("admin:django_asyncjobs_job_changelist")
        busiest = (
            Job.objects.order_by()
            .annotate(month=TruncMonth("created_at"))
            .values("month")
            .annotate(rows=Count("pk"))
            .order_by("-rows")
            .values_list("month", flat=True)
            .first()
        )
        month = timezone.localtime(busiest) if busiest else timezone.localtime()
        newest = Job.objects.order_by("-created_at").values_list("created_at", flat=True).first()
        day = timezone.localtime(newest or timezone.now()) - timedelta(days=1)
        failed = (
            Job.objects.filter(status=JobStatus.FAILED, owner__isnull=False)
            .order_by("-created_at")
            .values_list("pk", flat=True)
            .first()
        )
        some_job = Job.objects.order_by("created_at").values_list("pk", flat=True)[Job.objects.count() // 2]
        pages = [
            Page("changelist", "Job changelist, default view (newest first, page 1)", changelist),
            Page("failed", "… filtered by status = failed", f"{changelist}?status__exact=failed"),
            Page("queue", "… filtered by queue = high", f"{changelist}?queue=high"),
            Page(
                "month",
                f"… date hierarchy drill-down to a month ({month:%Y-%m})",
                f"{changelist}?created_at__month={month.month}&created_at__year={month.year}",
            ),
            Page(
                "day",
                f"… date hierarchy drill-down to a day ({day:%Y-%m-%d})",
                f"{changelist}?created_at__day={day.day}&created_at__month={day.month}&created_at__year={day.year}",
            ),
            Page("search_id", "… search by job id", f"{changelist}?q={some_job}"),
            Page("search_text", "… search by text (name or owner's username: `thumb`)", f"{changelist}?q=thumb"),
            Page(
                "detail",
                "Job detail page (a failed job: traceback, owner)",
                reverse("admin:django_asyncjobs_job_change", args=[failed]),
            ),
            Page("schedules", "Schedule changelist", reverse("admin:django_asyncjobs_schedule_changelist")),
        ]
        return pages + self.dashboard_pages()

    def dashboard_pages(self) -> list[Page]:
        """URL names under ``admin:`` containing ``asyncjobs`` and ``dashboard`` that reverse without arguments
        (not django-rq's own dashboard), and the pages of ``--extra-url``."""
        from django.urls import NoReverseMatch, get_resolver, reverse

        names: list[str] = []

        def walk(patterns: Sequence[Any], namespace: str) -> None:
            for pattern in patterns:
                if hasattr(pattern, "url_patterns"):
                    inner = pattern.namespace or ""
                    walk(pattern.url_patterns, f"{namespace}:{inner}".strip(":") if inner else namespace)
                elif (
                    namespace == "admin"
                    and "asyncjobs" in (pattern.name or "")
                    and "dashboard" in pattern.name
                    and not pattern.name.endswith(("_add", "_change", "_delete", "_history"))
                ):
                    names.append(pattern.name)

        walk(get_resolver().url_patterns, "")
        pages: list[Page] = []
        needs_args: list[str] = []
        for name in sorted(set(names)):
            try:
                path = reverse(f"admin:{name}")
            except NoReverseMatch:
                needs_args.append(name)
                continue
            pages.append(Page(f"dashboard:{name}", f"Dashboard: `admin:{name}`", path, dashboard=True))
        for extra in self.args.extra_url:
            label, _, path = extra.partition("=")
            pages.append(Page(f"extra:{label}", label, path, dashboard=True))
        if not names:
            self.dashboard_note = (
                "No dashboard yet: no URL name under `admin:` contains both `asyncjobs` and `dashboard` "
                "(expected from `django_asyncjobs/admin_dashboard.py`). Rerun `make bench-admin` once it exists: "
                "its pages are found by name."
            )
        elif needs_args:
            self.dashboard_note = f"Not measured (they need URL arguments): {', '.join(needs_args)}."
        return pages

    # -- measuring ------------------------------------------------------------------------------

    def measure(self, pages: list[Page], client: Any, label: str) -> dict[str, PageResult]:
        """Check each page once, warm them up, count one request of each, then time them taking turns."""
        results: dict[str, PageResult] = {}
        live: list[Page] = []
        for page in pages:
            error, response = "", None
            try:
                response = client.get(page.path)
                status = response.status_code
            except Exception as exc:  # a page found by name may be unfinished: report it
                if not page.dashboard:
                    raise
                status, error = 500, f"{type(exc).__name__}: {exc}"
            if status != 200:
                if not page.dashboard:
                    raise RuntimeError(f"GET {page.path}: status {status}")
                error = error or f"status {status}"
                log(f"[{label}] {page.path}: {error}; not measured")
            results[page.key] = {
                "label": page.label,
                "path": page.path,
                "status": status,
                "error": error,
                "content_type": response.get("Content-Type", "") if response is not None else "",
                "kb": len(response.content) / 1024 if response is not None else 0.0,
                "times_ms": [],
                "queries": 0,
                "redis": 0,
                "sql_ms": 0.0,
                "top": [],
                "plans": [],
            }
            if status == 200:
                live.append(page)
        for page in live:
            for _ in range(self.args.warmup):
                client.get(page.path)
        for page in live:  # warm, like the timed requests, but not timed: the counters cost a little
            results[page.key].update(self.count(client, page))  # type: ignore[typeddict-item]
        orders = [live[k:] + live[:k] for k in range(len(live))] or [[]]
        clock = time.perf_counter
        for rep in range(self.args.repeat):
            gc.collect()
            for page in orders[rep % len(orders)]:
                before = clock()
                response = client.get(page.path)
                results[page.key]["times_ms"].append((clock() - before) * 1000)
                if response.status_code != 200:
                    raise RuntimeError(f"GET {page.path}: status {response.status_code}")
        for page in live:
            result = results[page.key]
            p50 = med(result["times_ms"])
            log(
                f"[{label}] {page.key}: p50 {p50:.1f} ms, p95 {percentile(result['times_ms'], 95):.1f} ms, "
                f"{result['queries']} queries ({result['sql_ms']:.1f} ms), {result['redis']} Redis round trips"
            )
            if is_slow(result):
                result["plans"] = self.explain(result["top"])
        return results

    def count(self, client: Any, page: Page) -> dict[str, Any]:
        """One request: its SQL statements (``CaptureQueriesContext``; each timed by an execute
        wrapper, as the captured times are rounded to the millisecond) and Redis round trips."""
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        from benchmarks.bench_web import counting

        seconds: list[float] = []
        clock = time.perf_counter

        def timed(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
            before = clock()
            try:
                return execute(sql, params, many, context)
            finally:
                seconds.append(clock() - before)

        with (
            counting() as redis_counts,
            CaptureQueriesContext(connection) as captured,
            connection.execute_wrapper(timed),
        ):
            response = client.get(page.path)
        if response.status_code != 200:
            raise RuntimeError(f"GET {page.path}: status {response.status_code}")
        queries = captured.captured_queries
        if len(seconds) != len(queries):  # not expected; fall back on the captured (rounded) times
            seconds = [float(query["time"]) for query in queries]
        statements: list[Statement] = [
            {"ms": elapsed * 1000, "sql": query["sql"]} for query, elapsed in zip(queries, seconds, strict=True)
        ]
        return {
            "queries": len(statements),
            "redis": redis_counts.redis,
            "sql_ms": sum(statement["ms"] for statement in statements),
            "top": sorted(statements, key=lambda statement: -statement["ms"])[:5],
        }

    def explain(self, statements: list[Statement]) -> list[Plan]:
        from django.db import connection

        plans: list[Plan] = []
        for statement in statements[:EXPLAIN_TOP]:
            sql = statement["sql"]
            if not sql.lstrip().upper().startswith("SELECT") or (plans and statement["ms"] < EXPLAIN_MIN_MS):
                continue
            prefix = "EXPLAIN (ANALYZE, BUFFERS) " if self.is_postgres else "EXPLAIN QUERY PLAN "
            with connection.cursor() as cursor:
                cursor.execute(prefix + sql)
                rows = cursor.fetchall()
            if self.is_postgres:
                text = "\n".join(row[0] for row in rows)
            else:
                text = "\n".join(" ".join(str(value) for value in row) for row in rows)
            plans.append({"ms": statement["ms"], "sql": sql, "plan": text})
        return plans

    def run(self) -> DbResult:
        from django.test import Client

        label = DB_LABELS[self.db]
        admin, owners = self.users()
        client = Client()
        client.force_login(admin)
        sizes = sorted({size for size in (self.args.small_rows, self.args.rows) if size > 0})
        results: list[SizeResult] = []
        for n in sizes:
            result = self.seed(n, owners)
            pages = self.pages()
            result["pages"] = self.measure(pages, client, f"{label}, {n:,} rows")
            results.append(result)
        return {
            "db": self.db,
            "db_version": database_version(),
            "db_settings": self.settings_summary(),
            "repeat": self.args.repeat,
            "warmup": self.args.warmup,
            "sizes": results,
            "dashboard_note": self.dashboard_note,
            "load_after": os.getloadavg()[0],
        }

    def settings_summary(self) -> str:
        from django.db import connection

        if not self.is_postgres:
            return ""
        names = ("shared_buffers", "work_mem", "effective_cache_size", "random_page_cost", "jit")
        with connection.cursor() as cursor:
            values = []
            for name in names:
                cursor.execute(f"SHOW {name}")
                values.append(f"{name}={cursor.fetchone()[0]}")
        return ", ".join(values)


def child_main(args: argparse.Namespace) -> None:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    result = AdminBench(args.child, args).run()
    Path(args.out).write_text(json.dumps(result, default=str))


# ------------------------------------------------------------------------------------------------
# Parent process: Redis, databases, children, report
# ------------------------------------------------------------------------------------------------


def run_child(db: str, args: argparse.Namespace, env: dict[str, str], out: Path) -> DbResult:
    import subprocess

    env = {**env, "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE}
    command = [sys.executable, str(Path(__file__).resolve()), "--child", db, "--out", str(out)]
    for option in ("rows", "small_rows", "repeat", "warmup"):
        command += [f"--{option.replace('_', '-')}", str(getattr(args, option))]
    for extra in args.extra_url:
        command += ["--extra-url", extra]
    subprocess.run(command, env=env, check=True, stdin=subprocess.DEVNULL)
    result: DbResult = json.loads(out.read_text())
    return result


def parent_main(args: argparse.Namespace) -> None:
    measure_databases(args, prefix="asyncjobs-bench-admin-", run_child=run_child, render=render, section_name=SECTION)


# ------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------


def is_slow(page: PageResult) -> bool:
    """Over the target, or near it because of one statement: worth its query plans."""
    if not page["times_ms"]:
        return False
    return med(page["times_ms"]) > TARGET_MS or any(s["ms"] >= SLOW_STATEMENT_MS for s in page["top"])


def fmt_ms(value: float) -> str:
    return f"{value:,.0f} ms" if value >= 100 else f"{value:.1f} ms"


def rows_label(n: int) -> str:
    return f"{n:,}"


def page_keys(result: DbResult) -> list[str]:
    keys: list[str] = []
    for size in result["sizes"]:
        keys += [key for key in size["pages"] if key not in keys]
    return keys


def short_sql(sql: str, limit: int = 400) -> str:
    sql = " ".join(sql.split())
    return sql if len(sql) <= limit else sql[: limit - 1] + "…"


def render_db(result: DbResult) -> tuple[list[str], dict[str, tuple[float, bool]]]:
    """The tables of one database and, for the summary, page -> (p50 at the largest size, met)."""
    sizes = result["sizes"]
    big = sizes[-1]
    small = sizes[0] if len(sizes) > 1 else None
    summary: dict[str, tuple[float, bool]] = {}
    rows: list[list[str]] = []
    failed: list[str] = []
    fewer: list[bool] = []  # one per page whose statement count differs between the sizes
    for key in page_keys(result):
        page = big["pages"].get(key)
        if page is None:
            continue
        if page["status"] != 200:
            rows.append([page["label"], *([""] * (6 if small else 5)), "not measured (see below)"])
            failed.append(f"`{page['path']}`: {page['error']}")
            continue
        p50, p95 = med(page["times_ms"]), percentile(page["times_ms"], 95)
        met = p50 <= TARGET_MS
        summary[key] = (p50, met)
        counts = str(page["queries"])
        if small and key in small["pages"]:
            before = small["pages"][key]
            counts = f"{before['queries']} → {page['queries']}"
            if before["queries"] != page["queries"]:
                fewer.append(page["queries"] < before["queries"])
                counts += " (fewer)" if fewer[-1] else " **(grows)**"
        slowest = page["top"][0]["ms"] if page["top"] else 0.0
        row = [page["label"]]
        if small:
            earlier = small["pages"].get(key)
            row.append(fmt_ms(med(earlier["times_ms"])) if earlier and earlier["times_ms"] else "")
        row += [
            fmt_ms(p50),
            fmt_ms(p95),
            counts,
            f"{page['sql_ms']:,.1f} ms (slowest {slowest:,.1f} ms)",
        ]
        row += [str(page["redis"]), verdict(met)]
        rows.append(row)
    n_big = rows_label(big["rows"])
    header = ["page"]
    if small:
        header.append(f"p50, {rows_label(small['rows'])} rows")
    header += [
        f"p50, {n_big} rows",
        f"p95, {n_big} rows",
        f"SQL statements ({rows_label(small['rows'])} → {n_big} rows)" if small else "SQL statements",
        f"time in SQL, {n_big} rows",
        "Redis round trips",
        f"≤ {TARGET_MS:g} ms",
    ]
    align = "l" + ("r" if small else "") + "rrrrrl"
    composition = ", ".join(f"{status} {count:,}" for status, count in sorted(big["composition"].items()))
    lines = [
        f"### {DB_LABELS[result['db']]}",
        "",
        f"{result['db_version']}" + (f"; {result['db_settings']}" if result["db_settings"] else "") + ".",
        "",
    ]
    for size in sizes:
        lines.append(
            f"- {rows_label(size['rows'])} rows: seeded in {size['seed_s']:.0f} s, the job table with its indexes "
            f"{size['table_mb']:,.0f} MB{' (SQLite: the whole database file)' if result['db'] == 'sqlite' else ''}; "
            f"{size['stats_rows']:,} `JobStats` rows (the last day, rolled up in {size['rollup_s']:.0f} s), "
            f"{size['schedules']} schedules."
        )
    lines += [
        f"- Statuses at {n_big} rows: {composition}.",
        "",
        *table(header, rows, align),
    ]
    if any(fewer) and result["db"] == "postgres":
        lines += [
            "",
            "(fewer): the job table's paginator, `EstimatedCountPaginator`, asks PostgreSQL for its row estimate "
            "(`pg_class.reltuples`) and, below 100,000 rows, counts exactly as well: one `COUNT(*)` more on the "
            "small table.",
        ]
    if result["dashboard_note"]:
        lines += ["", result["dashboard_note"]]
    for note in failed:
        lines += ["", f"Not measured: {short_sql(note, 600)}"]
    slow = [(key, big["pages"][key]) for key in page_keys(result) if key in summary and is_slow(big["pages"][key])]
    if slow:
        lines += [
            "",
            f"#### Slow statements at {n_big} rows (pages over {TARGET_MS:g} ms, or with a statement over "
            f"{SLOW_STATEMENT_MS:g} ms)",
            "",
        ]
        for key, page in slow:
            lines += [f"**{page['label']}** (`{page['path']}`), p50 {fmt_ms(summary[key][0])}:", ""]
            for statement in page["top"][:EXPLAIN_TOP]:
                lines.append(f"- {statement['ms']:,.1f} ms: `{short_sql(statement['sql'])}`")
            how = "(ANALYZE, BUFFERS)`, run again afterwards" if result["db"] == "postgres" else "QUERY PLAN`"
            for plan in page["plans"]:
                lines += [
                    "",
                    f"Plan of the {plan['ms']:,.1f} ms statement (`EXPLAIN {how}):",
                    "",
                    "```text",
                    plan["plan"],
                    "```",
                ]
            lines.append("")
    return lines, summary


def render(
    results: Sequence[DbResult], skipped: Sequence[str], redis_version: str, args: argparse.Namespace, elapsed: float
) -> str:
    import django

    tables: list[str] = []
    summaries: dict[str, dict[str, tuple[float, bool]]] = {}
    labels: dict[str, str] = {}
    for result in results:
        lines, summaries[result["db"]] = render_db(result)
        tables += ["", *lines]
        for size in result["sizes"]:
            labels.update({key: page["label"] for key, page in size["pages"].items()})
    dbs = [result["db"] for result in results]
    keys: list[str] = []
    for result in results:
        keys += [key for key in page_keys(result) if key not in keys and key in summaries[result["db"]]]
    summary_rows = []
    for key in keys:
        cells = []
        for db in dbs:
            figure = summaries[db].get(key)
            cells.append(f"{fmt_ms(figure[0])} {verdict(figure[1])}" if figure else "")
        summary_rows.append([labels[key], *cells])
    loads = ", ".join(f"{result['load_after']:.2f} ({DB_LABELS[result['db']]})" for result in results)
    first = results[0] if results else None
    repeat = first["repeat"] if first else args.repeat
    warmup = first["warmup"] if first else args.warmup
    method = (
        "each database in its own process with `benchmarks/admin_settings.py` (the admin, database sessions, CSRF, "
        "messages, `DEBUG=False`); the job table seeded first with "
        f"{args.small_rows:,} rows, then with {args.rows:,} rows: rows in time order over 30 days, ~95% "
        "succeeded, ~4% failed with a ~1.6 KB traceback, ~1% cancelled, and among the newest 0.05% a backlog "
        "(queued, running, scheduled); eight job names on five queues, 40 owners, 10% of the jobs from 12 "
        "schedules; PostgreSQL: `INSERT ... SELECT FROM generate_series` on the server, SQLite: `executemany`. "
        "Then the last day of per-minute `JobStats` is rolled up by the app's own aggregation (`backfill`), and "
        "the database is vacuumed and analyzed (what autovacuum does to a table in a steady state). Each page is "
        "requested in-process through Django's test `Client` logged in as a superuser (the whole middleware stack, "
        "template rendering included, no network): one untimed request counts its SQL statements "
        "(`CaptureQueriesContext`, each statement timed) and Redis round trips after "
        f"{warmup} warm-up requests; then {repeat} rounds in which the pages take turns in an order that rotates. "
        f"p50 and p95 are over the {repeat} timed requests of each page. For a page whose p50 is over "
        f"{TARGET_MS:g} ms, its slowest statements are run again under `EXPLAIN (ANALYZE, BUFFERS)` "
        f"(also for a page with a statement over {SLOW_STATEMENT_MS:g} ms)."
    )
    machine = (
        f"{os.cpu_count()} CPUs ({cpu_model()}), {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}, Django {django.__version__}, {redis_version} (private server)"
    )
    parts = [
        "## Admin: changelist, detail and dashboard pages with a big job table",
        "",
        "Written by `benchmarks/bench_admin.py`; reproduce with `make bench-admin` "
        f"(here: `{' '.join(['benchmarks/bench_admin.py', *command_line(args)])}`).",
        "",
        f"- Date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}; the run took {elapsed:.0f} s.",
        f"- Code: {code_version()}.",
        f"- Machine: {machine}; load average before the run: {args.load_before:.2f}, at the end of each "
        f"database's measurements: {loads or 'n/a'}.",
        f"- Method: {method}",
        *(f"- {note}" for note in skipped),
        "",
        f"### Targets: each page under {TARGET_MS:g} ms (p50 at {rows_label(args.rows)} rows)",
        "",
        *table(["page", *(DB_LABELS[db] for db in dbs)], summary_rows, "l" * (1 + len(dbs))),
        "",
        "SQL statements per page: the same at both table sizes unless marked **(grows)** or (fewer).",
        *tables,
    ]
    return "\n".join(parts).rstrip() + "\n"


def command_line(args: argparse.Namespace) -> list[str]:
    words = ["--db", args.db]
    defaults = parse_args([])
    for option in ("rows", "small_rows", "repeat", "warmup"):
        if getattr(args, option) != getattr(defaults, option):
            words += [f"--{option.replace('_', '-')}", str(getattr(args, option))]
    for extra in args.extra_url:
        words += ["--extra-url", extra]
    return words


# ------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = benchmark_parser(
        __doc__,
        default_db="postgres",
        postgres_url=DEFAULT_POSTGRES_URL,
        postgres_env="ASYNCJOBS_BENCH_ADMIN_POSTGRES_URL",
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="jobs in the big table (default 1,000,000)")
    parser.add_argument(
        "--small-rows",
        type=int,
        default=10_000,
        help="jobs in the small table, measured first to compare query counts (default 10,000; 0: skip)",
    )
    parser.add_argument("--repeat", type=int, default=20, help="timed requests per page and size (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed requests per page before timing (default 3)")
    parser.add_argument(
        "--extra-url",
        action="append",
        default=[],
        metavar="LABEL=PATH",
        help="another admin page to measure, e.g. 'Dashboard JSON=/admin/django_asyncjobs/dashboard/data/'",
    )
    args = parser.parse_args(argv)
    if args.rows < 1000 or args.small_rows < 0 or args.repeat < 2 or args.warmup < 0:
        parser.error("--rows must be >= 1000, --small-rows >= 0, --repeat >= 2, --warmup >= 0")
    for extra in args.extra_url:
        if "=" not in extra or not extra.partition("=")[2].startswith("/"):
            parser.error(f"--extra-url takes LABEL=/path/, got {extra!r}")
    # measure_databases() (bench_core.py) reads these; this benchmark has no use for them.
    args.sqlite_conn_max_age = "none"
    return args


def main() -> None:
    run_benchmark(parse_args, child_main, parent_main)


if __name__ == "__main__":
    main()
