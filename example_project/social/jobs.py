"""Background work of the social site. Found at start-up by ``ASYNCJOBS["AUTODISCOVER"]``."""

from __future__ import annotations

import csv
import io
import time

from django.conf import settings
from django.contrib.auth import get_user_model

from django_asyncjobs import current_job, job

from . import aggregations  # noqa: F401  (registers the scheduled aggregations)
from .models import Follow, TimelineEntry, Tweet

FANOUT_BATCH = 100
EXPORT_BATCH = 50


def _report(percent: float, message: str) -> None:
    """Progress of the job being run, if any (the functions below also run inline, e.g. in tests)."""
    this = current_job()
    if this is not None:
        this.set_progress(min(100, int(percent)), message)


@job(queue="fanout", max_attempts=3, atomic=True)
def fan_out_tweet(tweet_id: int) -> dict:
    """Put a tweet on the home timeline of its author and of every follower.

    Atomic: the timeline rows commit with the job's success, or not at all, so a worker
    killed mid-fan-out leaves none of them and the retry writes them all, once (progress
    is then written with the outcome only: docs/jobs.md#atomic-jobs). ``ignore_conflicts``
    on the unique (owner, tweet) pair keeps it safe to call inline as well.
    """
    tweet = Tweet.objects.get(pk=tweet_id)
    TimelineEntry.objects.get_or_create(
        owner_id=tweet.author_id, tweet=tweet, defaults={"created_at": tweet.created_at}
    )
    follower_ids = list(Follow.objects.filter(followee_id=tweet.author_id).values_list("follower_id", flat=True))
    total = len(follower_ids)
    _report(0, f"0 of {total} followers")
    for start in range(0, total, FANOUT_BATCH):
        batch = follower_ids[start : start + FANOUT_BATCH]
        TimelineEntry.objects.bulk_create(
            [TimelineEntry(owner_id=uid, tweet=tweet, created_at=tweet.created_at) for uid in batch],
            ignore_conflicts=True,
        )
        done = start + len(batch)
        _report(done * 100 / total, f"{done} of {total} followers")
        time.sleep(settings.DEMO_SLOW_SECONDS)  # a real site has millions of followers; we pretend
    return {"tweet": tweet_id, "followers": total}


def tweets_csv(user_id: int) -> str:
    """All tweets of a user as CSV, reporting progress; deliberately slow."""
    user = get_user_model().objects.get(pk=user_id)
    tweets = Tweet.objects.filter(author=user).order_by("created_at")
    total = tweets.count()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "created_at", "text"])
    _report(0, f"0 of {total} tweets")
    for done, tweet in enumerate(tweets.iterator(), 1):
        writer.writerow([tweet.pk, tweet.created_at.isoformat(), tweet.text])
        if done % EXPORT_BATCH == 0 or done == total:
            _report(done * 100 / total, f"{done} of {total} tweets")
            time.sleep(settings.DEMO_SLOW_SECONDS)
    return out.getvalue()


@job(queue="reports", max_attempts=2, max_concurrency=1, concurrency_key=lambda user_id: user_id)
def export_tweets(user_id: int) -> dict:
    """The CSV export as a plain job (the web page uses the offloaded view ``views.export_csv``):
    one export per user at a time, across all workers (a second one waits, it does not fail)."""
    data = tweets_csv(user_id)
    return {"user": user_id, "csv": data}


@job(queue="flood")
def slow_ping(seconds: float = 1.0) -> str:
    """A job that takes its time: what the flood page fills its small queue with."""
    time.sleep(seconds)
    return "pong"
