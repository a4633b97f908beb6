"""Web benchmark: what ``BackpressureMiddleware`` costs a request, and a 202 offload against the same view inline.

Run it with ``make bench-web`` (``make bench`` runs it after ``bench_core.py``) or::

    .venv/bin/python benchmarks/bench_web.py [--db sqlite|postgres|both] [--requests N] [--offload-requests N]

Requests go straight into Django's ``WSGIHandler`` (no network, no test
``Client``), so what is measured is Django and our code. Handlers for several
middleware stacks are built from the same settings in one process (see
``benchmarks/wsgi.py``): the stack of ``benchmarks/settings.py``, the same plus
``BackpressureMiddleware``, and the same plus a do-nothing ``MiddlewareMixin`` as
a control. Within each repetition the variants take turns request by request (in
an order that rotates), so that whatever else the machine does slows them alike;
medians over the repetitions are reported. Then, unless ``--no-http``, the same
requests go through ``runserver --noreload`` (with ``TCP_NODELAY``) over one
keep-alive HTTP/1.1 connection on 127.0.0.1, a request header picking the stack.

As ``bench_core.py`` does, one private Redis server is started for the whole run
(never the machine's 6379), each database is measured in its own child process,
and the PostgreSQL database is created for the run and dropped afterwards. The
tables are printed as markdown and written to ``docs/benchmarks.md`` between
``<!-- bench_web:start -->`` and ``<!-- bench_web:end -->``; the rest of the page is
left alone. Nothing here asserts on timings: the target is reported as met or not.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import http.client
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any, NamedTuple, TypedDict

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, sys.path[0] is benchmarks/; the packages live one level up.
if sys.path and Path(sys.path[0]).resolve() == ROOT / "benchmarks":
    sys.path[0] = str(ROOT)
elif str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_core import (  # noqa: E402 - needs the sys.path fix above
    DB_LABELS,
    TIMES,
    benchmark_parser,
    code_version,
    cpu_model,
    database_version,
    log,
    measure_databases,
    med,
    percentile,
    redis_py_version,
    run_benchmark,
    table,
    verdict,
)
from benchmarks.wsgi import BASE, CONTROL, WITH_MIDDLEWARE  # noqa: E402
from django_asyncjobs.testing import die_with_parent, free_port  # noqa: E402

SECTION = "bench_web"
DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/asyncjobs_bench_web"
TARGET_OVERHEAD = 0.03  # BackpressureMiddleware adds <= 3% to a request's time (issue target)
DEFAULT_CACHE = 1.0  # the default of ASYNCJOBS["BACKPRESSURE_CACHE_SECONDS"]


class Call(NamedTuple):
    method: str
    path: str
    status: int  # what the response must be; anything else stops the run


HELLO = Call("GET", "/hello/", 200)
INLINE = Call("POST", "/inline/", 200)
OFFLOAD = Call("POST", "/offload/", 202)
LIMITED = Call("POST", "/offload/limited/", 202)
SATURATED = Call("POST", "/offload/saturated/", 503)
CALLS = {"hello": HELLO, "inline": INLINE, "offload": OFFLOAD, "limited": LIMITED, "saturated": SATURATED}


class Variant(NamedTuple):
    stack: str  # BASE, WITH_MIDDLEWARE or CONTROL: a middleware stack of benchmarks/wsgi.py
    call: str  # a key of CALLS


class Scenario(NamedTuple):
    key: str
    variants: tuple[Variant, ...]
    cache: float  # BACKPRESSURE_CACHE_SECONDS
    writes: bool  # the requests insert rows and push messages: reset state before every repetition


# Each scenario's variants take turns, request by request, in every repetition.
SCENARIOS = (
    Scenario(
        "trivial",
        (Variant(BASE, "hello"), Variant(WITH_MIDDLEWARE, "hello"), Variant(CONTROL, "hello")),
        DEFAULT_CACHE,
        False,
    ),
    Scenario("limited", (Variant(BASE, "limited"), Variant(WITH_MIDDLEWARE, "limited")), DEFAULT_CACHE, True),
    Scenario("limited_nocache", (Variant(BASE, "limited"), Variant(WITH_MIDDLEWARE, "limited")), 0.0, True),
    Scenario("saturated", (Variant(BASE, "saturated"), Variant(WITH_MIDDLEWARE, "saturated")), DEFAULT_CACHE, False),
    Scenario("saturated_nocache", (Variant(BASE, "saturated"), Variant(WITH_MIDDLEWARE, "saturated")), 0.0, False),
    Scenario("offload", (Variant(BASE, "inline"), Variant(BASE, "offload")), DEFAULT_CACHE, True),
)
HTTP_SCENARIOS = (SCENARIOS[0], SCENARIOS[1], SCENARIOS[5])


class Instrumented(TypedDict):
    sql: float  # SQL statements per request
    sql_kinds: list[str]
    sql_ms: float  # time in them per request
    redis: float  # Redis round trips per request
    redis_ms: float  # time in Redis commands and pipelines per request
    request_ms: float  # mean request time in the instrumented run


class Sample(TypedDict):
    rates: list[float]  # requests/s, one per repetition (index-aligned across a scenario's variants)
    block_p50_ms: list[float]  # median request time of each repetition (index-aligned likewise)
    p50_ms: float
    p99_ms: float
    counts: Instrumented | None  # from a separate run with counters (not timed with the others)
    alone_us: float  # with BackpressureMiddleware: its own time per request, timed alone (NaN: not measured)


class DbResult(TypedDict):
    db: str
    db_version: str
    requests: int
    offload_requests: int
    repeat: int
    http_repeat: int
    inprocess: dict[str, dict[str, Sample]]  # scenario key -> "stack/call" -> sample
    http: dict[str, dict[str, Sample]] | None
    http_note: str
    load_after: float  # 1-minute load average when this database's measurements ended


def variant_name(variant: Variant) -> str:
    return f"{variant.stack}/{variant.call}"


# ------------------------------------------------------------------------------------------------
# Child process: one database, Django configured by benchmarks.settings
# ------------------------------------------------------------------------------------------------


#: Sends one request of a variant, checks its status, returns how long it took (seconds).
OneRequest = Callable[[Variant], float]


class WebBench:
    """The measurements for one database. Django must be set up before this is built."""

    def __init__(self, db: str, requests: int, offload_requests: int, repeat: int, http_repeat: int) -> None:
        from django.db import connection

        from benchmarks.wsgi import build_handlers
        from django_asyncjobs.engine.broker import get_connection

        self.db = db
        self.requests = requests
        self.offload_requests = offload_requests
        self.repeat = repeat
        self.http_repeat = http_repeat
        self.is_postgres = connection.vendor == "postgresql"
        self.redis = get_connection("default")
        self.handlers = build_handlers()
        self.environs = {name: wsgi_environ(call) for name, call in CALLS.items()}
        self.statuses: list[str] = []

    # -- state -----------------------------------------------------------------------------------

    def reset(self) -> None:
        """Empty the private Redis DB and the job table; fill the saturated queue again."""
        from django.conf import settings
        from django.db import connection
        from django.test.utils import override_settings

        from benchmarks.benchapp.jobs import noop
        from benchmarks.benchapp.views import SATURATED_QUEUE
        from django_asyncjobs.models import Job

        self.redis.flushdb()
        table_name = connection.ops.quote_name(Job._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {table_name} CASCADE" if self.is_postgres else f"DELETE FROM {table_name}")
        # Two messages where one is the limit; the limit is lifted while they go in. Leaving the
        # override (like entering it) makes this process forget the queue states it had cached.
        with override_settings(ASYNCJOBS={**settings.ASYNCJOBS, "QUEUE_LIMITS": {}}):
            noop.enqueue_many([(), ()], queue=SATURATED_QUEUE)

    # -- one request -----------------------------------------------------------------------------

    def request(self, variant: Variant) -> float:
        """One request into the WSGI handler, timed; the response is read and closed as a server would."""
        call = CALLS[variant.call]
        environ = self.environs[variant.call].copy()
        environ["wsgi.input"] = BytesIO()
        handler = self.handlers[variant.stack]
        statuses = self.statuses
        clock = time.perf_counter
        before = clock()
        response = handler(environ, self.start_response)
        try:
            for _ in response:
                pass
        finally:
            response.close()
        elapsed = clock() - before
        if statuses[-1][:3] != str(call.status):
            raise RuntimeError(f"{call.method} {call.path} via {variant.stack}: expected {call.status}, got {statuses}")
        statuses.clear()
        return elapsed

    def start_response(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        self.statuses.append(status)
        return _ignore

    def instrumented(self, variant: Variant, n: int) -> Instrumented:
        """SQL statements and Redis round trips per request, and the time in each, over ``n`` requests."""
        total = 0.0
        with counting() as counts:
            for _ in range(n):
                total += self.request(variant)
        return {
            "sql": counts.sql / n,
            "sql_kinds": sorted(counts.sql_kinds),
            "sql_ms": counts.sql_seconds / n * 1000,
            "redis": counts.redis / n,
            "redis_ms": counts.redis_seconds / n * 1000,
            "request_ms": total / n * 1000,
        }

    def middleware_alone(self, variant: Variant) -> float:
        """Microseconds ``BackpressureMiddleware`` adds to one request, timed alone, many times over.

        Its share of a request is its ``__call__`` around the rest of the chain plus its
        ``process_view``; both are timed on one request object against a stand-in for the
        rest of the chain that returns a ready response. Best of 5 rounds.
        """
        from django.conf import settings
        from django.contrib.auth.models import AnonymousUser
        from django.core.handlers.wsgi import WSGIRequest
        from django.http import HttpResponse
        from django.urls import resolve

        from django_asyncjobs.middleware import BackpressureMiddleware

        call = CALLS[variant.call]
        request = WSGIRequest({**wsgi_environ(call), "wsgi.input": BytesIO()})
        request.user = AnonymousUser()
        view = resolve(call.path).func
        response = HttpResponse()

        def rest_of_chain(request: Any) -> HttpResponse:
            return response

        middleware = BackpressureMiddleware(rest_of_chain)
        cached = float(settings.ASYNCJOBS.get("BACKPRESSURE_CACHE_SECONDS", DEFAULT_CACHE)) > 0
        iterations = 20_000 if cached else 1_000
        clock = time.perf_counter

        def per_call(function: Callable[..., Any], *args: Any) -> float:
            started = clock()
            for _ in range(iterations):
                function(*args)
            return (clock() - started) / iterations

        rounds = []
        for _ in range(5):
            wrapper = per_call(middleware, request) - per_call(rest_of_chain, request)
            rounds.append(wrapper + per_call(middleware.process_view, request, view, (), {}))
        return min(rounds) * 1e6  # as timeit advises: the other rounds were slowed by something else

    # -- a scenario: its variants, repetition by repetition --------------------------------------

    def scenario(self, scenario: Scenario, one: OneRequest, repeat: int, instrument: bool) -> dict[str, Sample]:
        """Run ``scenario``: in each repetition, its variants take turns request by request.

        Alternating single requests (in an order that rotates) means that whatever else
        the machine is doing slows every variant alike, which blocks of one variant at a
        time do not ensure.
        """
        from django.conf import settings
        from django.test.utils import override_settings

        n = self.offload_requests if scenario.writes else self.requests
        variants = scenario.variants
        orders = [variants[k:] + variants[:k] for k in range(len(variants))]
        rates: dict[Variant, list[float]] = {variant: [] for variant in variants}
        block_p50s: dict[Variant, list[float]] = {variant: [] for variant in variants}
        durations: dict[Variant, list[float]] = {variant: [] for variant in variants}
        counts: dict[Variant, Instrumented] = {}
        alone: dict[Variant, float] = {}
        overrides = {**settings.ASYNCJOBS, "BACKPRESSURE_CACHE_SECONDS": scenario.cache}
        with override_settings(ASYNCJOBS=overrides):
            self.reset()
            for index in range(min(n, 200)):  # warm-up: imports, connections, caches, query plans
                for variant in orders[index % len(orders)]:
                    one(variant)
            for rep in range(repeat):
                if scenario.writes:
                    self.reset()
                times: dict[Variant, list[float]] = {variant: [] for variant in variants}
                gc.collect()
                for index in range(n):
                    for variant in orders[index % len(orders)]:
                        times[variant].append(one(variant))
                for variant, values in times.items():
                    rates[variant].append(n / sum(values))
                    block_p50s[variant].append(med(values) * 1000)
                    durations[variant] += values
                log(
                    f"[{DB_LABELS[self.db]}] {scenario.key} {rep + 1}/{repeat}: "
                    + ", ".join(f"{variant_name(v)} {values[-1]:,.0f}/s" for v, values in rates.items())
                )
            if instrument:
                self.reset()
                for variant in variants:
                    counts[variant] = self.instrumented(variant, 200)
                    if variant.stack == WITH_MIDDLEWARE and CALLS[variant.call].status != 503:
                        alone[variant] = self.middleware_alone(variant)
        samples: dict[str, Sample] = {}
        for variant in scenario.variants:
            samples[variant_name(variant)] = {
                "rates": rates[variant],
                "block_p50_ms": block_p50s[variant],
                "p50_ms": med(durations[variant]) * 1000,
                "p99_ms": percentile(durations[variant], 99) * 1000,
                "counts": counts.get(variant),
                "alone_us": alone.get(variant, float("nan")),
            }
        return samples

    # -- through a real server -------------------------------------------------------------------

    def http(self, workdir: Path) -> dict[str, dict[str, Sample]]:
        server = WebServer(workdir)
        try:
            server.start()
            server.wait_ready()
            return {
                scenario.key: self.scenario(scenario, server.request, self.http_repeat, instrument=False)
                for scenario in HTTP_SCENARIOS
            }
        finally:
            server.stop()

    def run(self, workdir: Path, with_http: bool) -> DbResult:
        inprocess = {
            scenario.key: self.scenario(scenario, self.request, self.repeat, instrument=True) for scenario in SCENARIOS
        }
        http_results: dict[str, dict[str, Sample]] | None = None
        note = "not measured (`--no-http`)"
        if with_http:
            http_results = self.http(workdir)
            note = ""
        return {
            "db": self.db,
            "db_version": database_version(),
            "requests": self.requests,
            "offload_requests": self.offload_requests,
            "repeat": self.repeat,
            "http_repeat": self.http_repeat,
            "inprocess": inprocess,
            "http": http_results,
            "http_note": note,
            "load_after": os.getloadavg()[0],
        }


def _ignore(data: bytes) -> None:
    return None


def wsgi_environ(call: Call) -> dict[str, Any]:
    """What a WSGI server hands Django for ``call``: an API client, no cookies, an empty body."""
    return {
        "REQUEST_METHOD": call.method,
        "PATH_INFO": call.path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "CONTENT_TYPE": "",
        "CONTENT_LENGTH": "0",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_ACCEPT": "application/json",
        "HTTP_USER_AGENT": "bench_web",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }


class Counts:
    def __init__(self) -> None:
        self.sql = 0
        self.sql_kinds: set[str] = set()
        self.sql_seconds = 0.0
        self.redis = 0
        self.redis_seconds = 0.0


@contextlib.contextmanager
def counting() -> Iterator[Counts]:
    """Count and time SQL statements and Redis round trips.

    SQL: an execute wrapper (in autocommit, a statement's time includes its commit). Redis:
    each packed send on a connection is one round trip; the time is that of each command
    outside a pipeline plus each pipeline's ``execute()``. Only for the instrumented runs,
    never while timing: it patches redis-py's classes for the duration.
    """
    import redis.client
    import redis.connection
    from django.db import connection

    counts = Counts()
    clock = time.perf_counter
    connection_class: Any = redis.connection.AbstractConnection
    client_class: Any = redis.client.Redis
    pipeline_class: Any = redis.client.Pipeline
    originals = (connection_class.send_packed_command, client_class.execute_command, pipeline_class.execute)

    def send_packed_command(self: Any, command: Any, check_health: bool = True) -> Any:
        counts.redis += 1
        return originals[0](self, command, check_health)

    def execute_command(self: Any, *args: Any, **options: Any) -> Any:
        before = clock()
        try:
            return originals[1](self, *args, **options)
        finally:
            counts.redis_seconds += clock() - before

    def execute(self: Any, raise_on_error: bool = True) -> Any:
        before = clock()
        try:
            return originals[2](self, raise_on_error)
        finally:
            counts.redis_seconds += clock() - before

    def count_sql(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        counts.sql += 1
        counts.sql_kinds.add(sql.split(None, 1)[0].upper())
        before = clock()
        try:
            return execute(sql, params, many, context)
        finally:
            counts.sql_seconds += clock() - before

    connection_class.send_packed_command = send_packed_command
    client_class.execute_command = execute_command
    pipeline_class.execute = execute
    try:
        with connection.execute_wrapper(count_sql):
            yield counts
    finally:
        connection_class.send_packed_command, client_class.execute_command, pipeline_class.execute = originals


class WebServer:
    """``runserver --noreload`` (threaded, with ``TCP_NODELAY``) and one keep-alive client.

    One server process serves every stack (the ``X-Bench-Stack`` header picks it, see
    ``benchmarks/wsgi.py``), so both sides of a comparison share one process, one server
    thread and one database connection.
    """

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.log_path = workdir / f"runserver-{os.getpid()}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.client: http.client.HTTPConnection | None = None

    def start(self) -> None:
        # runserver with TCP_NODELAY (see benchmarks/benchapp/management/commands/bench_runserver.py).
        command = [sys.executable, "-m", "django", "bench_runserver", "--noreload", f"127.0.0.1:{self.port}"]
        with self.log_path.open("wb") as output:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, preexec_fn=die_with_parent
            )

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"runserver exited: {self.log_path.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError(f"runserver did not listen within {timeout}s")
        self.client = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def request(self, variant: Variant) -> float:
        """One request over the keep-alive connection, timed until its body is read."""
        client = self.client
        assert client is not None
        call = CALLS[variant.call]
        headers = {"Accept": "application/json", "User-Agent": "bench_web", "X-Bench-Stack": variant.stack}
        body = b"" if call.method == "POST" else None
        clock = time.perf_counter
        before = clock()
        client.request(call.method, call.path, body=body, headers=headers)
        response = client.getresponse()
        response.read()
        elapsed = clock() - before
        if response.status != call.status:
            raise RuntimeError(f"{call.method} {call.path} via runserver ({variant.stack}): got {response.status}")
        if response.will_close:
            raise RuntimeError(f"runserver closed the connection after {call.method} {call.path}")
        return elapsed

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def child_main(args: argparse.Namespace) -> None:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    bench = WebBench(args.child, args.requests, args.offload_requests, args.repeat, args.http_repeat)
    result = bench.run(Path(args.out).parent, not args.no_http)
    Path(args.out).write_text(json.dumps(result))


# ------------------------------------------------------------------------------------------------
# Parent process: Redis, databases, children, report
# ------------------------------------------------------------------------------------------------


def run_child(db: str, args: argparse.Namespace, env: dict[str, str], out: Path) -> DbResult:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", db, "--out", str(out)]
    for option in ("requests", "offload_requests", "repeat", "http_repeat"):
        command += [f"--{option.replace('_', '-')}", str(getattr(args, option))]
    if args.no_http:
        command.append("--no-http")
    subprocess.run(command, env=env, check=True, stdin=subprocess.DEVNULL)
    result: DbResult = json.loads(out.read_text())
    return result


def parent_main(args: argparse.Namespace) -> None:
    measure_databases(args, prefix="asyncjobs-bench-web-", run_child=run_child, render=render, section_name=SECTION)


# ------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------


def paired(samples: dict[str, Sample], call: str, stack: str, key: str, higher_is_slower: bool) -> list[float]:
    """Per repetition, the relative cost of ``stack`` over the base stack (both ran back to back)."""
    without, with_ = samples[f"{BASE}/{call}"][key], samples[f"{stack}/{call}"][key]  # type: ignore[literal-required]
    if higher_is_slower:
        return [b / a - 1 for a, b in zip(without, with_, strict=True)]
    return [a / b - 1 for a, b in zip(without, with_, strict=True)]


def overhead(samples: dict[str, Sample], call: str, stack: str = WITH_MIDDLEWARE) -> tuple[float, float, float]:
    """Time added per request by ``stack``, from throughput: (median, lowest, highest) over the repetitions.

    Each repetition gives one paired ratio ``rate without / rate with - 1`` (= mean time per
    request with / without - 1).
    """
    ratios = paired(samples, call, stack, "rates", higher_is_slower=False)
    return med(ratios), min(ratios), max(ratios)


def overhead_p50(samples: dict[str, Sample], call: str, stack: str = WITH_MIDDLEWARE) -> float:
    """Time added per request by ``stack``, from median request times: median of the paired ratios.

    A median request time is not moved by the few requests that another process on the
    machine interrupts, so this says the same as ``overhead`` with less noise.
    """
    return med(paired(samples, call, stack, "block_p50_ms", higher_is_slower=True))


def microseconds_added(samples: dict[str, Sample], call: str, stack: str) -> float:
    """From the median request times: median over the repetitions of (with - without)."""
    without, with_ = samples[f"{BASE}/{call}"]["block_p50_ms"], samples[f"{stack}/{call}"]["block_p50_ms"]
    return med([(b - a) * 1000 for a, b in zip(without, with_, strict=True)])


def pct(value: float) -> str:
    return f"{value * 100:+.1f}%"


def trips(value: float) -> str:
    return "" if value != value else f"{value:.2f}".rstrip("0").rstrip(".")  # NaN: not counted


class Row(NamedTuple):
    scenario: str
    call: str
    stack: str  # compared with BASE
    label: str
    cache: str
    targeted: bool  # whether the 3% target applies


NO_CACHE = "0 (a Redis round trip per check)"
MIDDLEWARE_ROWS = (
    Row("trivial", "hello", WITH_MIDDLEWARE, "`GET` trivial view: not offloaded, no guarded path (200)", "1 s", True),
    Row("trivial", "hello", CONTROL, "the same, a do-nothing `MiddlewareMixin` instead (control)", "", False),
    Row(
        "limited",
        "limited",
        WITH_MIDDLEWARE,
        "`POST` `@offload` view, queue with limits, not saturated (202)",
        "1 s",
        True,
    ),
    Row("limited_nocache", "limited", WITH_MIDDLEWARE, "the same", NO_CACHE, False),
    Row("saturated", "saturated", WITH_MIDDLEWARE, "`POST` `@offload` view, saturated queue (503)", "1 s", False),
    Row("saturated_nocache", "saturated", WITH_MIDDLEWARE, "the same", NO_CACHE, False),
)
NOT_TARGETED = {
    "limited_nocache": "(not the target's setting)",
    "saturated": "(answers the 503 itself)",
    "saturated_nocache": "(answers the 503 itself)",
}


def redis_trips(sample: Sample) -> str:
    counts = sample["counts"]
    return trips(counts["redis"]) if counts else ""


def middleware_table(scenarios: dict[str, dict[str, Sample]], with_counts: bool) -> list[str]:
    rows: list[list[str]] = []
    for spec in MIDDLEWARE_ROWS:
        if spec.scenario not in scenarios:
            continue
        samples = scenarios[spec.scenario]
        base, ours = samples[f"{BASE}/{spec.call}"], samples[f"{spec.stack}/{spec.call}"]
        middle, low, high = overhead(samples, spec.call, spec.stack)
        if spec.targeted:
            outcome = verdict(middle <= TARGET_OVERHEAD)
        else:
            outcome = NOT_TARGETED.get(spec.scenario, "") if spec.stack == WITH_MIDDLEWARE else ""
        row = [
            spec.label,
            spec.cache,
            f"{med(base['rates']):,.0f}",
            f"{med(ours['rates']):,.0f}",
            f"{pct(middle)} ({pct(low)} … {pct(high)})",
            f"{pct(overhead_p50(samples, spec.call, spec.stack))}",
            f"{microseconds_added(samples, spec.call, spec.stack):+.1f} µs",
        ]
        if with_counts:
            alone = ours["alone_us"]
            share = alone / (1e6 / med(base["rates"]))
            row.insert(4, f"{redis_trips(base)} → {redis_trips(ours)}")
            row.append("" if alone != alone else f"{alone:.1f} µs ({pct(share)})")
        rows.append([*row, outcome])
    header = ["request", "cache", "without: req/s", "with: req/s", "overhead (range)", "by p50", "p50 added"]
    align = "llrrrrr"
    if with_counts:
        header.insert(4, "Redis round trips/request")
        header.append("middleware timed alone")
        align += "rr"
    return table([*header, "≤ 3%"], rows, align + "l")


def offload_table(samples: dict[str, Sample], with_counts: bool) -> list[str]:
    inline, offload = samples[f"{BASE}/inline"], samples[f"{BASE}/offload"]
    rows = []
    for label, sample in (
        ("plain view, `cheap_work()` inline (200)", inline),
        ("`@offload` view, same body, answered 202", offload),
    ):
        row = [label, f"{med(sample['rates']):,.0f}", f"{sample['p50_ms']:.3f} ms", f"{sample['p99_ms']:.3f} ms"]
        counts = sample["counts"]
        if with_counts and counts:
            kinds = f" {', '.join(counts['sql_kinds'])}" if counts["sql_kinds"] else ""
            rest = counts["request_ms"] - counts["sql_ms"] - counts["redis_ms"]
            row += [
                f"{trips(counts['sql'])}{kinds}: {counts['sql_ms']:.3f} ms",
                f"{trips(counts['redis'])}: {counts['redis_ms']:.3f} ms",
                f"{rest:.3f} ms",
            ]
        elif with_counts:
            row += ["", "", ""]
        rows.append(row)
    extra = (1 / med(offload["rates"]) - 1 / med(inline["rates"])) * 1000
    ratio = med(offload["rates"]) / med(inline["rates"])
    last = [
        "offload ÷ inline",
        f"{ratio:.2f}{TIMES}",
        f"{offload['p50_ms'] - inline['p50_ms']:+.3f} ms",
        f"{offload['p99_ms'] - inline['p99_ms']:+.3f} ms",
    ]
    if with_counts:
        last += ["", "", ""]
    rows.append(last)
    header = ["view", "req/s", "p50", "p99"]
    align = "lrrr"
    if with_counts:
        header += ["SQL statements: time", "Redis round trips: time", "the rest (Django, ORM, our code)"]
        align += "rrr"
    lines = table(header, rows, align)
    lines += [
        "",
        f"Mean time per request added by offloading: {extra:.3f} ms (from the medians of req/s)."
        + (
            " Statements, round trips and the time in them are means per request over a separate run of 200 "
            "requests with counters; the rest is the mean request time of that run minus both."
            if with_counts
            else ""
        ),
    ]
    return lines


def render_db(result: DbResult) -> list[str]:
    label = DB_LABELS[result["db"]]
    mw_lines = middleware_table(result["inprocess"], with_counts=True)
    lines = [
        f"### {label}",
        "",
        f"{result['db_version']}.",
        "",
        "`BackpressureMiddleware`, in-process (WSGI handler called directly; without = the stack above, with = the "
        "same stack plus `BackpressureMiddleware`):",
        "",
        *mw_lines,
        "",
        "A 202 offload against the same body inline, in-process (the stack above, no `BackpressureMiddleware`, "
        "a queue without limits):",
        "",
        *offload_table(result["inprocess"]["offload"], with_counts=True),
    ]
    http = result["http"]
    if http:
        http_mw = middleware_table(http, with_counts=False)
        lines += [
            "",
            "The same through a real server: `runserver --noreload` (threaded wsgiref, plus `TCP_NODELAY`), one "
            "keep-alive HTTP/1.1 client on 127.0.0.1; one server process serves every stack, a request header picks "
            "the handler:",
            "",
            *http_mw,
            "",
            *offload_table(http["offload"], with_counts=False),
        ]
    else:
        lines += ["", f"Through a real server: {result['http_note']}."]
    return lines


def render(
    results: Sequence[DbResult], skipped: Sequence[str], redis_version: str, args: argparse.Namespace, elapsed: float
) -> str:
    import django
    import rq

    tables: list[str] = []
    summary_rows: list[list[str]] = []
    per_db: dict[str, dict[str, float]] = {}
    for result in results:
        tables += ["", *render_db(result)]
        per_db[result["db"]] = {
            key: overhead(result["inprocess"][key], call)[0]
            for key, call in (("trivial", "hello"), ("limited", "limited"), ("limited_nocache", "limited"))
        }
    dbs = [result["db"] for result in results]
    for key, label, targeted in (
        ("trivial", "overhead ≤ 3%: trivial view, not offloaded (cache 1 s)", True),
        ("limited", "overhead ≤ 3%: `@offload` view, queue with limits, not saturated (cache 1 s)", True),
        ("limited_nocache", "for information: the same with cache 0 (one more Redis round trip)", False),
    ):
        cells = []
        for db in dbs:
            figure = per_db[db][key]
            cells.append(f"{pct(figure)} {verdict(figure <= TARGET_OVERHEAD)}" if targeted else pct(figure))
        summary_rows.append([label, *cells])
    first = results[0] if results else None
    repeat = first["repeat"] if first else args.repeat
    http_repeat = first["http_repeat"] if first else args.http_repeat
    loads = ", ".join(f"{result['load_after']:.2f} ({DB_LABELS[result['db']]})" for result in results)
    stack_names = ", ".join(f"`{path.rsplit('.', 1)[-1]}`" for path in base_middleware())
    method = (
        "a POST with an empty body or a GET, `Accept: application/json`, no cookies (an anonymous API client). "
        f"Middleware stack (without): {stack_names} (signed-cookie sessions); with: the same plus "
        "`BackpressureMiddleware` at its end; control: the same plus a `MiddlewareMixin` whose `process_view` "
        "returns `None`. They are `WSGIHandler`s built from the same settings in one process (only `MIDDLEWARE` "
        "differs), with `BACKPRESSURE_PATHS` holding two patterns that these views do not match. "
        f"In-process: {args.requests:,} requests per repetition ({args.offload_requests:,} for requests that insert "
        f"a row) of each variant, {repeat} repetitions after a warm-up; within a repetition the variants take "
        "turns request by request, in an order that rotates, so that the machine's other work slows them alike; "
        "the job table and Redis are emptied before each repetition of the inserting requests. Each request is "
        "timed from the handler call until its response is read and closed; a variant's req/s in a repetition = "
        "its requests ÷ the sum of their times, and the tables show medians over the repetitions. Overhead = "
        "median over the repetitions of (req/s without ÷ with) - 1, i.e. of the mean time per request with ÷ "
        "without - 1, its range in brackets. By p50: the same "
        "from each repetition's median request time, which the requests that another process interrupts do not "
        "move; p50 added: the median of (p50 with - p50 without). p50/p99 in the offload tables: over every timed "
        "request. SQL statements and Redis round trips are counted in a separate, untimed run of 200 requests "
        "(with a 1 s cache the queue state is read about once a second, hence counts near 0). The middleware timed "
        "alone: its `__call__` around a stand-in for the rest of the chain plus its `process_view`, on one "
        "request, 20,000 times (1,000 without cache), best of 5; its share is of the request time without it. "
        f"Through runserver: the same requests, taking turns the same way, {http_repeat} repetitions, each timed "
        "from sending the request until the body is read; the server, the client, Redis and the database share "
        "the machine's CPUs."
    )
    machine = (
        f"{os.cpu_count()} CPUs ({cpu_model()}), {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}, Django {django.__version__}, rq {rq.__version__}, "
        f"redis-py {redis_py_version()}, {redis_version} (private server, loopback TCP, no persistence)"
    )
    parts = [
        "## Web: `BackpressureMiddleware` overhead, 202 offload against inline",
        "",
        "Written by `benchmarks/bench_web.py`; reproduce with `make bench-web` "
        f"(here: `{' '.join(['benchmarks/bench_web.py', *command_line(args)])}`).",
        "",
        f"- Date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}; the run took {elapsed:.0f} s.",
        f"- Code: {code_version()}.",
        f"- Machine: {machine}; load average before the run: {args.load_before:.2f}, at the end of each "
        f"database's measurements: {loads or 'n/a'} (the machine's other work makes the figures noisy).",
        f"- Method: {method}",
        *(f"- {note}" for note in skipped),
        "",
        "### Targets",
        "",
        *table(["target", *(DB_LABELS[db] for db in dbs)], summary_rows, "l" * (1 + len(dbs))),
        *tables,
    ]
    return "\n".join(parts)


def base_middleware() -> list[str]:
    from benchmarks import settings

    return list(settings.BASE_MIDDLEWARE)


def command_line(args: argparse.Namespace) -> list[str]:
    words = ["--db", args.db]
    defaults = parse_args([])
    for option in ("requests", "offload_requests", "repeat", "http_repeat", "sqlite_conn_max_age"):
        if getattr(args, option) != getattr(defaults, option):
            words += [f"--{option.replace('_', '-')}", str(getattr(args, option))]
    if args.no_http:
        words.append("--no-http")
    return words


# ------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = benchmark_parser(
        __doc__, default_db="both", postgres_url=DEFAULT_POSTGRES_URL, postgres_env="ASYNCJOBS_BENCH_WEB_POSTGRES_URL"
    )
    parser.add_argument("--requests", type=int, default=500, help="requests per repetition (default 500)")
    parser.add_argument(
        "--offload-requests",
        type=int,
        default=100,
        help="requests per repetition for requests that insert a row (default 100)",
    )
    parser.add_argument("--repeat", type=int, default=15, help="repetitions in-process (default 15)")
    parser.add_argument("--http-repeat", type=int, default=8, help="repetitions through runserver (default 8)")
    parser.add_argument("--no-http", action="store_true", help="skip the runserver measurements")
    parser.add_argument(
        "--sqlite-conn-max-age",
        choices=("0", "none"),
        default="none",
        help="CONN_MAX_AGE of the SQLite runs: none (persistent, the default here) or 0 (Django's default)",
    )
    args = parser.parse_args(argv)
    if args.requests < 10 or args.offload_requests < 10 or args.repeat < 1 or args.http_repeat < 1:
        parser.error("--requests and --offload-requests must be >= 10, --repeat and --http-repeat >= 1")
    return args


def main() -> None:
    run_benchmark(parse_args, child_main, parent_main)


if __name__ == "__main__":
    main()
