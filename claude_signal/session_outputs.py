"""Commands that bring something out of the current session to the phone: ``/get`` (a file of its project,
read on its host), ``/export`` (the conversation as Markdown) and ``/cost`` (what it and its owner spent)."""

from __future__ import annotations

from sqlalchemy.orm import Session as DB

from claude_signal import commands as c
from claude_signal import costs, exports, files_out, replies
from claude_signal.attachments_out import SIGNAL_MAX_BYTES, pack
from claude_signal.db.models import utcnow
from claude_signal.inbound import InboundMessage
from claude_signal.outbox import enqueue
from claude_signal.wakeups import Wakeups


def run(db: DB, msg: InboundMessage, command: c.Command, ctx, wakeups: Wakeups) -> bool:  # type: ignore[no-untyped-def]
    """Answer the command; True when the session's host answers later (``/get``)."""
    from claude_signal.handling import _check_host, current_session, reply

    session = current_session(db, msg.conversation)
    match command:
        case c.GetFile():
            if session is not None:
                _check_host(db, session.host, ctx)  # an offline host is answered at once
            return files_out.request(db, msg, session, wakeups)
        case c.Cost():
            reply(db, wakeups, msg, costs.report(session, costs.spend(db, msg.sender, ctx.settings), ctx.settings))
        case c.Export():
            if session is None:
                reply(db, wakeups, msg, replies.no_current_session())
                return False
            records = exports.load(db, session.id)
            markdown = exports.render(session, records, ctx.settings.timezone, utcnow())
            file = exports.as_file(session, markdown)
            if file.size > SIGNAL_MAX_BYTES:
                reply(db, wakeups, msg, f"The transcript of session {session.id} is larger than Signal takes.")
                return False
            text = f"Transcript of session {session.id}: {replies.plural(len(records), 'turn')} ({file.filename})."
            wakeups.send_reply(enqueue(db, recipient=msg.conversation, text=text, dedupe_key=f"{msg.key}:reply",
                                       inbox_key=msg.key, attachments=pack([file])))
    return False
