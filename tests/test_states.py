"""The job state machine (``engine/states.py``): each transition is one conditional
statement, a transition from a wrong status changes nothing and says so, and no other
module of the package writes ``status``."""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

import django_asyncjobs
from django_asyncjobs import Job, JobStatus
from django_asyncjobs.engine import outcomes, statements, states
from django_asyncjobs.engine.operations import retry_jobs
from django_asyncjobs.scheduling.firing import promote_due_jobs
from tests.testapp.jobs import add, always_fails, flaky

pytestmark = pytest.mark.django_db(transaction=True)

PACKAGE = Path(django_asyncjobs.__file__).parent
STATES_MODULE = PACKAGE / "engine" / "states.py"
#: The modules that may write ``status``: the transitions, their batch forms, and the SQL text
#: of the hot-path statements (which only those two execute).
STATE_MODULES = {STATES_MODULE, PACKAGE / "engine" / "batched.py", PACKAGE / "engine" / "statements.py"}

# -- no module but engine/states.py writes status -------------------------------------------------

#: Calls that write the keywords they are given.
WRITING_CALLS = {"update", "create", "get_or_create", "update_or_create", "bulk_create", "save", "Job"}
#: Calls that read: ``status=JobStatus...`` given to them is a condition, not a write.
READING_CALLS = {"filter", "exclude", "get", "Q", "get_queryset"}
#: ``status`` of an AggregationWindow or a JobGroup, not of a Job.
OTHER_STATUS_ENUMS = {"WindowStatus", "GroupStatus"}
RAW_STATUS_WRITE = re.compile(r"\bSET\b.*\bstatus\b", re.DOTALL)


def _names_job_status(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Name) and n.id == "JobStatus" for n in ast.walk(node))


def _is_other_status(node: ast.AST) -> bool:
    if isinstance(node, ast.IfExp):
        return _is_other_status(node.body) and _is_other_status(node.orelse)
    return isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in OTHER_STATUS_ENUMS


def _called_name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _assigned(target: ast.expr) -> Iterator[ast.expr]:
    if isinstance(target, ast.Tuple | ast.List):
        for element in target.elts:
            yield from _assigned(element)
    else:
        yield target


class StatusWrites(ast.NodeVisitor):
    """Where a module's source writes ``status`` (lines and what), as far as a reading can tell:
    ``status=`` given to a write (``update``, ``create``, ``Job(...)``, ``dict.update``) or
    ``status=JobStatus...`` to any call but a query's condition (``filter``), an
    attribute ``.status =`` (but ``self.status`` of another class), ``setattr(x, "status", ...)``,
    a dict or item ``"status"`` holding a ``JobStatus``, and SQL text ``SET ... status``."""

    def __init__(self) -> None:
        self.found: list[tuple[int, str]] = []
        self._classes: list[str] = []

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._classes.append(node.name)
        self.generic_visit(node)
        self._classes.pop()

    def visit_Call(self, node: ast.Call) -> None:
        name = _called_name(node)
        for keyword in node.keywords:
            if keyword.arg != "status":
                continue
            if name in WRITING_CALLS and not _is_other_status(keyword.value):
                self.found.append((node.lineno, f"{name}(status=...)"))
            elif name not in READING_CALLS and _names_job_status(keyword.value):
                self.found.append((node.lineno, f"{name}(status=JobStatus...)"))
        if name == "setattr" and len(node.args) > 1:
            attribute = node.args[1]
            if isinstance(attribute, ast.Constant) and attribute.value == "status":
                self.found.append((node.lineno, 'setattr(..., "status", ...)'))
        self.generic_visit(node)

    def visit_Dict(self, node: ast.Dict) -> None:
        for key, value in zip(node.keys, node.values, strict=True):
            if isinstance(key, ast.Constant) and key.value == "status" and _names_job_status(value):
                self.found.append((node.lineno, '{"status": JobStatus...}'))
        self.generic_visit(node)

    def _check_targets(self, targets: list[ast.expr], value: ast.AST | None, lineno: int) -> None:
        for target in (t for each in targets for t in _assigned(each)):
            if isinstance(target, ast.Attribute) and target.attr == "status":
                owner = target.value
                of_self = isinstance(owner, ast.Name) and owner.id == "self"
                if not (of_self and self._classes and self._classes[-1] != "Job"):
                    self.found.append((lineno, ".status = ..."))
            if (
                isinstance(target, ast.Subscript)
                and isinstance(target.slice, ast.Constant)
                and target.slice.value == "status"
                and value is not None
                and _names_job_status(value)
            ):
                self.found.append((lineno, '["status"] = JobStatus...'))

    def visit_Assign(self, node: ast.Assign) -> None:
        self._check_targets(node.targets, node.value, node.lineno)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._check_targets([node.target], node.value, node.lineno)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._check_targets([node.target], node.value, node.lineno)
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and RAW_STATUS_WRITE.search(node.value):
            self.found.append((node.lineno, "SQL SET ... status"))

    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        if RAW_STATUS_WRITE.search(ast.unparse(node)):
            self.found.append((node.lineno, "SQL SET ... status"))
        # Its parts are not visited again: the f-string as a whole was checked.


