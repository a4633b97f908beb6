"""A tiny social network: tweets, follows, fanned-out timelines and aggregated statistics."""

from __future__ import annotations

import re

from django.conf import settings
from django.db import models
from django.utils import timezone

HASHTAG_RE = re.compile(r"#(\w{1,50})")


def hashtags(text: str) -> set[str]:
    """The distinct hashtags of a text, lower-cased, without the ``#``."""
    return {tag.lower() for tag in HASHTAG_RE.findall(text)}


class Tweet(models.Model):
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tweets")
    text = models.CharField(max_length=280)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # The job of the offloaded post that created it: makes posting idempotent (request and worker
    # both get_or_create the tweet under this key, and a retried job finds it again).
    post_job_id = models.UUIDField(null=True, blank=True, unique=True, editable=False)
    # The fan-out to the followers: a group of jobs (jobs.start_fan_out), and what its callback
    # (jobs.record_delivery) recorded once every job of it finished.
    fanout_group_id = models.UUIDField(null=True, blank=True, editable=False)
    delivered_to = models.PositiveIntegerField(null=True, blank=True, editable=False)
    delivered_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"@{self.author}: {self.text[:40]}"


class Follow(models.Model):
    follower = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="following")
    followee = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="followers")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["follower", "followee"], name="social_follow_unique"),
            models.CheckConstraint(condition=~models.Q(follower=models.F("followee")), name="social_follow_not_self"),
        ]

    def __str__(self) -> str:
        return f"{self.follower} follows {self.followee}"


class TimelineEntry(models.Model):
    """One tweet on one user's home timeline (fan-out on write)."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="timeline")
    tweet = models.ForeignKey(Tweet, on_delete=models.CASCADE, related_name="timeline_entries")
    created_at = models.DateTimeField()  # the tweet's, copied so that a timeline reads one index

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["owner", "tweet"], name="social_timeline_unique")]
        indexes = [models.Index(fields=["owner", "-created_at"], name="social_timeline_owner_time")]
        verbose_name_plural = "timeline entries"

    def __str__(self) -> str:
        return f"{self.owner}: {self.tweet_id}"


class TrendingHashtag(models.Model):
    """Hashtag counts of one hour, written by the ``social.trending_hashtags`` aggregation."""

    window_start = models.DateTimeField(db_index=True)
    tag = models.CharField(max_length=50)
    count = models.PositiveIntegerField()
    computed_at = models.DateTimeField()

    class Meta:
        ordering = ["-window_start", "-count", "tag"]
        constraints = [models.UniqueConstraint(fields=["window_start", "tag"], name="social_trending_unique")]

    def __str__(self) -> str:
        return f"#{self.tag} x{self.count} ({self.window_start:%Y-%m-%d %H:00})"


class DailyCount(models.Model):
    """Tweets of one user on one UTC day, written by the ``social.daily_counts`` aggregation."""

    day = models.DateField(db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="daily_counts")
    tweets = models.PositiveIntegerField()
    computed_at = models.DateTimeField()

    class Meta:
        ordering = ["-day", "-tweets"]
        constraints = [models.UniqueConstraint(fields=["day", "user"], name="social_daily_unique")]

    def __str__(self) -> str:
        return f"{self.user} {self.day}: {self.tweets}"
