"""What every command does with ``-v``: set the level of the ``django_asyncjobs`` logger."""

from __future__ import annotations

import logging

VERBOSITY_TO_LEVEL = {0: "WARNING", 1: "INFO", 2: "DEBUG", 3: "DEBUG"}

#: The format of the console handler a long-running command adds when nothing takes the records.
CONSOLE_FORMAT = "%(asctime)s %(levelname)s %(message)s"


def apply_verbosity(verbosity: int, *, console: bool = False) -> str:
    """Set the ``django_asyncjobs`` logger's level for ``verbosity``; returns the level's name.

    ``console``: a long-running command (the worker, the scheduler). If ``LOGGING`` gives these
    records nowhere to go (no handler on ``django_asyncjobs`` or above it: Django's default
    sends only its own loggers to the console), they go to stderr, as rq's and Celery's
    workers print theirs; else Python would show only the warnings, without a time."""
    level = VERBOSITY_TO_LEVEL.get(verbosity, "INFO")
    logger = logging.getLogger("django_asyncjobs")
    logger.setLevel(level)
    if console and not logger.hasHandlers():
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(CONSOLE_FORMAT))
        logger.addHandler(handler)
    return level
