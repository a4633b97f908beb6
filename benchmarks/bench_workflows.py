"""What a group costs: 10,000 no-op jobs enqueued and drained as one group (with a ``then``
callback) against the same 10,000 enqueued as single jobs (``enqueue_many``), same run.

Run it with ``make bench-workflows`` or::

    .venv/bin/python benchmarks/bench_workflows.py [--db postgres|sqlite] [--jobs 10000] [--rounds 3]

Each round measures both, in alternating order: the enqueue (one ``enqueue_many()`` call for
the single jobs, one ``enqueue_group()`` call for the group) and the drain by one in-process
burst worker (the group's drain includes finishing the group and running its callback). The
overhead is the group's total time over the single jobs' total, minus one, the median of
the rounds. One private Redis server (never the machine's 6379); PostgreSQL in a database of
its own (``asyncjobs_workflows``, created and dropped), or SQLite in a temporary file. Written
to ``docs/benchmarks.md`` between ``<!-- bench_workflows:start -->`` and
``<!-- bench_workflows:end -->``. Nothing here asserts on timings.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0]).resolve() == ROOT / "benchmarks":
    sys.path[0] = str(ROOT)
elif str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_core import (  # noqa: E402
    code_version,
    cpu_model,
    log,
    postgres_admin,
    redis_server_version,
    restored_signals,
    table,
    write_section,
)

DOCS_PAGE = ROOT / "docs" / "benchmarks.md"
SECTION = "bench_workflows"
DATABASE = "asyncjobs_workflows"
DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/"


def setup(redis_url: str, db: str, postgres_url: str, workdir: Path) -> None:
    os.environ.update(
        ASYNCJOBS_BENCH_REDIS_URL=redis_url,
        ASYNCJOBS_BENCH_DB=db,
        ASYNCJOBS_BENCH_SQLITE=str(workdir / "workflows.sqlite3"),
        ASYNCJOBS_BENCH_POSTGRES_URL=postgres_url.rstrip("/") + "/" + DATABASE,
        DJANGO_SETTINGS_MODULE="benchmarks.settings",
    )
    from benchmarks.peers.harness import django_setup

    django_setup("benchmarks.settings")


def reset() -> None:
    from benchmarks.peers.harness import truncate_django_table
    from django_asyncjobs.models import Job, JobDependency, JobGroup

    JobGroup.objects.update(callback=None)
    for model in (JobDependency, Job, JobGroup):
        truncate_django_table(model)


def drain() -> float:
    from django_asyncjobs.worker import build_worker

    started = time.perf_counter()
    worker = build_worker(["default"])
    with restored_signals():
        worker.work(burst=True, logging_level="WARNING")
    return time.perf_counter() - started


def singles(jobs: int) -> tuple[float, float]:
    """(enqueue seconds, drain seconds) of ``jobs`` single no-op jobs."""
    from benchmarks.benchapp.jobs import noop
    from django_asyncjobs.models import Job, JobStatus

    reset()
    started = time.perf_counter()
    noop.enqueue_many([() for _ in range(jobs)])
    enqueued = time.perf_counter() - started
    drained = drain()
    done = Job.objects.filter(status=JobStatus.SUCCEEDED).count()
    if done != jobs:
        raise RuntimeError(f"{done} of {jobs} single jobs succeeded")
    return enqueued, drained


def group(jobs: int) -> tuple[float, float]:
    """(enqueue seconds, drain seconds) of a group of ``jobs`` no-op jobs and its callback."""
    from benchmarks.benchapp.jobs import group_done, noop
    from django_asyncjobs import enqueue_group
    from django_asyncjobs.models import GroupStatus, Job, JobStatus

    reset()
    started = time.perf_counter()
    created = enqueue_group(noop, [() for _ in range(jobs)], then=group_done.s())
    enqueued = time.perf_counter() - started
    drained = drain()
    created.refresh_from_db()
    callback = Job.objects.get(pk=created.callback_id)
    if created.status != GroupStatus.SUCCEEDED or callback.status != JobStatus.SUCCEEDED:
        raise RuntimeError(f"group {created.status}, callback {callback.status}")
    return enqueued, drained


def measure(args: argparse.Namespace) -> dict[str, list[tuple[float, float]]]:
    results: dict[str, list[tuple[float, float]]] = {"singles": [], "group": []}
    for round_number in range(args.rounds):
        order = ("singles", "group") if round_number % 2 == 0 else ("group", "singles")
        for kind in order:
            figures = singles(args.jobs) if kind == "singles" else group(args.jobs)
            results[kind].append(figures)
            log(f"round {round_number + 1}, {kind}: enqueue {figures[0]:.2f} s, drain {figures[1]:.2f} s")
    return results


def render(args: argparse.Namespace, results: dict[str, list[tuple[float, float]]], info: dict[str, str]) -> str:
    def rate(kind: str, index: int) -> str:
        return f"{statistics.median(args.jobs / figures[index] for figures in results[kind]):,.0f}/s"

    overheads = [
        sum(grouped) / sum(single) - 1 for single, grouped in zip(results["singles"], results["group"], strict=True)
    ]
    rows = [
        ["single jobs (`enqueue_many`)", rate("singles", 0), rate("singles", 1), "-"],
        ["one group, with a `then`", rate("group", 0), rate("group", 1), f"{statistics.median(overheads):+.1%}"],
    ]
    lines = [
        f"`make bench-workflows` ({args.db}, {args.jobs:,} no-op jobs, median of {args.rounds} rounds; "
        f"{code_version()}, {cpu_model()}, {info['database']}, {info['redis']}, load before "
        f"{info['load_before']}):",
        "",
        *table(["", "enqueue", "drain (1 worker)", "group's overhead (total time)"], rows, "lrrr"),
        "",
        "Overhead per round: " + ", ".join(f"{value:+.1%}" for value in overheads) + ".",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--no-docs", action="store_true", help=f"print only; leave {DOCS_PAGE.name} alone")
    args = parser.parse_args()
    admin = postgres_admin(args.postgres_url) if args.db == "postgres" else None
    if args.db == "postgres" and admin is None:
        log(f"PostgreSQL not reachable at {args.postgres_url}: nothing measured")
        return 1
    from django_asyncjobs.testing import RedisServer

    info = {"load_before": f"{os.getloadavg()[0]:.2f}"}
    server = RedisServer().start()
    workdir = Path(tempfile.mkdtemp(prefix="asyncjobs-workflows-"))
    try:
        info["redis"] = redis_server_version(server.url)
        if admin is not None:
            info["database"] = "PostgreSQL " + admin.execute("SHOW server_version").fetchone()[0]
            admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{DATABASE}"')
        else:
            import sqlite3

            info["database"] = f"SQLite {sqlite3.sqlite_version}"
        setup(server.url, args.db, args.postgres_url, workdir)
        body = render(args, measure(args), info)
        print(body)
        if not args.no_docs:
            write_section(DOCS_PAGE, SECTION, body)
            log(f"wrote {DOCS_PAGE.relative_to(ROOT)} (section {SECTION})")
    finally:
        from django.db import connections

        connections.close_all()
        if admin is not None:
            admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
            admin.close()
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
