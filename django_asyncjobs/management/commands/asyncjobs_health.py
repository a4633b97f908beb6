from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_asyncjobs.worker.health import DEFAULT_MAX_AGE, check_file, check_worker


class Command(BaseCommand):
    help = (
        "Liveness of a worker, for orchestrators' probes: exit 0 when live, 1 when not, with a one-line reason."
        " --file checks a health file's age (asyncjobs_worker --health-file), --worker a worker's registration"
        " in Redis."
    )
    # A probe runs every few seconds: no system checks, no database.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--file",
            action="append",
            default=[],
            metavar="PATH",
            help="A worker's health file; live when touched within --max-age seconds (repeatable: all must be).",
        )
        parser.add_argument(
            "--max-age",
            type=float,
            default=DEFAULT_MAX_AGE,
            metavar="SECONDS",
            help=f"Oldest a health file may be (default {DEFAULT_MAX_AGE:g}).",
        )
        parser.add_argument(
            "--worker",
            action="append",
            default=[],
            metavar="NAME",
            help="A worker's name (--name); live while registered in Redis (repeatable: all must be).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["file"] and not options["worker"]:
            raise CommandError("Give --file PATH or --worker NAME (or both).")
        if options["max_age"] <= 0:
            raise CommandError(f"--max-age must be above 0, got {options['max_age']:g}.")
        checks = [check_file(path, options["max_age"]) for path in options["file"]]
        checks += [check_worker(name) for name in options["worker"]]
        failed = [reason for live, reason in checks if not live]
        if failed:
            raise CommandError("; ".join(failed), returncode=1)
        self.stdout.write("ok: " + "; ".join(reason for _, reason in checks))
