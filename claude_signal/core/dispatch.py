"""``command.handle``'s domain: record an inbound message once, understand it, act, and queue the reply.

Everything happens in the caller's one transaction. Work that needs a particular machine (opening a
directory, running ``claude``) is handed to that host's queue as a :class:`~claude_signal.core.wakeups.Wakeup`,
and the inbox row stays RECEIVED until the host finishes it; everything else marks the row HANDLED here.
A redelivered message whose row is HANDLED only re-sends replies that are still unsent.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session as DB

from claude_signal.core import ordering, outbox
from claude_signal.core.conversation import Context, NotYet, Reply, SessionReading, current_session, reply
from claude_signal.core.inbox import is_authorized, leave_for_host, mark_handled, record
from claude_signal.core.lifecycle import InvalidTransition
from claude_signal.core.session_commands import hosts, list_sessions, prompt, resume, start, status, stop
from claude_signal.core.wakeups import Wakeups, pending, wake_sender
from claude_signal.rules import commands as c
from claude_signal.rules import replies
from claude_signal.rules.schedule_commands import ScheduleCommand
from claude_signal.rules.states import InboxStatus, SessionStatus
from claude_signal.wire.inbound import InboundMessage

log = logging.getLogger(__name__)








# --------------------------------------------------------------------------------------------- inbox














def _group_business(db: DB, msg: InboundMessage) -> bool:
    """A group is the bot's business when a live session is bound to it, or when the message is an explicit
    command or answers one of the bot's questions; the owner's chatter in other groups is never answered."""
    if msg.kind == "message" and msg.text.lstrip().startswith("/"):
        return True
    session = current_session(db, msg.conversation)
    if session is not None and session.status != SessionStatus.TERMINATED:
        return True
    target = msg.reaction_target_timestamp if msg.kind == "reaction" else msg.quote_timestamp
    if target:  # an answer to the bot's own question in this group
        from claude_signal.core.turn_control import approval_for_message

        return approval_for_message(db, target) is not None
    return False


# ------------------------------------------------------------------------------------------ dispatch


def handle(db: DB, msg: InboundMessage, ctx: Context) -> Wakeups:
    """Handle one inbound message exactly once; safe to call again for the same message."""
    wakeups = pending(db)
    command = c.parse(msg.text)
    row = record(db, msg, with_predecessor=ctx.keep_order and msg.kind != "reaction",
                 handled_here=not _may_be_finished_elsewhere(msg, command),
                 reading=SessionReading(msg.conversation, isinstance(command, c.Status)))
    if row.status == InboxStatus.HANDLED:
        for outbox_id in outbox.unsent_for_inbox(db, msg.key):
            wake_sender(db, outbox_id)
        return wakeups
    order = ordering.verdict(db, msg, row.received_at) if ctx.keep_order else ordering.Verdict.READY
    if order is ordering.Verdict.WAIT:
        raise NotYet(msg.after)
    if not is_authorized(ctx.settings, msg):
        log.warning("dropped message %s from unauthorized sender %s", msg.key, msg.sender)
        mark_handled(db, msg.key)
        return wakeups
    if msg.note_to_self and outbox.is_own_send(db, msg.conversation, msg.timestamp, msg.text):
        log.info("ignored %s: it is the bot's own reply seen again in Note to Self", msg.key)
        mark_handled(db, msg.key)
        return wakeups
    if msg.group_id and not _group_business(db, msg):
        log.info("ignored %s in a group with no session: not a command", msg.key)
        mark_handled(db, msg.key)
        return wakeups
    if msg.kind == "edit":
        reply(db, msg, "Edited messages are not sent to Claude; send the corrected text as a new message.")
        mark_handled(db, msg.key)
        return wakeups
    from claude_signal.core.answers import answer_pending
    from claude_signal.core.turn_control import answer_by_message

    if msg.kind == "message" and answer_pending(db, msg):  # Claude's question or plan, answered
        mark_handled(db, msg.key)
        return wakeups

    answer = answer_by_message(db, msg) if msg.kind == "reaction" or msg.quote_timestamp else None
    if answer is not None:
        reply(db, msg, answer)
        mark_handled(db, msg.key)
        return wakeups
    if msg.kind == "reaction":
        log.info("ignored reaction %s from %s", msg.reaction_emoji, msg.sender)
        mark_handled(db, msg.key)
        return wakeups
    from claude_signal.core.attachments_in import refusal

    if msg.attachments and (refused := refusal(msg)):
        reply(db, msg, refused)
        mark_handled(db, msg.key)
        return wakeups
    if isinstance(command, c.Prompt) and (order is ordering.Verdict.RELEASED
                                          or ordering.follows_failed_switch(db, msg)):
        lost = order is ordering.Verdict.RELEASED
        reply(db, msg, replies.prompt_predecessor_lost() if lost else replies.prompt_after_failed_switch(),
              suffix=ordering.FAILED_SWITCH)
        mark_handled(db, msg.key)
        return wakeups
    if not isinstance(command, c.Prompt):  # a command lets a picture waiting for its caption go first
        from claude_signal.core import captions

        captions.release(db, current_session(db, msg.conversation, with_turn_state=isinstance(command, c.Status)))
    try:
        deferred = _dispatch(db, msg, command, ctx)
    except Reply as answer:
        reply(db, msg, str(answer))
        deferred = False
    except InvalidTransition as invalid:
        reply(db, msg, str(invalid))
        deferred = False
    if not deferred:
        mark_handled(db, msg.key)
    else:
        leave_for_host(db, msg.key)
    return wakeups


_FINISHED_ELSEWHERE = (c.SessionStart, c.SessionResume, c.GetFile, c.Export, c.Cost)


def _may_be_finished_elsewhere(msg: InboundMessage, command: c.Command) -> bool:
    """Only these commands can leave their message to a host (``_dispatch`` returns True); every other
    message ends HANDLED in the transaction that records it, or that transaction rolls back."""
    return msg.kind == "message" and isinstance(command, _FINISHED_ELSEWHERE)


def _dispatch(db: DB, msg: InboundMessage, command: c.Command, ctx: Context) -> bool:
    """Run the command; True when a host will finish it (and reply) later."""
    match command:
        case c.SessionStart(target):
            return start(db, msg, target, ctx)
        case c.SessionResume(ref):
            return resume(db, msg, ref, ctx)
        case c.SessionStop(ref):
            stop(db, msg, ref, ctx)
        case c.SessionList(include_ended):
            reply(db, msg, list_sessions(db, msg, include_ended))
        case c.Help():
            reply(db, msg, replies.HELP)
        case c.Status():
            reply(db, msg, status(db, msg, ctx))
        case c.Hosts():
            reply(db, msg, hosts(db, ctx))
        case c.Prompt(text):
            prompt(db, msg, text, ctx)
        case c.Usage(text):
            reply(db, msg, text)
        case c.Unknown(word):
            reply(db, msg, replies.unknown_command(word, msg.text))
        case c.GetFile() | c.Export() | c.Cost():
            from claude_signal.core import session_outputs

            return session_outputs.run(db, msg, command, ctx)
        case ScheduleCommand():
            from claude_signal.core.schedules import run_command

            reply(db, msg, run_command(db, msg, command, ctx.settings))
        case _:
            from claude_signal.core import turn_control as conversation_control  # turn-level commands

            conversation_control.run(db, msg, command, ctx)
    return False
