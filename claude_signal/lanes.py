"""One sender at a time per recipient, across every worker on every machine.

Replies to one phone must arrive in order and paced; two pool processes sending to the same person at once
would interleave them. A short Redis lock on the broker (which every worker already shares) makes each
recipient a single lane. The lock expires on its own if its holder dies, so a crash never blocks a lane.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager

import redis

_clients: dict[tuple[int, str], redis.Redis] = {}


def _client(broker_url: str) -> redis.Redis:
    key = (os.getpid(), broker_url)
    client = _clients.get(key)
    if client is None:
        client = _clients[key] = redis.Redis.from_url(broker_url.replace("redis+socket://", "unix://"),
                                                       socket_timeout=5, socket_connect_timeout=5)
    return client


def lane_name(recipient: str) -> str:
    return "claude-signal:lane:" + hashlib.sha1(recipient.encode()).hexdigest()[:16]


@contextmanager
def recipient_lane(broker_url: str, recipient: str, ttl: float = 120.0) -> Iterator[bool]:
    """Yield True while this process holds the lane, False when another sender has it right now."""
    lock = _client(broker_url).lock(lane_name(recipient), timeout=ttl, blocking=False)
    held = bool(lock.acquire())
    try:
        yield held
    finally:
        if held:
            with contextlib.suppress(redis.exceptions.LockError):  # expired: the next sender took it over
                lock.release()
