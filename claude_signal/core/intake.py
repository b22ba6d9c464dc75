"""One inbound message through ``command.handle``: handled once in one transaction, or left waiting for
the message read before it, or answered with a plain error; then the messages that waited for it go on.

A reply that needs no other machine is written with the change it reports, claimed in the same
transaction, and posted by this task right after the commit; the mark that it went out and the release of
the messages that waited for this one follow as one short unit (on PostgreSQL without BEGIN and COMMIT).
"""

from __future__ import annotations

import logging
import time

from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError

from claude_signal.core import conversation, delivery, dispatch, inbox, ordering, releases
from claude_signal.core.unit_of_work import TaskContext
from claude_signal.core.wakeups import Wakeup, wake
from claude_signal.rules import replies
from claude_signal.wire.inbound import COMMAND_TASK, InboundMessage
from claude_signal.wire.queues import SHARED_QUEUE

log = logging.getLogger(__name__)

# A waiting message looks again right after recording itself (its predecessor may have finished in
# between); more than this many rounds in one task means they keep racing, and the wake-up will come.
ORDER_ROUNDS = 3


class RetryLater(Exception):
    """The database is out of reach for now: the task is retried with backoff (nothing was done)."""


def take(ctx: TaskContext, message: dict, task_id: str | None) -> str:
    """Handle one ``command.handle`` message; what became of it, for the task's result in Flower."""
    try:
        msg = InboundMessage.model_validate(message)
    except ValidationError as error:
        log.error("dropped malformed inbound message %r: %s", message, error.errors()[:1])
        return "malformed"
    settings = ctx.settings
    context = conversation.Context(settings=settings, task_id=task_id, local_host=settings.host)
    for _ in range(ORDER_ROUNDS):
        try:
            with ctx.transaction() as db:
                delivery.offer_here(db, settings)
                dispatch.handle(db, msg, context)
                mine = delivery.claim_here(db, settings)
                claimed_at = time.monotonic()
                handled_here = inbox.handled_now(db, msg.key)
        except conversation.NotYet as earlier:
            log.info("%s waits for %s, read before it in the same conversation", msg.key, earlier)
            if _wait(ctx, msg):
                continue
            return "waiting"
        except DBAPIError as error:
            if error.connection_invalidated or is_transient(error):
                log.warning("database unavailable handling %s; retrying: %s", msg.key, error.orig)
                raise RetryLater(str(error.orig)) from None
            return _internal_error(ctx, msg)
        except Exception:  # noqa: BLE001 - logged; must not propagate
            return _internal_error(ctx, msg)
        posted = delivery.post_here(ctx, mine, claimed_at) if mine else ()
        releases.release_successors(ctx, msg.key, posted, handled_here=handled_here)
        return "ok"
    return "waiting"


def _wait(ctx: TaskContext, msg: InboundMessage) -> bool:
    """Record ``msg`` as waiting for its predecessor; True when that one finished meanwhile (look again)."""
    with ctx.transaction() as db:
        row = inbox.record(db, msg)
    with ctx.transaction() as db:
        if ordering.verdict(db, msg, row.received_at) is not ordering.Verdict.WAIT:
            return True
        delay = ordering.recheck_in(db, msg)
        if delay is not None:  # nobody will wake it if its predecessor never arrives: look once more later
            wake(db, Wakeup(COMMAND_TASK, (msg.model_dump(mode="json"),), queue=SHARED_QUEUE, countdown=delay))
    return False




def is_transient(error: DBAPIError) -> bool:
    """A database error worth retrying the whole message for (the server went away, a lock, a deadlock)."""
    text = str(error.orig).lower()
    return any(s in text for s in ("database is locked", "could not connect", "connection", "server closed",
                                   "terminating connection", "deadlock", "could not serialize"))


def _internal_error(ctx: TaskContext, msg: InboundMessage) -> str:
    log.exception("failed handling %s", msg.key)
    with ctx.transaction() as db:
        inbox.record(db, msg)
        conversation.reply(db, msg, replies.internal_error(), suffix="error")
        inbox.mark_handled(db, msg.key)
    releases.release_successors(ctx, msg.key)
    return "error"
