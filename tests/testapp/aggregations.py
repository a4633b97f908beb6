"""Aggregations used by the test suite (imported by tests/testapp/jobs.py)."""
