"""I/O-bound jobs: one worker process with N threads, us (``--threads N``) against Dramatiq (``--threads N``).

Run it with ``make bench-io`` (which installs dramatiq from the ``peers`` extra) or::

    .venv/bin/python benchmarks/bench_io.py [--rounds 3] [--jobs 2000] [--sleep 0.02] [--threads 8]

Each job blocks its thread ``--sleep`` seconds (``time.sleep``; ours also as ``async def`` with
``asyncio.sleep``, run on the worker's event loop) and then pushes its end time to a Redis list.
The queue is filled first (50 warm-up jobs, then ``--jobs``), then ONE worker process is started;
the drain rate is the jobs that ended after the warm-up ones over the time from the first to the
last of their ends. One private Redis server (never the machine's 6379); PostgreSQL gets a
database of its own (``asyncjobs_io``, created and dropped). Each system and round runs in a
child process, the order rotating from round to round; medians over rounds. The ratio is to
Dramatiq in the same round. Written to ``docs/benchmarks.md`` between ``<!-- bench_io:start -->``
and ``<!-- bench_io:end -->``. Nothing here asserts on timings.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib.util import find_spec
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0]).resolve() == ROOT / "benchmarks":
    sys.path[0] = str(ROOT)
elif str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_core import (  # noqa: E402
    DOCS_PAGE,
    TIMES,
    code_version,
    cpu_model,
    log,
    med,
    postgres_admin,
    redis_server_version,
    table,
    write_section,
)
from benchmarks.peers.harness import WorkerProcess, django_setup, truncate_django_table  # noqa: E402
from benchmarks.peers.marks import END_KEY, redis_url  # noqa: E402

SECTION = "bench_io"
WARMUP = 50
DATABASE = "asyncjobs_io"
DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/"
#: name -> (label, database or None for Dramatiq, async job)
SYSTEMS: dict[str, tuple[str, str | None, bool]] = {
    "dramatiq": ("Dramatiq (Redis, 1 process, N threads)", None, False),
    "ours-sqlite": ("**django-asyncjobs, SQLite**, `--threads N`", "sqlite", False),
    "ours-postgres": ("**django-asyncjobs, PostgreSQL**, `--threads N`", "postgres", False),
    "ours-sqlite-async": ("django-asyncjobs, SQLite, `async def` jobs (`asyncio.sleep`)", "sqlite", True),
    "ours-postgres-async": ("django-asyncjobs, PostgreSQL, `async def` jobs (`asyncio.sleep`)", "postgres", True),
}


# -- the child: one system, one round ---------------------------------------------------------------


def child(args: argparse.Namespace) -> dict[str, Any]:
    from redis import Redis

    _, database, is_async = SYSTEMS[args.child]
    client = Redis.from_url(redis_url())
    client.flushdb()
    total = WARMUP + args.jobs
    if database is None:
        from benchmarks.peers.dramatiq_peer import io_sleep

        for _ in range(total):
            io_sleep.send(args.sleep)
        command = [sys.executable, "-m", "dramatiq", "benchmarks.peers.dramatiq_peer"]
        command += ["--processes", "1", "--threads", str(args.threads)]
    else:
        django_setup("benchmarks.settings")
        from benchmarks.benchapp.jobs import io_async_sleep, io_sleep
        from django_asyncjobs.models import Job

        truncate_django_table(Job)
        function = io_async_sleep if is_async else io_sleep
        for start in range(0, total, 500):
            function.enqueue_many([(args.sleep,) for _ in range(min(500, total - start))])
        from django.db import connection

        with connection.cursor() as cursor:  # a fresh table: without statistics, PostgreSQL may claim by status
            cursor.execute("ANALYZE " + connection.ops.quote_name(Job._meta.db_table))
        command = [sys.executable, "-m", "django", "asyncjobs_worker", "default", "--verbosity", "0"]
        command += ["--threads", str(args.threads)]
    with WorkerProcess(command, Path(args.log), None) as worker:
        deadline = time.monotonic() + 120 + total * args.sleep
        while client.llen(END_KEY) < total:
            worker.check()
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {client.llen(END_KEY)} of {total} jobs ended (see {args.log})")
            time.sleep(0.05)
    ends = sorted(float(value) for value in client.lrange(END_KEY, 0, -1))
    client.flushdb()
    client.close()
    measured = ends[WARMUP - 1 :]  # from the end of the last warm-up job
    return {"drain": (len(measured) - 1) / (measured[-1] - measured[0])}


# -- the parent -----------------------------------------------------------------------------------


def run_round(name: str, round_: int, args: argparse.Namespace, env: dict[str, str], workdir: Path) -> dict[str, Any]:
    out = workdir / f"{name}-{round_}.json"
    command = [sys.executable, "-m", "benchmarks.bench_io", "--child", name, "--out", str(out)]
    command += ["--log", str(workdir / f"{name}-{round_}.log"), "--jobs", str(args.jobs)]
    command += ["--sleep", str(args.sleep), "--threads", str(args.threads)]
    process = subprocess.run(command, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if process.returncode != 0:
        log(f"[{name}] round {round_ + 1} failed:\n{process.stderr[-3000:]}")
        lines = [line for line in process.stderr.strip().splitlines() if line.strip() and not line[0].isspace()]
        return {"error": lines[-1][:200] if lines else f"exit status {process.returncode}"}
    return dict(json.loads(out.read_text()))


def child_env(name: str, args: argparse.Namespace, redis: str, workdir: Path) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env["ASYNCJOBS_BENCH_REDIS_URL"] = redis
    database = SYSTEMS[name][1]
    if database == "sqlite":
        env.update(ASYNCJOBS_BENCH_DB="sqlite", ASYNCJOBS_BENCH_SQLITE=str(workdir / "ours.sqlite3"))
        env["ASYNCJOBS_BENCH_SQLITE_CONN_MAX_AGE"] = "none"
    elif database == "postgres":
        env.update(
            ASYNCJOBS_BENCH_DB="postgres", ASYNCJOBS_BENCH_POSTGRES_URL=args.postgres_url.rstrip("/") + "/" + DATABASE
        )
    return env


def measure(args: argparse.Namespace) -> tuple[dict[str, list[dict[str, Any]]], dict[str, str], dict[str, str]]:
    from django_asyncjobs.testing import RedisServer

    notes: dict[str, str] = {}
    systems = list(args.systems)
    if "dramatiq" in systems and find_spec("dramatiq") is None:
        notes["dramatiq"] = "not installed"
        systems.remove("dramatiq")
    admin = None
    if any(SYSTEMS[name][1] == "postgres" for name in systems):
        admin = postgres_admin(args.postgres_url)
        if admin is None:
            for name in [name for name in systems if SYSTEMS[name][1] == "postgres"]:
                notes[name] = "PostgreSQL not reachable"
                systems.remove(name)
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in args.systems}
    workdir = Path(tempfile.mkdtemp(prefix="asyncjobs-io-"))
    server = RedisServer().start()
    info = {"redis": redis_server_version(server.url)}
    try:
        if admin is not None:
            info["postgres"] = "PostgreSQL " + admin.execute("SHOW server_version").fetchone()[0]
            admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{DATABASE}"')
        for round_ in range(args.rounds):
            shift = round_ % max(1, len(systems))
            for name in systems[shift:] + systems[:shift]:
                log(f"round {round_ + 1}/{args.rounds}: {name}")
                result = run_round(name, round_, args, child_env(name, args, server.url, workdir), workdir)
                result["round"] = round_
                results[name].append(result)
                if "error" not in result:
                    log(f"  drain {result['drain']:,.0f} jobs/s")
    finally:
        server.stop()
        if admin is not None:
            admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
            admin.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return results, notes, info


def render(
    results: dict[str, list[dict[str, Any]]], notes: dict[str, str], info: dict[str, str], args: argparse.Namespace
) -> str:
    dramatiq = {r["round"]: r["drain"] for r in results.get("dramatiq", []) if "error" not in r}
    ideal = args.threads / args.sleep
    rows = []
    for name, rounds in results.items():
        label = SYSTEMS[name][0].replace("N threads", f"{args.threads} threads")
        label = label.replace("`--threads N`", f"`--threads {args.threads}`")
        good = [r for r in rounds if "error" not in r]
        if not good:
            rows.append(
                [label, notes.get(name) or "failed: " + next((r["error"] for r in rounds), "no round ran"), "", ""]
            )
            continue
        ratios = [r["drain"] / dramatiq[r["round"]] for r in good if r["round"] in dramatiq]
        drain = med([r["drain"] for r in good])
        rows.append([label, f"{drain:,.0f}", f"{drain / ideal:.0%}", f"{med(ratios):.2f}{TIMES}" if ratios else ""])
    servers = ", ".join(filter(None, [info.get("redis", ""), info.get("postgres", "")]))
    words = [
        "--rounds",
        str(args.rounds),
        "--jobs",
        str(args.jobs),
        "--sleep",
        str(args.sleep),
        "--threads",
        str(args.threads),
    ]
    return "\n".join(
        [
            f"## I/O-bound jobs: {args.threads} threads in one worker process, us against Dramatiq",
            "",
            "Written by `benchmarks/bench_io.py`; reproduce with `make bench-io` "
            f"(here: `benchmarks/bench_io.py {' '.join(words)}`).",
            "",
            f"- Date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}; code: {code_version()}.",
            f"- Machine: {os.cpu_count()} CPUs ({cpu_model()}), {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}; {servers} (loopback TCP). Load average (1 min) "
            f"{args.load_before:.2f} before, {os.getloadavg()[0]:.2f} after.",
            f"- Method: {args.jobs:,} jobs (after {WARMUP} warm-up ones), each sleeping {args.sleep * 1000:g} ms "
            "and then pushing its end time to Redis, enqueued first; then ONE worker process with "
            f"{args.threads} threads drains them; the rate is taken between the first and the last end after the "
            f"warm-up. `{args.threads} / {args.sleep:g} s` = {ideal:,.0f} jobs/s is the ceiling. Rounds in rotating "
            f"order, medians of {args.rounds}; the ratio is to Dramatiq in the same round. Ours: `asyncjobs_worker "
            f"--threads {args.threads}` with `benchmarks/settings.py` (SQLite in WAL mode, persistent connections).",
            "",
            *table(["system", "drain /s", "of the ceiling", "÷ Dramatiq"], rows, "lrrr"),
        ]
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--sleep", type=float, default=0.02, help="seconds each job blocks (default 0.02)")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma-separated, of: {', '.join(SYSTEMS)}")
    parser.add_argument(
        "--postgres-url", default=os.environ.get("ASYNCJOBS_BENCH_POSTGRES_SERVER", DEFAULT_POSTGRES_URL)
    )
    parser.add_argument("--no-docs", action="store_true", help=f"print only; leave {DOCS_PAGE.name} alone")
    parser.add_argument("--child", choices=sorted(SYSTEMS), help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--log", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.systems = [name.strip() for name in args.systems.split(",") if name.strip()]
    unknown = sorted(set(args.systems) - set(SYSTEMS))
    if unknown:
        parser.error(f"unknown systems: {', '.join(unknown)}")
    if args.rounds < 1 or args.jobs < 10 or args.threads < 1 or args.sleep < 0:
        parser.error("--rounds and --threads must be >= 1, --jobs >= 10, --sleep >= 0")
    return args


def main() -> None:
    args = parse_args()
    if args.child:
        Path(args.out).write_text(json.dumps(child(args)))
        return
    args.load_before = os.getloadavg()[0]
    results, notes, info = measure(args)
    text = render(results, notes, info, args)
    print(text)
    if not args.no_docs:
        write_section(DOCS_PAGE, SECTION, text)
        log(f"wrote the {SECTION} section of {DOCS_PAGE}")


if __name__ == "__main__":
    main()
