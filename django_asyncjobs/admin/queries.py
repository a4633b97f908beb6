"""Queries of the job list that stay fast on a table of millions of rows."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Max, Min, Q

from ..engine.registry import registered_jobs
from ..models import JobQuerySet
from ..offloading.requests import offloaded_views
from .display import local_time


class DateHierarchyQuerySet(JobQuerySet):
    """Answers the admin's date hierarchy from the first and last ``created_at``.

    Django's date hierarchy lists the months or days that have jobs with a
    ``SELECT DISTINCT date_trunc(...)`` over every matching row: a scan of the
    whole table for the default view. Here the list is every month or day
    between the first and the last job (two index lookups); a day without jobs
    shows as a link to an empty list.
    """

    def aggregate(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The date hierarchy's ``first=Min(created_at), last=Max(created_at)`` as two
        ``ORDER BY ... LIMIT 1`` lookups: SQLite reads a whole index for the pair in one query."""
        if not args and _is_first_and_last(kwargs):
            ordered = self.order_by().values_list("created_at", flat=True)
            return {"first": ordered.order_by("created_at").first(), "last": ordered.order_by("-created_at").first()}
        return super().aggregate(*args, **kwargs)

    def datetimes(  # type: ignore[override]
        self, field_name: str, kind: Any, order: Any = "ASC", tzinfo: Any = None
    ) -> list[datetime]:
        if field_name != "created_at" or kind not in ("year", "month", "day"):
            return list(super().datetimes(field_name, kind, order, tzinfo))
        bounds = self.aggregate(first=Min(field_name), last=Max(field_name))  # two index lookups
        if bounds["first"] is None:
            return []
        first, last = (local_time(bounds["first"]), local_time(bounds["last"]))
        periods = []
        moment = _truncate(first, kind)
        while moment <= last:
            periods.append(moment)
            moment = _next(moment, kind)
        return periods if order == "ASC" else periods[::-1]


def _is_first_and_last(aggregates: dict[str, Any]) -> bool:
    first, last = aggregates.get("first"), aggregates.get("last")
    return (
        set(aggregates) == {"first", "last"}
        and isinstance(first, Min)
        and isinstance(last, Max)
        and all(getattr(e.source_expressions[0], "name", None) == "created_at" for e in (first, last))
    )


def _truncate(moment: datetime, kind: str) -> datetime:
    start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if kind in ("month", "year"):
        start = start.replace(day=1)
    if kind == "year":
        start = start.replace(month=1)
    return start


def _next(moment: datetime, kind: str) -> datetime:
    if kind == "day":
        return _truncate(moment + timedelta(days=1, hours=1), "day")  # +1 h: across a DST change
    if kind == "month":
        return moment.replace(year=moment.year + moment.month // 12, month=moment.month % 12 + 1)
    return moment.replace(year=moment.year + 1)


def search_filter(term: str) -> Q:
    """A job id; or part of a registered job's name or of an offloaded view's; or an owner's
    username (any case).

    Each is an index lookup: names are matched against the registry in Python,
    usernames against the user table, and only then are jobs filtered by the
    names and owners found. (A substring search over the job table itself would
    read every row, over a second at a million rows.)
    """
    term = term.strip()
    try:
        return Q(pk=uuid.UUID(term))
    except ValueError:
        pass
    names = [name for name in registered_jobs() if term.lower() in name.lower()]
    views = [name for name, _queue in offloaded_views() if term.lower() in name.lower()]
    user_model = get_user_model()
    username = f"{user_model.USERNAME_FIELD}__iexact"
    owners = list(user_model._default_manager.filter(**{username: term}).values_list("pk", flat=True))
    return Q(name__in=[*names, term]) | Q(display_name__in=[*views, term]) | Q(owner_id__in=owners)
