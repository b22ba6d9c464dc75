"""Commands that bring something out of the current session to the phone: ``/get`` (a file of its project,
read on its host), ``/export`` (the conversation as Markdown) and ``/cost`` (what it and its owner spent)."""

from __future__ import annotations

from sqlalchemy.orm import Session as DB

from claude_signal.core import costs, exports, files_out
from claude_signal.core.outbox import enqueue
from claude_signal.core.wakeups import wake_sender
from claude_signal.db.models import utcnow
from claude_signal.rules import commands as c
from claude_signal.rules import replies
from claude_signal.rules.attachments_out import SIGNAL_MAX_BYTES, pack
from claude_signal.wire.inbound import InboundMessage


def run(db: DB, msg: InboundMessage, command: c.Command, ctx) -> bool:  # type: ignore[no-untyped-def]
    """Answer the command; True when the session's host answers later (``/get``)."""
    from claude_signal.core.conversation import current_session, reply
    from claude_signal.core.session_commands import check_host

    session = current_session(db, msg.conversation)
    match command:
        case c.GetFile():
            if session is not None:
                check_host(db, session.host, ctx)  # an offline host is answered at once
            return files_out.request(db, msg, session)
        case c.Cost():
            reply(db, msg, costs.report(session, costs.spend(db, msg.sender, ctx.settings), ctx.settings))
        case c.Export():
            if session is None:
                reply(db, msg, replies.no_current_session())
                return False
            records = exports.load(db, session.id)
            markdown = exports.render(session, records, ctx.settings.timezone, utcnow())
            file = exports.as_file(session, markdown)
            if file.size > SIGNAL_MAX_BYTES:
                reply(db, msg, f"The transcript of session {session.id} is larger than Signal takes.")
                return False
            text = f"Transcript of session {session.id}: {replies.plural(len(records), 'turn')} ({file.filename})."
            wake_sender(db, enqueue(db, recipient=msg.conversation, text=text, dedupe_key=f"{msg.key}:reply",
                                       inbox_key=msg.key, attachments=pack([file])))
    return False