def status_writes(source: str) -> list[tuple[int, str]]:
    visitor = StatusWrites()
    visitor.visit(ast.parse(source))
    return visitor.found


def test_no_module_but_states_writes_the_status_of_a_job() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {what}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path not in STATE_MODULES and "migrations" not in path.parts
        for line, what in status_writes(path.read_text())
    ]
    assert offenders == [], (
        "Write status only in engine/states.py or engine/batched.py (add a transition there):\n" + "\n".join(offenders)
    )


def test_states_module_is_found_by_the_scan() -> None:
    # The module the rule exempts does write status: the scan sees its writes.
    assert len(status_writes(STATES_MODULE.read_text())) >= 8


@pytest.mark.parametrize(
    "source",
    [
        "Job.objects.filter(pk=pk, status=JobStatus.QUEUED).update(status=JobStatus.CANCELLED, finished_at=now)",
        "Job.objects.filter(pk__in=ids).update(status='queued')",
        "Job(name=name, status=JobStatus.SCHEDULED if delayed else JobStatus.QUEUED)",
        "Job.objects.create(name='x', status=JobStatus.FAILED)",
        "fields.update(status=JobStatus.SCHEDULED, run_at=run_at)",
        "written = _finish(job, status=JobStatus.SUCCEEDED, result=result)",
        'fields["status"] = JobStatus.FAILED',
        'plain = {"status": JobStatus.FAILED, "error": error}',
        "job.status, job.finished_at = JobStatus.CANCELLED, now",
        "job.status = 'failed'",
        "class Job:\n    def cancel(self):\n        self.status = 'cancelled'",
        'setattr(job, "status", value)',
        "sql = f\"UPDATE {quote(table)} SET {quote('status')} = %s WHERE {quote('id')} = %s\"",
        "cursor.execute('UPDATE django_asyncjobs_job SET status = %s WHERE id = %s', params)",
    ],
)
def test_the_scan_finds_each_way_of_writing_status(source: str) -> None:
    assert status_writes(source), source


@pytest.mark.parametrize(
    "source",
    [
        "Job.objects.filter(status=JobStatus.QUEUED, status__in=FINISHED).first()",
        "job.refresh_from_db(fields=['status'])",
        "JsonResponse({'id': str(job.pk), 'status': job.status}, status=202)",
        "TaskResult(task=task, status=status)",
        "running.update(status=WindowStatus.FAILED, error=error)",
        "class Supervisor:\n    def __init__(self):\n        self.status = 0",
        "if job.status == JobStatus.CANCELLED:\n    pass",
        'message = {"status": "queued"}',
    ],
)
def test_the_scan_leaves_reads_and_other_statuses_alone(source: str) -> None:
    assert status_writes(source) == [], source


# -- each transition: from its statuses it moves the row, from any other it changes nothing -------


def make(status: JobStatus, **fields: Any) -> Job:
    """A job of ``add`` in ``status``, as a claimed attempt of worker "w" if it ran."""
    job = add.enqueue(1, 2, max_attempts=3)
    if status != JobStatus.QUEUED:
        ran = status not in (JobStatus.SCHEDULED,)
        Job.objects.filter(pk=job.pk).update(
            status=status, attempts=1 if ran else 0, worker="w" if ran else "", started_at=timezone.now(), **fields
        )
    return Job.objects.get(pk=job.pk)


def row(job: Job) -> dict[str, Any]:
    return Job.objects.filter(pk=job.pk).values().get()


def others(*allowed: JobStatus) -> list[JobStatus]:
    return [status for status in JobStatus if status not in allowed]


def test_enqueue_inserts_queued_rows_or_scheduled_ones_with_run_at() -> None:
    now = timezone.now()
    queued, scheduled = Job(name=add.name, queue="default"), Job(name=add.name, queue="default")
    states.enqueue([queued], now=now, run_at=None)
    states.enqueue([scheduled], now=now, run_at=now + timedelta(minutes=1))
    assert (queued.status, queued.enqueued_at, queued.run_at) == (JobStatus.QUEUED, now, None)
    assert row(queued)["status"] == JobStatus.QUEUED
    assert (row(scheduled)["status"], row(scheduled)["enqueued_at"]) == (JobStatus.SCHEDULED, None)
    assert row(scheduled)["run_at"] == now + timedelta(minutes=1)


