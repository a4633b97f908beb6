"""Capacity: N worker processes against one PostgreSQL and one Redis, and what a deep queue costs.

Run it with ``make bench-scale`` or::

    .venv/bin/python benchmarks/bench_scale.py [--procs 1,2,4,8] [--jobs 20000] [--depth 1000000]

1. Drain: for each process count, ``--jobs`` no-op jobs are enqueued first (bulk), then N
   ``asyncjobs_worker`` processes are started; the rate is the jobs over the time from the first
   start to the last finish, read from the rows (process start-up excluded). Once on one queue,
   once spread over four queues that every worker serves.
2. Depth: ``--depth`` jobs enqueued with no worker running: Redis memory per queued job (the
   server's ``used_memory`` before and after), the enqueue rate; then they are drained by the
   largest process count: the database's size per finished job (the job table with its indexes),
   a recovery pass over that table (``recover()``), and pruning all of them (``prune()``).

One private Redis server (never the machine's 6379) and a dedicated PostgreSQL database
(``asyncjobs_scale``, created and dropped). Written to ``docs/deployment.md`` between
``<!-- bench_scale:start -->`` and ``<!-- bench_scale:end -->``. Nothing here asserts on timings.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0]).resolve() == ROOT / "benchmarks":
    sys.path[0] = str(ROOT)
elif str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_core import (  # noqa: E402
    TIMES,
    code_version,
    cpu_model,
    log,
    postgres_admin,
    redis_server_version,
    table,
    write_section,
)

DOCS_PAGE = ROOT / "docs" / "deployment.md"
SECTION = "bench_scale"
DATABASE = "asyncjobs_scale"
DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/"
SCALE_QUEUES = ("scale-0", "scale-1", "scale-2", "scale-3")
ENQUEUE_BATCH = 1000


def setup(redis_url: str, postgres_url: str) -> None:
    os.environ.update(
        ASYNCJOBS_BENCH_REDIS_URL=redis_url,
        ASYNCJOBS_BENCH_DB="postgres",
        ASYNCJOBS_BENCH_POSTGRES_URL=postgres_url.rstrip("/") + "/" + DATABASE,
        DJANGO_SETTINGS_MODULE="benchmarks.settings",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    from benchmarks.peers.harness import django_setup

    django_setup("benchmarks.settings")


def enqueue(count: int, queues: tuple[str, ...]) -> float:
    """Enqueue ``count`` no-op jobs spread over ``queues``; the rate (jobs/s)."""
    from benchmarks.benchapp.jobs import noop

    started = time.perf_counter()
    done = 0
    while done < count:
        batch = min(ENQUEUE_BATCH, count - done)
        noop.enqueue_many([() for _ in range(batch)], queue=queues[(done // ENQUEUE_BATCH) % len(queues)])
        done += batch
    return count / (time.perf_counter() - started)


def drain(procs: int, queues: tuple[str, ...], expected: int, workdir: Path) -> float:
    """Start ``procs`` worker processes on ``queues``; jobs/s from the first start to the last finish."""
    from django.db.models import Max, Min

    from django_asyncjobs.models import Job

    command = [sys.executable, "-m", "django", "asyncjobs_worker", *queues, "--burst", "--verbosity", "0"]
    logs = [open(workdir / f"worker-{procs}-{i}.log", "wb") for i in range(procs)]  # noqa: SIM115
    try:
        processes = [subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT) for log in logs]
        for process in processes:
            if process.wait(3600) != 0:
                raise RuntimeError(f"a worker exited with {process.returncode} (see {workdir})")
    finally:
        for log in logs:
            log.close()
    succeeded = Job.objects.filter(status="succeeded")
    if succeeded.count() != expected:
        raise RuntimeError(f"{succeeded.count()} of {expected} jobs succeeded (see {workdir})")
    span = succeeded.aggregate(first=Min("started_at"), last=Max("finished_at"))
    return expected / max((span["last"] - span["first"]).total_seconds(), 1e-6)


def reset() -> None:
    from benchmarks.peers.harness import truncate_django_table
    from django_asyncjobs.models import Job

    truncate_django_table(Job)


def redis_memory(url: str) -> int:
    from redis import Redis

    client = Redis.from_url(url)
    try:
        return int(client.info("memory")["used_memory"])
    finally:
        client.close()


def table_bytes() -> int:
    from django.db import connection

    from django_asyncjobs.models import Job

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE " + connection.ops.quote_name(Job._meta.db_table))
        cursor.execute("SELECT pg_total_relation_size(%s)", [Job._meta.db_table])
        return int(cursor.fetchone()[0])


def measure(args: argparse.Namespace, redis_url: str, workdir: Path) -> dict[str, Any]:
    from datetime import timedelta

    from django_asyncjobs.scheduling.pruning import prune_jobs
    from django_asyncjobs.scheduling.recovery import recover

    results: dict[str, Any] = {"drain": {}}
    for layout, queues in (("one queue", ("default",)), ("four queues", SCALE_QUEUES)):
        for procs in args.procs:
            reset()
            enqueue(args.jobs, queues)
            rate = drain(procs, queues, args.jobs, workdir)
            log(f"{layout}, {procs} process(es): {rate:,.0f} jobs/s")
            results["drain"][(layout, procs)] = rate
    if args.depth:
        reset()
        before = redis_memory(redis_url)
        results["depth_enqueue"] = enqueue(args.depth, ("default",))
        results["redis_per_job"] = (redis_memory(redis_url) - before) / args.depth
        log(f"depth {args.depth:,}: {results['redis_per_job']:.0f} bytes of Redis per queued job")
        results["depth_drain"] = drain(max(args.procs), ("default",), args.depth, workdir)
        results["db_per_job"] = table_bytes() / args.depth
        started = time.perf_counter()
        recover(grace=0)
        results["recovery_s"] = time.perf_counter() - started
        started = time.perf_counter()
        pruned = sum(prune_jobs(older_than=timedelta(microseconds=1)).deleted.values())
        results["prune_s"] = time.perf_counter() - started
        results["pruned"] = pruned
        log(f"recovery pass {results['recovery_s']:.2f} s, prune of {pruned:,} rows {results['prune_s']:.1f} s")
    return results


def render(args: argparse.Namespace, results: dict[str, Any], info: dict[str, str]) -> str:
    procs = ",".join(map(str, args.procs))
    command = f"benchmarks/bench_scale.py --procs {procs} --jobs {args.jobs} --depth {args.depth}"
    lines = [
        "### Capacity, measured",
        "",
        f"Written by `benchmarks/bench_scale.py`; reproduce with `make bench-scale` (here: `{command}`).",
        "",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; code: {code_version()}.",
        f"- Machine: {os.cpu_count()} CPUs ({cpu_model()}), {platform.system()} {platform.release()}, Python"
        f" {platform.python_version()}; {info['redis']}, {info['postgres']} (loopback TCP; every worker process,"
        " Redis and PostgreSQL share the machine's CPUs).",
        f"- Load average (1 min) {info['load_before']} before, {os.getloadavg()[0]:.2f} after.",
        f"- Method: {args.jobs:,} no-op jobs enqueued first, then N `asyncjobs_worker --burst` processes; the rate"
        " is the jobs over the time from the first start to the last finish, read from the rows. Four queues:"
        " the jobs spread over four queues that every worker serves.",
        "",
    ]
    rows = []
    for procs in args.procs:
        one = results["drain"][("one queue", procs)]
        four = results["drain"][("four queues", procs)]
        base = results["drain"][("one queue", args.procs[0])]
        rows.append([str(procs), f"{one:,.0f}", f"{one / base:.2f}{TIMES}", f"{four:,.0f}"])
    lines += table(["worker processes", "drain /s, one queue", "÷ first row", "drain /s, four queues"], rows, "rrrr")
    if "redis_per_job" in results:
        lines += [
            "",
            f"With {args.depth:,} jobs queued (no worker running):",
            "",
            *table(
                ["figure", "value"],
                [
                    ["bulk enqueue (batches of 1,000) /s", f"{results['depth_enqueue']:,.0f}"],
                    ["Redis memory per queued job", f"{results['redis_per_job']:,.0f} bytes"],
                    [f"drain with {max(args.procs)} processes /s", f"{results['depth_drain']:,.0f}"],
                    ["job table and indexes per finished job", f"{results['db_per_job']:,.0f} bytes"],
                    ["one recovery pass over that table", f"{results['recovery_s']:.2f} s"],
                    [f"pruning all {results['pruned']:,} finished jobs", f"{results['prune_s']:.1f} s"],
                ],
                "lr",
            ),
        ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--procs", default="1,2,4,8", help="worker process counts (default 1,2,4,8)")
    parser.add_argument("--jobs", type=int, default=20_000, help="jobs per drain measurement (default 20,000)")
    parser.add_argument("--depth", type=int, default=1_000_000, help="jobs for the depth test; 0 skips it")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--no-docs", action="store_true", help=f"print only; leave {DOCS_PAGE.name} alone")
    args = parser.parse_args()
    args.procs = sorted({int(part) for part in args.procs.split(",")})
    admin = postgres_admin(args.postgres_url)
    if admin is None:
        log(f"PostgreSQL not reachable at {args.postgres_url}: nothing measured")
        return 1
    from django_asyncjobs.testing import RedisServer

    info = {"load_before": f"{os.getloadavg()[0]:.2f}"}
    server = RedisServer().start()
    workdir = Path(tempfile.mkdtemp(prefix="asyncjobs-scale-"))
    try:
        info["redis"] = redis_server_version(server.url)
        info["postgres"] = "PostgreSQL " + admin.execute("SHOW server_version").fetchone()[0]
        admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{DATABASE}"')
        setup(server.url, args.postgres_url)
        results = measure(args, server.url, workdir)
        body = render(args, results, info)
        print(body)
        if not args.no_docs:
            write_section(DOCS_PAGE, SECTION, body)
            log(f"wrote {DOCS_PAGE.relative_to(ROOT)} (section {SECTION})")
    finally:
        from django.db import connections

        connections.close_all()
        admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        admin.close()
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
