"""Scheduled aggregations: run by ``asyncjobs_scheduler`` (or ``asyncjobs_worker --with-scheduler``)
once per completed window, and backfilled with ``manage.py asyncjobs_aggregate NAME --since ...``.

Both write idempotently (delete-then-insert of the window's rows in one transaction), so a rerun
of a window rewrites it.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from django_asyncjobs import aggregation

from .models import DailyCount, TrendingHashtag, Tweet, hashtags

TOP_HASHTAGS = 20


@aggregation(name="social.trending_hashtags", every=settings.DEMO_TRENDING_EVERY, grace="2s")
def trending_hashtags(since: datetime, until: datetime) -> None:
    counts: Counter[str] = Counter()
    for text in Tweet.objects.filter(created_at__gte=since, created_at__lt=until).values_list("text", flat=True):
        counts.update(hashtags(text))
    now = timezone.now()
    with transaction.atomic():
        TrendingHashtag.objects.filter(window_start=since).delete()
        TrendingHashtag.objects.bulk_create(
            [
                TrendingHashtag(window_start=since, tag=tag, count=n, computed_at=now)
                for tag, n in counts.most_common(TOP_HASHTAGS)
            ]
        )


@aggregation(name="social.daily_counts", every="1d", grace="1m")
def daily_counts(since: datetime, until: datetime) -> None:
    rows = (
        Tweet.objects.filter(created_at__gte=since, created_at__lt=until)
        .values("author_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    now = timezone.now()
    day = since.date()  # windows are UTC days
    with transaction.atomic():
        DailyCount.objects.filter(day=day).delete()
        DailyCount.objects.bulk_create(
            [DailyCount(day=day, user_id=row["author_id"], tweets=row["n"], computed_at=now) for row in rows]
        )
