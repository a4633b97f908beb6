"""A Redis master, its replica and three Sentinels, started by a test on free ports.

Debian's ``redis-sentinel`` and ``redis-server``; each server and Sentinel has its own
config and folder in a temp dir, and every process is stopped (by its pid) at the end.
Never the machine's 6379 or 26379.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from typing import Any

import pytest
from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from django_asyncjobs.testing import die_with_parent, find_server_binary, free_port

MASTER_NAME = "asyncjobs-test"
#: How long a Sentinel waits for a silent master before it calls it down (ms).
DOWN_AFTER_MS = 1000


def sentinel_binary() -> str:
    found = os.environ.get("ASYNCJOBS_REDIS_SENTINEL") or shutil.which("redis-sentinel")
    if not found:
        pytest.skip("redis-sentinel is not installed (Debian: apt-get install redis-sentinel)")
    return found


class SentinelCluster:
    """A master, a replica and three Sentinels watching them as :data:`MASTER_NAME`."""

    def __init__(self) -> None:
        self.sentinel = sentinel_binary()
        self.server = find_server_binary()
        self.directory = tempfile.mkdtemp(prefix="asyncjobs-sentinel-")
        #: Port of each data server -> its process (a killed master stays listed, dead).
        self.servers: dict[int, subprocess.Popen[bytes]] = {}
        self.sentinel_ports: list[int] = []
        self._sentinels: list[subprocess.Popen[bytes]] = []

    # -- start and stop ------------------------------------------------------------------------

    def start(self) -> SentinelCluster:
        try:
            master = self._start_server()
            self._start_server(replica_of=master)
            for _ in range(3):
                self._start_sentinel(master)
            self._wait_until_ready(master)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_server(self, replica_of: int | None = None) -> int:
        port = free_port()
        folder = os.path.join(self.directory, f"server-{port}")
        os.mkdir(folder)
        command = [
            self.server,
            "--port", str(port), "--bind", "127.0.0.1", "--protected-mode", "no",
            "--save", "", "--appendonly", "no", "--dir", folder, "--daemonize", "no",
            "--loglevel", "notice", "--logfile", os.path.join(folder, "server.log"),
        ]  # fmt: skip
        if replica_of is not None:
            command += ["--replicaof", "127.0.0.1", str(replica_of)]
        self.servers[port] = self._spawn(command)
        self._wait(lambda: self._answers(port), f"redis-server on {port}")
        return port

    def _start_sentinel(self, master: int) -> None:
        port = free_port()
        folder = os.path.join(self.directory, f"sentinel-{port}")
        os.mkdir(folder)
        config = os.path.join(folder, "sentinel.conf")  # Sentinel rewrites its config: one each
        with open(config, "w") as file:
            file.write(
                f"port {port}\nbind 127.0.0.1\nprotected-mode no\ndaemonize no\ndir {folder}\n"
                f"logfile {os.path.join(folder, 'sentinel.log')}\n"
                f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master} 2\n"
                f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {MASTER_NAME} 10000\n"
                f"sentinel parallel-syncs {MASTER_NAME} 1\n"
            )
        self._sentinels.append(self._spawn([self.sentinel, config]))
        self.sentinel_ports.append(port)
        self._wait(lambda: self._answers(port), f"redis-sentinel on {port}")

    def _spawn(self, command: list[str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )

    def _wait_until_ready(self, master: int) -> None:
        """Each Sentinel knows the replica and the two other Sentinels (a failover needs both),
        and the replica is in sync."""

        def ready() -> bool:
            replica = self.client(self.replica_port(master))
            if replica.info("replication").get("master_link_status") != "up":
                return False
            for port in self.sentinel_ports:
                sentinel = self.client(port)
                replicas = sentinel.execute_command("SENTINEL", "REPLICAS", MASTER_NAME)
                others = sentinel.execute_command("SENTINEL", "SENTINELS", MASTER_NAME)
                if len(replicas) < 1 or len(others) < 2:
                    return False
            return True

        self._wait(ready, "the Sentinels to see the replica and each other", seconds=60)

    def stop(self) -> None:
        for process in [*self._sentinels, *self.servers.values()]:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in [*self._sentinels, *self.servers.values()]:
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)

    # -- what a test reads and does ------------------------------------------------------------

    def rq_queue(self, **extra: Any) -> dict[str, Any]:
        """An ``RQ_QUEUES`` entry reaching the master through the Sentinels."""
        return {
            "SENTINELS": [("127.0.0.1", port) for port in self.sentinel_ports],
            "MASTER_NAME": MASTER_NAME,
            "DB": 0,
            **extra,
        }

    @property
    def sentinels_setting(self) -> str:
        """``ASYNCJOBS_TEST_SENTINELS`` for a worker subprocess (tests/settings.py)."""
        return ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)

    def client(self, port: int) -> Redis:
        """A plain client of one server or Sentinel; it does not retry (redis-py's default
        retries a refused connection for seconds, and the test's loop would wait on it)."""
        return Redis(
            host="127.0.0.1", port=port, socket_timeout=2, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0)
        )

    def master_port(self) -> int:
        """The master's port as the Sentinels tell it (the first that answers)."""
        for port in self.sentinel_ports:
            try:
                address = self.client(port).execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
            except RedisError:
                continue
            if address:
                return int(address[1])
        raise AssertionError("no Sentinel names a master")

    def replica_port(self, master: int) -> int:
        return next(port for port in self.servers if port != master)

    def master(self) -> Redis:
        return self.client(self.master_port())

    def failover(self) -> int:
        """``SENTINEL FAILOVER``: the replica becomes master, the master its replica. Returns the old master."""
        old = self.master_port()
        self.client(self.sentinel_ports[0]).execute_command("SENTINEL", "FAILOVER", MASTER_NAME)
        return old

    def kill_master(self) -> int:
        """SIGKILL the master; the Sentinels promote the replica after ``DOWN_AFTER_MS``. Returns its port."""
        old = self.master_port()
        process = self.servers[old]
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        return old

    def wait_for_new_master(self, old: int, seconds: float = 60) -> int:
        """Wait until every Sentinel names another master and it answers as one; its port."""

        def promoted() -> int | None:
            ports = set()
            for port in self.sentinel_ports:
                address = self.client(port).execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
                ports.add(int(address[1]))
            if len(ports) != 1 or old in ports:
                return None
            new = ports.pop()
            return new if self.client(new).info("replication").get("role") == "master" else None

        return int(self._wait(promoted, f"a master other than {old}", seconds))

    def demoted(self, old: int) -> bool:
        """Whether the server at ``old`` is a replica now, or does not answer (killed)."""
        if self.servers[old].poll() is not None:
            return True
        try:
            return self.client(old).info("replication").get("role") == "slave"
        except RedisError:
            return True

    def log(self, name: str) -> str:
        """The end of a log file of the cluster, e.g. ``sentinel-<port>/sentinel.log``."""
        try:
            with open(os.path.join(self.directory, name)) as file:
                return file.read()[-3000:]
        except OSError:
            return ""

    # -- helpers -------------------------------------------------------------------------------

    def _answers(self, port: int) -> bool:
        try:
            return bool(self.client(port).ping())
        except RedisError:  # not listening yet, or still loading
            return False

    @staticmethod
    def _wait(condition: Any, what: str, seconds: float = 15) -> Any:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                value = condition()
            except Exception:  # noqa: BLE001 - not up yet
                value = None
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"gave up waiting for {what} after {seconds}s")
