"""What every command does with ``-v``: set the level of the ``django_asyncjobs`` logger."""

from __future__ import annotations

import logging

VERBOSITY_TO_LEVEL = {0: "WARNING", 1: "INFO", 2: "DEBUG", 3: "DEBUG"}


def apply_verbosity(verbosity: int) -> str:
    """Set the ``django_asyncjobs`` logger's level for ``verbosity``; returns the level's name."""
    level = VERBOSITY_TO_LEVEL.get(verbosity, "INFO")
    logging.getLogger("django_asyncjobs").setLevel(level)
    return level
