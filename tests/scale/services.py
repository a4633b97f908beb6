"""The "services" host of the harness: a private Redis and a private PostgreSQL cluster,
both started inside the services namespace, with their files in the run's temp folder.

A private cluster (rather than a forwarder to the machine's PostgreSQL, which listens on
127.0.0.1 of the root namespace only) keeps every packet inside the namespaces, needs no
process of ours in the root namespace, and lets a host's cut link cut its database
connections exactly as a switch port would.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .netns import Namespace

REDIS_PORT = 16379
POSTGRES_PORT = 5432
DATABASE = "hscale_run"


def postgres_bin() -> Path | None:
    """The newest Debian PostgreSQL server binaries (``initdb``, ``pg_ctl``), if installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def unavailable() -> str | None:
    if shutil.which("redis-server") is None:
        return "no redis-server on PATH (Debian's redis-server package)"
    if postgres_bin() is None:
        return "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin (Debian's postgresql package)"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "no `postgres` user to run initdb as"
    return None


@dataclass
class Services:
    ns: Namespace
    folder: Path

    def start(self) -> None:
        self._start_redis()
        self._start_postgres()

    def _start_redis(self) -> None:
        redis = self.folder / "redis"
        redis.mkdir()
        self.ns.spawn(
            [
                *("redis-server", "--port", str(REDIS_PORT), "--bind", "0.0.0.0", "--protected-mode", "no"),
                *("--save", "", "--appendonly", "no", "--dir", str(redis), "--logfile", str(redis / "redis.log")),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(100):
            if self.ns.run(["redis-cli", "-p", str(REDIS_PORT), "ping"], check=False).stdout.strip() == "PONG":
                return
            time.sleep(0.1)
        raise RuntimeError("the services' redis-server did not answer")

    def _start_postgres(self) -> None:
        binaries = postgres_bin()
        assert binaries is not None
        data = self.folder / "pgdata"
        data.mkdir(mode=0o700)
        postgres = pwd.getpwnam("postgres")
        os.chown(data, postgres.pw_uid, postgres.pw_gid)
        os.chmod(self.folder, 0o755)
        as_postgres = ["runuser", "-u", "postgres", "--"]
        subprocess.run(
            [*as_postgres, str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
            check=True,
            capture_output=True,
        )
        with open(data / "pg_hba.conf", "a") as hba:
            hba.write("host all all 10.77.0.0/16 trust\n")
        options = f"-c listen_addresses='*' -c port={POSTGRES_PORT} -c unix_socket_directories='{data}'"
        pg_ctl = [*as_postgres, str(binaries / "pg_ctl"), "-D", str(data)]
        self.ns.run([*pg_ctl, "-l", str(data / "log"), "-w", "-o", options, "start"])
        self.ns.run([*as_postgres, str(binaries / "createdb"), "-h", "127.0.0.1", "-p", str(POSTGRES_PORT), DATABASE])

    def stop(self) -> None:
        """Stop PostgreSQL cleanly enough to leave no shared memory behind (the rest is
        killed with the namespace)."""
        binaries = postgres_bin()
        data = self.folder / "pgdata"
        if binaries is not None and (data / "postmaster.pid").exists():
            pg_ctl = ["runuser", "-u", "postgres", "--", str(binaries / "pg_ctl"), "-D", str(data)]
            self.ns.run([*pg_ctl, "-m", "immediate", "stop"], check=False)

    def database_url(self, host: str = "127.0.0.1") -> str:
        return f"postgres://postgres@{host}:{POSTGRES_PORT}/{DATABASE}"

    def redis_url(self, host: str = "127.0.0.1") -> str:
        return f"redis://{host}:{REDIS_PORT}/0"
