"""Core benchmark: enqueue cost, worker throughput and enqueue-to-start latency, against bare RQ.

Run it with ``make bench`` or::

    .venv/bin/python benchmarks/bench_core.py [--db sqlite|postgres|both] [--jobs N]

One private Redis server is started for the whole run (never the machine's 6379)
and every measurement, for every database, uses it. Each database is measured
in its own child process (Django is configured once per process), which
interleaves the bare-RQ baseline with our code repetition by repetition so that
both see the same machine state. Medians of the repetitions are reported.

The tables are printed as markdown and written to ``docs/benchmarks.md``
between ``<!-- bench_core:start -->`` and ``<!-- bench_core:end -->``; the rest of
that page is left alone so that other benchmarks can add their own sections.
Nothing here asserts on timings: the targets are reported as met or not met.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, sys.path[0] is benchmarks/; the packages live one level up.
if sys.path and Path(sys.path[0]).resolve() == ROOT / "benchmarks":
    sys.path[0] = str(ROOT)
elif str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

if TYPE_CHECKING:
    from redis import Redis
    from rq import Queue

DOCS_PAGE = ROOT / "docs" / "benchmarks.md"
SECTION = "bench_core"
DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/asyncjobs_bench"
BULK_BATCH_SIZES = (10, 100, 1000)
BARE_QUEUE = "bare"
DB_LABELS = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
TIMES = "\N{MULTIPLICATION SIGN}"

# Targets from the issue: (ratio or milliseconds, comparison).
TARGET_WORKER = 2.0  # our Worker >= 2x bare rq SimpleWorker jobs/s
TARGET_SINGLE = 0.8  # noop.enqueue() >= 0.8x bare rq Queue.enqueue
TARGET_BULK = 1.0  # noop.enqueue_many() >= 1x bare rq Queue.enqueue_many, at every batch size
TARGET_LATENCY_MS = 2.0  # enqueue -> started_at p50 <= 2 ms on an idle worker


class Comparison(TypedDict):
    bare: list[float]
    ours: list[float]


class Latency(TypedDict):
    start_ms: list[float]  # enqueue call -> the worker's start of the job (ours: the row's started_at)
    function_ms: list[float]  # enqueue call -> the job function's first line
    call_ms: list[float]  # duration of the enqueue call
    insert_ms: list[float]  # ours only: enqueue call -> the row is committed
    commit_to_start_ms: list[float]  # ours only: row committed -> started_at (the push, then the worker's wake-up)


class DbResult(TypedDict):
    db: str
    db_version: str
    jobs: int
    fork_jobs: int
    stock_jobs: int
    repeat: int
    worker_repeat: int
    single: Comparison
    bulk: dict[str, Comparison]
    worker: dict[str, list[float]]
    latency: dict[str, Latency]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------
# Child process: one database, Django configured by benchmarks.settings
# ------------------------------------------------------------------------------------------------


class Bench:
    """The measurements for one database. Django must be set up before this is built."""

    def __init__(self, db: str, jobs: int, repeat: int, worker_repeat: int, latency_samples: int) -> None:
        from django.db import connection

        from django_asyncjobs.engine.broker import get_connection, get_queue

        self.db = db
        self.jobs = jobs
        self.fork_jobs = max(50, jobs // 5)  # the forking worker costs ~20 ms per job
        self.stock_jobs = max(50, jobs // 2)  # a stock SimpleWorker running our messages costs ~10 ms per job
        self.repeat = repeat
        self.worker_repeat = worker_repeat
        self.latency_samples = latency_samples
        self.connection: Redis = get_connection("default")
        self.queue: Queue = get_queue("default")
        self.bare_queue = self._bare_queue()
        self.is_postgres = connection.vendor == "postgresql"

    def _bare_queue(self) -> Queue:
        from rq import Queue
        from rq.serializers import JSONSerializer

        # Same Redis client as ours, same serializer: the only difference is the code around the push.
        return Queue(BARE_QUEUE, connection=self.connection, serializer=JSONSerializer)

    # -- state between measurements ---------------------------------------------------------

    def reset(self) -> None:
        """Empty the private Redis DB and the job table, so every measurement starts alike."""
        from django.db import connection

        from django_asyncjobs.models import Job

        self.connection.flushdb()
        table = connection.ops.quote_name(Job._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {table} CASCADE" if self.is_postgres else f"DELETE FROM {table}")

    # -- 1. single enqueue --------------------------------------------------------------------

    def bare_single(self, n: int) -> int:
        from benchmarks.benchapp.bare import noop

        enqueue = self.bare_queue.enqueue
        for _ in range(n):
            enqueue(noop)
        return n

    def ours_single(self, n: int) -> int:
        from benchmarks.benchapp.jobs import noop

        for _ in range(n):
            noop.enqueue()
        return n

    # -- 2. bulk enqueue ----------------------------------------------------------------------

    def bare_bulk(self, batch: int, total: int) -> int:
        from rq import Queue

        from benchmarks.benchapp.bare import noop

        for _ in range(total // batch):
            self.bare_queue.enqueue_many([Queue.prepare_data(noop) for _ in range(batch)])
        return total // batch * batch

    def ours_bulk(self, batch: int, total: int) -> int:
        from benchmarks.benchapp.jobs import noop

        for _ in range(total // batch):
            noop.enqueue_many([() for _ in range(batch)])
        return total // batch * batch

    # -- 3. worker throughput -----------------------------------------------------------------

    def fill_bare(self, n: int) -> None:
        for start in range(0, n, 1000):
            size = min(1000, n - start)
            self.bare_bulk(size, size)

    def fill_ours(self, n: int, atomic: bool = False) -> None:
        from benchmarks.benchapp.jobs import atomic_noop, noop

        function = atomic_noop if atomic else noop
        for start in range(0, n, 1000):
            function.enqueue_many([() for _ in range(min(1000, n - start))])

    def run_rq_worker(self, worker_class: str, queue: Queue) -> None:
        from rq import SimpleWorker, Worker
        from rq.serializers import JSONSerializer

        cls = SimpleWorker if worker_class == "simple" else Worker
        worker = cls([queue], connection=self.connection, serializer=JSONSerializer)
        with restored_signals():
            worker.work(burst=True, logging_level="WARNING")

    def run_our_worker(self) -> None:
        from django_asyncjobs.worker import build_worker

        worker = build_worker(["default"])
        with restored_signals():
            worker.work(burst=True, logging_level="WARNING")

    def drain_bare(self, worker_class: str, n: int) -> float:
        self.reset()
        self.fill_bare(n)
        start = time.perf_counter()
        self.run_rq_worker(worker_class, self.bare_queue)
        elapsed = time.perf_counter() - start
        self._check_bare_drained(n)
        return n / elapsed

    def drain_ours(self, on_stock_rq: bool, n: int, atomic: bool = False) -> float:
        """Jobs/s of ``n`` no-op jobs (``atomic``: ``@job(atomic=True)`` ones)."""
        self.reset()
        self.fill_ours(n, atomic)
        start = time.perf_counter()
        if on_stock_rq:
            self.run_rq_worker("simple", self.queue)
        else:
            self.run_our_worker()
        elapsed = time.perf_counter() - start
        self._check_ours_done(n)
        return n / elapsed

    def _check_bare_drained(self, n: int) -> None:
        from rq.registry import FinishedJobRegistry

        finished = FinishedJobRegistry(BARE_QUEUE, connection=self.connection).count
        if len(self.bare_queue) or finished != n:
            raise RuntimeError(f"bare rq worker left {len(self.bare_queue)} queued, finished {finished} of {n}")

    def _check_ours_done(self, n: int) -> None:
        from django_asyncjobs.models import Job, JobStatus

        done = Job.objects.filter(status=JobStatus.SUCCEEDED).count()
        if done != n:
            raise RuntimeError(f"our worker finished {done} of {n} jobs")

    # -- 4. enqueue -> start latency ------------------------------------------------------------

    def latency(self, bare: bool) -> Latency:
        """Enqueue one probe at a time to an idle worker subprocess; time the way to its start."""
        self.reset()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        if bare:
            command = ["-m", "rq.cli", "worker", "--url", self._redis_url(), "--worker-class", "rq.SimpleWorker"]
            command += ["--serializer", "json", "--logging_level", "WARNING", BARE_QUEUE]
        else:
            command = ["-m", "django", "asyncjobs_worker", "default", "--verbosity", "0"]
        process = subprocess.Popen([sys.executable, *command], env=env, stdin=subprocess.DEVNULL)
        result: Latency = {"start_ms": [], "function_ms": [], "call_ms": [], "insert_ms": [], "commit_to_start_ms": []}
        warmup = 20
        try:
            # The first probe waits for the worker to start; the next ones warm it up.
            for index in range(1 + warmup + self.latency_samples):
                if process.poll() is not None:
                    raise RuntimeError(f"the worker subprocess exited with status {process.returncode}")
                time.sleep(0.02)  # let the worker go back to waiting on an empty queue: idle
                sample = self._probe_bare(index == 0) if bare else self._probe_ours(index == 0)
                if index > warmup:
                    for key, value in sample.items():
                        result[key].append(value)  # type: ignore[literal-required]
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return result

    def _redis_url(self) -> str:
        return os.environ["ASYNCJOBS_BENCH_REDIS_URL"]

    def _probe_ours(self, first: bool) -> dict[str, float]:
        from django.db import connection

        from benchmarks.benchapp.jobs import PROBE_DONE_KEY, latency_probe
        from django_asyncjobs.models import Job

        committed: list[float] = []

        def stamp_insert(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
            result = execute(sql, params, many, context)
            if sql.lstrip().upper().startswith("INSERT"):
                committed.append(time.time())  # autocommit: the row is committed when the INSERT returns
            return result

        with connection.execute_wrapper(stamp_insert):
            before = time.time()
            job = latency_probe.enqueue()
            after = time.time()
        reply = self.connection.blpop([PROBE_DONE_KEY], timeout=60 if first else 10)
        if reply is None or not committed:
            raise RuntimeError("the latency probe did not run within the time limit")
        started_at = Job.objects.filter(pk=job.pk).values_list("started_at", flat=True).get()
        if started_at is None:
            raise RuntimeError(f"job {job.pk} ran but has no started_at")
        return {
            "start_ms": (started_at.timestamp() - before) * 1000,
            "function_ms": (float(reply[1]) - before) * 1000,
            "call_ms": (after - before) * 1000,
            "insert_ms": (committed[0] - before) * 1000,
            "commit_to_start_ms": (started_at.timestamp() - committed[0]) * 1000,
        }

    def _probe_bare(self, first: bool) -> dict[str, float]:
        from rq.job import Job as RQJob
        from rq.serializers import JSONSerializer

        from benchmarks.benchapp.bare import BARE_PROBE_DONE_KEY, latency_probe

        before = time.time()
        job = self.bare_queue.enqueue(latency_probe)
        after = time.time()
        reply = self.connection.blpop([BARE_PROBE_DONE_KEY], timeout=60 if first else 10)
        if reply is None:
            raise RuntimeError("the bare latency probe did not run within the time limit")
        started_at = RQJob.fetch(job.id, connection=self.connection, serializer=JSONSerializer).started_at
        if started_at is None:
            raise RuntimeError(f"rq job {job.id} ran but has no started_at")
        if started_at.tzinfo is None:
            started_at = started_at.replace(tzinfo=UTC)
        return {
            "start_ms": (started_at.timestamp() - before) * 1000,
            "function_ms": (float(reply[1]) - before) * 1000,
            "call_ms": (after - before) * 1000,
        }

    # -- the whole run ------------------------------------------------------------------------

    def run(self) -> DbResult:
        label = DB_LABELS[self.db]
        n = self.jobs
        self.reset()
        # Warm-up: imports, connections, RQ's cached server version, SQLite page cache, PG plans.
        self.bare_single(200)
        self.ours_single(200)
        self.bare_bulk(100, 500)
        self.ours_bulk(100, 500)

        single: Comparison = {"bare": [], "ours": []}
        for rep in range(self.repeat):
            self.reset()
            single["bare"].append(rate(self.bare_single, n))
            single["ours"].append(rate(self.ours_single, n))
            log(f"[{label}] single enqueue {rep + 1}/{self.repeat}: {fmt_pair(single, -1)}")

        bulk: dict[str, Comparison] = {}
        for batch in BULK_BATCH_SIZES:
            total = max(n, 2 * batch)
            pair: Comparison = {"bare": [], "ours": []}
            for rep in range(self.repeat):
                self.reset()
                pair["bare"].append(rate(lambda b=batch, t=total: self.bare_bulk(b, t)))
                pair["ours"].append(rate(lambda b=batch, t=total: self.ours_bulk(b, t)))
                log(f"[{label}] bulk enqueue (batch {batch}) {rep + 1}/{self.repeat}: {fmt_pair(pair, -1)}")
            bulk[str(batch)] = pair

        # Warm the workers up (first-job imports, rq's Lua scripts) with short drains.
        self.drain_bare("simple", 100)
        self.drain_bare("fork", 10)
        self.drain_ours(False, 100)
        self.drain_ours(False, 100, atomic=True)
        self.drain_ours(True, 100)
        worker: dict[str, list[float]] = {
            "rq_simple": [],
            "rq_fork": [],
            "ours": [],
            "ours_atomic": [],
            "ours_on_rq_simple": [],
        }
        for rep in range(self.worker_repeat):
            worker["rq_simple"].append(self.drain_bare("simple", n))
            worker["ours"].append(self.drain_ours(False, n))
            worker["ours_atomic"].append(self.drain_ours(False, n, atomic=True))
            worker["ours_on_rq_simple"].append(self.drain_ours(True, self.stock_jobs))
            worker["rq_fork"].append(self.drain_bare("fork", self.fork_jobs))
            log(
                f"[{label}] workers {rep + 1}/{self.worker_repeat}: "
                + ", ".join(f"{key} {values[-1]:,.0f}/s" for key, values in worker.items())
            )

        latency = {"ours": self.latency(bare=False), "bare": self.latency(bare=True)}
        for key, values in latency.items():
            log(
                f"[{label}] {key}: enqueue->start p50 {med(values['start_ms']):.2f} ms, "
                f"p99 {percentile(values['start_ms'], 99):.2f} ms over {len(values['start_ms'])} jobs"
            )
        return {
            "db": self.db,
            "db_version": database_version(),
            "jobs": n,
            "fork_jobs": self.fork_jobs,
            "stock_jobs": self.stock_jobs,
            "repeat": self.repeat,
            "worker_repeat": self.worker_repeat,
            "single": single,
            "bulk": bulk,
            "worker": worker,
            "latency": latency,
        }


@contextmanager
def restored_signals() -> Iterator[None]:
    """RQ's ``work()`` installs SIGINT/SIGTERM handlers; put ours back afterwards."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def rate(work: Callable[..., int], *args: Any) -> float:
    start = time.perf_counter()
    count = work(*args)
    return count / (time.perf_counter() - start)


