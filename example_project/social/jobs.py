"""Background work of the social site. Found at start-up by ``ASYNCJOBS["AUTODISCOVER"]``."""

from __future__ import annotations

import csv
import io
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from django_asyncjobs import JobGroup, current_job, enqueue_group, job

from . import aggregations  # noqa: F401  (registers the scheduled aggregations)
from .models import Follow, TimelineEntry, Tweet

#: Followers per job of a tweet's fan-out group. Small, so that the demo's ~10 followers make a
#: group of several jobs; a real site would deliver thousands per job.
FANOUT_CHUNK = 3
EXPORT_BATCH = 50


def _report(percent: float, message: str) -> None:
    """Progress of the job being run, if any (the functions below also run inline, e.g. in tests)."""
    this = current_job()
    if this is not None:
        this.set_progress(min(100, int(percent)), message)


def start_fan_out(tweet: Tweet, owner) -> JobGroup:
    """Enqueue the fan-out of a tweet: a group of :func:`fan_out_tweet` jobs, one per chunk of
    followers, then :func:`record_delivery` once all of them finished. Once per tweet: a retried
    post finds the group its first attempt enqueued."""
    with transaction.atomic():
        tweet = Tweet.objects.select_for_update().get(pk=tweet.pk)
        if tweet.fanout_group_id is not None:
            return JobGroup.objects.get(pk=tweet.fanout_group_id)
        followers = list(
            Follow.objects.filter(followee_id=tweet.author_id).order_by("pk").values_list("follower_id", flat=True)
        )
        chunks = [followers[start : start + FANOUT_CHUNK] for start in range(0, len(followers), FANOUT_CHUNK)]
        group = enqueue_group(
            fan_out_tweet, [(tweet.pk, chunk) for chunk in chunks], then=record_delivery.s(tweet.pk), owner=owner
        )
        Tweet.objects.filter(pk=tweet.pk).update(fanout_group_id=group.pk)
    return group


@job(queue="fanout", max_attempts=3, atomic=True)
def fan_out_tweet(tweet_id: int, follower_ids: list[int]) -> int:
    """Put a tweet on the home timelines of some of its author's followers: one job of the
    tweet's fan-out group; how many followers it delivered to.

    Atomic: its timeline rows commit with the job's success, or not at all, so a worker killed
    mid-fan-out leaves none of them and the retry writes them all, once (its progress is then
    written with the outcome only: docs/jobs.md#atomic-jobs). ``ignore_conflicts`` on the unique
    (owner, tweet) pair keeps it safe to call inline as well.
    """
    tweet = Tweet.objects.get(pk=tweet_id)
    total = len(follower_ids)
    for done, follower_id in enumerate(follower_ids, 1):
        TimelineEntry.objects.bulk_create(
            [TimelineEntry(owner_id=follower_id, tweet=tweet, created_at=tweet.created_at)], ignore_conflicts=True
        )
        _report(done * 100 / total, f"{done} of {total} followers")
        time.sleep(settings.DEMO_SLOW_SECONDS)  # a real site has millions of followers; we pretend
    return total


@job(queue="fanout", max_attempts=3)
def record_delivery(group_id: str, tweet_id: int) -> dict:
    """The fan-out group's callback (``then=``): runs once, when every job of it succeeded."""
    delivered = sum(count or 0 for count in JobGroup.objects.get(pk=group_id).results())
    Tweet.objects.filter(pk=tweet_id).update(delivered_to=delivered, delivered_at=timezone.now())
    return {"tweet": tweet_id, "followers": delivered}


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
