"""Linux network namespaces for the several-hosts harness: a small lab of "hosts" joined to
one "services" namespace by veth pairs, with names unique to this run and everything
deleted by :meth:`Lab.close` (call it in a ``finally``).

Needs root and ``ip`` (iproute2). Only namespaces, veth pairs and addresses of our own are
made; the machine's interfaces are never touched.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

CLONE_NEWNET = 0x40000000


def unavailable() -> str | None:
    """Why namespaces cannot be made here, or ``None`` when they can."""
    if os.geteuid() != 0:
        return "not root (network namespaces need CAP_SYS_ADMIN)"
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2)"
    probe = f"ajsprobe{secrets.token_hex(3)}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "delete", probe], capture_output=True)
    return None


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


@dataclass
class Namespace:
    """One network namespace (a "host")."""

    name: str

    def argv(self, command: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *command]

    def run(self, command: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        kwargs.setdefault("check", True)
        kwargs.setdefault("capture_output", True)
        return subprocess.run(self.argv(command), text=True, **kwargs)

    def spawn(self, command: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        """Start ``command`` in this namespace (``ip netns exec`` execs it: same pid)."""
        return subprocess.Popen(self.argv(command), **kwargs)

    def pids(self) -> list[int]:
        done = subprocess.run(["ip", "netns", "pids", self.name], capture_output=True, text=True)
        return [int(pid) for pid in done.stdout.split()]

    def kill_all(self, sig: int = signal.SIGKILL) -> list[int]:
        """Send ``sig`` to every process in this namespace (a host that dies at once)."""
        killed = []
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
                killed.append(pid)
        return killed

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """Run the calling thread in this namespace (sockets opened meanwhile stay in it)."""
        libc = ctypes.CDLL(None, use_errno=True)
        with open("/proc/thread-self/ns/net") as home, open(f"/run/netns/{self.name}") as target:
            if libc.setns(target.fileno(), CLONE_NEWNET):
                raise OSError(ctypes.get_errno(), f"setns into {self.name}")
            try:
                yield
            finally:
                if libc.setns(home.fileno(), CLONE_NEWNET):
                    raise OSError(ctypes.get_errno(), "setns back")


@dataclass
class Link:
    """A veth pair: ``near`` in one namespace, ``far`` in the other, a /24 of our own."""

    near_ns: Namespace
    near: str
    near_address: str
    far_ns: Namespace
    far: str
    far_address: str

    def set(self, state: str) -> None:
        """``up`` or ``down`` the ``near`` end (as a switch port or a cable would go)."""
        _ip("-n", self.near_ns.name, "link", "set", self.near, state)


@dataclass
class Lab:
    """The namespaces and links of one run; :meth:`close` deletes them all."""

    tag: str = field(default_factory=lambda: f"ajs{secrets.token_hex(3)}")
    namespaces: list[Namespace] = field(default_factory=list)

    def namespace(self, role: str) -> Namespace:
        ns = Namespace(f"{self.tag}-{role}")
        _ip("netns", "add", ns.name)
        self.namespaces.append(ns)
        _ip("-n", ns.name, "link", "set", "lo", "up")
        return ns

    def link(self, near_ns: Namespace, far_ns: Namespace, subnet: int, suffix: str) -> Link:
        """A veth pair between two namespaces, 10.77.<subnet>.1 near, .2 far (names <= 15 chars)."""
        link = Link(
            near_ns, f"{self.tag}s{suffix}", f"10.77.{subnet}.1", far_ns, f"{self.tag}h{suffix}", f"10.77.{subnet}.2"
        )
        _ip("link", "add", link.near, "netns", near_ns.name, "type", "veth", "peer", link.far, "netns", far_ns.name)
        for ns, name, address in ((near_ns, link.near, link.near_address), (far_ns, link.far, link.far_address)):
            _ip("-n", ns.name, "addr", "add", f"{address}/24", "dev", name)
            _ip("-n", ns.name, "link", "set", name, "up")
        return link

    def close(self) -> list[str]:
        """Kill what still runs in the namespaces, delete them (and with them the veths).
        Returns what could not be cleaned up."""
        problems = []
        for ns in reversed(self.namespaces):
            ns.kill_all()
        for ns in reversed(self.namespaces):
            done = subprocess.run(["ip", "netns", "delete", ns.name], capture_output=True, text=True)
            if done.returncode:
                problems.append(f"{ns.name}: {done.stderr.strip()}")
        self.namespaces.clear()
        return problems

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
