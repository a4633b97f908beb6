from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_asyncjobs.conf import app_settings
from django_asyncjobs.engine.broker import RedisError
from django_asyncjobs.management.verbosity import apply_verbosity
from django_asyncjobs.scheduling.recovery import queued_within_grace, recover


class Command(BaseCommand):
    help = (
        "Run one recovery pass: push again the messages of queued jobs that Redis lost, and retry "
        "or fail running jobs whose worker stopped sending heartbeats."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Report what would be done; change nothing.")
        parser.add_argument(
            "--grace",
            type=float,
            help="Seconds a queued job must have waited before it is checked (default: RECOVERY_GRACE).",
        )
        parser.add_argument(
            "--heartbeat-timeout",
            type=float,
            help="Seconds without a heartbeat after which a running job is lost (default: HEARTBEAT_TIMEOUT).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        apply_verbosity(options["verbosity"])
        for option in ("grace", "heartbeat_timeout"):
            value = options[option]
            if value is not None and value < 0:
                raise CommandError(f"--{option.replace('_', '-')} must be a number of seconds >= 0, got {value:g}.")
        try:
            report = recover(
                dry_run=options["dry_run"], grace=options["grace"], heartbeat_timeout=options["heartbeat_timeout"]
            )
        except RedisError as exc:
            raise CommandError(f"Cannot reach Redis: {exc}") from exc
        if options["verbosity"] >= 1:
            self.stdout.write(("Dry run. " if report.dry_run else "") + report.summary())
            grace = app_settings.RECOVERY_GRACE if options["grace"] is None else options["grace"]
            if grace and (young := queued_within_grace(grace)):
                self.stdout.write(
                    f"{young} queued job(s) younger than the grace period ({grace:g}s) were not checked: "
                    "their messages may still be on their way. Right after Redis lost its data, run with "
                    "--grace 0 to check them too."
                )
        if options["verbosity"] >= 2:
            for label, ids in (
                ("pushed again", report.requeued),
                ("retried", report.retried),
                ("failed", report.failed),
                ("lost", report.lost if report.dry_run else []),
            ):
                for job_id in ids:
                    self.stdout.write(f"  {label}: {job_id}")
