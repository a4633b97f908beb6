"""Aggregation windows in the admin: read-only, filtered by aggregation and status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from django_asyncjobs.aggregations.windows import run_window
from django_asyncjobs.models import AggregationWindow, WindowStatus
from tests.test_admin import admin_client, staff_client, superuser  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "admin:django_asyncjobs_aggregationwindow_changelist"
EVEN = datetime(2026, 1, 1, 2, tzinfo=UTC)


def ran_windows() -> tuple[AggregationWindow, AggregationWindow]:
    run_window("tests.odd_hours_fail", EVEN, EVEN + timedelta(hours=1))
    run_window("tests.odd_hours_fail", EVEN + timedelta(hours=1), EVEN + timedelta(hours=2))
    done = AggregationWindow.objects.get(status=WindowStatus.DONE)
    failed = AggregationWindow.objects.get(status=WindowStatus.FAILED)
    return done, failed


def test_the_list_shows_each_window_and_filters_by_status(admin_client) -> None:  # noqa: F811
    _, failed = ran_windows()
    page = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert page.count("tests.odd_hours_fail") >= 2
    failed_only = admin_client.get(reverse(CHANGELIST), {"status__exact": "failed"})
    assert list(failed_only.context["cl"].result_list) == [failed]


def test_a_window_page_shows_its_error_and_cannot_be_edited(admin_client) -> None:  # noqa: F811
    _, failed = ran_windows()
    response = admin_client.get(reverse("admin:django_asyncjobs_aggregationwindow_change", args=[failed.pk]))
    assert response.status_code == 200
    assert "odd hour 3" in response.content.decode()
    assert "_save" not in response.content.decode()
    assert admin_client.get(reverse("admin:django_asyncjobs_aggregationwindow_add")).status_code == 403


def test_viewing_and_deleting_need_their_permissions(django_user_model) -> None:
    done, _ = ran_windows()
    viewer = staff_client(django_user_model, "view_aggregationwindow")
    assert viewer.get(reverse(CHANGELIST)).status_code == 200
    delete_url = reverse("admin:django_asyncjobs_aggregationwindow_delete", args=[done.pk])
    assert viewer.post(delete_url, {"post": "yes"}).status_code == 403
    assert AggregationWindow.objects.filter(pk=done.pk).exists()

    django_user_model.objects.filter(username="staff").delete()
    deleter = staff_client(django_user_model, "view_aggregationwindow", "delete_aggregationwindow")
    assert deleter.post(delete_url, {"post": "yes"}).status_code == 302
    assert not AggregationWindow.objects.filter(pk=done.pk).exists()


def test_staff_without_the_view_permission_cannot_see_windows(django_user_model) -> None:
    assert staff_client(django_user_model).get(reverse(CHANGELIST)).status_code == 403
