"""Workers tell the listener which inbound messages the inbox holds, through the broker's Redis.

The listener keeps a journaled message until the inbox has it, but it must not read the database. So once
``command.handle`` returns (its transaction, which recorded the inbox row, has committed), the worker sets
one small key per idempotency key, ``claude-signal:inbox:<key>``, that expires after a day. The listener
asks with ``EXISTS`` for the keys it still holds. Keys rather than a stream or a set: nothing to trim, no
reader state, the same answer for every reader; and a lost write costs one harmless re-publish.
"""

from __future__ import annotations

import logging
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


def mark(broker: redis.Redis, key: str) -> None:
    """Say that the inbox holds the message ``key``."""
    broker.set(PREFIX + key, b"1", ex=TTL_SECONDS)


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


def install(app: Celery) -> None:
    """Acknowledge every ``command.handle`` that returned: its message is in the inbox (or was malformed)."""

    def on_success(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "name", None) != COMMAND_TASK:
            return
        args = getattr(sender.request, "args", None) or ()
        key = args[0].get("key") if args and isinstance(args[0], dict) else None
        if not isinstance(key, str):
            return
        try:
            mark(client(app.conf.broker_url), key)
        except redis.RedisError as error:  # the listener re-publishes it; the inbox makes that harmless
            log.warning("could not acknowledge %s to the listener: %s", key, error)

    task_success.connect(on_success, weak=False)