def fmt_pair(pair: Comparison, index: int) -> str:
    bare, ours = pair["bare"][index], pair["ours"][index]
    return f"bare rq {bare:,.0f}/s, ours {ours:,.0f}/s ({ours / bare:.2f}x)"


def percentile(values: Sequence[float], pct: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


def database_version() -> str:
    from django.db import connection

    max_age = connection.settings_dict["CONN_MAX_AGE"]
    if connection.vendor == "sqlite":
        return (
            f"SQLite {sqlite3.sqlite_version}: a file in a temp dir, WAL, synchronous=NORMAL, CONN_MAX_AGE={max_age}"
            + (" (Django's default)" if max_age == 0 else "")
        )
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        (version,) = cursor.fetchone()
    return f"PostgreSQL {version}: loopback TCP, a dedicated database, CONN_MAX_AGE={max_age}"


def child_main(args: argparse.Namespace) -> None:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    bench = Bench(args.child, args.jobs, args.repeat, args.worker_repeat, args.latency_samples)
    result = bench.run()
    Path(args.out).write_text(json.dumps(result))


# ------------------------------------------------------------------------------------------------
# Parent process: Redis, databases, children, report
# ------------------------------------------------------------------------------------------------


def postgres_admin(url: str) -> Any:
    """An autocommit connection to the server's maintenance database, or ``None`` when unreachable."""
    import psycopg

    parsed = urlparse(url)
    try:
        return psycopg.connect(
            host=parsed.hostname or "127.0.0.1",
            port=parsed.port or 5432,
            user=parsed.username or "postgres",
            password=parsed.password or None,
            dbname="postgres",
            autocommit=True,
            connect_timeout=3,
        )
    except psycopg.Error as exc:
        log(f"PostgreSQL not reachable at {parsed.hostname}:{parsed.port}: {exc}")
        return None


def quoted_db_name(url: str) -> str:
    name = urlparse(url).path.lstrip("/")
    if not name.replace("_", "").isalnum():
        raise SystemExit(f"refusing odd database name {name!r}")
    return f'"{name}"'


def run_child(db: str, args: argparse.Namespace, env: dict[str, str], out: Path) -> DbResult:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        db,
        "--out",
        str(out),
        "--jobs",
        str(args.jobs),
        "--repeat",
        str(args.repeat),
        "--worker-repeat",
        str(args.worker_repeat),
        "--latency-samples",
        str(args.latency_samples),
    ]
    subprocess.run(command, env=env, check=True, stdin=subprocess.DEVNULL)
    result: DbResult = json.loads(out.read_text())
    return result


