"""Benchmarks for django-asyncjobs (run ``make bench``; see docs/benchmarks.md)."""
