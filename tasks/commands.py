"""``command.handle``: every inbound Signal message enters the system here.

A reply that needs no other machine is written with the change it reports, claimed in the same
transaction, and posted by this task right after the commit; the mark that it went out shares one
transaction with the release of the messages that waited for this one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError

from claude_signal.celery import app
from claude_signal.core import conversation, dispatch, inbox, ordering, releases
from claude_signal.core.wakeups import Wakeup, wake
from claude_signal.db.models import Outbox
from claude_signal.rules import replies
from claude_signal.wire.broker_redis import client
from claude_signal.wire.inbound import COMMAND_TASK, InboundMessage
from claude_signal.wire.queues import SHARED_QUEUE
from claude_signal.worker import context as runtime
from tasks import outbox as sender

log = logging.getLogger(__name__)

# A waiting message looks again right after recording itself (its predecessor may have finished in
# between); more than this many rounds in one task means they keep racing, and the wake-up will come.
ORDER_ROUNDS = 3


@app.task(name=COMMAND_TASK, bind=True, max_retries=None)
def handle(self, message: dict) -> str:  # type: ignore[no-untyped-def]
    try:
        msg = InboundMessage.model_validate(message)
    except ValidationError as error:
        log.error("dropped malformed inbound message %r: %s", message, error.errors()[:1])
        return "malformed"
    settings = runtime.settings()
    ctx = conversation.Context(settings=settings, task_id=self.request.id, local_host=settings.host)
    for _ in range(ORDER_ROUNDS):
        try:
            with runtime.transaction() as db:
                dispatch.handle(db, msg, ctx)
                mine = sender.claim_here(db, settings)
                claimed_at = time.monotonic()
        except conversation.NotYet as earlier:
            log.info("%s waits for %s, read before it in the same conversation", msg.key, earlier)
            if _wait(msg):
                continue
            return "waiting"
        except DBAPIError as error:
            if error.connection_invalidated or _is_transient(error):
                log.warning("database unavailable handling %s; retrying: %s", msg.key, error.orig)
                raise self.retry(countdown=min(60, 2 ** min(self.request.retries, 6))) from None
            return _internal_error(msg)
        except Exception:  # noqa: BLE001 - logged; must not propagate
            return _internal_error(msg)
        release_successors(msg.key, sender.post_here(settings, mine, claimed_at) if mine else ())
        return "ok"
    return "waiting"


def _wait(msg: InboundMessage) -> bool:
    """Record ``msg`` as waiting for its predecessor; True when that one finished meanwhile (look again)."""
    with runtime.transaction() as db:
        row = inbox.record(db, msg)
    with runtime.transaction() as db:
        if ordering.verdict(db, msg, row.received_at) is not ordering.Verdict.WAIT:
            return True
        delay = ordering.recheck_in(db, msg)
        if delay is not None:  # nobody will wake it if its predecessor never arrives: look once more later
            wake(db, Wakeup(COMMAND_TASK, (msg.model_dump(mode="json"),), queue=SHARED_QUEUE, countdown=delay))
    return False


def release_successors(key: str, posted: Sequence[tuple[Outbox, sender.Posted]] = ()) -> None:
    """Wake the messages that waited for ``key`` (a no-op unless it is HANDLED); after its commit. Once:
    a copy of a message whose successors were woken wakes nobody (:mod:`claude_signal.core.releases`). The
    replies this task ``posted`` itself are marked sent in the same transaction."""
    broker = client(app.conf.broker_url)
    released = releases.already_released(broker, key)
    if released and not posted:
        return
    handled = False
    with runtime.transaction(read_only=not posted) as db:
        sender.mark_posted(db, posted)
        if not released:
            handled = ordering.is_handled(db, key)
            ordering.successors(db, key)
    if handled:
        releases.mark_released(broker, key)


def _is_transient(error: DBAPIError) -> bool:
    text = str(error.orig).lower()
    return any(s in text for s in ("database is locked", "could not connect", "connection", "server closed",
                                   "terminating connection", "deadlock", "could not serialize"))


def _internal_error(msg: InboundMessage) -> str:
    log.exception("failed handling %s", msg.key)
    with runtime.transaction() as db:
        inbox.record(db, msg)
        conversation.reply(db, msg, replies.internal_error(), suffix="error")
        inbox.mark_handled(db, msg.key)
    release_successors(msg.key)
    return "error"
