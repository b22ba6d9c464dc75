"""Which handled messages have already woken the messages that waited behind them.

Whoever marks a message HANDLED wakes its successors (:func:`claude_signal.core.ordering.successors`). A copy of a
message handled before (the listener publishes again one whose acknowledgement it has not seen, a restart
replays its journal) woke them again, and each woken copy woke the next one's: under load, copies
multiplied down every conversation that had a queue, and the real work waited behind them. So the handler
that woke them leaves a mark in the broker's Redis (one small key for a day), and a later copy wakes
nobody. A handler that died between its commit and its wake left no mark, so a copy still wakes them; a
lost mark costs one extra wake, never a missing one.

Most messages have nobody waiting behind them, and the task that has just marked one HANDLED knows that
no copy can have woken anyone yet: it skips the lookup, and it leaves a mark only when it woke somebody
(once a message is HANDLED no newcomer waits for it, so a copy that finds nobody waiting costs a query).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import redis

from claude_signal.core import delivery, ordering, outbox
from claude_signal.core.unit_of_work import TaskContext
from claude_signal.wire.broker_redis import client

log = logging.getLogger(__name__)

PREFIX = "claude-signal:released:"
TTL_SECONDS = 86400


def already_released(broker: redis.Redis, key: str) -> bool:
    """True when the successors of the handled message ``key`` were woken (when unsure: False)."""
    try:
        return bool(broker.exists(PREFIX + key))
    except redis.RedisError as error:
        log.warning("cannot tell whether %s woke its successors (%s); waking them", key, error)
        return False


def mark_released(broker: redis.Redis, key: str) -> None:
    try:
        broker.set(PREFIX + key, b"1", ex=TTL_SECONDS)
    except redis.RedisError as error:  # a copy of it will wake them once more: harmless
        log.warning("could not record that %s woke its successors: %s", key, error)


def release_successors(ctx: TaskContext, key: str, posted: Sequence[tuple[outbox.Claimed, delivery.Posted]] = (), *,
                       handled_here: bool = False) -> None:
    """Wake the messages that waited for ``key`` (a no-op unless it is HANDLED); after its commit. Once:
    a copy of a message whose successors were woken wakes nobody (see above). The replies this task
    ``posted`` itself are marked sent in the same unit of work. ``handled_here``: this task's own commit
    marked ``key`` HANDLED (so no copy can have woken anyone yet, and nothing needs looking up)."""
    broker = client(ctx.settings.resolved_broker_url)
    released = False if handled_here else already_released(broker, key)
    if released and not posted:
        return
    woken = 0
    question, params = ordering.anyone_waiting_for(key) if not released else (None, None)
    # Each statement stands alone: the mark is fenced by its claim, the look for waiting messages is a read
    # (asked by the mark's own statement when there is one: most often it finds nobody, and that is all).
    with ctx.transaction(read_only=not posted, autocommit=True) as db:
        waiting = delivery.mark_posted(db, posted, also=question, also_params=params)
        if not released and waiting is not False:
            woken = ordering.successors(db, key, handled=True if handled_here else None)
    if woken:
        mark_released(broker, key)
