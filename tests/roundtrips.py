"""Counting the round trips our code makes to a real Redis (a connection class that
records each packet it sends; the server and the replies are real)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from redis import ConnectionPool
from redis.connection import Connection

#: What redis-py sends when it opens a connection.
HANDSHAKE = {"HELLO", "CLIENT"}
#: Every round trip since the last reset: the command names sent in it.
sent: list[tuple[str, ...]] = []


class CountingConnection(Connection):
    """A redis-py connection that records the command names of each packet it sends."""

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        sent.append(tuple(_names(command)))
        super().send_packed_command(command, check_health)


def _names(command: Any) -> Iterator[str]:
    chunks = [command] if isinstance(command, bytes | str | memoryview) else command
    data = b"".join(bytes(c) if not isinstance(c, str) else c.encode() for c in chunks)
    # RESP arrays: "*<n>\r\n$<len>\r\n<name>\r\n..."; the first bulk string of each array is the name.
    lines = data.split(b"\r\n")
    i = 0
    while i < len(lines):
        if lines[i].startswith(b"*") and i + 2 < len(lines):
            yield lines[i + 2].decode(errors="replace").upper()
            count = int(lines[i][1:])
            i += 1 + 2 * count
        else:
            i += 1


def counting_queues(url: str, names: tuple[str, ...] = ("default", "high", "low")) -> dict[str, Any]:
    """An ``RQ_QUEUES`` whose queues share one counting connection to ``url``."""
    pool = ConnectionPool.from_url(url, connection_class=CountingConnection)
    host, port = pool.connection_kwargs["host"], pool.connection_kwargs["port"]
    config = {"HOST": host, "PORT": port, "DB": 0, "REDIS_CLIENT_KWARGS": {"connection_pool": pool}}
    return {name: dict(config) for name in names}


@contextmanager
def recording() -> Iterator[list[tuple[str, ...]]]:
    """The round trips made inside the block (a new connection's handshake left out)."""
    start = len(sent)
    recorded: list[tuple[str, ...]] = []
    try:
        yield recorded
    finally:
        recorded.extend(trip for trip in sent[start:] if not set(trip) <= HANDSHAKE)
