"""``outbox.send``: post one reply to signal-cli-rest-api, retrying what may pass with backoff."""

from __future__ import annotations

import logging

from claude_signal import outbox, runtime
from claude_signal.celery import app
from claude_signal.signal_api import SendError, client_for
from claude_signal.wakeups import OUTBOX_SEND, Wakeup, Wakeups

log = logging.getLogger(__name__)


@app.task(name=OUTBOX_SEND, bind=True)
def send(self, outbox_id: int) -> str:  # type: ignore[no-untyped-def]
    settings = runtime.settings()
    with runtime.transaction() as db:
        row = outbox.claim(db, outbox_id)
    if row is None:
        return "not due"
    if not settings.account:
        error = SendError("CLAUDE_SIGNAL_ACCOUNT is not set on this worker", retryable=True)
    else:
        client = client_for(settings.signal_api, settings.account, settings.signal_timeout)
        try:
            receipt = client.send(row.recipient, row.text, text_mode=row.text_mode)
        except SendError as failure:
            error = failure
        else:
            with runtime.transaction() as db:
                outbox.mark_sent(db, outbox_id, receipt.timestamp)
            return "sent"
    with runtime.transaction() as db:
        plan = outbox.mark_failed_attempt(db, row, str(error), retryable=error.retryable,
                                          max_age=settings.outbox_max_age, retry_after=error.retry_after)
    if plan.delay is None:
        log.error("gave up sending reply %d to %s: %s", outbox_id, row.recipient, error)
        return "failed"
    log.warning("reply %d not sent (attempt %d, next in %.0fs): %s", outbox_id, row.attempts, plan.delay, error)
    runtime.publish(app, Wakeups([Wakeup(OUTBOX_SEND, (outbox_id,), countdown=plan.delay)]))
    return "retry"
