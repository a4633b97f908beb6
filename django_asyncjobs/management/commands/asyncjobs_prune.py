from __future__ import annotations

import logging
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_asyncjobs.management.verbosity import apply_verbosity
from django_asyncjobs.models import FINISHED_STATUSES
from django_asyncjobs.scheduling.pruning import DEFAULT_BATCH_SIZE, check_statuses, prune_jobs
from django_asyncjobs.times.durations import DURATION_HELP, format_duration, parse_duration


class Command(BaseCommand):
    help = (
        "Delete finished jobs (and their stored responses and uploads) that finished longer ago than --older-than, "
        "in batches of short transactions."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            required=True,
            metavar="DURATION",
            help=f"Prune jobs that finished longer ago than this: {DURATION_HELP}.",
        )
        parser.add_argument(
            "--status",
            default=",".join(FINISHED_STATUSES),
            metavar="STATUS[,STATUS...]",
            help=f"Comma-separated finished statuses to prune (default: {','.join(FINISHED_STATUSES)}).",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=DEFAULT_BATCH_SIZE,
            metavar="N",
            help=f"Jobs deleted per transaction (default {DEFAULT_BATCH_SIZE}).",
        )
        parser.add_argument("--dry-run", action="store_true", help="Count what would be deleted; delete nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        logger = logging.getLogger("django_asyncjobs")
        saved_level = logger.level
        apply_verbosity(options["verbosity"])
        try:
            self._prune(options)
        finally:
            logger.setLevel(saved_level)

    def _prune(self, options: dict[str, Any]) -> None:
        try:
            older_than = parse_duration(options["older_than"], what="--older-than")
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        try:
            statuses = check_statuses([part.strip() for part in options["status"].split(",") if part.strip()])
        except ValueError as exc:
            raise CommandError(f"--status: {exc}") from exc
        if options["batch_size"] < 1:
            raise CommandError(f"--batch-size must be at least 1, got {options['batch_size']}.")
        verbose = options["verbosity"] >= 1
        dry_run = options["dry_run"]
        total = batches = 0

        def progress(count: int) -> None:
            nonlocal total, batches
            total += count
            batches += 1
            if verbose:
                verb = "would delete" if dry_run else "deleted"
                self.stdout.write(f"Batch {batches}: {verb} {count} job(s), {total} so far.")

        if verbose:
            what = "Dry run: counting" if dry_run else "Deleting"
            self.stdout.write(
                f"{what} {', '.join(statuses)} jobs that finished more than {format_duration(older_than)} ago, "
                f"{options['batch_size']} per batch."
            )
        report = prune_jobs(older_than, statuses, dry_run=dry_run, batch_size=options["batch_size"], progress=progress)
        if verbose:
            self.stdout.write(report.summary(), self.style.SUCCESS)
