from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from datetime import time as day_start
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from django_asyncjobs.aggregations.declarations import (
    Aggregation,
    get_aggregation,
    registered_aggregations,
)
from django_asyncjobs.aggregations.windows import (
    WindowResult,
    backfill,
    latest_windows,
    skip_reason,
    window_statuses,
)
from django_asyncjobs.engine.outcomes import Outcome
from django_asyncjobs.exceptions import AggregationNotRegistered, AsyncJobsError
from django_asyncjobs.management.verbosity import apply_verbosity
from django_asyncjobs.times.durations import format_duration
from django_asyncjobs.times.zones import as_utc

Window = tuple[datetime, datetime]


def iso_datetime(value: str) -> datetime:
    """An ISO 8601 date or date-time; naive values are in the current time zone."""
    try:
        parsed = parse_datetime(value.strip())
        if parsed is None:
            day = parse_date(value.strip())
            parsed = datetime.combine(day, day_start()) if day is not None else None
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r} is not a valid date: {exc}") from None
    if parsed is None:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an ISO 8601 date or date-time (e.g. 2024-05-01, 2024-05-01T13:00 "
            "or 2024-05-01T13:00+02:00)"
        )
    return timezone.make_aware(parsed) if timezone.is_naive(parsed) else parsed


def window_text(since: datetime, until: datetime) -> str:
    return f"[{since.isoformat()}, {until.isoformat()})"


