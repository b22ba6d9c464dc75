"""Keeps a worker alive when its Redis restarts while it holds unacknowledged messages.

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
