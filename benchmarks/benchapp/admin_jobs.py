"""Registered jobs whose names the admin benchmark seeds (found by ``ASYNCJOBS["AUTODISCOVER"]``
of ``benchmarks.admin_settings``). They are never run: only their names and queues matter, so
that the admin's job-name filter lists what the table holds."""

from __future__ import annotations

from typing import Any

from django_asyncjobs import job


@job(name="emails.send_welcome", queue="emails")
def send_welcome(user_id: int) -> None:
    return None


@job(name="emails.send_digest", queue="emails")
def send_digest(user_id: int) -> None:
    return None


@job(name="billing.charge_invoice", queue="high", max_attempts=3)
def charge_invoice(invoice_id: int) -> None:
    return None


@job(name="webhooks.deliver", queue="high", max_attempts=3)
def deliver_webhook(endpoint_id: int, **payload: Any) -> None:
    return None


@job(name="images.make_thumbnails", queue="default")
def make_thumbnails(image_id: int) -> None:
    return None


@job(name="exports.export_csv", queue="default")
def export_csv(export_id: int) -> None:
    return None


@job(name="search.reindex_document", queue="low")
def reindex_document(document_id: int) -> None:
    return None


@job(name="reports.build_monthly_report", queue="reports")
def build_monthly_report(account_id: int) -> None:
    return None
