"""Keyset pagination: a queryset read in batches, each starting after the last row of the one before.

No OFFSET and no rescans: every batch is one index range scan, rows updated or
deleted between batches shift nothing, and the walk always ends. Recovery and
pruning read the job table this way.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from django.db.models import Q, QuerySet


def keyset_batches(
    queryset: QuerySet[Any], *, key: Sequence[str], fields: Sequence[str], batch_size: int
) -> Iterator[list[tuple[Any, ...]]]:
    """Rows of ``queryset`` as tuples of ``fields``, ``batch_size`` at a time, in ``key`` order.

    ``key`` is unique together (end it with ``"pk"``), never NULL, and each of its
    names is one of ``fields``.
    """
    positions = [fields.index(name) for name in key]
    ordered = queryset.order_by(*key)
    last: tuple[Any, ...] | None = None
    while True:
        page = ordered if last is None else ordered.filter(_after(key, last))
        batch = list(page.values_list(*fields)[:batch_size])
        if not batch:
            return
        yield batch
        if len(batch) < batch_size:
            return
        last = tuple(batch[-1][position] for position in positions)


def _after(key: Sequence[str], last: tuple[Any, ...]) -> Q:
    """Rows after ``last`` in ``key`` order: ``(a > x) or (a = x and b > y) ...``."""
    after = Q()
    for index, name in enumerate(key):
        equal = {key[before]: last[before] for before in range(index)}
        after |= Q(**equal, **{f"{name}__gt": last[index]})
    if len(key) > 1:
        after &= Q(**{f"{key[0]}__gte": last[0]})  # a plain range bound on the first column, for the index
    return after
