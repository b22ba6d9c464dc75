"""``command.handle``: every inbound Signal message enters the system here."""

from __future__ import annotations

import logging

from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError

from claude_signal import handling, replies, runtime
from claude_signal.celery import app
from claude_signal.inbound import COMMAND_TASK, InboundMessage

log = logging.getLogger(__name__)

# A message waits at most this long (steps x retries) for the one before it in its conversation, e.g. a
# prompt sent right after /session start waits until the session has started, then goes to it.
ORDER_WAIT_STEP = 0.5
ORDER_WAIT_RETRIES = 120


@app.task(name=COMMAND_TASK, bind=True, max_retries=None)
def handle(self, message: dict) -> str:  # type: ignore[no-untyped-def]
    try:
        msg = InboundMessage.model_validate(message)
    except ValidationError as error:
        log.error("dropped malformed inbound message %r: %s", message, error.errors()[:1])
        return "malformed"
    keep_order = self.request.retries < ORDER_WAIT_RETRIES
    ctx = handling.Context(settings=runtime.settings(), task_id=self.request.id,
                           local_host=runtime.settings().host, keep_order=keep_order)
    try:
        with runtime.transaction() as db:
            wakeups = handling.handle(db, msg, ctx)
    except handling.NotYet as earlier:
        log.info("%s waits for %s, read before it in the same conversation", msg.key, earlier)
        raise self.retry(countdown=ORDER_WAIT_STEP) from None
    except DBAPIError as error:
        if error.connection_invalidated or _is_transient(error):
            log.warning("database unavailable handling %s; retrying: %s", msg.key, error.orig)
            raise self.retry(countdown=min(60, 2 ** min(self.request.retries, 6))) from None
        return _internal_error(msg)
    except Exception:  # noqa: BLE001 - logged; must not propagate
        return _internal_error(msg)
    runtime.publish(app, wakeups)
    return "ok"


def _is_transient(error: DBAPIError) -> bool:
    text = str(error.orig).lower()
    return any(s in text for s in ("database is locked", "could not connect", "connection", "server closed",
                                   "terminating connection", "deadlock", "could not serialize"))


def _internal_error(msg: InboundMessage) -> str:
    log.exception("failed handling %s", msg.key)
    with runtime.transaction() as db:
        wakeups = handling.Wakeups()
        handling.record(db, msg)
        handling.reply(db, wakeups, msg, replies.internal_error(), suffix="error")
        handling.mark_handled(db, msg.key)
    runtime.publish(app, wakeups)
    return "error"
