"""A tiny app holding the jobs the benchmarks enqueue (``jobs.py`` is autodiscovered)."""
