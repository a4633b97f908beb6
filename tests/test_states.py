"""The claim: one conditional UPDATE, with or without RETURNING, gives the same row."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_asyncjobs import Job, JobStatus
from django_asyncjobs.engine import states
from tests.testapp.jobs import add

pytestmark = pytest.mark.django_db(transaction=True)

COMPARED = [
    "id",
    "name",
    "queue",
    "status",
    "args",
    "kwargs",
    "attempts",
    "max_attempts",
    "progress",
    "worker",
    "owner_id",
    "created_at",
    "enqueued_at",
    "started_at",
    "idempotency_key",
    "progress_message",
]


def snapshot(job: Job) -> dict[str, object]:
    return {name: getattr(job, name) for name in COMPARED}


@pytest.mark.parametrize("returning", [True, False])
def test_claim_returns_the_claimed_row(monkeypatch, returning: bool, django_user_model) -> None:
    if returning and not states._supports_returning(connection):
        pytest.skip("this database has no UPDATE ... RETURNING")
    monkeypatch.setattr(states, "_supports_returning", lambda connection: returning)
    user = django_user_model.objects.create_user("claimer")
    job = add.enqueue(1, b={"nested": [1, 2.5, None]}, owner=user, idempotency_key="k")

    with CaptureQueriesContext(connection) as queries:
        claimed = states.claim(job.pk, "worker-1")

    assert claimed is not None
    assert len(queries.captured_queries) == (1 if returning else 2)
    assert (claimed.status, claimed.attempts, claimed.worker) == (JobStatus.RUNNING, 1, "worker-1")
    assert snapshot(claimed) == snapshot(Job.objects.get(pk=job.pk))
    assert claimed.kwargs == {"b": {"nested": [1, 2.5, None]}}
    assert states.claim(job.pk, "worker-2") is None
    assert Job.objects.get(pk=job.pk).worker == "worker-1"
