"""Plain functions for the bare-RQ baselines: no Django, no registry, nothing to import but this."""

from __future__ import annotations


def noop() -> None:
    """What a bare ``rq`` worker runs: nothing."""
    return None
