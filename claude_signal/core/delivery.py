"""Delivery: posting replies to signal-cli-rest-api in order, one lane per recipient, with backoff.

``outbox.send`` (:func:`send_due`) names one row, but sends whatever is due for that row's recipient, oldest
first, while it holds the recipient's lane; a reply split into parts records each part as it goes, so a
retry resumes where the last attempt stopped.

Most replies never need it: the task that wrote a short reply (a command's answer, a turn's last words)
claims it in the same transaction and posts it right after the commit (:func:`claim_here`, :func:`post_here`,
:func:`mark_posted`). Only a reply to a recipient with no other reply ahead is claimed there, so order holds
without the lane; ``outbox.send`` remains for retries, pacing, long replies, machines that cannot reach
Signal, and claims whose sender died.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session as DB

from claude_signal.config import Settings
from claude_signal.core import outbox
from claude_signal.core.send_lanes import Lane, recipient_lane
from claude_signal.core.unit_of_work import TaskContext
from claude_signal.core.wakeups import Wakeup, Wakeups, pending, wake_sender
from claude_signal.db.models import Outbox, Turn
from claude_signal.edge.signal_client import SendError, SignalClient, client_for
from claude_signal.rules import attachments_out, chunking
from claude_signal.rules.states import TurnStatus
from claude_signal.wire.queues import OUTBOX_SEND, SIGNAL_QUEUE

log = logging.getLogger(__name__)

ROWS_PER_RUN = 20
# A claim or lane this young needs no renewal before a POST: the hold (``signal_timeout`` + 5 s) outlasts
# the POST's own bound with seconds to spare.
FRESH = 1.0


def _drain(ctx: TaskContext, recipient: str, lane: Lane, lane_at: float) -> str:
    """Claim, post and mark the recipient's due replies in order; a mark and the next claim share one
    transaction."""
    settings = ctx.settings
    sent = 0
    with ctx.transaction() as db:
        row = outbox.claim_next_for(db, recipient, hold=_hold(settings))
    while row is not None:
        claimed_at = time.monotonic()
        posted = _send_row(ctx, row, lane, paced=sent > 0, fresh_since=min(lane_at, claimed_at))
        if posted is False:
            return f"sent {sent}, then failed"
        sent += 1
        more = sent < ROWS_PER_RUN
        with ctx.transaction() as db:
            if posted is not True:
                outbox.mark_sent(db, row.id, posted.timestamp, attempt=row.attempts)
            following = outbox.claim_next_for(db, recipient, hold=_hold(settings)) if more else None
        if not more:  # give other recipients' sends a turn on this process
            _wake(ctx, row.id, 0)
            return f"sent {sent}, more to come"
        row = following
    return f"sent {sent}"


def _hold(settings: Settings) -> float:
    """How long a sender may hold a lane or a row: one HTTP send (bounded overall by ``signal_timeout``,
    see SignalClient) and a margin. A sender that dies mid-send delays that recipient's replies by this
    much at most; one that stalls longer loses both and stops at its next renewal."""
    return settings.signal_timeout + 5.0


class Posted:
    """Every part of a reply went out; ``timestamp`` is the last part's, for the mark."""

    def __init__(self, timestamp: int | None) -> None:
        self.timestamp = timestamp


