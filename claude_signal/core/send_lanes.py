"""One sender at a time per recipient, across every worker on every machine.

Replies to one phone must arrive in order and paced; two pool processes sending to the same person at once
would interleave them. A short Redis lock on the broker (which every worker already shares) makes each
recipient a single lane. The lock expires on its own if its holder dies, so a crash never blocks a lane.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from claude_signal.wire.broker_redis import client as _client


def lane_name(recipient: str) -> str:
    return "claude-signal:lane:" + hashlib.sha1(recipient.encode()).hexdigest()[:16]


class Lane:
    """A held lane; ``renew`` before each send keeps it while a long reply goes out."""

    def __init__(self, lock: redis.lock.Lock | None, ttl: float) -> None:
        self._lock = lock
        self.ttl = ttl

    @property
    def held(self) -> bool:
        return self._lock is not None

    def renew(self) -> bool:
        """Hold the lane ``ttl`` seconds more; False when it lapsed and may be another sender's now (the
        sender must stop: going on would interleave its parts with the new holder's)."""
        if self._lock is None:
            return False
        try:
            return bool(self._lock.extend(self.ttl, replace_ttl=True))
        except redis.exceptions.LockError:
            self._lock = None
            return False


@contextmanager
def recipient_lane(broker_url: str, recipient: str, ttl: float) -> Iterator[Lane]:
    """Hold the recipient's lane for ``ttl`` seconds at a time; ``Lane.held`` is False when another has it.

    A sender that dies keeps the lane at most ``ttl`` seconds; one that stalls past it finds out on its next
    ``renew`` and stops. The lane only orders sends: no reply is sent twice without it, since each row is
    claimed by compare-and-set.
    """
    with exclusive(broker_url, lane_name(recipient), ttl) as lane:
        yield lane


RECOVERY = "claude-signal:recovery"


@contextmanager
def exclusive(broker_url: str, name: str, ttl: float) -> Iterator[Lane]:
    """Hold the lock ``name`` for ``ttl`` seconds at a time, if nobody else does (``Lane.held``); it lapses
    by itself if its holder dies. Recipients' lanes use it, and so does recovery (one at a time)."""
    lock = _client(broker_url).lock(name, timeout=ttl, blocking=False)
    acquired = bool(lock.acquire())
    try:
        yield Lane(lock if acquired else None, ttl)
    finally:
        if acquired:
            with contextlib.suppress(redis.exceptions.LockError):  # expired: the next sender took it over
                lock.release()