class Command(BaseCommand):
    help = (
        "Run an aggregation for its last completed window, or backfill a range window by window, "
        "inline or by enqueueing one job per window. --list shows the registered aggregations."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", nargs="?", metavar="NAME", help="Registered name of the aggregation.")
        parser.add_argument(
            "--since",
            type=iso_datetime,
            metavar="ISO",
            help="Start of the range (ISO 8601; naive = current time zone).",
        )
        parser.add_argument("--until", type=iso_datetime, metavar="ISO", help="End of the range, exclusive (ISO 8601).")
        parser.add_argument("--enqueue", action="store_true", help="Enqueue one job per window instead of running.")
        parser.add_argument(
            "--dry-run", action="store_true", help="List the windows and what would happen; write nothing."
        )
        parser.add_argument("--force", action="store_true", help="Run windows again even if already done.")
        parser.add_argument("--list", action="store_true", help="List the registered aggregations.")

    def handle(self, *args: Any, **options: Any) -> None:
        apply_verbosity(options["verbosity"])
        if options["list"]:
            given = [
                f"--{key.replace('_', '-')}"
                for key in ("since", "until", "enqueue", "dry_run", "force")
                if options[key]
            ]
            if given:
                raise CommandError(f"--list cannot be combined with {', '.join(given)}.")
            self.list_aggregations(options["name"])
            return
        if not options["name"]:
            known = ", ".join(sorted(registered_aggregations())) or "none"
            raise CommandError(f"Name the aggregation to run (registered: {known}), or pass --list.")
        agg = self.lookup(options["name"])
        windows = self.windows(agg, options["since"], options["until"])
        if options["dry_run"]:
            self.dry_run(agg, windows, enqueue=options["enqueue"], force=options["force"])
        else:
            self.run(agg, windows, enqueue=options["enqueue"], force=options["force"], verbosity=options["verbosity"])

    def lookup(self, name: str) -> Aggregation:
        try:
            return get_aggregation(name)
        except AggregationNotRegistered as exc:
            raise CommandError(str(exc)) from None

    def windows(self, agg: Aggregation, since: datetime | None, until: datetime | None) -> list[Window]:
        """Default: the last completed window; --since alone: up to the last completed one; --until alone: one."""
        last_since, last_until = agg.last_completed()
        if since is None and until is None:
            return [(last_since, last_until)]
        if until is None:
            assert since is not None
            if since >= last_until:
                raise CommandError(
                    f"--since {since.isoformat()}: no window of {agg.name} has ended since then "
                    f"(the last completed one ends at {last_until.isoformat()})."
                )
            until = last_until
        if since is None:
            since = agg.window_start(until - timedelta(microseconds=1))
        if since >= until:
            raise CommandError(f"--since {since.isoformat()} is not before --until {until.isoformat()}.")
        windows = agg.windows_between(since, until)
        if windows[-1][1] > as_utc(timezone.now(), "now"):
            raise CommandError(
                f"The window {window_text(*windows[-1])} of {agg.name} has not ended yet; "
                f"pass an --until at or before {last_until.isoformat()}."
            )
        return windows

    def dry_run(self, agg: Aggregation, windows: Sequence[Window], *, enqueue: bool, force: bool) -> None:
        rows = window_statuses(agg, windows[0][0], windows[-1][1])
        verb = "enqueue" if enqueue else "run"
        reasons: Counter[str] = Counter()
        for since, until in windows:
            row = rows.get(since)
            reason = skip_reason(row, enqueue=enqueue, force=force)
            state = f"recorded {row.status}" if row is not None else "not recorded"
            action = f"skip: {reason}" if reason else f"would {verb}"
            reasons[reason or f"would {verb}"] += 1
            self.stdout.write(f"{window_text(since, until)}  {state:<18} {action}")
        summary = ", ".join(f"{count} {what}" for what, count in reasons.items())
        self.stdout.write(f"Dry run of {agg.name}: {len(windows)} window(s): {summary}. Nothing was written.")

    def run(self, agg: Aggregation, windows: Sequence[Window], *, enqueue: bool, force: bool, verbosity: int) -> None:
        progress = ProgressBar(self.stdout, len(windows), enabled=verbosity > 0 and len(windows) > 1)
        results: list[WindowResult] = []

        def on_result(result: WindowResult) -> None:
            results.append(result)
            progress.update(len(results), Counter(r.outcome for r in results))

        started = time.monotonic()
        try:
            backfill(agg, windows, enqueue=enqueue, force=force, on_result=on_result)
        except (AsyncJobsError, ValueError) as exc:
            progress.close()
            self.summarise(agg, results, time.monotonic() - started, enqueue=enqueue)
            raise CommandError(f"Stopped after {len(results)} of {len(windows)} window(s): {exc}") from exc
        progress.close()
        self.summarise(agg, results, time.monotonic() - started, enqueue=enqueue)
        failed = [result for result in results if result.outcome == Outcome.FAILED]
        for result in failed:
            last_line = result.error.strip().splitlines()[-1] if result.error.strip() else "?"
            self.stderr.write(f"{window_text(result.since, result.until)} failed: {last_line}")
        if failed:
            raise CommandError(f"{len(failed)} window(s) of {agg.name} failed (see the errors above).")

    def summarise(self, agg: Aggregation, results: Sequence[WindowResult], elapsed: float, *, enqueue: bool) -> None:
        outcomes = Counter(result.outcome for result in results)
        skipped = Counter(result.detail for result in results if result.outcome == Outcome.SKIPPED)
        done = f"{outcomes[Outcome.ENQUEUED]} enqueued" if enqueue else f"{outcomes[Outcome.RAN]} ran"
        why = f" ({', '.join(f'{reason}: {count}' for reason, count in skipped.items())})" if skipped else ""
        self.stdout.write(
            f"{agg.name}: {len(results)} window(s): {done}, {outcomes[Outcome.SKIPPED]} skipped{why}, "
            f"{outcomes[Outcome.FAILED]} failed, in {elapsed:.1f}s."
        )

    def list_aggregations(self, name: str | None) -> None:
        aggregations = [self.lookup(name)] if name else sorted(registered_aggregations().values(), key=_name)
        if not aggregations:
            self.stdout.write("No aggregations are registered.")
            return
        table = [("NAME", "EVERY", "RUNS", "LAST WINDOW DONE", "LATEST WINDOW")]
        for agg in aggregations:
            latest, done = latest_windows(agg)
            runs = f"job on {agg.job_function.options.resolved_queue()}" if agg.enqueue else "in the scheduler"
            table.append(
                (
                    agg.name,
                    format_duration(agg.every),
                    runs,
                    window_text(done.since, done.until) if done else "never",
                    f"{latest.status} {window_text(latest.since, latest.until)}" if latest and latest != done else "",
                )
            )
        widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
        for row in table:
            self.stdout.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _name(agg: Aggregation) -> str:
    return agg.name


class ProgressBar:
    """A text progress bar: redrawn in place on a terminal, else a line every 10%."""

    def __init__(self, stdout: OutputWrapper, total: int, *, enabled: bool = True, width: int = 30) -> None:
        self.stdout, self.total, self.enabled, self.width = stdout, total, enabled, width
        self.tty = stdout.isatty()
        self.last_tenth = 0
        self.drawn = False

    def update(self, done: int, outcomes: Counter[Outcome]) -> None:
        if not self.enabled:
            return
        tenth = done * 10 // self.total
        if not self.tty and tenth == self.last_tenth and done != self.total:
            return
        self.last_tenth = tenth
        filled = done * self.width // self.total
        counts = " ".join(f"{outcome} {outcomes[outcome]}" for outcome in Outcome if outcomes[outcome])
        line = f"[{'#' * filled}{'.' * (self.width - filled)}] {done}/{self.total} windows  {counts}"
        self.stdout.write(("\r" + line) if self.tty else line, ending="" if self.tty else "\n")
        self.stdout.flush()
        self.drawn = True

    def close(self) -> None:
        if self.enabled and self.tty and self.drawn:
            self.stdout.write("")
