"""Commands that steer the work inside a session: /cancel, /approve, /deny, /mode, /model, /quiet.

They only change rows; the worker running the turn polls those rows and acts (sends ``interrupt``, answers
Claude's permission request), so they work from whichever worker handles the command.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session as DB

from claude_signal.core import session_settings
from claude_signal.db.models import Approval, Outbox, Session, Turn, utcnow
from claude_signal.rules import commands as c
from claude_signal.rules import replies
from claude_signal.rules.states import ApprovalStatus, SessionStatus, TurnStatus
from claude_signal.wire.inbound import InboundMessage


def run(db: DB, msg: InboundMessage, command: c.Command, ctx) -> None:  # type: ignore[no-untyped-def]
    from claude_signal.core.conversation import Reply, current_session, reply

    session = current_session(db, msg.conversation)
    match command:
        case c.Cancel():
            text = cancel(db, session)
        case c.Approve(ref, all_, none):
            text = approve_none(db, session) if none else approve(db, msg, session, ref, all_)
        case c.Deny(ref, reason):
            text = deny(db, msg, session, ref, reason)
        case c.Mode(mode):
            text = set_mode(db, session, mode)
        case c.Model(name, show):
            text = session_settings.model(db, session, name, show=show)
        case c.Quiet(on):
            text = session_settings.quiet(db, session, on)
        case _:
            raise Reply(replies.unknown_command(msg.text.split()[0]))
    reply(db, msg, text)


def cancel(db: DB, session: Session | None) -> str:
    if session is None:
        return replies.no_current_session()
    turn = db.execute(select(Turn).where(Turn.session_id == session.id, Turn.status == TurnStatus.RUNNING)
                      ).scalar_one_or_none()
    if turn is None:
        return replies.nothing_running(session.id)
    db.execute(update(Turn).where(Turn.id == turn.id, Turn.status == TurnStatus.RUNNING)
               .values(cancel_requested=True).execution_options(synchronize_session=False))
    return replies.cancelling(turn.prompt)


def _pending(db: DB, session: Session | None, msg: InboundMessage) -> list[Approval]:
    stmt = select(Approval).where(Approval.status == ApprovalStatus.PENDING).order_by(Approval.created_at)
    if session is not None:
        stmt = stmt.where(Approval.session_id == session.id)
    else:
        stmt = stmt.join(Session, Session.id == Approval.session_id).where(Session.conversation == msg.conversation)
    return list(db.execute(stmt).scalars())


def decide(db: DB, approval_id: str, status: ApprovalStatus, by: str, reason: str | None = None) -> bool:
    """Compare-and-set a PENDING approval to its decision; False if it was decided (or withdrawn) already."""
    return db.execute(
        update(Approval).where(Approval.id == approval_id, Approval.status == ApprovalStatus.PENDING)
        .values(status=status, decided_by=by, decided_at=utcnow(), reason=reason)
        .execution_options(synchronize_session=False)
    ).rowcount == 1


def _pick(pending: list[Approval], ref: str | None) -> Approval | str:
    if not pending:
        return replies.no_pending_approvals()
    if ref is None:
        if len(pending) == 1:
            return pending[0]
        return replies.several_pending([(a.id, a.tool_name, a.input_summary) for a in pending])
    matches = [a for a in pending if a.id.startswith(ref)]
    if len(matches) != 1:
        return replies.no_such_approval(ref, [a.id for a in pending])
    return matches[0]


def approve(db: DB, msg: InboundMessage, session: Session | None, ref: str | None, all_: bool) -> str:
    pending = _pending(db, session, msg)
    if all_:
        if session is None or session.status == SessionStatus.TERMINATED:
            return replies.no_current_session()
        db.execute(update(Session).where(Session.id == session.id).values(approve_all=True)
                   .execution_options(synchronize_session=False))
        approved = [a for a in pending if decide(db, a.id, ApprovalStatus.APPROVED, msg.sender)]
        return replies.approved_all(session.id, len(approved))
    picked = _pick(pending, ref)
    if isinstance(picked, str):
        return picked
    decide(db, picked.id, ApprovalStatus.APPROVED, msg.sender)
    return replies.approved(picked.id, picked.tool_name, picked.input_summary)


def approve_none(db: DB, session: Session | None) -> str:
    if session is None:
        return replies.no_current_session()
    db.execute(update(Session).where(Session.id == session.id).values(approve_all=False)
               .execution_options(synchronize_session=False))
    return replies.approve_all_off(session.id)


def deny(db: DB, msg: InboundMessage, session: Session | None, ref: str | None, reason: str | None) -> str:
    pending = _pending(db, session, msg)
    if ref is not None and not any(a.id.startswith(ref) for a in pending):
        # "/deny bad idea": the first word was not an approval id after all, so it is part of the reason.
        reason = f"{ref} {reason}".strip() if reason else ref
        ref = None
    picked = _pick(pending, ref)
    if isinstance(picked, str):
        return picked
    decide(db, picked.id, ApprovalStatus.DENIED, msg.sender, reason)
    return replies.denied(picked.id, picked.tool_name, reason)


def set_mode(db: DB, session: Session | None, mode: str) -> str:
    if session is None:
        return replies.no_current_session()
    if session.status == SessionStatus.TERMINATED:
        return replies.not_accepting_prompts(session.id, SessionStatus.TERMINATED)
    # A new mode is a fresh start for permissions: /approve all does not carry over into it.
    db.execute(update(Session).where(Session.id == session.id).values(permission_mode=mode, approve_all=False)
               .execution_options(synchronize_session=False))
    return replies.mode_set(session.id, mode)


APPROVE_WORDS = {"yes", "y", "ok", "okay", "approve", "allow", "go", "👍", "✅"}
DENY_WORDS = {"no", "n", "deny", "stop", "don't", "dont", "👎", "❌"}


def approval_for_message(db: DB, signal_timestamp: int | None) -> Approval | None:
    """The approval whose request message Signal stamped with ``signal_timestamp`` (a reply or reaction target)."""
    if signal_timestamp is None:
        return None
    key = db.execute(select(Outbox.dedupe_key).where(Outbox.signal_timestamp == signal_timestamp)).scalar_one_or_none()
    if key is None or ":approval:" not in key:
        return None
    return db.get(Approval, key.rsplit(":approval:", 1)[1])


def answer_by_message(db: DB, msg: InboundMessage) -> str | None:
    """A 👍/👎 reaction to an approval request, or a reply to it saying yes or no; None if it is neither."""
    if msg.kind == "reaction":
        approval = approval_for_message(db, msg.reaction_target_timestamp)
        word = (msg.reaction_emoji or "").strip()
        reason = None
    else:
        approval = approval_for_message(db, msg.quote_timestamp)
        first, _, rest = msg.text.strip().partition(" ")
        word, reason = first.lower().rstrip(".!,"), rest.strip() or None
    if approval is None or word not in APPROVE_WORDS | DENY_WORDS:
        return None
    if approval.status != ApprovalStatus.PENDING:
        return replies.already_decided(approval.id, approval.status)
    if word in APPROVE_WORDS:
        decide(db, approval.id, ApprovalStatus.APPROVED, msg.sender)
        return replies.approved(approval.id, approval.tool_name, approval.input_summary)
    decide(db, approval.id, ApprovalStatus.DENIED, msg.sender, reason)
    return replies.denied(approval.id, approval.tool_name, reason)
