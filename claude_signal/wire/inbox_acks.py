"""Workers tell the listener which inbound messages the inbox holds, through the broker's Redis.

The listener keeps a journaled message until the inbox has it, but it must not read the database. So once
``command.handle`` returns (its transaction, which recorded the inbox row, has committed), the worker sets
one small key per idempotency key, ``claude-signal:inbox:<key>``, that expires after a day; a thread of the
worker's process sends them in batches (:class:`Gatherer`). The listener
asks with ``EXISTS`` for the keys it still holds. Keys rather than a stream or a set: nothing to trim, no
reader state, the same answer for every reader; and a lost write costs one harmless re-publish.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from typing import Any

import redis
from celery import Celery
from celery.signals import task_success

from claude_signal.wire.broker_redis import client
from claude_signal.wire.inbound import COMMAND_TASK

log = logging.getLogger(__name__)

PREFIX = "claude-signal:inbox:"
TTL_SECONDS = 86400
# A worker holds its acknowledgements this long and sends them together: the listener looks at most every
# 0.2 s (forwarder.SETTLE_EVERY), so the wait costs nothing, while under load one round trip carries many.
GATHER_SECONDS = 0.05


def mark(broker: redis.Redis, *keys: str) -> None:
    """Say that the inbox holds the messages ``keys``, in one round trip."""
    pipe = broker.pipeline(transaction=False)
    for key in keys:
        pipe.set(PREFIX + key, b"1", ex=TTL_SECONDS)
    pipe.execute()


def acknowledged_and_broker_run(broker: redis.Redis, keys: Sequence[str]) -> tuple[set[str], str | None]:
    """Those of ``keys`` the inbox holds, and the broker's run id (it changes when Redis restarts, and with it
    maybe every copy the broker held): one round trip for both."""
    pipe = broker.pipeline(transaction=False)
    for key in keys:
        pipe.exists(PREFIX + key)
    pipe.info("server")
    *found, server = pipe.execute()
    run = server.get("run_id") if isinstance(server, dict) else None
    return {key for key, held in zip(keys, found, strict=True) if held}, None if run is None else str(run)


class Gatherer:
    """Sends the acknowledgements handed to it in batches, from one thread of its own, at most
    :data:`GATHER_SECONDS` after the first of a batch. One that is lost (the process dies first, Redis is
    away) costs one re-publish by the listener, which the inbox makes harmless."""

    def __init__(self, broker_url: str) -> None:
        self.broker_url = broker_url
        self._keys: list[str] = []
        self._arrived = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, key: str) -> None:
        with self._arrived:
            self._keys.append(key)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="inbox-acks", daemon=True)
                self._thread.start()
            elif len(self._keys) == 1:
                self._arrived.notify()

    def _run(self) -> None:
        while True:
            with self._arrived:
                self._arrived.wait_for(lambda: bool(self._keys))
            time.sleep(GATHER_SECONDS)  # let the batch fill
            with self._arrived:
                keys, self._keys = self._keys, []
            self._send(keys)

    def _send(self, keys: list[str]) -> None:
        try:
            mark(client(self.broker_url), *keys)
        except redis.RedisError as error:  # the listener re-publishes them; the inbox makes that harmless
            log.warning("could not acknowledge %d message(s) to the listener: %s", len(keys), error)


_gatherers: dict[tuple[int, str], Gatherer] = {}


def gatherer(broker_url: str) -> Gatherer:
    """This process's gatherer (a forked pool child makes its own, with its own thread)."""
    key = (os.getpid(), broker_url)
    found = _gatherers.get(key)
    if found is None:
        found = _gatherers[key] = Gatherer(broker_url)
    return found


def install(app: Celery) -> None:
    """Acknowledge every ``command.handle`` that returned: its message is in the inbox (or was malformed)."""

    def on_success(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "name", None) != COMMAND_TASK:
            return
        args = getattr(sender.request, "args", None) or ()
        key = args[0].get("key") if args and isinstance(args[0], dict) else None
        if isinstance(key, str):
            gatherer(app.conf.broker_url).add(key)

    task_success.connect(on_success, weak=False)