def test_enqueue_once_returns_the_row_another_call_inserted_first() -> None:
    now = timezone.now()
    first = Job(name=add.name, queue="default", idempotency_key="once")
    assert states.enqueue_once(first, now=now, run_at=None) is None
    second = Job(name=add.name, queue="default", idempotency_key="once")
    assert states.enqueue_once(second, now=now, run_at=None) == first
    assert Job.objects.filter(idempotency_key="once").count() == 1


@pytest.mark.parametrize("returning", [True, False])
def test_claim_returns_the_claimed_row(monkeypatch, returning: bool, django_user_model) -> None:
    if returning and not statements.supports_returning(connection):
        pytest.skip("this database has no UPDATE ... RETURNING")
    monkeypatch.setattr(statements, "supports_returning", lambda connection: returning)
    user = django_user_model.objects.create_user("claimer")
    job = add.enqueue(1, b={"nested": [1, 2.5, None]}, owner=user, idempotency_key="k")

    with CaptureQueriesContext(connection) as queries:
        claimed = states.claim(job.pk, "worker-1")

    assert claimed is not None
    assert len(queries.captured_queries) == (1 if returning else 2)
    assert (claimed.status, claimed.attempts, claimed.worker) == (JobStatus.RUNNING, 1, "worker-1")
    compared = [f.attname for f in Job._meta.concrete_fields if f.attname not in ("heartbeat_at", "result")]
    assert {name: getattr(claimed, name) for name in compared} == {
        name: value for name, value in row(job).items() if name in compared
    }
    assert claimed.kwargs == {"b": {"nested": [1, 2.5, None]}}
    assert states.claim(job.pk, "worker-2") is None
    assert Job.objects.get(pk=job.pk).worker == "worker-1"


@pytest.mark.parametrize("status", others(JobStatus.QUEUED))
def test_claim_from_any_other_status_changes_nothing(status: JobStatus) -> None:
    job = make(status)
    before = row(job)
    assert states.claim(job.pk, "other") is None
    assert row(job) == before


ENDINGS: dict[str, Callable[[Job], bool]] = {
    "succeed": lambda job: states.succeed(job, result=3, now=timezone.now()),
    "fail": lambda job: states.fail(job, now=timezone.now(), error="boom", failed_attempts=[{"attempt": 1}]),
    "retry now": lambda job: states.retry(job, now=timezone.now(), run_at=None, error="boom"),
    "retry later": lambda job: states.retry(
        job, now=timezone.now(), run_at=timezone.now() + timedelta(minutes=1), error="boom"
    ),
    "put back": lambda job: states.put_back(
        job, now=timezone.now(), run_at=timezone.now() + timedelta(seconds=5), error="no code", failed_attempts=[]
    ),
}
ENDED = {
    "succeed": (JobStatus.SUCCEEDED, 1),
    "fail": (JobStatus.FAILED, 1),
    "retry now": (JobStatus.QUEUED, 1),
    "retry later": (JobStatus.SCHEDULED, 1),
    "put back": (JobStatus.SCHEDULED, 0),
}


@pytest.mark.parametrize("ending", ENDINGS)
def test_an_attempt_ends_once_with_one_statement(ending: str) -> None:
    job = states.claim(add.enqueue(1, 2).pk, "w")
    assert job is not None

    with CaptureQueriesContext(connection) as queries:
        assert ENDINGS[ending](job) is True
    assert len(queries.captured_queries) == 1
    assert (row(job)["status"], row(job)["attempts"]) == ENDED[ending]
    assert (job.status, job.attempts) == ENDED[ending]
    # The row left the attempt: ending it again changes nothing.
    before = row(job)
    assert ENDINGS[ending](job) is False
    assert row(job) == before


@pytest.mark.parametrize("ending", ENDINGS)
@pytest.mark.parametrize("status", others(JobStatus.RUNNING))
def test_an_attempt_ends_only_from_running(ending: str, status: JobStatus) -> None:
    job = make(status)
    before = row(job)
    assert ENDINGS[ending](job) is False
    assert row(job) == before
    assert job.status == status  # nor the instance


