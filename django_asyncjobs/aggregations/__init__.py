"""Aggregations: ``@aggregation`` declarations, running each completed window once, and
the built-in per-minute job statistics rollup (:mod:`.stats`).

May import the foundation, models and the engine (an aggregation window runs as a job);
never scheduling, the worker, the web side or the admin. The scheduler calls in here.
"""
