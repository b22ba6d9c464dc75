"""Keeps a worker alive and consuming when its Redis restarts, and spares kombu a new Redis client for
every message.

On a lost connection kombu closes the channel twice. The first close already dropped the transport's
connection info, so the second one, trying once more to give back the messages the worker held, fails in
``Channel._connparams`` with ``AttributeError: 'NoneType' object has no attribute 'hostname'`` (unix
socket or TCP alike). That error is not a connection error, so Celery treats it as unrecoverable and the
worker exits. Raised as a connection error instead, it is ignored like the first failure was: the held
messages stay in Redis's unacked set and come back after the visibility timeout; the database makes a
second delivery harmless.
"""

from __future__ import annotations

import contextlib
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


def never_block_on_a_gone_subscription() -> None:
    """A worker's event loop must never wait on a pub/sub socket that has nothing to read.

    After a Redis restart, kombu can still map a file descriptor to the channel's pub/sub connection when
    that connection is gone (disconnected, or reconnected on another descriptor) or the number now belongs
    to another socket of the process (a turn's HTTP or database connection, in the threads pool). A readiness
    report for it made kombu read the pub/sub client, and redis-py 8 reads pub/sub with no timeout at all,
    reconnecting first if it must: the new connection subscribes to nothing, so the event loop waited
    forever and the worker consumed nothing more (seen in the chaos test: a turn plane stopped after the
    second Redis kill, with hundreds of turns in its queue). Here such a report is dropped, a stale
    descriptor forgotten (the next loop tick registers and subscribes the connection again), and the
    pub/sub socket read only when it is readable now.
    """
    from kombu.transport import redis as transport

    original = transport.MultiChannelPoller.on_readable
    if getattr(original, "_claude_signal", False):
        return

    def on_readable(self: Any, fileno: int) -> Any:
        mapped = self._fd_to_chan.get(fileno)
        if mapped is None or mapped[1] != "LISTEN" or fileno in self._paused_brpop:
            return original(self, fileno)
        channel = mapped[0]
        connection = getattr(channel.__dict__.get("subclient"), "connection", None)
        sock = getattr(connection, "_sock", None)
        if connection is None or sock is None or sock.fileno() != fileno:
            del self._fd_to_chan[fileno]
            for key, registered in list(self._chan_to_sock.items()):
                if key[0] is channel and key[2] == "LISTEN" and registered is not sock:
                    del self._chan_to_sock[key]
            channel._in_listen = None
            with contextlib.suppress(Exception):  # already gone from the loop is fine
                self._unregister_from_poll(fileno)
            return None
        try:
            if not connection.can_read(timeout=0):
                return None
        except channel.connection_errors:
            channel._in_listen = None
            raise
        return original(self, fileno)

    on_readable._claude_signal = True  # type: ignore[attr-defined]
    transport.MultiChannelPoller.on_readable = on_readable
