"""Create users, a follow graph and tweets, with their timelines already fanned out.

    python manage.py seed_social --users 50 --follows 10 --tweets 500 --days 3

Users are ``user1``, ``user2``, ... with the password ``password``. Tweets are spread over the
last ``--days`` days, so that the aggregations have windows to backfill (``-v 2`` prints the
commands with the right dates):

    python manage.py asyncjobs_aggregate social.trending_hashtags --since <3 days ago>
    python manage.py asyncjobs_aggregate social.daily_counts --since <3 days ago>
"""

from __future__ import annotations

import random
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from social.models import Follow, TimelineEntry, Tweet

HASHTAGS = ["django", "python", "redis", "rq", "asyncjobs", "backpressure", "cats", "coffee", "weekend", "release"]
WORDS = ["the", "a", "quick", "lazy", "worker", "queue", "job", "row", "commit", "redis", "ship", "deploy", "fix"]


class Command(BaseCommand):
    help = "Create users, a follow graph and tweets (with fanned-out timelines) for the demo."

    def add_arguments(self, parser):
        parser.add_argument("--users", type=int, default=50, help="number of users (default 50)")
        parser.add_argument("--follows", type=int, default=10, help="accounts each user follows (default 10)")
        parser.add_argument("--tweets", type=int, default=500, help="number of tweets (default 500)")
        parser.add_argument("--days", type=float, default=3.0, help="spread tweets over this many days (default 3)")
        parser.add_argument("--seed", type=int, default=None, help="random seed, for a reproducible data set")
        parser.add_argument("--clear", action="store_true", help="delete all tweets and follows first")

    def handle(self, *args, users: int, follows: int, tweets: int, days: float, seed, clear: bool, **options):
        if users < 1 or follows < 0 or tweets < 0 or days <= 0:
            raise CommandError("--users must be >= 1, --follows and --tweets >= 0, --days > 0.")
        rng = random.Random(seed)
        User = get_user_model()
        with transaction.atomic():
            if clear:
                TimelineEntry.objects.all().delete()
                Tweet.objects.all().delete()
                Follow.objects.all().delete()
            password = make_password("password")
            existing = set(User.objects.filter(username__startswith="user").values_list("username", flat=True))
            User.objects.bulk_create(
                [
                    User(username=f"user{i}", password=password)
                    for i in range(1, users + 1)
                    if f"user{i}" not in existing
                ]
            )
            people = list(User.objects.filter(username__in=[f"user{i}" for i in range(1, users + 1)]))
            ids = [u.pk for u in people]

            per_user = min(follows, len(ids) - 1)
            Follow.objects.bulk_create(
                [
                    Follow(follower_id=uid, followee_id=other)
                    for uid in ids
                    for other in rng.sample([o for o in ids if o != uid], per_user)
                ],
                ignore_conflicts=True,
            )

            now = timezone.now()
            span = timedelta(days=days).total_seconds()
            new = Tweet.objects.bulk_create(
                [
                    Tweet(
                        author_id=rng.choice(ids),
                        text=self.text(rng),
                        created_at=now - timedelta(seconds=rng.uniform(0, span)),
                    )
                    for _ in range(tweets)
                ]
            )
            if new and new[0].pk is None:  # backends that do not return ids from bulk_create
                new = list(Tweet.objects.order_by("-pk")[: len(new)])

            followers: dict[int, list[int]] = {}
            for follower, followee in Follow.objects.filter(followee_id__in=ids).values_list(
                "follower_id", "followee_id"
            ):
                followers.setdefault(followee, []).append(follower)
            entries = [
                TimelineEntry(owner_id=owner, tweet_id=t.pk, created_at=t.created_at)
                for t in new
                for owner in [t.author_id, *followers.get(t.author_id, [])]
            ]
            TimelineEntry.objects.bulk_create(entries, batch_size=1000, ignore_conflicts=True)

        self.stdout.write(
            self.style.SUCCESS(
                f"{len(people)} users (password 'password'), {per_user} follows each, "
                f"{len(new)} tweets over {days:g} days, {len(entries)} timeline entries."
            )
        )
        if options["verbosity"] < 2:
            return
        since = (now - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M")
        self.stdout.write(
            "Compute the aggregations for that period:\n"
            f"  python manage.py asyncjobs_aggregate social.trending_hashtags --since {since}\n"
            f"  python manage.py asyncjobs_aggregate social.daily_counts --since {since}"
        )

    @staticmethod
    def text(rng: random.Random) -> str:
        words = rng.sample(WORDS, rng.randint(3, 8))
        tags = [f"#{tag}" for tag in rng.sample(HASHTAGS, rng.choice([0, 1, 1, 2, 3]))]
        return " ".join(words + tags)[:280]
