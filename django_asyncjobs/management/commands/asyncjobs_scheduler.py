from __future__ import annotations

import signal
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_asyncjobs.exceptions import ConfigurationError
from django_asyncjobs.management.migrated import require_migrated
from django_asyncjobs.management.verbosity import apply_verbosity
from django_asyncjobs.scheduling.scheduler import Scheduler, TickReport


class Command(BaseCommand):
    help = (
        "Run the scheduler: fire due schedules, queue due delayed jobs and retries, recover lost jobs "
        "and run due aggregations. Several copies may run at once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="Make one pass and exit.")
        parser.add_argument(
            "--interval",
            type=float,
            help="Seconds between passes (default: ASYNCJOBS['SCHEDULE_POLL_INTERVAL']).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        apply_verbosity(options["verbosity"], console=True)
        interval = options["interval"]
        if interval is not None and not interval > 0:
            raise CommandError(f"--interval must be a number of seconds greater than 0, got {interval:g}.")
        require_migrated()
        scheduler = Scheduler(interval=interval)
        try:
            synced = scheduler.sync()
        except ConfigurationError as exc:
            raise CommandError(str(exc)) from exc
        if options["verbosity"] >= 1:
            self.stdout.write(
                f"Schedules declared in code: {len(synced.created)} created, {len(synced.updated)} updated, "
                f"{len(synced.deleted)} deleted."
            )
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda signum, frame: scheduler.stop())
        if not options["once"] and options["verbosity"] >= 1:
            self.stdout.write(f"Scheduler running, a pass every {scheduler.interval:g}s. Stop with Ctrl-C.")

        failed: list[str] = []

        def report(tick: TickReport) -> None:
            failed[:] = tick.errors
            if options["once"] or options["verbosity"] >= 2:
                self.stdout.write(tick.summary())

        scheduler.run(once=options["once"], sync=False, on_tick=report)
        if options["once"] and failed:
            raise CommandError(f"The pass could not {', '.join(failed)} (see the log).")
