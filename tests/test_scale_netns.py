"""The namespace library of the several-hosts harness (``tests/scale/netns.py``): a link joins
two namespaces, going down cuts it, and closing the lab leaves nothing behind. Needs root."""

from __future__ import annotations

import signal
import socket
import subprocess

import pytest

from tests.conftest import wait_for
from tests.scale import netns

pytestmark = pytest.mark.skipif(bool(reason := netns.unavailable()), reason=f"network namespaces: {reason}")


def _connects(ns: netns.Namespace, address: str, port: int) -> bool:
    with ns.entered(), socket.socket() as client:
        client.settimeout(1.0)
        try:
            client.connect((address, port))
        except OSError:
            return False
        return True


def test_a_link_carries_traffic_until_it_goes_down_and_again_once_it_is_up() -> None:
    lab = netns.Lab()
    try:
        services, host = lab.namespace("svc"), lab.namespace("h1")
        link = lab.link(services, host, 250, "1")
        with services.entered():
            server = socket.create_server((link.near_address, 0))
        port = server.getsockname()[1]
        with server:
            assert _connects(host, link.near_address, port)
            link.set("down")
            assert not _connects(host, link.near_address, port)
            link.set("up")
            assert _connects(host, link.near_address, port)
    finally:
        assert lab.close() == []


def test_closing_a_lab_kills_its_processes_and_deletes_its_namespaces() -> None:
    lab = netns.Lab()
    try:
        host = lab.namespace("h1")
        sleeper = host.spawn(["sleep", "600"])
        # ``ip netns exec`` enters the namespace, then execs: under load that takes a moment.
        wait_for(lambda: sleeper.pid in host.pids(), what="the process to be in the namespace")
    finally:
        assert lab.close() == []
    assert sleeper.wait(timeout=10) == -signal.SIGKILL
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert host.name not in listed
