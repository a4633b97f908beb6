"""The broker is the only code that speaks to Redis/RQ; its scripts, pipelines and round trips.

Round trips are counted on a real Redis with a connection class that records each
packet it sends (``tests/roundtrips.py``).
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from redis import Redis

import django_asyncjobs
from django_asyncjobs import Job
from django_asyncjobs.engine.broker import (
    EXECUTOR,
    batch,
    count_missed_runs,
    get_connection,
    keys,
    messages,
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
    assert trips == [("EVALSHA",)]  # one command (the push script), whatever the number of jobs
    with recording() as trips:
        add.enqueue_many([(i, i) for i in range(20)])
    assert trips == [("EVALSHA",)]


def _messages(redis: Redis, queue: str) -> list[tuple[str, dict[bytes, bytes], int]]:
    """The messages waiting in ``queue``, in order: id, hash (its times left out), seconds to live."""
    found = []
    for raw in redis.lrange(keys.queue_key(queue), 0, -1):
        key = keys.message_key(raw.decode())
        fields = redis.hgetall(key)
        assert fields[b"created_at"] == fields[b"enqueued_at"]
        found.append((raw.decode(), {k: v for k, v in fields.items() if not k.endswith(b"_at")}, redis.ttl(key)))
    return found


def _unsaved_jobs(count: int, **fields: object) -> list[Job]:
    return [Job(name=fields.pop("name", "tests.testapp.jobs.add"), queue="default", **fields) for _ in range(count)]


@pytest.mark.parametrize("queues", [("default",), ("default", "high")])
def test_the_push_script_writes_what_the_commands_write(redis, queues: tuple[str, ...]) -> None:
    """The two ways of pushing (a script; commands joining a caller's pipeline) write the same messages."""
    jobs = _unsaved_jobs(3) + _unsaved_jobs(2, priority=1) + _unsaved_jobs(1, name="tests.testapp.jobs.sleeps")
    jobs += [Job(name="tests.testapp.jobs.record", queue=queue, priority=1) for queue in queues]
    push(jobs)
    by_script = {queue: _messages(redis, queue) for queue in queues}
    redis.flushdb()
    with batch("default") as pipe:
        push(jobs, pipeline=pipe)
    by_commands = {queue: _messages(redis, queue) for queue in queues}
    assert by_script == by_commands
    assert {k.decode() for k in redis.smembers(keys.QUEUES_SET)} == {keys.queue_key(queue) for queue in queues}
    adds, urgent_adds, sleeps, records = jobs[:3], jobs[3:5], jobs[5], jobs[6:]
    expected = [*urgent_adds, records[0], *adds, sleeps]  # priority above 0 first, in their order
    assert [job_id for job_id, _, _ in by_script["default"]] == [str(job.pk) for job in expected]
    message = dict((job_id, fields) for job_id, fields, _ in by_script["default"])[str(sleeps.pk)]
    assert message[b"timeout"] == b"1"  # sleeps' own time limit
    assert message[b"description"] == b"tests.testapp.jobs.sleeps"
    assert json.loads(message[b"data"]) == [EXECUTOR, None, [str(sleeps.pk)], {}]
    assert all(0 < ttl <= 7 * 24 * 3600 for _, _, ttl in by_script["default"])


def test_a_push_of_many_jobs_keeps_their_order(counted, redis, monkeypatch) -> None:
    """More jobs than one run of the script writes: they go in chunks, and keep their order."""
    monkeypatch.setattr(messages, "PUSH_CHUNK", 7)
    back = [*_unsaved_jobs(30), *[Job(name="tests.testapp.jobs.record", queue="high") for _ in range(9)]]
    front = [*_unsaved_jobs(25, priority=1), Job(name="tests.testapp.jobs.record", queue="high", priority=1)]
    redis.rpush(keys.queue_key("default"), "waiting")
    redis.script_load(messages.PUSH_SCRIPT)  # the server has it: no round trip to load it is counted
    with recording() as trips:
        push([job for pair in zip(back, front, strict=False) for job in pair] + back[len(front) :])
    assert len(trips) == 10  # 39 back, 26 front: 6 + 4 chunks of 7
    waiting = [raw.decode() for raw in redis.lrange(keys.queue_key("default"), 0, -1)]
    assert waiting == [str(job.pk) for job in front[:25]] + ["waiting"] + [str(job.pk) for job in back[:30]]
    high = [raw.decode() for raw in redis.lrange(keys.queue_key("high"), 0, -1)]
    assert high == [str(front[25].pk)] + [str(job.pk) for job in back[30:]]
    assert redis.exists(*[keys.message_key(str(job.pk)) for job in back + front]) == 65


HEARTBEATS = {("MULTI", "HSET", "EXPIRE", "EXPIRE", "EXEC"), ("MULTI", "HSET", "HSET", "EXPIRE", "EXPIRE", "EXEC")}


def _pops(trips: list[tuple[str, ...]], command: str) -> list[int]:
    pops = [i for i, trip in enumerate(trips) if command in trip]
    # Between the first and the last pop, only the worker's periodic bookkeeping (RQ's
    # suspension check, heartbeats; paced by time, not by jobs) may come in.
    between = [trips[i] for i in range(pops[0], pops[-1] + 1) if i not in pops]
    assert set(between) <= {("EXISTS",), *HEARTBEATS}
    return pops


#: The metrics' counters (engine/tallies.py), written in the pop's round trip.
TALLIES = {"HINCRBY", "HINCRBYFLOAT"}


def _without_tallies(trip: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(command for command in trip if command not in TALLIES)


def test_worker_with_prefetch_1_makes_one_round_trip_per_job(counted, run_worker, settings) -> None:
    """As measured before the broker was gathered: per job, one pipelined round trip drops
    the finished message, counts it, and pops the next (the first pop is on its own)."""
    settings.ASYNCJOBS = {**settings.ASYNCJOBS, "WORKER_PREFETCH": 1}
    add.enqueue_many([(i, i) for i in range(8)])
    with recording() as trips:
        run_worker("default")
    pops = _pops(trips, "LPOP")
    assert [_without_tallies(trips[i]) for i in pops] == [("LPOP",)] + [("UNLINK", "INCRBY", "EXPIRE", "LPOP")] * 8
    assert all(set(trips[i]) & TALLIES for i in pops[1:])  # the metrics' counters ride along
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
    assert [_without_tallies(trips[i]) for i in pops] == [("LMPOP",)] + [("UNLINK", "INCRBY", "EXPIRE", "LMPOP")] * 5
    # The metrics' counters ride along (a batch's successes are announced once written, with
    # the next claim: their counts go with a later pop, or the stop), never on their own.
    assert any(set(trips[i]) & TALLIES for i in pops)
    # Only the stop's round trip (after the last pop) may carry nothing else: the last batch's counts.
    assert [i for i, trip in enumerate(trips) if set(trip) <= TALLIES and i < pops[-1]] == []
    assert Job.objects.filter(status="succeeded").count() == 100


def test_the_deployment_docs_list_every_key_of_the_schema() -> None:
    schema = keys.__doc__ or ""
    names = [line.split("``")[1] for line in schema.splitlines() if line.startswith("``")]
    assert len(names) == 12
    deployment = (PACKAGE.parent / "docs" / "deployment.md").read_text()
    section = deployment.split("### Keys", 1)[1].split("\n#", 1)[0]
    listed = [line.split("`")[1] for line in section.splitlines() if line.startswith("| `")]
    assert listed == [name.replace("<schedule name>", "<schedule>") for name in names]
