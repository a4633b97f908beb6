"""BackpressureMiddleware with a really saturated queue, in sync and async stacks."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.test import AsyncClient, Client
from django.test.utils import CaptureQueriesContext

from django_asyncjobs.engine.capacity import forget_states
from django_asyncjobs.middleware import queue_for_path
from tests.testapp.jobs import add

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def saturated(settings):
    settings.ASYNCJOBS = {
        **settings.ASYNCJOBS,
        "QUEUE_LIMITS": {"default": {"MAX_DEPTH": 2}},
        "BACKPRESSURE_PATHS": {r"^/upload/": "default"},
        "RETRY_AFTER_MAX": 90,
    }
    add.enqueue_many([(1, 1), (2, 2)])
    forget_states()
    yield
    forget_states()


def test_saturated_offload_view_gets_503_without_touching_the_database(saturated) -> None:
    with CaptureQueriesContext(connection) as queries:
        response = Client().post("/echo/1/")
    assert response.status_code == 503
    assert response["Retry-After"] == "90"  # nothing finished yet: the longest delay
    assert response.json() == {
        "error": "queue_full",
        "queue": "default",
        "retry_after": 90,
        "detail": "2 waiting, limit 2",
    }
    assert queries.captured_queries == []


def test_html_clients_get_an_html_503(saturated) -> None:
    response = Client().post("/echo/1/", HTTP_ACCEPT="text/html,application/xhtml+xml")
    assert response.status_code == 503
    assert b"busy" in response.content
    assert response["Content-Type"].startswith("text/html")


def test_configured_paths_are_guarded(saturated) -> None:
    assert Client().post("/upload/plain/").status_code == 503
    assert queue_for_path("/upload/plain/") == "default"
    assert queue_for_path("/tweet/") is None


def test_methods_that_would_not_enqueue_pass(saturated) -> None:
    response = Client().get("/tweet/")  # @offload(methods=("POST",)): GET runs inline
    assert (response.status_code, response.content) == (200, b"timeline")


def test_unsaturated_queue_passes(settings) -> None:
    settings.ASYNCJOBS = {**settings.ASYNCJOBS, "QUEUE_LIMITS": {"default": {"MAX_DEPTH": 100}}}
    forget_states()
    assert Client().post("/echo/1/").status_code == 202


def test_async_stack(saturated) -> None:
    response = async_to_sync(AsyncClient().post)("/echo-async/")
    assert response.status_code == 503
    assert response["Retry-After"] == "90"


def test_requests_the_view_would_run_inline_pass(saturated) -> None:
    response = Client().get("/maybe-cheap/?cheap=1")  # sync_if says inline: nothing would be queued
    assert (response.status_code, response.content) == (200, b"computed")
