"""``make test-pgbouncer``: the worker, scheduler and recovery tests through PgBouncer in
transaction pooling mode (docs/deployment.md#pgbouncer).

Starts a private ``pgbouncer`` (Debian's package; its config, auth file, log and socket in a
temporary folder, on a free port, never the system's service) in front of the PostgreSQL of
``DATABASE_URL`` (default ``postgres://postgres@127.0.0.1:5432/asyncjobs_pgbouncer``, trust
auth), then runs pytest twice with ``DATABASE_URL`` pointing at PgBouncer and
``ASYNCJOBS_TEST_PGBOUNCER=1`` (tests/settings.py):

1. :data:`TEST_FILES` with the settings docs/deployment.md recommends behind PgBouncer
   (``DISABLE_SERVER_SIDE_CURSORS``; psycopg 3 prepares no statement, Django's default);
2. :data:`CURSOR_FILES` with server-side cursors left on: the package's own ``iterator()``
   must not keep a cursor past its transaction.

Every connection under test goes through PgBouncer, the test database's creation included
(a wildcard ``[databases]`` entry). Its ``DROP DATABASE`` cannot: PgBouncer keeps server
connections to it in its pool. So pytest keeps the database (``--reuse-db``) and this script
drops it on PostgreSQL itself, before (a leftover of an earlier run) and after, with
PgBouncer stopped. The fault tests' connections from the side (killing backends, refusing
logins) go to PostgreSQL itself (``ASYNCJOBS_TEST_POSTGRES``, tests/faults.py). Arguments
that start with ``tests/`` replace both lists of files; the others go to both pytest runs
(``-x``, ``-k ...``).
Exits with pytest's status; 0 with a message when ``pgbouncer`` is not installed.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/asyncjobs_pgbouncer"

#: The worker, batch, thread, scheduler, recovery, state and enqueue paths.
TEST_FILES = [
    "tests/test_worker.py",
    "tests/test_worker_batches.py",
    "tests/test_worker_threads.py",
    "tests/test_worker_threads_ahead.py",
    "tests/test_worker_prefetch.py",
    "tests/test_worker_slots.py",
    "tests/test_worker_connections.py",
    "tests/test_worker_database.py",
    "tests/test_recovery.py",
    "tests/test_scheduling.py",
    "tests/test_execution.py",
    "tests/test_states.py",
    "tests/test_enqueue.py",
    "tests/test_inserts.py",
    "tests/test_backpressure.py",
    "tests/test_clock_skew.py",
    "tests/test_unique_jobs.py",
    "tests/test_rate_limits.py",
    "tests/test_concurrency_limits.py",
    "tests/test_stalled_claims.py",
    "tests/test_pgbouncer.py",
]

#: Run again with server-side cursors on: the code that iterates over large querysets.
CURSOR_FILES = ["tests/test_job_stats.py", "tests/test_aggregation.py", "tests/test_pgbouncer.py"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pgbouncer_binary() -> str | None:
    return shutil.which("pgbouncer") or next(
        (path for path in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.path.exists(path)), None
    )


def write_config(folder: Path, port: int, host: str, pg_port: int, run_as: str | None) -> Path:
    """PgBouncer's config: transaction pooling, every database name to the one PostgreSQL,
    clients let in without a password (the tests' PostgreSQL trusts 127.0.0.1 too)."""
    (folder / "userlist.txt").write_text('"postgres" ""\n')
    user = f"user = {run_as}\n" if run_as else ""
    config = folder / "pgbouncer.ini"
    config.write_text(
        "[databases]\n"
        f"* = host={host} port={pg_port}\n"
        "[pgbouncer]\n"
        f"{user}"
        "listen_addr = 127.0.0.1\n"
        f"listen_port = {port}\n"
        f"unix_socket_dir = {folder}\n"
        f"logfile = {folder / 'pgbouncer.log'}\n"
        f"pidfile = {folder / 'pgbouncer.pid'}\n"
        "auth_type = trust\n"
        f"auth_file = {folder / 'userlist.txt'}\n"
        "pool_mode = transaction\n"
        "max_client_conn = 1000\n"
        "default_pool_size = 20\n"
        "server_idle_timeout = 10\n"
        "admin_users = postgres\n"
        # A database that refused connections is tried again after a second, not 15.
        "server_login_retry = 1\n"
        "log_connections = 0\n"
        "log_disconnections = 0\n"
    )
    if run_as:
        shutil.chown(folder, user=run_as)
        for path in folder.iterdir():
            shutil.chown(path, user=run_as)
    return config


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"pgbouncer exited ({process.returncode}):\n{log.read_text() if log.exists() else ''}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"pgbouncer did not listen on {port} within 20 s")


def drop_database(url: str, name: str) -> None:
    """``DROP DATABASE`` on PostgreSQL itself (not through PgBouncer), sessions and all."""
    import psycopg
    from psycopg import sql

    parsed = urlparse(url)
    with psycopg.connect(
        host=parsed.hostname or "127.0.0.1",
        port=parsed.port or 5432,
        user=parsed.username or "postgres",
        password=parsed.password or "",
        dbname="postgres",
        autocommit=True,
    ) as connection:
        force = " WITH (FORCE)" if connection.info.server_version >= 130000 else ""
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {}" + force).format(sql.Identifier(name)))


def run_pytest(url: str, direct: str, files: list[str], extra: list[str], server_side_cursors: bool) -> int:
    # ASYNCJOBS_TEST_POSTGRES: the fault tests' side connections go to PostgreSQL itself (tests/faults.py).
    env = dict(os.environ, DATABASE_URL=url, ASYNCJOBS_TEST_PGBOUNCER="1", ASYNCJOBS_TEST_POSTGRES=direct)
    env["ASYNCJOBS_TEST_SERVER_SIDE_CURSORS"] = "1" if server_side_cursors else ""
    what = "server-side cursors on" if server_side_cursors else "DISABLE_SERVER_SIDE_CURSORS"
    print(f"\n--- pytest through PgBouncer ({what}): {' '.join(files)}", flush=True)
    command = [sys.executable, "-m", "pytest", "--reuse-db", *files, *extra]
    return subprocess.call(command, env=env)


def main(argv: list[str]) -> int:
    binary = pgbouncer_binary()
    if binary is None:
        print("pgbouncer is not installed (Debian: apt-get install pgbouncer): SKIPPED")
        return 0
    direct = os.environ.get("DATABASE_URL") or DEFAULT_URL
    parsed = urlparse(direct)
    name = parsed.path.lstrip("/") or "asyncjobs_pgbouncer"
    test_database = f"test_{name}"  # Django's name for the test database of ``name``
    run_as = None
    if os.geteuid() == 0:  # PgBouncer refuses to run as root
        run_as = "postgres" if _user_exists("postgres") else "nobody"
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="asyncjobs-pgbouncer-"))
    config = write_config(folder, port, parsed.hostname or "127.0.0.1", parsed.port or 5432, run_as)
    through = f"postgres://{parsed.username or 'postgres'}@127.0.0.1:{port}/{name}"
    drop_database(direct, test_database)
    process = subprocess.Popen([binary, "-q", str(config)])
    status = 1
    try:
        wait_for_port(port, process, folder / "pgbouncer.log")
        print(f"pgbouncer {binary} on 127.0.0.1:{port}, pool_mode = transaction, in front of {direct}", flush=True)
        chosen = [arg for arg in argv if arg.startswith("tests/")]
        options = [arg for arg in argv if arg not in chosen]
        server = f"{parsed.hostname or '127.0.0.1'}:{parsed.port or 5432}"
        status = run_pytest(through, server, chosen or TEST_FILES, options, server_side_cursors=False)
        status = run_pytest(through, server, chosen or CURSOR_FILES, options, server_side_cursors=True) or status
    finally:
        process.send_signal(signal.SIGINT)  # PgBouncer's safe shutdown
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        drop_database(direct, test_database)
        if status:
            log = folder / "pgbouncer.log"
            print(f"pgbouncer's log ({log}):\n{log.read_text()[-3000:] if log.exists() else ''}")
        shutil.rmtree(folder, ignore_errors=True)
    return status


def _user_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