def measure_databases(
    args: argparse.Namespace,
    *,
    prefix: str,
    run_child: Callable[[str, argparse.Namespace, dict[str, str], Path], Any],
    render: Callable[..., str],
    section_name: str,
) -> None:
    """The parent process of a benchmark: one private Redis server for the run, a child
    process per database (PostgreSQL in a dedicated database, created and dropped), then
    the report, printed and written into ``section_name`` of docs/benchmarks.md."""
    from django_asyncjobs.testing import RedisServer

    wanted = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    args.load_before = os.getloadavg()[0]
    log(f"load average: {args.load_before:.2f} (other work on the machine makes the figures noisy)")
    started = time.monotonic()
    results: list[Any] = []
    skipped: list[str] = []
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    server = RedisServer().start()
    redis_version = redis_server_version(server.url)
    log(f"private Redis {redis_version} at {server.url} ({server.binary})")
    try:
        for db in wanted:
            env = dict(
                os.environ,
                DJANGO_SETTINGS_MODULE="benchmarks.settings",
                PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
                ASYNCJOBS_BENCH_REDIS_URL=server.url,
                ASYNCJOBS_BENCH_DB=db,
            )
            out = workdir / f"{db}.json"
            if db == "sqlite":
                env["ASYNCJOBS_BENCH_SQLITE"] = str(workdir / "bench.sqlite3")
                env["ASYNCJOBS_BENCH_SQLITE_CONN_MAX_AGE"] = args.sqlite_conn_max_age
                results.append(run_child(db, args, env, out))
                continue
            admin = postgres_admin(args.postgres_url)
            if admin is None:
                if args.db == "postgres":
                    raise SystemExit("PostgreSQL is not reachable; nothing to measure.")
                skipped.append(f"PostgreSQL was not reachable at {urlparse(args.postgres_url).netloc}: skipped.")
                continue
            name = quoted_db_name(args.postgres_url)
            env["ASYNCJOBS_BENCH_POSTGRES_URL"] = args.postgres_url
            with admin:
                admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
                admin.execute(f"CREATE DATABASE {name}")
                try:
                    results.append(run_child(db, args, env, out))
                finally:
                    admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.monotonic() - started
    body = render(results, skipped, redis_version, args, elapsed)
    print(body)
    if not args.no_docs:
        write_section(DOCS_PAGE, section_name, body)
        log(f"wrote {DOCS_PAGE.relative_to(ROOT)} (section {section_name}); total {elapsed:.0f} s")


