"""The broker is the only code that speaks to Redis/RQ; its scripts, pipelines and round trips.

Round trips are counted on a real Redis with a connection class that records each
packet it sends (``tests/roundtrips.py``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from redis import Redis

import django_asyncjobs
from django_asyncjobs import Job
from django_asyncjobs.engine.broker import (
    batch,
    count_missed_runs,
    get_connection,
    keys,
    missed_runs,
    push,
    queue_stats,
)
from django_asyncjobs.engine.broker.connections import script
from django_asyncjobs.engine.broker.reads import STATS_SCRIPT
from tests.roundtrips import counting_queues, recording
from tests.testapp.jobs import add, record

PACKAGE = Path(django_asyncjobs.__file__).parent
BROKER = PACKAGE / "engine" / "broker"
REDIS_PACKAGES = {"redis", "rq", "django_rq"}

#: Modules other than the broker's that may import from RQ, and what.
ALLOWED_IMPORTS = {
    # The worker is an RQ SimpleWorker (registration, pub/sub commands, death penalty,
    # suspension): it uses RQ's worker API; its own Redis commands go through the broker.
    "worker/loop.py": {"rq", "rq.defaults", "rq.exceptions", "rq.serializers", "rq.worker"},
    "worker/threads.py": {"rq", "rq.defaults", "rq.exceptions", "rq.worker"},
    # ...and reads RQ's pub/sub commands (``stop-job``) as RQ does.
    "worker/stopping.py": {"rq.command"},
    # JobTimeout subclasses RQ's JobTimeoutException, so that RQ's death penalty raises ours.
    "exceptions.py": {"rq.timeouts"},
    # The test helper hands tests a client of the private server it started (never the
    # application's queues): for flushing it between tests.
    "testing.py": {"redis"},
}
#: Calls named like Redis ones that are not: psycopg 3's pipeline of a batch's SQL statements.
NOT_REDIS_CALLS = {"engine/batched.py": {"raw.pipeline", "raw.cursor"}}
#: Broker functions that hand out a raw client or RQ queue: for the broker itself only.
RAW_HANDLES = {"get_connection", "get_queue"}


def _package_modules() -> list[tuple[str, ast.Module]]:
    modules = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if BROKER in path.parents or "migrations" in path.parts:
            continue
        modules.append((path.relative_to(PACKAGE).as_posix(), ast.parse(path.read_text(), str(path))))
    return modules


def _redis_uses(name: str, tree: ast.Module) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
            if node.module.endswith("engine.broker"):
                found += [f"imports {alias.name}" for alias in node.names if alias.name in RAW_HANDLES]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.endswith("broker"):
            found += [f"imports {alias.name}" for alias in node.names if alias.name in RAW_HANDLES]
            continue
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            target = node.func.value
            if ast.unparse(node.func) in NOT_REDIS_CALLS.get(name, set()):
                continue
            if node.func.attr == "pipeline" or (isinstance(target, ast.Attribute) and target.attr == "connection"):
                found.append(f"calls {ast.unparse(node.func)}() on line {node.lineno}")
            continue
        else:
            continue
        for module in modules:
            if module.split(".")[0] in REDIS_PACKAGES and module not in ALLOWED_IMPORTS.get(name, set()):
                found.append(f"imports {module} on line {node.lineno}")
    return found


def test_only_the_broker_speaks_to_redis() -> None:
    modules = _package_modules()
    assert len(modules) > 50  # the scan sees the package
    uses = {name: found for name, tree in modules if (found := _redis_uses(name, tree))}
    assert uses == {}


def test_the_scan_finds_redis_use() -> None:
    sample = ast.parse(
        "import redis\nfrom rq.job import Job\nfrom ..engine.broker import get_connection\n"
        "def f(self):\n    self.connection.lpush('k', 1)\n    c.pipeline()\n"
    )
    assert len(_redis_uses("scheduling/firing.py", sample)) == 5
    assert _redis_uses("worker/loop.py", ast.parse("from rq.worker import SimpleWorker")) == []


pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def counted(settings, redis_server) -> None:
    """All queues on one Redis client whose round trips are recorded."""
    settings.RQ_QUEUES = counting_queues(redis_server.url)


def test_scripts_are_registered_once_per_connection(counted, redis, redis_server) -> None:
    connection = get_connection("default")
    assert script(connection, STATS_SCRIPT) is script(connection, STATS_SCRIPT)
    other = Redis.from_url(redis_server.url)
    assert script(other, STATS_SCRIPT) is not script(connection, STATS_SCRIPT)
    other.close()
    redis.script_flush()
    with recording() as trips:
        for _ in range(3):
            queue_stats("default")
    # Loaded once when the server lacks it, then only its SHA is sent: never the source (EVAL).
    assert trips == [("EVALSHA",), ("SCRIPT",), ("EVALSHA",), ("EVALSHA",), ("EVALSHA",)]


def test_pipeline_puts_several_broker_writes_in_one_round_trip(counted, redis) -> None:
    default_jobs = add.enqueue_many([(1, 1), (2, 2)])
    high_job = record.enqueue("x")
    redis.flushdb()
    with recording() as trips, batch("default") as pipe:
        push(default_jobs, pipeline=pipe)
        push([high_job], pipeline=pipe)
        count_missed_runs("nightly", 2, pipeline=pipe)
    assert len(trips) == 1
    assert redis.llen(keys.queue_key("default")) == 2
    assert redis.llen(keys.queue_key("high")) == 1
    assert missed_runs("nightly") == 2
    with recording() as trips:
        push(default_jobs)
        count_missed_runs("nightly", 1)
    assert len(trips) == 2  # without a pipeline, each call is its own round trip


def test_one_push_for_queues_on_one_server(counted, redis) -> None:
    jobs = [*add.enqueue_many([(1, 1), (2, 2)]), record.enqueue("x")]
    redis.flushdb()
    with recording() as trips:
        push(list(Job.objects.filter(pk__in=[job.pk for job in jobs])))
    assert len(trips) == 1
    assert redis.llen(keys.queue_key("default")) == 2
    assert redis.llen(keys.queue_key("high")) == 1


def test_enqueue_pushes_in_one_round_trip(counted) -> None:
    add.enqueue(0, 0)  # the client's connection handshake is not the enqueue's
    with recording() as trips:
        add.enqueue(1, 2)
    assert trips == [("SADD", "HSET", "EXPIRE", "RPUSH")]
    with recording() as trips:
        add.enqueue_many([(i, i) for i in range(20)])
    assert len(trips) == 1


HEARTBEATS = {("MULTI", "HSET", "EXPIRE", "EXPIRE", "EXEC"), ("MULTI", "HSET", "HSET", "EXPIRE", "EXPIRE", "EXEC")}


def _pops(trips: list[tuple[str, ...]], command: str) -> list[int]:
    pops = [i for i, trip in enumerate(trips) if command in trip]
    # Between the first and the last pop, only the worker's periodic bookkeeping (RQ's
    # suspension check, heartbeats; paced by time, not by jobs) may come in.
    between = [trips[i] for i in range(pops[0], pops[-1] + 1) if i not in pops]
    assert set(between) <= {("EXISTS",), *HEARTBEATS}
    return pops


def test_worker_with_prefetch_1_makes_one_round_trip_per_job(counted, run_worker, settings) -> None:
    """As measured before the broker was gathered: per job, one pipelined round trip drops
    the finished message, counts it, and pops the next (the first pop is on its own)."""
    settings.ASYNCJOBS = {**settings.ASYNCJOBS, "WORKER_PREFETCH": 1}
    add.enqueue_many([(i, i) for i in range(8)])
    with recording() as trips:
        run_worker("default")
    pops = _pops(trips, "LPOP")
    assert [trips[i] for i in pops] == [("LPOP",)] + [("UNLINK", "INCRBY", "EXPIRE", "LPOP")] * 8
    assert ("INFO",) not in trips  # no server version check: LPOP/BLPOP are in every Redis
    assert Job.objects.filter(status="succeeded").count() == 8


def test_worker_makes_one_round_trip_per_prefetched_batch(counted, run_worker, settings) -> None:
    """With ``WORKER_PREFETCH`` 20 (tests/settings.py), 100 waiting jobs take 5 pops that return
    ids and one that finds the queue empty; each but the first also drops and counts
    the messages of the jobs the previous pop handed out. (A window this long keeps every
    batch full, whatever the run times on a busy machine.)"""
    settings.ASYNCJOBS = {**settings.ASYNCJOBS, "WORKER_BATCH_WINDOW": 60}
    add.enqueue_many([(i, i) for i in range(100)])
    with recording() as trips:
        run_worker("default")
    assert trips.count(("INFO",)) == 1  # LMPOP needs Redis >= 7.0: asked once per worker
    pops = _pops(trips, "LMPOP")
    assert [trips[i] for i in pops] == [("LMPOP",)] + [("UNLINK", "INCRBY", "EXPIRE", "LMPOP")] * 5
    assert Job.objects.filter(status="succeeded").count() == 100


def test_the_deployment_docs_list_every_key_of_the_schema() -> None:
    schema = keys.__doc__ or ""
    names = [line.split("``")[1] for line in schema.splitlines() if line.startswith("``")]
    assert len(names) == 8
    deployment = (PACKAGE.parent / "docs" / "deployment.md").read_text()
    section = deployment.split("### Keys", 1)[1].split("\n#", 1)[0]
    listed = [line.split("`")[1] for line in section.splitlines() if line.startswith("| `")]
    assert listed == [name.replace("<schedule name>", "<schedule>") for name in names]
