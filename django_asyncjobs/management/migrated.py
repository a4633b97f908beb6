"""What the long-running commands ask first: are the app's tables there, and up to date?

Without it a worker or scheduler started before ``migrate`` logs a database error every
pass (or prints a long traceback) instead of saying what to do.
"""

from __future__ import annotations

from django.core.management.base import CommandError
from django.db import DatabaseError, connections, router
from django.db.migrations.loader import MigrationLoader

from ..links import see
from ..models import Job

APP = "django_asyncjobs"


def require_migrated() -> None:
    """``CommandError`` (one line: run ``manage.py migrate``) when the database that holds the
    jobs lacks the app's tables or has migrations of the app not applied. A database that
    cannot be read at all is left to the command (the worker waits and reconnects)."""
    alias = router.db_for_write(Job)
    connection = connections[alias]
    try:
        tables = set(connection.introspection.table_names())
        loader = MigrationLoader(connection, ignore_no_migrations=True)
    except DatabaseError:
        # Not a missing table (introspection does not need one): a database that cannot be
        # reached now is the worker's to wait for, as it always did (reconnecting, logging).
        connection.close()
        return
    unapplied = sorted(
        name for app, name in loader.graph.nodes if app == APP and (app, name) not in loader.applied_migrations
    )
    if Job._meta.db_table in tables and not unapplied:
        return
    if Job._meta.db_table not in tables:
        missing = "its tables do not exist"
    else:
        missing = f"migration(s) {', '.join(unapplied)} not applied"
    raise CommandError(
        f"Database {alias!r} is not ready for django_asyncjobs: {missing}. "
        f"Run `python manage.py migrate` first. {see('installation')}"
    )
