from __future__ import annotations

import json
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_asyncjobs.admin.status import EXIT_OK, StatusReport, read_status, render_text
from django_asyncjobs.engine.broker import queue_names
from django_asyncjobs.links import docs_url
from django_asyncjobs.management.verbosity import apply_verbosity

#: Cursor home and clear screen, before each refresh of ``--watch`` on a terminal.
CLEAR = "\x1b[H\x1b[2J"


class Command(BaseCommand):
    help = (
        "The admin dashboard's queue figures in the terminal. Exit status: 0 all watched queues healthy,"
        " 1 one is saturated or has no live worker, 2 Redis or the database could not be read."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--queue",
            action="append",
            choices=queue_names(),
            metavar="NAME",
            help="Only this queue (repeatable; default: every queue of RQ_QUEUES).",
        )
        parser.add_argument(
            "--json",
            action="store_true",
            help=f"One JSON object per refresh ({docs_url('commands', 'the-json-form')}).",
        )
        parser.add_argument(
            "--watch",
            nargs="?",
            type=float,
            const=2.0,
            metavar="SECONDS",
            help="Refresh every SECONDS (default 2) until interrupted.",
        )
        parser.add_argument("--count", type=int, metavar="N", help="With --watch: stop after N refreshes.")

    def handle(self, *args: Any, **options: Any) -> None:
        apply_verbosity(options["verbosity"])
        interval: float | None = options["watch"]
        count: int | None = options["count"]
        if interval is not None and interval <= 0:
            raise CommandError(f"--watch must be above 0 seconds, got {interval:g}.")
        if count is not None and count < 1:
            raise CommandError(f"--count must be at least 1, got {count}.")
        names = list(dict.fromkeys(options["queue"])) if options["queue"] else None
        refreshes = 1 if interval is None else count
        shown = 0
        report: StatusReport | None = None
        try:
            while refreshes is None or shown < refreshes:
                if shown:
                    time.sleep(interval or 0)
                report = read_status(names)
                self._show(report, as_json=options["json"], watching=interval is not None, first=not shown)
                shown += 1
        except KeyboardInterrupt:
            pass
        if report is not None and report.exit_status != EXIT_OK:
            raise CommandError(report.summary(), returncode=report.exit_status)

    def _show(self, report: StatusReport, *, as_json: bool, watching: bool, first: bool) -> None:
        if as_json:
            self.stdout.write(json.dumps(report.as_json(), sort_keys=True))
        elif watching and self.stdout.isatty():
            self.stdout.write(CLEAR + render_text(report))
        else:
            self.stdout.write(("" if first else "\n") + render_text(report))
        self.stdout.flush()
