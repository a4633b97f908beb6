"""Get a freshly migrated demo database ready: an admin login, seed data, computed aggregations.

Run by ``demo.py`` (``make demo``) after ``migrate``. Safe to run again: the admin user and the
seed data are only created when missing, and aggregation windows already computed are skipped.
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from social.models import Tweet

ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "admin"


class Command(BaseCommand):
    help = "Create the demo's admin login and seed data if missing, and backfill the aggregations."

    def add_arguments(self, parser):
        parser.add_argument("--users", type=int, default=50, help="users to seed (default 50)")
        parser.add_argument("--follows", type=int, default=10, help="accounts each user follows (default 10)")
        parser.add_argument("--tweets", type=int, default=500, help="tweets to seed (default 500)")
        parser.add_argument("--days", type=float, default=3.0, help="spread the tweets over this many days")

    def handle(self, *args, users: int, follows: int, tweets: int, days: float, **options):
        verbosity = options["verbosity"]
        User = get_user_model()
        if not User.objects.filter(username=ADMIN_USERNAME).exists():
            User.objects.create_superuser(ADMIN_USERNAME, "", ADMIN_PASSWORD)
            self.stdout.write(f"Created the superuser {ADMIN_USERNAME!r} (password {ADMIN_PASSWORD!r}).")
        if Tweet.objects.exists():
            self.stdout.write("Seed data present: kept.")
        else:
            if days <= 0:
                raise CommandError("--days must be > 0.")
            call_command("seed_social", users=users, follows=follows, tweets=tweets, days=days, verbosity=verbosity)
        # What the scheduler would have computed had it been running: the trending hashtags of the
        # last hour and the daily counts of the seeded days. Windows already done are skipped.
        now = timezone.now()
        for name, since in (
            ("social.trending_hashtags", now - timedelta(hours=1)),
            ("social.daily_counts", now - timedelta(days=days + 1)),
        ):
            call_command("asyncjobs_aggregate", name, since=since, verbosity=min(verbosity, 1))
