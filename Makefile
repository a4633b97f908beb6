PYTHON ?= python3
VENV ?= .venv
# Extra requirements pinned on top of the dev extras, e.g. PIP_EXTRA='Django>=6.1,<6.2' (used by .ci/run).
PIP_EXTRA ?=
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DOCS_STAMP := $(VENV)/.installed-docs
DEMO_STAMP := $(VENV)/.installed-demo
PEERS_STAMP := $(VENV)/.installed-peers

.PHONY: demo demo-reset test test-scale test-pgbouncer lint typecheck bench bench-web bench-admin bench-peers bench-io bench-scale bench-workflows screenshots docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]' $(foreach req,$(PIP_EXTRA),'$(req)')
	touch $(STAMP)

$(DOCS_STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[docs]'
	touch $(DOCS_STAMP)

$(DEMO_STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[demo]'
	touch $(DEMO_STAMP)

$(PEERS_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,peers]' $(foreach req,$(PIP_EXTRA),'$(req)')
	touch $(PEERS_STAMP)

# The example site with a private Redis, a worker and the scheduler (example_project/demo.py);
# DEMO_ARGS go to demo.py, e.g. DEMO_ARGS='--port 8001 --reset'. Ctrl-C stops it all.
demo: $(DEMO_STAMP)
	$(BIN)/python example_project/demo.py $(DEMO_ARGS)

# Starts the demo from a new database (the default one is kept between runs).
demo-reset: $(DEMO_STAMP)
	$(BIN)/python example_project/demo.py --reset $(DEMO_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Several hosts, proven (docs/deployment.md#several-hosts-proven): Redis and a private PostgreSQL in
# one network namespace, 3 worker "hosts" in others; 20,000 jobs while one host is SIGKILLed and
# another cut off for 30 s; every job must succeed, run once, none stuck. Needs root (it prints
# SKIPPED otherwise); about 2-3 minutes. SCALE_ARGS go to the harness, e.g. SCALE_ARGS='--jobs 5000'.
test-scale: $(STAMP)
	$(BIN)/python -m tests.scale.harness $(SCALE_ARGS)

# The worker, scheduler and recovery tests through a private PgBouncer in transaction pooling mode
# (tests/pgbouncer.py; Debian's pgbouncer package, never its service). DATABASE_URL names the
# PostgreSQL behind it (default postgres://postgres@127.0.0.1:5432/asyncjobs_pgbouncer). PYTEST_ARGS
# go to pytest; arguments that start with tests/ replace its list of files.
test-pgbouncer: $(STAMP)
	$(BIN)/python -m tests.pgbouncer $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy django_asyncjobs

# BENCH_ARGS go to bench_core.py, BENCH_WEB_ARGS to bench_web.py (their options differ).
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_core.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/bench_web.py $(BENCH_WEB_ARGS)

bench-web: $(STAMP)
	$(BIN)/python benchmarks/bench_web.py $(BENCH_WEB_ARGS)

# BENCH_ADMIN_ARGS go to bench_admin.py (e.g. --db both, --rows 100000). About 5 minutes
# on PostgreSQL alone, so it is not part of `make bench`.
bench-admin: $(STAMP)
	$(BIN)/python benchmarks/bench_admin.py $(BENCH_ADMIN_ARGS)

# Us side by side with huey, dramatiq, celery, procrastinate, django-tasks-db, django-q2 and bare
# rq (the `peers` extra), 3 rounds, about 5 minutes; BENCH_PEERS_ARGS go to bench_peers.py, e.g.
# BENCH_PEERS_ARGS='--systems rq,ours-sqlite,huey --rounds 5' or '--quick'.
bench-peers: $(PEERS_STAMP)
	$(BIN)/python benchmarks/bench_peers.py $(BENCH_PEERS_ARGS)

# Capacity (docs/deployment.md#capacity-measured): 1, 2, 4, 8 worker processes against one
# PostgreSQL and one Redis, and 1,000,000 queued jobs. About 15 minutes; BENCH_SCALE_ARGS go to
# bench_scale.py, e.g. BENCH_SCALE_ARGS='--depth 100000'.
bench-scale: $(STAMP)
	$(BIN)/python benchmarks/bench_scale.py $(BENCH_SCALE_ARGS)

# A group of 10,000 no-op jobs with a callback against the same as 10,000 single jobs
# (docs/benchmarks.md#what-a-group-costs), PostgreSQL; BENCH_WORKFLOWS_ARGS go to
# bench_workflows.py, e.g. BENCH_WORKFLOWS_ARGS='--db sqlite --rounds 5'. About 2 minutes.
bench-workflows: $(STAMP)
	$(BIN)/python benchmarks/bench_workflows.py $(BENCH_WORKFLOWS_ARGS)

# I/O-bound jobs (each sleeps 20 ms): one worker process with 8 threads, ours (`--threads 8`, also
# `async def` jobs) against Dramatiq's; 3 rounds, about 2 minutes. BENCH_IO_ARGS go to bench_io.py,
# e.g. BENCH_IO_ARGS='--systems dramatiq,ours-postgres --rounds 5'.
bench-io: $(PEERS_STAMP)
	$(BIN)/python benchmarks/bench_io.py $(BENCH_IO_ARGS)

# Redis Sentinel failover (tests/test_sentinel.py): each test starts a master, a replica and three
# Sentinels on free ports (Debian's redis-sentinel; skipped with the reason without it), fails the master
# over while a worker drains jobs, and prints the gaps it measured. About 2 minutes.
.PHONY: test-sentinel
test-sentinel: $(STAMP)
	ASYNCJOBS_TEST_FAILOVER=1 $(BIN)/python -m pytest tests/test_sentinel.py -s -q $(PYTEST_ARGS)

# Saves the admin screenshots of docs/admin.md (needs Chromium: Debian's "chromium" package).
screenshots: $(STAMP)
	ASYNCJOBS_SCREENSHOTS=docs/img $(BIN)/python -m pytest tests/test_admin_browser.py $(PYTEST_ARGS)

# Builds docs/ (mkdocs.yml) into build/docs; --strict makes every warning, such as a broken
# link or anchor, an error.
docs: $(DOCS_STAMP)
	$(BIN)/mkdocs build --strict --site-dir build/docs

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