def _send_row(ctx: TaskContext, row: outbox.Claimed, lane: Lane | None, *, paced: bool,
              fresh_since: float) -> Posted | bool:
    """Post one claimed reply (all its remaining parts). :class:`Posted` when it went out (the caller marks
    it), True when it was given up for good, False when it stops here (a retry is scheduled, or the row or
    the lane is another sender's now). ``lane`` None: the reply is the head of its recipient's and the only
    one its sender posts, so its claim alone keeps the order."""
    settings = ctx.settings
    if not settings.account:
        return _failed(ctx, row, SendError("CLAUDE_SIGNAL_ACCOUNT is not set on this worker", retryable=True))
    client = client_for(settings.signal_api, settings.account, settings.signal_timeout)
    delivery = _plan(settings, row)
    last = len(delivery.parts) - 1
    files = attachments_out.unpack(row.attachments)
    allowance = attachments_out.upload_allowance(files)
    hold = _hold(settings) + allowance
    if lane is not None:  # a file takes longer to upload: hold the lane and the row that much longer
        lane.ttl = max(lane.ttl, hold)
    timestamp = row.signal_timestamp
    for index in range(row.parts_sent, last + 1):
        if paced or index > row.parts_sent:
            time.sleep(settings.send_interval)
        if time.monotonic() - fresh_since > FRESH:
            if not _still_ours(ctx, row, lane, hold):
                log.warning("lost the lane or the claim of reply %d to %s; leaving it to its new sender",
                            row.id, row.recipient)
                return False
            fresh_since = time.monotonic()
        try:
            timestamp = _post(client, row.recipient, delivery, index, files,
                              settings.signal_timeout + allowance)
        except SendError as error:
            return _failed(ctx, row, error)
        if index < last:
            with ctx.transaction() as db:
                outbox.mark_parts_sent(db, row.id, index + 1, timestamp, attempt=row.attempts)
    return Posted(timestamp)


def _plan(settings: Settings, row: outbox.Claimed) -> chunking.Delivery:
    return chunking.plan(row.text, styled=row.text_mode == "styled", attachment_over=settings.attachment_over)


def _still_ours(ctx: TaskContext, row: outbox.Claimed, lane: Lane | None, hold: float | None = None) -> bool:
    """Renew the lane and the row's claim for one more POST (which ends within ``signal_timeout``, less
    than the hold); False when either lapsed and may be another sender's: that sender must be the only one."""
    if lane is not None and not lane.renew():
        return False
    with ctx.transaction() as db:
        return outbox.renew_claim(db, row, hold or _hold(ctx.settings))


# ------------------------------------------------------------------ sent by the task that wrote the reply


def _sends_here(settings: Settings) -> bool:
    return bool(settings.signal_sender and settings.account)


def offer_here(db: DB, settings: Settings) -> None:
    """At the start of a transaction whose task will call :func:`claim_here`: the short replies it writes
    are written claimed for it, when nothing is ahead of them (one statement instead of two)."""
    if _sends_here(settings):
        outbox.offer_to_send_here(db, outbox.SendHere(
            _hold(settings), lambda text, mode: _fits_one_message(settings, text, mode)))


def _fits_one_message(settings: Settings, text: str, text_mode: str) -> bool:
    delivery = chunking.plan(text, styled=text_mode == "styled", attachment_over=settings.attachment_over)
    return delivery.count() == 1 and delivery.attachment is None


def claim_here(db: DB, settings: Settings) -> list[outbox.Claimed]:
    """In the transaction that wrote them: claim the replies it asked to send that this task can post
    itself right after its commit, and drop their wake-ups. Only on a machine that sends to Signal, only a
    reply that goes out in one message, and only the head of its recipient's replies (so at most one per
    recipient); the others keep their ``outbox.send``."""
    if not _sends_here(settings):
        return []
    mine = outbox.take_claimed_at_insert(db)  # written claimed, as offer_here asked
    wakeups = pending(db)
    for wakeup in list(wakeups):
        if wakeup.task != OUTBOX_SEND:
            continue
        if any(row.id == wakeup.args[0] for row in mine):
            wakeups.discard(wakeup)
            continue
        row = outbox.claim_to_send_here(db, wakeup.args[0], _hold(settings))
        if row is None:
            continue
        delivery = _plan(settings, row)
        if delivery.count() > 1 or delivery.attachment is not None or row.parts_sent or row.attachments:
            outbox.hand_back(db, row)  # long replies and files are paced by outbox.send
            continue
        wakeups.discard(wakeup)
        mine.append(row)
    return mine


def post_here(ctx: TaskContext, rows: Sequence[outbox.Claimed], claimed_at: float
              ) -> list[tuple[outbox.Claimed, Posted]]:
    """Post the replies :func:`claim_here` claimed, after the commit; those that failed are rescheduled
    (through ``outbox.send``) and left out of the answer, the others are for :func:`mark_posted`."""
    posted = []
    for row in rows:
        outcome = _send_row(ctx, row, None, paced=False, fresh_since=claimed_at)
        if isinstance(outcome, Posted):
            posted.append((row, outcome))
    return posted