@pytest.mark.parametrize("ending", ENDINGS)
def test_an_attempt_of_another_worker_is_not_ended(ending: str) -> None:
    job = states.claim(add.enqueue(1, 2).pk, "w")
    assert job is not None
    Job.objects.filter(pk=job.pk).update(worker="w2", attempts=2)  # taken as lost and claimed again
    before = row(job)
    assert ENDINGS[ending](job) is False
    assert row(job) == before


def test_a_lost_attempt_ends_only_if_its_heartbeat_is_the_stale_one() -> None:
    job = states.claim(add.enqueue(1, 2, max_attempts=2).pk, "w")
    assert job is not None
    stale = job.heartbeat_at
    Job.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() + timedelta(seconds=1))  # it beat again
    assert states.retry(job, now=timezone.now(), run_at=None, error="lost", heartbeat_at=stale) is False
    assert states.fail(job, now=timezone.now(), error="lost", heartbeat_at=stale) is False
    assert row(job)["status"] == JobStatus.RUNNING
    fresh = Job.objects.get(pk=job.pk).heartbeat_at
    assert states.fail(job, now=timezone.now(), error="lost", heartbeat_at=fresh) is True
    assert row(job)["status"] == JobStatus.FAILED


@pytest.mark.parametrize("status", [JobStatus.QUEUED, JobStatus.SCHEDULED])
def test_cancel_waiting(status: JobStatus) -> None:
    job = make(status)
    now = timezone.now()
    assert states.cancel_waiting(job, now=now) is True
    assert (row(job)["status"], row(job)["finished_at"], job.status) == (JobStatus.CANCELLED, now, JobStatus.CANCELLED)


@pytest.mark.parametrize("status", others(JobStatus.QUEUED, JobStatus.SCHEDULED))
def test_cancel_waiting_from_any_other_status_changes_nothing(status: JobStatus) -> None:
    job = make(status)
    before = row(job)
    assert states.cancel_waiting(job, now=timezone.now()) is False
    assert row(job) == before


def test_cancel_running_only_the_attempt_read() -> None:
    job = states.claim(add.enqueue(1, 2).pk, "w")
    assert job is not None
    attempt = Job.objects.get(pk=job.pk)
    Job.objects.filter(pk=job.pk).update(attempts=2)  # another attempt meanwhile
    assert states.cancel_running(job, attempt, now=timezone.now(), failed_attempts=[]) is False
    assert row(job)["status"] == JobStatus.RUNNING
    attempt = Job.objects.get(pk=job.pk)
    assert states.cancel_running(job, attempt, now=timezone.now(), failed_attempts=[{"attempt": 2}]) is True
    assert (row(job)["status"], row(job)["failed_attempts"]) == (JobStatus.CANCELLED, [{"attempt": 2}])


@pytest.mark.parametrize("status", others(JobStatus.RUNNING))
def test_cancel_running_from_any_other_status_changes_nothing(status: JobStatus) -> None:
    job = make(status)
    before = row(job)
    assert states.cancel_running(job, job, now=timezone.now(), failed_attempts=[]) is False
    assert row(job) == before


def test_promote_moves_only_scheduled_rows() -> None:
    jobs = {status: make(status) for status in JobStatus}
    now = timezone.now()
    assert states.promote([job.pk for job in jobs.values()], now=now, using="default") == 1
    promoted = row(jobs[JobStatus.SCHEDULED])
    assert (promoted["status"], promoted["enqueued_at"]) == (JobStatus.QUEUED, now)
    assert {status: row(job)["status"] for status, job in jobs.items() if status != JobStatus.SCHEDULED} == {
        status: status for status in others(JobStatus.SCHEDULED)
    }


def test_retry_finished_moves_only_failed_and_cancelled_rows() -> None:
    jobs = {status: make(status) for status in JobStatus}
    moved = states.retry_finished([job.pk for job in jobs.values()], now=timezone.now(), using="default")
    assert moved == 2
    for status in (JobStatus.FAILED, JobStatus.CANCELLED):
        retried = row(jobs[status])
        assert (retried["status"], retried["max_attempts"], retried["finished_at"]) == (JobStatus.QUEUED, 4, None)
    assert {status: row(job)["status"] for status, job in jobs.items() if status not in states.RETRYABLE_STATUSES} == {
        status: status for status in others(*states.RETRYABLE_STATUSES)
    }


# -- the callers go through the transitions; the hot paths keep their statement counts ------------


@pytest.fixture
def transitions(monkeypatch) -> list[str]:
    """The names of the transitions called, in order (the functions still run)."""
    called: list[str] = []
    for name in ("claim", "succeed", "fail", "retry", "put_back", "cancel_waiting", "cancel_running"):
        original = getattr(states, name)

        def spy(*args: Any, _name: str = name, _original: Any = original, **kwargs: Any) -> Any:
            called.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(states, name, spy)
    return called


