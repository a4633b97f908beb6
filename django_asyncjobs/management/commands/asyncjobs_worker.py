from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.module_loading import import_string

from django_asyncjobs.conf import app_settings
from django_asyncjobs.engine.broker import RedisError, ping, validate_queue
from django_asyncjobs.exceptions import AsyncJobsError
from django_asyncjobs.management.migrated import require_migrated
from django_asyncjobs.management.verbosity import apply_verbosity
from django_asyncjobs.worker import Worker, run_workers


class Command(BaseCommand):
    help = "Run asyncjobs workers on the given queues (default: ASYNCJOBS['DEFAULT_QUEUE'])."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("queues", nargs="*", metavar="QUEUE", help="Queues to work on, highest priority first.")
        parser.add_argument("--burst", action="store_true", help="Stop when the queues are empty.")
        parser.add_argument("--concurrency", type=int, default=1, help="Number of worker processes (default 1).")
        parser.add_argument(
            "--threads",
            type=int,
            help="Jobs each worker process runs at once, in threads (default ASYNCJOBS['WORKER_THREADS'], 1).",
        )
        parser.add_argument("--name", help="Worker name (suffixed with -N when --concurrency > 1).")
        parser.add_argument("--max-jobs", type=int, help="Stop after this many jobs (per process).")
        parser.add_argument(
            "--with-scheduler",
            action="store_true",
            help="Also run the scheduler loop (schedules, due jobs, recovery, aggregations) in this process.",
        )
        parser.add_argument(
            "--health-file",
            metavar="PATH",
            help="Keep this file touched while the worker is live, remove it on exit (for a liveness probe:"
            " asyncjobs_health --file; default ASYNCJOBS['WORKER_HEALTH_FILE']). With --concurrency N: PATH-0...",
        )
        parser.add_argument(
            "--worker-class",
            default="django_asyncjobs.worker.Worker",
            help="Dotted path of a subclass of django_asyncjobs.worker.Worker.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        level = apply_verbosity(options["verbosity"], console=True)
        queue_names: list[str] = options["queues"] or [app_settings.DEFAULT_QUEUE]
        if options["concurrency"] < 1:
            raise CommandError(f"--concurrency must be at least 1, got {options['concurrency']}.")
        if options["threads"] is not None and options["threads"] < 1:
            raise CommandError(f"--threads must be at least 1, got {options['threads']}.")
        if options["max_jobs"] is not None and options["max_jobs"] < 1:
            raise CommandError(f"--max-jobs must be at least 1, got {options['max_jobs']}.")
        try:
            worker_class = import_string(options["worker_class"])
        except ImportError as exc:
            raise CommandError(f"--worker-class {options['worker_class']} cannot be imported: {exc}") from exc
        if not (isinstance(worker_class, type) and issubclass(worker_class, Worker)):
            raise CommandError(f"--worker-class {options['worker_class']} is not a django_asyncjobs.worker.Worker.")
        health_file: str | None = options["health_file"] or app_settings.WORKER_HEALTH_FILE
        if health_file and not os.access(os.path.dirname(os.path.abspath(health_file)), os.W_OK):
            raise CommandError(f"--health-file {health_file}: its directory does not exist or is not writable.")
        require_migrated()
        try:
            for name in queue_names:
                validate_queue(name)
            ping(queue_names[0])
        except AsyncJobsError as exc:
            raise CommandError(str(exc)) from exc
        except RedisError as exc:
            raise CommandError(f"Cannot reach Redis for queue {queue_names[0]!r}: {exc}") from exc
        try:
            status = run_workers(
                queue_names,
                concurrency=options["concurrency"],
                burst=options["burst"],
                name=options["name"],
                max_jobs=options["max_jobs"],
                logging_level=level,
                worker_class=worker_class,
                with_scheduler=options["with_scheduler"],
                threads=options["threads"],
                health_file=health_file,
            )
        except AsyncJobsError as exc:
            raise CommandError(str(exc)) from exc
        if status:
            raise CommandError(f"A worker process exited with status {status}.", returncode=status)
