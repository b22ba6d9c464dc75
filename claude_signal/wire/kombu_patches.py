"""Keeps a worker alive when its Redis restarts while it holds unacknowledged messages, and spares kombu
a new Redis client for every message.

On a lost connection kombu closes the channel twice. The first close already dropped the transport's
connection info, so the second one, trying once more to give back the messages the worker held, fails in
``Channel._connparams`` with ``AttributeError: 'NoneType' object has no attribute 'hostname'`` (unix
socket or TCP alike). That error is not a connection error, so Celery treats it as unrecoverable and the
worker exits. Raised as a connection error instead, it is ignored like the first failure was: the held
messages stay in Redis's unacked set and come back after the visibility timeout; the database makes a
second delivery harmless.
"""

from __future__ import annotations

from typing import Any


def survive_broker_restart() -> None:
    import redis
    from kombu.transport import redis as transport

    original = transport.Channel._connparams
    if getattr(original, "_claude_signal", False):
        return

    def _connparams(self: Any, asynchronous: bool = False) -> Any:
        if self.connection.client is None:
            raise redis.exceptions.ConnectionError("the broker connection is already closed")
        return original(self, asynchronous)

    _connparams._claude_signal = True  # type: ignore[attr-defined]
    transport.Channel._connparams = _connparams


def reuse_redis_clients() -> None:
    """One redis-py client per channel and connection pool, instead of a new one for every publish and
    acknowledgement: kombu builds a ``redis.Redis`` (and its table of some 170 response callbacks) each time
    it needs a client, a measurable share of the CPU a message costs. Clients are thread-safe and hold no
    connection of their own (the pool does), so sharing one changes nothing else; a new pool (after a
    reconnect) gets a new client."""
    from kombu.transport import redis as transport

    original = transport.Channel._create_client
    if getattr(original, "_claude_signal", False):
        return

    def _create_client(self: Any, asynchronous: bool = False) -> Any:
        if asynchronous:
            return original(self, asynchronous)
        pool = self.pool
        cached = self.__dict__.get("_claude_signal_client")
        if cached is None or cached[0] is not pool:
            cached = self.__dict__["_claude_signal_client"] = (pool, original(self, False))
        return cached[1]

    _create_client._claude_signal = True  # type: ignore[attr-defined]
    transport.Channel._create_client = _create_client