def parent_main(args: argparse.Namespace) -> None:
    measure_databases(args, prefix="asyncjobs-bench-", run_child=run_child, render=render, section_name=SECTION)


def redis_server_version(url: str) -> str:
    from redis import Redis

    client = Redis.from_url(url)
    try:
        info = client.info("server")
    finally:
        client.close()
    name = "Valkey" if "valkey_version" in info else "Redis"
    return f"{name} {info.get('valkey_version') or info['redis_version']}"


# ------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------


def med(values: Sequence[float]) -> float:
    return statistics.median(values)


def verdict(met: bool) -> str:
    return "met" if met else "**not met**"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str) -> list[str]:
    """A markdown table; ``align`` has one letter per column, ``l`` or ``r``."""
    rule = ["---:" if a == "r" else "---" for a in align]
    return [f"| {' | '.join(header)} |", f"| {' | '.join(rule)} |", *(f"| {' | '.join(row)} |" for row in rows)]


Summary = dict[str, tuple[float, bool]]


def render_db(result: DbResult) -> tuple[list[str], Summary]:
    """The tables of one database, and for the summary: target -> (worst figure, met)."""
    summary: Summary = {}

    def ratio_row(label: str, pair: Comparison, target: float, key: str) -> list[str]:
        bare, ours = med(pair["bare"]), med(pair["ours"])
        ratio = ours / bare
        if key not in summary or ratio < summary[key][0]:
            summary[key] = (ratio, ratio >= target)
        return [
            label,
            f"{bare:,.0f}",
            f"{ours:,.0f}",
            f"{ratio:.2f}{TIMES}",
            f"≥ {target:g}{TIMES}",
            verdict(ratio >= target),
        ]

    enqueue_rows = [
        ratio_row("single: `Queue.enqueue()` / `noop.enqueue()`", result["single"], TARGET_SINGLE, "single")
    ]
    for batch, pair in result["bulk"].items():
        label = f"bulk, batches of {batch}: `Queue.enqueue_many()` / `noop.enqueue_many()`"
        enqueue_rows.append(ratio_row(label, pair, TARGET_BULK, "bulk"))

    worker = {key: med(values) for key, values in result["worker"].items()}
    baseline = worker["rq_simple"]
    worker_ratio = worker["ours"] / baseline
    summary["worker"] = (worker_ratio, worker_ratio >= TARGET_WORKER)
    worker_rows = [
        ["rq `SimpleWorker`, bare no-op function", f"{baseline:,.0f}", f"1.00{TIMES}", "", ""],
        [
            f"rq `Worker` (fork per job), bare no-op function; {result['fork_jobs']} jobs",
            f"{worker['rq_fork']:,.0f}",
            f"{worker['rq_fork'] / baseline:.2f}{TIMES}",
            "",
            "",
        ],
        [
            f"rq `SimpleWorker` running our messages (`perform`, with the job row); {result['stock_jobs']} jobs",
            f"{worker['ours_on_rq_simple']:,.0f}",
            f"{worker['ours_on_rq_simple'] / baseline:.2f}{TIMES}",
            "",
            "",
        ],
        [
            "our `Worker` (with the job row)",
            f"{worker['ours']:,.0f}",
            f"{worker_ratio:.2f}{TIMES}",
            f"≥ {TARGET_WORKER:g}{TIMES}",
            verdict(worker_ratio >= TARGET_WORKER),
        ],
    ]
    if "ours_atomic" in worker:  # results of runs before atomic jobs have no such row
        atomic = worker["ours_atomic"]
        worker_rows.append(
            ["our `Worker`, `@job(atomic=True)` jobs", f"{atomic:,.0f}", f"{atomic / baseline:.2f}{TIMES}", "", ""]
        )

    ours, bare = result["latency"]["ours"], result["latency"]["bare"]
    p50 = med(ours["start_ms"])
    summary["latency"] = (p50, p50 <= TARGET_LATENCY_MS)

    def ms(values: Sequence[float], pct: int = 50) -> str:
        return f"{(med(values) if pct == 50 else percentile(values, pct)):.2f} ms" if values else ""

    latency_rows = [
        [
            "enqueue→start p50",
            ms(bare["start_ms"]),
            ms(ours["start_ms"]),
            f"≤ {TARGET_LATENCY_MS:g} ms",
            verdict(p50 <= TARGET_LATENCY_MS),
        ],
        ["enqueue→start p99", ms(bare["start_ms"], 99), ms(ours["start_ms"], 99), "", ""],
        ["enqueue→function start p50", ms(bare["function_ms"]), ms(ours["function_ms"]), "", ""],
        ["the enqueue call, p50", ms(bare["call_ms"]), ms(ours["call_ms"]), "", ""],
        ["enqueue→row committed (Job INSERT), p50", "", ms(ours["insert_ms"]), "", ""],
        ["row committed→start (push, worker wake-up), p50", "", ms(ours["commit_to_start_ms"]), "", ""],
    ]
    lines = [
        f"### {DB_LABELS[result['db']]}",
        "",
        f"{result['db_version']}.",
        "",
        "Enqueue, jobs/s:",
        "",
        *table(["", "bare rq", "ours", "ours ÷ bare rq", "target", ""], enqueue_rows, "lrrrll"),
        "",
        "Worker throughput, jobs/s (burst, in the benchmark process):",
        "",
        *table(["worker", "jobs/s", "÷ rq `SimpleWorker`", "target", ""], worker_rows, "lrrll"),
        "",
        f"Our `Worker` ÷ stock rq `SimpleWorker` running the same messages: "
        f"{worker['ours'] / worker['ours_on_rq_simple']:.2f}{TIMES}."
        + (
            f" Atomic jobs (each success written in its own transaction, not in the batch's commit) ÷ plain ones: "
            f"{worker['ours_atomic'] / worker['ours']:.2f}{TIMES}."
            if "ours_atomic" in worker
            else ""
        ),
        "",
        "Enqueue→start latency on an idle worker (the start is the row's `started_at` for ours, rq's `started_at` "
        "for bare rq):",
        "",
        *table(
            ["", "bare rq (`rq worker`, `SimpleWorker`)", "ours (`asyncjobs_worker`)", "target", ""],
            latency_rows,
            "lrrll",
        ),
    ]
    return lines, summary


