"""Redis clients and RQ queues built from ``RQ_QUEUES``, pipelines, and Lua scripts."""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from django.core.signals import setting_changed
from django.dispatch import receiver
from redis import Redis
from redis.client import Pipeline
from redis.commands.core import Script
from redis.exceptions import RedisError
from redis.sentinel import SentinelConnectionPool
from rq import Queue
from rq.serializers import JSONSerializer

from ...conf import app_settings
from ...exceptions import ConfigurationError, UnknownQueue
from ...logs import broker_logger, log_event

#: RQ_QUEUES keys that configure the queue, not the connection.
QUEUE_ONLY_KEYS = frozenset(
    {"DEFAULT_TIMEOUT", "DEFAULT_RESULT_TTL", "DEFAULT_FAILURE_TTL", "ASYNC", "COMMIT_MODE", "AUTOCOMMIT", "SERIALIZER"}
)

_connections: dict[str, Redis] = {}
#: Queue name -> its client (one of ``_connections``), so that the hot path skips building the key.
_by_queue: dict[str, Redis] = {}
_queues: dict[str, Queue] = {}
_scripts: weakref.WeakKeyDictionary[Redis, dict[str, Script]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()

#: Seconds between two questions to the Sentinels about which server is the master (a
#: client through Sentinel; see :func:`follow_master`).
MASTER_CHECK_INTERVAL = 1.0
_master_checked: weakref.WeakKeyDictionary[SentinelConnectionPool, float] = weakref.WeakKeyDictionary()


@receiver(setting_changed)
def _forget_connections(setting: str, **kwargs: Any) -> None:
    if setting in ("RQ_QUEUES", "ASYNCJOBS"):
        reset_connections()


def reset_connections() -> None:
    """Drop cached Redis clients (after RQ_QUEUES changes, or after a fork)."""
    with _lock:
        for connection in _connections.values():
            connection.close()
        _connections.clear()
        _by_queue.clear()
        _queues.clear()


def queue_names() -> list[str]:
    return list(app_settings.rq_queues)


def validate_queue(name: str) -> str:
    if name not in app_settings.rq_queues:
        raise UnknownQueue(name, queue_names())
    return name


def get_connection(queue: str) -> Redis:
    """The Redis client for ``queue``, built from its ``RQ_QUEUES`` entry.

    Queues with the same connection settings share one cached client.
    """
    connection = _by_queue.get(queue)
    if connection is not None:
        follow_master(connection)
        return connection
    config = app_settings.rq_queues.get(queue)
    if config is None:
        raise UnknownQueue(queue, queue_names())
    key = _connection_key(config)
    connection = _connections.get(key)
    if connection is None:
        with _lock:
            # lazy: django_rq reads settings when imported; the broker is imported before Django is set up (testing)
            from django_rq.connection_utils import get_redis_connection

            connection = _connections.setdefault(key, get_redis_connection(config))
    _by_queue[queue] = connection
    follow_master(connection)
    return connection


def follow_master(connection: Redis) -> None:
    """For a client through Sentinel (``SENTINELS`` in ``RQ_QUEUES``), ask the Sentinels
    which server is the master, at most every :data:`MASTER_CHECK_INTERVAL` seconds.

    redis-py asks only when it opens a connection, and a connection stays open. After
    ``SENTINEL FAILOVER`` the old master takes writes for ~10 s more, until the Sentinels
    turn it into a replica (and close its clients): what a client wrote there meanwhile is
    lost with its resync, and a worker blocked on it sees nothing pushed to the new master.
    Once the address changed, redis-py closes the idle connections to the old master and
    those in use when they are released. A question no Sentinel answers is left to the
    next command, which fails or succeeds on its own.
    """
    pool = connection.connection_pool
    if not isinstance(pool, SentinelConnectionPool) or not pool.is_master:
        return
    now = time.monotonic()
    if now - _master_checked.get(pool, -MASTER_CHECK_INTERVAL) < MASTER_CHECK_INTERVAL:
        return
    _master_checked[pool] = now
    before = getattr(pool, "master_address", None)
    try:
        after = pool.get_master_address()  # type: ignore[no-untyped-call]
    except RedisError:
        return
    if before is not None and after != before:
        fields = {"master": pool.service_name, "old": _address(before), "new": _address(after)}
        log_event(broker_logger, logging.INFO, "redis.master_changed", **fields)


def _address(address: tuple[str, int]) -> str:
    return f"{address[0]}:{address[1]}"


def _connection_key(config: dict[str, Any]) -> str:
    """What tells connections apart: plain values by value, objects (a connection pool in
    ``REDIS_CLIENT_KWARGS``) by identity, as their repr may change once they connect."""

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return sorted((str(k), plain(v)) for k, v in value.items())
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        if value is None or isinstance(value, str | int | float | bool | bytes):
            return value
        return f"<{type(value).__qualname__} {id(value)}>"

    return repr(sorted((k, plain(v)) for k, v in config.items() if k not in QUEUE_ONLY_KEYS))


def get_queue(name: str) -> Queue:
    """The RQ queue ``name`` (cached: RQ caches the server version per instance)."""
    queue = _queues.get(name)
    if queue is None:
        queue = _queues.setdefault(name, Queue(name, connection=get_connection(name), serializer=JSONSerializer))
    return queue


def worker_queues(names: Sequence[str]) -> tuple[Redis, list[Queue]]:
    """The connection and RQ queues a worker of ``names`` listens with (RQ wants one server)."""
    queues = [get_queue(name) for name in names]
    connection = get_connection(names[0])
    for name, queue in zip(names, queues, strict=True):
        if queue.connection is not connection:
            raise ConfigurationError(
                f"Queue {name!r} uses a different Redis server than {names[0]!r}; run one worker per Redis server."
            )
    return connection, queues


def ping(queue: str) -> None:
    """Raise ``RedisError`` if the Redis of ``queue`` does not answer."""
    get_connection(queue).ping()


@contextmanager
def batch(queue: str) -> Iterator[Pipeline]:
    """A pipeline on the Redis of ``queue`` for the broker's ``pipeline=`` arguments,
    executed (one round trip) when the block ends."""
    with get_connection(queue).pipeline(transaction=False) as pipe:
        yield pipe
        pipe.execute()


@contextmanager
def commands(connection: Redis, pipeline: Pipeline | None) -> Iterator[Pipeline]:
    """``pipeline`` as it is (its owner executes it), or a new one executed when the block ends."""
    if pipeline is not None:
        yield pipeline
        return
    with connection.pipeline(transaction=False) as pipe:
        yield pipe
        pipe.execute()


def script(connection: Redis, source: str) -> Script:
    """``source`` registered with ``connection`` once; calls run it by its SHA (EVALSHA),
    loading it again only if the server lost it."""
    registered = _scripts.get(connection)
    if registered is None:
        with _lock:
            registered = _scripts.setdefault(connection, {})
    found = registered.get(source)
    if found is None:
        found = registered.setdefault(source, connection.register_script(source))
    return found


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
