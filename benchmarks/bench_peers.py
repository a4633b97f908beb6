"""Peers: us against huey, dramatiq, celery, procrastinate, django-tasks-db, django-q2 and bare rq.

Run it with ``make bench-peers`` (which installs the ``peers`` extra) or::

    .venv/bin/python benchmarks/bench_peers.py [--rounds 3] [--systems rq,ours-sqlite,...] [--quick]

One private Redis server for the whole run (never the machine's 6379); PostgreSQL systems get a
dedicated database each (``asyncjobs_peers_*``, created and dropped). Every system is measured
the same way (``benchmarks/peers/harness.py``) in a child process per round, the order of the
systems rotating from round to round; each child starts ONE worker process of that system and
stops it. Medians over rounds; the drain ratio is to bare rq ``SimpleWorker`` in the same round.
A system whose package is missing is reported as "not installed". The table is printed and
written to ``docs/benchmarks.md`` between ``<!-- bench_peers:start -->`` and
``<!-- bench_peers:end -->``. Nothing here asserts on timings.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
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
    redis_py_version,
    redis_server_version,
    table,
    write_section,
)
from benchmarks.peers import BY_NAME, SYSTEMS, System  # noqa: E402

SECTION = "bench_peers"
DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/"
PACKAGES = ("django", "rq", "huey", "dramatiq", "celery", "procrastinate", "django-tasks-db", "django-q2")


def installed(system: System) -> bool:
    def present(name: str) -> bool:
        try:
            return find_spec(name) is not None
        except ModuleNotFoundError:  # a dotted name whose parent is missing
            return False

    return all(any(present(name) for name in names.split("|")) for names in system.requires)


def db_name(args: argparse.Namespace, system: System) -> str:
    return f"{args.database_prefix}_{system.database}"


def db_url(base: str, args: argparse.Namespace, system: System) -> str:
    return base.rstrip("/") + "/" + db_name(args, system)


def child_env(system: System, args: argparse.Namespace, redis_url: str, workdir: Path) -> dict[str, str]:
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        ASYNCJOBS_BENCH_REDIS_URL=redis_url,
        ASYNCJOBS_PEERS_SQLITE=str(workdir / "django-q2.sqlite3"),
    )
    env.pop("DJANGO_SETTINGS_MODULE", None)
    if system.database:
        env["ASYNCJOBS_PEERS_DB_URL"] = db_url(args.postgres_url, args, system)
    if system.name == "ours-sqlite":
        env.update(ASYNCJOBS_BENCH_DB="sqlite", ASYNCJOBS_BENCH_SQLITE=str(workdir / "ours.sqlite3"))
    elif system.name == "ours-postgres":
        env.update(ASYNCJOBS_BENCH_DB="postgres", ASYNCJOBS_BENCH_POSTGRES_URL=env["ASYNCJOBS_PEERS_DB_URL"])
    return env


def run_child(system: System, round_: int, args: argparse.Namespace, env: dict[str, str], workdir: Path) -> Any:
    out = workdir / f"{system.name}-{round_}.json"
    log_path = workdir / f"{system.name}-{round_}.log"
    command = [sys.executable, "-m", "benchmarks.peers.harness", system.name, "--out", str(out)]
    command += ["--log", str(log_path), "--jobs", str(args.jobs), "--pids-dir", str(workdir / "pids")]
    command += ["--latency-samples", str(args.latency_samples), "--latency-budget", str(args.latency_budget)]
    child = subprocess.Popen(command, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _, stderr = child.communicate(timeout=300 + args.jobs / 10)
    except subprocess.TimeoutExpired:
        child.terminate()  # it stops its worker on the way out
        _, stderr = child.communicate()
        return {"error": "timed out"}
    finally:
        if child.poll() is None:
            child.terminate()
            child.wait()
    if child.returncode != 0:
        # The exception's line of a traceback: the last one not indented.
        lines = [line for line in stderr.strip().splitlines() if line.strip() and not line[0].isspace()]
        log(f"[{system.name}] round {round_ + 1} failed:\n{stderr[-3000:]}")
        return {"error": lines[-1][:200] if lines else f"exit status {child.returncode}"}
    return json.loads(out.read_text())


def kill_leftovers(pids_dir: Path) -> None:
    """Worker process groups whose child died before stopping them (the child removes the ones it stopped)."""
    for path in pids_dir.glob("*") if pids_dir.is_dir() else []:
        with contextlib.suppress(ProcessLookupError, PermissionError, ValueError):
            os.killpg(int(path.name), signal.SIGKILL)
        path.unlink(missing_ok=True)


def measure(args: argparse.Namespace) -> tuple[dict[str, list[Any]], dict[str, str], dict[str, str]]:
    from django_asyncjobs.testing import RedisServer

    systems = [BY_NAME[name] for name in args.systems]
    results: dict[str, list[Any]] = {system.name: [] for system in systems}
    notes: dict[str, str] = {}
    runnable = []
    for system in systems:
        if installed(system):
            runnable.append(system)
        else:
            notes[system.name] = "not installed"
    databases = [system for system in runnable if system.database]
    admin = postgres_admin(args.postgres_url) if databases else None
    if databases and admin is None:
        for system in databases:
            notes[system.name] = "PostgreSQL not reachable"
            runnable.remove(system)
        databases = []
    workdir = Path(tempfile.mkdtemp(prefix="asyncjobs-peers-"))
    (workdir / "pids").mkdir()
    server = RedisServer().start()
    redis_version = redis_server_version(server.url)
    log(f"private Redis {redis_version} at {server.url}; systems: {', '.join(s.name for s in runnable)}")
    info = {"redis": redis_version}
    created: list[str] = []
    try:
        if admin is not None:
            info["postgres"] = "PostgreSQL " + admin.execute("SHOW server_version").fetchone()[0]
        for system in databases:
            name = f'"{db_name(args, system)}"'
            if name not in created:
                admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
                admin.execute(f"CREATE DATABASE {name}")
                created.append(name)
        for round_ in range(args.rounds):
            shift = round_ % max(1, len(runnable))
            for system in runnable[shift:] + runnable[:shift]:
                log(f"round {round_ + 1}/{args.rounds}: {system.name}")
                result = run_child(system, round_, args, child_env(system, args, server.url, workdir), workdir)
                result["round"] = round_
                results[system.name].append(result)
                if "error" not in result:
                    log(
                        f"  single {result['single']:,.0f}/s, drain {result['drain']:,.0f}/s, "
                        f"p50 {med(result['latency_ms']):.2f} ms"
                        + (f", bulk {result['bulk']:,.0f}/s" if "bulk" in result else "")
                    )
    finally:
        kill_leftovers(workdir / "pids")
        server.stop()
        for name in created:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        if admin is not None:
            admin.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return results, notes, info


# ------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------


def latency(ms: float) -> str:
    if ms >= 100:
        return f"~{ms / 1000:.1f} s (polling)" if ms >= 500 else f"{ms:,.0f} ms"
    return f"{ms:.2f} ms" if ms < 10 else f"{ms:.1f} ms"


def summarize(results: dict[str, list[Any]], notes: dict[str, str]) -> list[tuple[float, list[str]]]:
    """One row per system, with the drain median to sort by (-1 when nothing was measured)."""
    rq_drain = {r["round"]: r["drain"] for r in results.get("rq", []) if "error" not in r}
    rows: list[tuple[float, list[str]]] = []
    for name, rounds in results.items():
        label = BY_NAME[name].label
        good = [r for r in rounds if "error" not in r]
        if not good:
            why = notes.get(name) or "failed: " + next((r["error"] for r in rounds), "no round ran")
            rows.append((-1.0, [label, why, "", "", "", ""]))
            continue
        ratios = [r["drain"] / rq_drain[r["round"]] for r in good if r["round"] in rq_drain]
        samples = [ms for r in good for ms in r["latency_ms"]]
        bulk = [r["bulk"] for r in good if "bulk" in r]
        drain = med([r["drain"] for r in good])
        partial = f" ({len(good)} of {len(rounds)} rounds)" if len(good) < len(rounds) else ""
        rows.append(
            (
                drain,
                [
                    label + partial,
                    f"{med([r['single'] for r in good]):,.0f}",
                    f"{drain:,.0f}",
                    f"{med(ratios):.1f}{TIMES}" if ratios else "",
                    latency(med(samples)),
                    f"{med(bulk):,.0f}" if bulk else "—",
                ],
            )
        )
    return sorted(rows, key=lambda row: -row[0])


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for package in PACKAGES:
        with contextlib.suppress(PackageNotFoundError):
            found.append(f"{package} {version(package)}")
    return ", ".join(found)


def render(
    results: dict[str, list[Any]], notes: dict[str, str], info: dict[str, str], args: argparse.Namespace, elapsed: float
) -> str:
    rows = [row for _, row in summarize(results, notes)]
    header = [
        "system",
        "single enqueue /s",
        "drain /s (1 worker)",
        "drain ÷ rq",
        "idle enqueue→start p50",
        "bulk enqueue /s (batches of 100)",
    ]
    servers = ", ".join(
        filter(
            None,
            [
                info.get("redis", "") + " (private server, loopback TCP, no persistence)",
                info.get("postgres", "") and info["postgres"] + " (loopback TCP)",
            ],
        )
    )
    machine = (
        f"{os.cpu_count()} CPUs ({cpu_model()}), {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}, {versions()}, redis-py {redis_py_version()}; {servers}"
    )
    method = (
        f"no-op jobs; {len(args.systems)} system{'s' if len(args.systems) != 1 else ''} measured one after "
        f"another in {args.rounds} round{'s' if args.rounds != 1 else ''}, the order "
        "rotating by one system each round; medians over rounds. Every system gets the same treatment "
        "(`benchmarks/peers/harness.py`, one child process per system and round): single enqueue: "
        f"{args.jobs:,} enqueue calls, one job each, after 50 warm-up calls; drain: ONE worker process "
        "started on that full queue, the rate taken between the start of the first and of the last of the "
        f"{args.jobs:,} jobs (start-up and the warm-up jobs excluded); the ratio is to bare rq `SimpleWorker` "
        "in the same round; latency: the same worker, idle, one job at a time 20 ms apart, from just before "
        f"the enqueue call to the first line of the job function (up to {args.latency_samples} jobs or "
        f"{args.latency_budget:g} s); bulk: batches of 100 where the system has a bulk call (ours "
        "`enqueue_many`, rq `enqueue_many`, Procrastinate `batch_defer`). Each system otherwise keeps its "
        "defaults; ours runs `asyncjobs_worker` with `benchmarks/settings.py`."
    )
    load = f"{args.load_before:.2f} before, {os.getloadavg()[0]:.2f} after"
    parts = [
        "## Peers: us against other Python job queues, one worker process each",
        "",
        "Written by `benchmarks/bench_peers.py`; reproduce with `make bench-peers` "
        f"(here: `{' '.join(['benchmarks/bench_peers.py', *command_line(args)])}`).",
        "",
        f"- Date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}; the run took {elapsed:.0f} s.",
        f"- Code: {code_version()}.",
        f"- Machine: {machine}.",
        f"- Load average (1 min): {load}; other work on the machine makes the figures noisy.",
        f"- Method: {method}",
        "",
        *table(header, rows, "lrrrrr"),
    ]
    return "\n".join(parts)


def command_line(args: argparse.Namespace) -> list[str]:
    words = ["--rounds", str(args.rounds), "--jobs", str(args.jobs)]
    if args.systems != [system.name for system in SYSTEMS]:
        words += ["--systems", ",".join(args.systems)]
    return words


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    names = [system.name for system in SYSTEMS]
    parser.add_argument("--rounds", type=int, help="rounds, in rotating order (default 3; --quick: 1)")
    parser.add_argument("--systems", default=",".join(names), help=f"comma-separated, of: {', '.join(names)}")
    parser.add_argument("--jobs", type=int, help="jobs per enqueue and drain measurement (default 1000; --quick: 200)")
    parser.add_argument("--latency-samples", type=int, default=50, help="idle jobs timed per round (default 50)")
    parser.add_argument("--latency-budget", type=float, default=5.0, help="seconds for them at most (default 5)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1 round, 200 jobs, 5 latency samples")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("ASYNCJOBS_BENCH_POSTGRES_SERVER", DEFAULT_POSTGRES_URL),
        help="the server where the asyncjobs_peers_* databases are created and dropped",
    )
    parser.add_argument(
        "--database-prefix",
        default=os.environ.get("ASYNCJOBS_PEERS_DB_PREFIX", "asyncjobs_peers"),
        help="names of those databases: <prefix>_<system> (another prefix lets runs share the server)",
    )
    parser.add_argument("--no-docs", action="store_true", help=f"print only; leave {DOCS_PAGE.name} alone")
    args = parser.parse_args(argv)
    args.systems = [name.strip() for name in args.systems.split(",") if name.strip()]
    unknown = sorted(set(args.systems) - set(names))
    if unknown:
        parser.error(f"unknown systems: {', '.join(unknown)} (choose from {', '.join(names)})")
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.jobs = args.jobs or (200 if args.quick else 1000)
    if args.quick:
        args.latency_samples, args.latency_budget = min(args.latency_samples, 5), min(args.latency_budget, 1.0)
    if args.rounds < 1 or args.jobs < 10 or args.latency_samples < 3:
        parser.error("--rounds must be >= 1, --jobs >= 10, --latency-samples >= 3")
    return args


def main() -> None:
    args = parse_args()
    # SIGTERM unwinds like Ctrl-C: children stop their workers, leftovers are killed, databases dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args.load_before = os.getloadavg()[0]
    log(f"load average: {args.load_before:.2f} (other work on the machine makes the figures noisy)")
    started = time.monotonic()
    results, notes, info = measure(args)
    body = render(results, notes, info, args, time.monotonic() - started)
    print(body)
    if not args.no_docs:
        write_section(DOCS_PAGE, SECTION, body)
        log(f"wrote {DOCS_PAGE.relative_to(ROOT)} (section {SECTION})")


if __name__ == "__main__":
    main()
