"""Test session set-up: the public fixtures of :mod:`django_asyncjobs.testing` (a private
Redis server, an empty Redis DB per test, a real in-process burst worker), and worker
subprocesses on the same database and Redis."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
from redis import Redis

from django_asyncjobs.worker import Worker

if TYPE_CHECKING:  # imported by pytest_plugins below, so that pytest rewrites its asserts
    from django_asyncjobs.testing import BurstRun, RedisServer

pytest_plugins = ["django_asyncjobs.testing", "pytester"]


@pytest.fixture(scope="session", autouse=True)
def redis_server(asyncjobs_redis_server: RedisServer) -> RedisServer:
    """Our own server on a free port (never the machine's 6379), for the whole session."""
    os.environ["ASYNCJOBS_TEST_REDIS_URL"] = asyncjobs_redis_server.url  # for worker subprocesses
    return asyncjobs_redis_server


@pytest.fixture(autouse=True)
def redis(asyncjobs_redis: Redis) -> Redis:
    """A client of the test server, flushed before each test (it is ours to flush)."""
    return asyncjobs_redis


@pytest.fixture
def run_worker(asyncjobs_worker: Callable[..., BurstRun]) -> Callable[..., Worker]:
    """Run a real burst worker in this process until the queues are empty; returns the worker."""

    def run(*queues: str, **kwargs: Any) -> Worker:
        return asyncjobs_worker(*queues, **kwargs).worker

    return run


@pytest.fixture
def subprocess_env(redis_server: RedisServer) -> dict[str, str]:
    """Environment for a child process that must use this test's database and Redis."""
    from django.db import connection

    env = dict(os.environ, DJANGO_SETTINGS_MODULE="tests.settings", ASYNCJOBS_TEST_REDIS_URL=redis_server.url)
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        env["ASYNCJOBS_TEST_SQLITE"] = str(db["NAME"])
    else:
        password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
        env["DATABASE_URL"] = f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
        env["ASYNCJOBS_TEST_DB_APPLICATION"] = "asyncjobs-test-worker"  # tests/faults.py finds them by it
    return env


@pytest.fixture
def start_worker(subprocess_env: dict[str, str]) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start ``manage.py asyncjobs_worker`` in a subprocess; killed at the end of the test."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "django", "asyncjobs_worker", *args],
            env=subprocess_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.terminate()  # a warm stop closes its database connection before the test DB is dropped
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (a reaped child does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def run_stock_rq_worker(queue: str = "default") -> Any:
    """A stock RQ ``SimpleWorker`` (JSON serializer) run in burst mode on ``queue``, as a user
    without ``asyncjobs_worker`` would; the signal handlers it installs are put back after."""
    import signal

    from rq import SimpleWorker
    from rq.serializers import JSONSerializer

    from django_asyncjobs.engine.broker import get_connection, get_queue

    worker = SimpleWorker([get_queue(queue)], connection=get_connection(queue), serializer=JSONSerializer)
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        worker.work(burst=True)
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    return worker


def wait_for(condition: Callable[[], Any], seconds: float = 30.0, what: str = "condition") -> Any:
    """Poll ``condition`` until it is truthy (a bound on waiting, not a timing assertion)."""
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what} after {seconds}s")


CHROMIUM = os.environ.get("ASYNCJOBS_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def page(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    if not CHROMIUM:
        pytest.skip("no Chromium found (install Debian's 'chromium' or set ASYNCJOBS_CHROMIUM)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the 'playwright' package is not installed")
    # Playwright's sync API runs an event loop in this thread; the ORM calls of the test are still synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-quic"]  # fmt: skip
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        try:
            yield browser.new_page()
        finally:
            browser.close()
