"""Procrastinate on PostgreSQL (psycopg 3, LISTEN/NOTIFY): one ``worker`` with concurrency 1.

Its database is ``ASYNCJOBS_PEERS_DB_URL`` (created by the parent); the schema is applied once.
"""

from __future__ import annotations

import os
import sys

from procrastinate import App, PsycopgConnector

from benchmarks.peers.harness import Adapter
from benchmarks.peers.marks import mark as report_start

app = App(connector=PsycopgConnector(conninfo=os.environ.get("ASYNCJOBS_PEERS_DB_URL", "")))


@app.task(name="peers.noop", queue="peers")
def noop(mark: bool = False) -> None:
    if mark:
        report_start()


class Procrastinate(Adapter):
    bulk = True

    def prepare(self) -> None:
        import psycopg

        app.open()
        self.sql = psycopg.connect(os.environ["ASYNCJOBS_PEERS_DB_URL"], autocommit=True)
        if self.sql.execute("SELECT to_regclass('procrastinate_jobs')").fetchone() == (None,):
            app.schema_manager.apply_schema()

    def reset(self) -> None:
        self.sql.execute("TRUNCATE procrastinate_jobs CASCADE")

    def enqueue(self, mark: bool) -> None:
        noop.defer(mark=mark)

    def enqueue_bulk(self, count: int) -> None:
        noop.batch_defer(*({"mark": False} for _ in range(count)))

    def worker_command(self) -> list[str]:
        command = [sys.executable, "-m", "procrastinate", "--app", "benchmarks.peers.procrastinate_peer.app"]
        return [*command, "worker", "--concurrency", "1", "--queues", "peers"]

    def close(self) -> None:
        app.close()
        self.sql.close()


def make(system: str) -> Adapter:
    return Procrastinate()