def render(
    results: Sequence[DbResult], skipped: Sequence[str], redis_version: str, args: argparse.Namespace, elapsed: float
) -> str:
    import django
    import rq

    tables: list[str] = []
    summaries: dict[str, Summary] = {}
    for result in results:
        lines, summaries[result["db"]] = render_db(result)
        tables += ["", *lines]
    dbs = [result["db"] for result in results]
    targets = [
        ("worker", f"our `Worker` ≥ {TARGET_WORKER:g}{TIMES} bare rq `SimpleWorker` jobs/s", TIMES),
        ("single", f"single enqueue ≥ {TARGET_SINGLE:g}{TIMES} bare rq `Queue.enqueue`", TIMES),
        ("bulk", f"bulk enqueue ≥ {TARGET_BULK:g}{TIMES} bare rq `enqueue_many` (worst batch size)", TIMES),
        ("latency", f"enqueue→start p50 ≤ {TARGET_LATENCY_MS:g} ms when idle", " ms"),
    ]
    summary_rows = [
        [label, *(f"{summaries[db][key][0]:.2f}{unit} {verdict(summaries[db][key][1])}" for db in dbs)]
        for key, label, unit in targets
    ]
    first = results[0] if results else None
    repeat = first["repeat"] if first else args.repeat
    worker_repeat = first["worker_repeat"] if first else args.worker_repeat
    fork_jobs = first["fork_jobs"] if first else "?"
    stock_jobs = first["stock_jobs"] if first else "?"
    method = (
        f"no-op jobs. Enqueue: {args.jobs:,} jobs per repetition (bulk: at least two batches), median of {repeat} "
        "repetitions, bare rq and ours interleaved, after a warm-up; single enqueues run outside any transaction, "
        f"so our push happens at once, on commit. Workers: {args.jobs:,} pre-enqueued jobs drained in burst mode "
        f"(the forking rq `Worker`: {fork_jobs}; the stock `SimpleWorker` running our messages: {stock_jobs}), "
        f"median of {worker_repeat} repetitions, start-up and teardown included; bare rq runs a plain function "
        "with rq's defaults (results kept 500 s); our worker keeps its database connection across jobs whatever "
        "CONN_MAX_AGE says (checked between jobs; `WORKER_CONN_MAX_AGE`), so CONN_MAX_AGE=0 (Django's default) "
        "and `--sqlite-conn-max-age none` should measure the same. Both sides use rq's "
        "`JSONSerializer` and the same Redis client. Latency: "
        f"{args.latency_samples} jobs enqueued one at a time, 20 ms apart, to a worker subprocess waiting on an "
        "empty queue, measured from the wall-clock time just before the enqueue call."
    )
    load = args.load_before
    machine = (
        f"{os.cpu_count()} CPUs ({cpu_model()}), {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}, Django {django.__version__}, rq {rq.__version__}, "
        f"redis-py {redis_py_version()}, {redis_version} (private server, loopback TCP, no persistence)"
    )
    parts = [
        "## Core: enqueue, worker throughput, enqueue→start latency",
        "",
        "Written by `benchmarks/bench_core.py`; reproduce with `make bench` "
        f"(here: `{' '.join(['benchmarks/bench_core.py', *command_line(args)])}`).",
        "",
        f"- Date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}; the run took {elapsed:.0f} s.",
        f"- Code: {code_version()}.",
        f"- Machine: {machine}; load average before the run: {load:.2f}.",
        f"- Method: {method}",
        *(f"- {note}" for note in skipped),
        "",
        "### Targets",
        "",
        *table(["target", *(DB_LABELS[db] for db in dbs)], summary_rows, "l" * (1 + len(dbs))),
        *tables,
    ]
    return "\n".join(parts)


