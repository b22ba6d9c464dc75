"""A plain Redis client on the broker's own Redis, for the small shared state next to the queues.

Every process already reaches the broker, so lanes and inbox acknowledgements live there instead of
needing another service. One client per process and URL: a forked pool child never reuses its parent's
sockets.
"""

from __future__ import annotations

import os

import redis

_clients: dict[tuple[int, str], redis.Redis] = {}


def redis_url(broker_url: str) -> str:
    """kombu spells a unix socket ``redis+socket://``; redis-py spells it ``unix://``."""
    return broker_url.replace("redis+socket://", "unix://", 1)


def client(broker_url: str, *, timeout: float = 5.0) -> redis.Redis:
    key = (os.getpid(), broker_url)
    found = _clients.get(key)
    if found is None:
        found = _clients[key] = redis.Redis.from_url(redis_url(broker_url), socket_timeout=timeout,
                                                     socket_connect_timeout=timeout)
    return found
