"""``outbox.send``: post replies to signal-cli-rest-api in order, one lane per recipient, with backoff.

The task names one row, but sends whatever is due for that row's recipient, oldest first, while it holds
the recipient's lane; a reply split into parts records each part as it goes, so a retry resumes where
the last attempt stopped.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import select

from claude_signal import attachments_out, chunking, outbox, runtime
from claude_signal.celery import app
from claude_signal.config import Settings
from claude_signal.db.models import Outbox, Turn, TurnStatus
from claude_signal.lanes import Lane, recipient_lane
from claude_signal.signal_api import SendError, SignalClient, client_for
from claude_signal.wakeups import OUTBOX_SEND, SIGNAL_QUEUE, SIGNAL_TYPING, Wakeup, Wakeups

log = logging.getLogger(__name__)

ROWS_PER_RUN = 20


@app.task(name=OUTBOX_SEND, bind=True)
def send(self, outbox_id: int) -> str:  # type: ignore[no-untyped-def]
    settings = runtime.settings()
    with runtime.transaction() as db:
        row = db.get(Outbox, outbox_id)
        recipient = row.recipient if row is not None else None
    if recipient is None:
        return "unknown reply"
    with recipient_lane(settings.resolved_broker_url, recipient, ttl=_hold(settings)) as lane:
        if not lane.held:  # its holder sends this one too, or finds it on the look it takes when leaving
            return "lane busy"
        result = _drain(settings, recipient, lane)
    # A reply committed while we held the lane may have seen it busy and left it to us: look once more.
    with runtime.transaction() as db:
        head = outbox.due_head(db, recipient)
    if head is not None:
        _wake(head, 0)
    return result


def _drain(settings: Settings, recipient: str, lane: Lane) -> str:
    sent = 0
    while True:
        with runtime.transaction() as db:
            row = outbox.claim_next_for(db, recipient, hold=_hold(settings))
        if row is None:
            return f"sent {sent}"
        if not _send_row(settings, row, lane, paced=sent > 0):
            return f"sent {sent}, then failed"
        sent += 1
        if sent >= ROWS_PER_RUN:  # give other recipients' sends a turn on this process
            _wake(row.id, 0)
            return f"sent {sent}, more to come"


def _hold(settings: Settings) -> float:
    """How long a sender may hold a lane or a row: one HTTP send (bounded overall by ``signal_timeout``,
    see SignalClient) and a margin. A sender that dies mid-send delays that recipient's replies by this
    much at most; one that stalls longer loses both and stops at its next renewal."""
    return settings.signal_timeout + 5.0


def _send_row(settings: Settings, row: Outbox, lane: Lane, *, paced: bool) -> bool:
    """Post one reply (all its remaining parts); True when it is done, sent or given up for good."""
    if not settings.account:
        return _failed(settings, row, SendError("CLAUDE_SIGNAL_ACCOUNT is not set on this worker", retryable=True))
    client = client_for(settings.signal_api, settings.account, settings.signal_timeout)
    delivery = chunking.plan(row.text, styled=row.text_mode == "styled", attachment_over=settings.attachment_over)
    last = len(delivery.parts) - 1
    files = attachments_out.unpack(row.attachments)
    allowance = attachments_out.upload_allowance(files)
    hold = _hold(settings) + allowance
    lane.ttl = max(lane.ttl, hold)  # a file takes longer to upload: hold the lane and the row that much longer
    timestamp = row.signal_timestamp
    for index in range(row.parts_sent, last + 1):
        if paced or index > row.parts_sent:
            time.sleep(settings.send_interval)
        if not _still_ours(settings, row, lane, hold):
            log.warning("lost the lane or the claim of reply %d to %s; leaving it to its new sender",
                        row.id, row.recipient)
            return False
        try:
            timestamp = _post(client, row.recipient, delivery, index, files,
                              settings.signal_timeout + allowance)
        except SendError as error:
            return _failed(settings, row, error)
        if index < last:
            with runtime.transaction() as db:
                outbox.mark_parts_sent(db, row.id, index + 1, timestamp, attempt=row.attempts)
    with runtime.transaction() as db:
        outbox.mark_sent(db, row.id, timestamp)
    return True


def _still_ours(settings: Settings, row: Outbox, lane: Lane, hold: float | None = None) -> bool:
    """Renew the lane and the row's claim for one more POST (which ends within ``signal_timeout``, less
    than the hold); False when either lapsed and may be another sender's: that sender must be the only one."""
    if not lane.renew():
        return False
    with runtime.transaction() as db:
        return outbox.renew_claim(db, row, hold or _hold(settings))


def _post(client: SignalClient, recipient: str, delivery: chunking.Delivery, index: int,
          files: list[attachments_out.OutFile], timeout: float) -> int | None:
    """One part; the last carries the attachments (the long text's, then the row's own files)."""
    part = delivery.parts[index]
    last = index == len(delivery.parts) - 1
    attach = [*([delivery.attachment] if delivery.attachment else []), *(f.data_uri() for f in files)] if last else []
    return client.send(recipient, part.text, text_mode=part.text_mode, base64_attachments=attach or None,
                       timeout=timeout).timestamp


def _failed(settings: Settings, row: Outbox, error: SendError) -> bool:
    with runtime.transaction() as db:
        plan = outbox.mark_failed_attempt(db, row, str(error), retryable=error.retryable,
                                          max_age=settings.outbox_max_age, retry_after=error.retry_after)
    if plan.delay is None:
        log.error("gave up sending reply %d to %s: %s", row.id, row.recipient, error)
        return True
    log.warning("reply %d not sent (attempt %d, next in %.0fs): %s", row.id, row.attempts, plan.delay, error)
    _wake(row.id, plan.delay)
    return False


def _still_running(turn_id: int) -> bool:
    with runtime.transaction() as db:
        return db.execute(select(Turn.status).where(Turn.id == turn_id)).scalar_one_or_none() == TurnStatus.RUNNING


def _wake(outbox_id: int, delay: float) -> None:
    runtime.publish(app, Wakeups([Wakeup(OUTBOX_SEND, (outbox_id,), queue=SIGNAL_QUEUE, countdown=delay or None)]))


@app.task(name=SIGNAL_TYPING, expires=30)
def typing(recipient: str, on: bool, turn_id: int | None = None) -> str:  # type: ignore[no-untyped-def]
    """Show or clear "typing…" in a conversation, from where signal-cli-rest-api is reachable. Best effort:
    a late indicator is worthless, so it expires instead of waiting in a queue; and a "typing" that reaches
    a sender after its turn ended (the two messages ran side by side) is dropped, never left showing."""
    settings = runtime.settings()
    if on and turn_id is not None and not _still_running(turn_id):
        return "turn over"
    if settings.account:
        client_for(settings.signal_api, settings.account, settings.signal_timeout).set_typing(recipient, on)
    return "ok"