def test_a_burst_worker_moves_jobs_through_the_transitions(run_worker, transitions: list[str], settings) -> None:
    settings.ASYNCJOBS = {**settings.ASYNCJOBS, "WORKER_PREFETCH": 1}  # one at a time: see test_worker_batches
    succeeding, failing = add.enqueue(1, 2), always_fails.enqueue()
    retried = flaky.enqueue("states", 1)
    run_worker()
    assert Job.objects.get(pk=succeeding.pk).status == JobStatus.SUCCEEDED
    assert Job.objects.get(pk=failing.pk).status == JobStatus.FAILED
    assert (Job.objects.get(pk=retried.pk).status, Job.objects.get(pk=retried.pk).attempts) == (
        JobStatus.SUCCEEDED,
        2,
    )
    assert sorted(transitions) == sorted(["claim", "succeed", "claim", "fail", "claim", "retry", "claim", "succeed"])


def test_cancel_goes_through_the_transitions(transitions: list[str]) -> None:
    waiting = add.enqueue(1, 2)
    assert waiting.cancel() is True
    running = states.claim(add.enqueue(1, 2).pk, "w")
    transitions.clear()
    assert running is not None and running.cancel() is True
    assert transitions == ["cancel_waiting", "cancel_running"]
    assert waiting.cancel() is False  # finished: nothing changes


def test_enqueue_is_one_insert() -> None:
    with CaptureQueriesContext(connection) as queries:
        add.enqueue(1, 2)
        add.enqueue(1, 2, delay=60)
    assert [q["sql"].split()[0] for q in queries.captured_queries] == ["INSERT", "INSERT"]
    with CaptureQueriesContext(connection) as queries:
        add.enqueue_many([(1, 2), (3, 4), (5, 6)])
    assert [q["sql"].split()[0] for q in queries.captured_queries].count("INSERT") == 1


def test_claim_and_recording_success_are_one_statement_each() -> None:
    job = add.enqueue(1, 2)
    with CaptureQueriesContext(connection) as queries:
        claimed = states.claim(job.pk, "w")
    assert claimed is not None
    assert len(queries.captured_queries) == (1 if statements.supports_returning(connection) else 2)
    with CaptureQueriesContext(connection) as queries:
        assert outcomes.record_success(claimed, 3, add) == outcomes.Outcome.SUCCEEDED
    assert len(queries.captured_queries) == 1


def test_recording_a_retry_and_a_failure_are_one_statement_each() -> None:
    retried = states.claim(flaky.enqueue("counts", 5).pk, "w")
    failed = states.claim(always_fails.enqueue().pk, "w")
    assert retried is not None and failed is not None
    with CaptureQueriesContext(connection) as queries:
        assert outcomes.record_failure(retried, "e", retry=True, job_function=flaky) == outcomes.Outcome.RETRYING
    assert len(queries.captured_queries) == 1
    with CaptureQueriesContext(connection) as queries:
        assert outcomes.record_failure(failed, "e", retry=True, job_function=always_fails) == outcomes.Outcome.FAILED
    assert len(queries.captured_queries) == 1


def test_promoting_and_retrying_from_the_admin_go_through_the_transitions() -> None:
    due = add.enqueue(1, 2, delay=60)
    Job.objects.filter(pk=due.pk).update(run_at=timezone.now() - timedelta(seconds=1))
    assert promote_due_jobs() == 1
    assert row(due)["status"] == JobStatus.QUEUED
    failed = make(JobStatus.FAILED)
    assert retry_jobs(Job.objects.filter(pk__in=[failed.pk, due.pk])).done == 1
    assert row(failed)["status"] == JobStatus.QUEUED


def test_every_transition_is_in_the_tables_of_the_docs_and_the_module() -> None:
    import inspect

    transitions = [
        name
        for name, function in vars(states).items()
        if inspect.isfunction(function)
        and function.__module__ == states.__name__
        and not name.startswith("_")
        and name not in states.HELPERS
    ]
    assert len(transitions) == 14
    docs = (PACKAGE.parent / "docs" / "jobs.md").read_text()
    missing = [name for name in transitions if f"| `{name}` |" not in docs and f"| `{name}` / " not in docs]
    assert missing == [], "transitions missing from the table in docs/jobs.md"
    assert [name for name in transitions if f"``{name}``" not in (states.__doc__ or "")] == []