def command_line(args: argparse.Namespace) -> list[str]:
    words = ["--db", args.db, "--jobs", str(args.jobs)]
    defaults = parse_args([])
    for option in ("repeat", "worker_repeat", "latency_samples", "sqlite_conn_max_age"):
        if getattr(args, option) != getattr(defaults, option):
            words += [f"--{option.replace('_', '-')}", str(getattr(args, option))]
    return words


def code_version() -> str:
    def git(*words: str) -> str:
        done = subprocess.run(["git", "-C", str(ROOT), *words], capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return "not a git checkout"
    dirty = git("status", "--porcelain", "--", "django_asyncjobs")
    return f"commit {commit}" + (" with uncommitted changes in `django_asyncjobs/`" if dirty else "")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def redis_py_version() -> str:
    import redis

    return str(redis.__version__)


def write_section(page: Path, name: str, body: str) -> None:
    """Replace the text between ``<!-- name:start -->`` and ``<!-- name:end -->`` (append it if absent)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body.strip()}\n{end}"
    if page.exists():
        text = page.read_text()
    else:
        text = (
            "# Benchmarks\n\n"
            "Measured, not estimated. Each section below is written by a script in `benchmarks/` and sits between\n"
            "`<!-- name:start -->` and `<!-- name:end -->` markers; the script rewrites its own section and leaves\n"
            "the rest of the page alone. Run `make bench` to measure on your machine; figures from one machine say\n"
            "little about another, the ratios to bare rq (measured in the same run) say more.\n"
        )
    if start in text and end in text and text.index(start) < text.index(end):
        text = text[: text.index(start)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(text)


# ------------------------------------------------------------------------------------------------


def benchmark_parser(
    doc: str | None, *, default_db: str, postgres_url: str, postgres_env: str
) -> argparse.ArgumentParser:
    """The options every benchmark script shares (and the hidden ones of its child processes)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default=default_db)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(postgres_env, postgres_url),
        help="where to create (and afterwards drop) the dedicated benchmark database",
    )
    parser.add_argument("--no-docs", action="store_true", help=f"print only; leave {DOCS_PAGE.name} alone")
    parser.add_argument("--child", choices=("sqlite", "postgres"), help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    return parser


def run_benchmark(
    parse: Callable[[], argparse.Namespace],
    child: Callable[[argparse.Namespace], None],
    parent: Callable[[argparse.Namespace], None],
) -> None:
    """A benchmark's entry point: the parent measures each database in a child process."""
    args = parse()
    (child if args.child else parent)(args)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = benchmark_parser(
        __doc__, default_db="both", postgres_url=DEFAULT_POSTGRES_URL, postgres_env="ASYNCJOBS_BENCH_POSTGRES_URL"
    )
    parser.add_argument("--jobs", type=int, default=1000, help="jobs per measurement (default 1000)")
    parser.add_argument("--repeat", type=int, default=5, help="repetitions of the enqueue measurements (default 5)")
    parser.add_argument("--worker-repeat", type=int, default=3, help="repetitions of the worker drains (default 3)")
    parser.add_argument("--latency-samples", type=int, default=200, help="jobs timed for the latency (default 200)")
    parser.add_argument(
        "--sqlite-conn-max-age",
        choices=("0", "none"),
        default="0",
        help="CONN_MAX_AGE of the SQLite runs: 0 (Django's default, the default here) or none (persistent)",
    )
    args = parser.parse_args(argv)
    if args.jobs < 10 or args.repeat < 1 or args.worker_repeat < 1 or args.latency_samples < 2:
        parser.error("--jobs must be >= 10, --repeat and --worker-repeat >= 1, --latency-samples >= 2")
    return args


def main() -> None:
    run_benchmark(parse_args, child_main, parent_main)


if __name__ == "__main__":
    main()