def mark_posted(db: DB, posted: Sequence[tuple[outbox.Claimed, Posted]], *, also: ColumnElement[Any] | None = None,
                also_params: dict[str, Any] | None = None) -> Any:
    """Mark replies posted by the task that wrote them; wake the sender of any reply that waited behind one
    (its own ``outbox.send`` found this one ahead and left it). ``also``: a column the first mark's
    statement returns besides (see :func:`outbox.mark_sent_then_due_head`); its value, None when no mark
    took place."""
    answer = None
    for index, (row, outcome) in enumerate(posted):
        marked = outbox.mark_sent_then_due_head(db, row, outcome.timestamp, also=also if index == 0 else None,
                                                also_params=also_params)
        if marked is not None and marked.due_head is not None:
            wake_sender(db, marked.due_head)
        if index == 0 and marked is not None:
            answer = marked.also
    return answer


def _post(client: SignalClient, recipient: str, delivery: chunking.Delivery, index: int,
          files: list[attachments_out.OutFile], timeout: float) -> int | None:
    """One part; the last carries the attachments (the long text's, then the row's own files)."""
    part = delivery.parts[index]
    last = index == len(delivery.parts) - 1
    attach = [*([delivery.attachment] if delivery.attachment else []), *(f.data_uri() for f in files)] if last else []
    return client.send(recipient, part.text, text_mode=part.text_mode, base64_attachments=attach or None,
                       timeout=timeout).timestamp


def _failed(ctx: TaskContext, row: outbox.Claimed, error: SendError) -> bool:
    settings = ctx.settings
    with ctx.transaction() as db:
        plan = outbox.mark_failed_attempt(db, row, str(error), retryable=error.retryable,
                                          max_age=settings.outbox_max_age, retry_after=error.retry_after)
    if plan.delay is None:
        log.error("gave up sending reply %d to %s: %s", row.id, row.recipient, error)
        return True
    log.warning("reply %d not sent (attempt %d, next in %.0fs): %s", row.id, row.attempts, plan.delay, error)
    _wake(ctx, row.id, plan.delay)
    return False


def _still_running(ctx: TaskContext, turn_id: int) -> bool:
    with ctx.transaction(read_only=True) as db:
        return db.execute(select(Turn.status).where(Turn.id == turn_id)).scalar_one_or_none() == TurnStatus.RUNNING


def _wake(ctx: TaskContext, outbox_id: int, delay: float) -> None:
    ctx.publish(Wakeups([Wakeup(OUTBOX_SEND, (outbox_id,), queue=SIGNAL_QUEUE, countdown=delay or None)]))


def send_due(ctx: TaskContext, outbox_id: int) -> str:
    """``outbox.send``: send what is due for the recipient of reply ``outbox_id``, holding its lane."""
    settings = ctx.settings
    with ctx.transaction(read_only=True) as db:
        recipient = db.execute(select(Outbox.recipient).where(Outbox.id == outbox_id)).scalar_one_or_none()
    if recipient is None:
        return "unknown reply"
    with recipient_lane(settings.resolved_broker_url, recipient, ttl=_hold(settings)) as lane:
        if not lane.held:  # its holder sends this one too, or finds it on the look it takes when leaving
            return "lane busy"
        result = _drain(ctx, recipient, lane, time.monotonic())
    # A reply committed while we held the lane may have seen it busy and left it to us: look once more.
    with ctx.transaction(read_only=True) as db:
        head = outbox.due_head(db, recipient)
    if head is not None:
        _wake(ctx, head, 0)
    return result


def show_typing(ctx: TaskContext, recipient: str, on: bool, turn_id: int | None) -> str:
    """Show or clear "typing…"; a "typing" that arrives after its turn ended (the two messages ran side by
    side) is dropped, never left showing."""
    settings = ctx.settings
    if on and turn_id is not None and not _still_running(ctx, turn_id):
        return "turn over"
    if settings.account:
        client_for(settings.signal_api, settings.account, settings.signal_timeout).set_typing(recipient, on)
    return "ok"
