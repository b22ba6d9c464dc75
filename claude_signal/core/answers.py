"""Answering Claude's questions and plans from the phone: a plain message (or a reply to the question)
while one waits is its answer, not a new prompt.

Only rows change here, as for /approve: the worker running the turn polls the approval and answers
Claude. A question's answers are kept as JSON in the row's ``reason`` (partial ones while it waits for
the rest of a multi-question request), so no schema change is needed.
"""

from __future__ import annotations

import json

from sqlalchemy import select, update
from sqlalchemy.orm import Session as DB

from claude_signal.db.models import Approval, Conversation, utcnow
from claude_signal.rules import asks
from claude_signal.rules.states import ApprovalStatus
from claude_signal.wire.inbound import InboundMessage


def waiting(db: DB, conversation: str) -> Approval | None:
    """The oldest question or plan waiting in the conversation's current session."""
    current = db.get(Conversation, conversation)
    if current is None or current.current_session_id is None:
        return None
    return db.execute(select(Approval).where(
        Approval.session_id == current.current_session_id, Approval.status == ApprovalStatus.PENDING,
        Approval.tool_name.in_(asks.INTERACTIVE_TOOLS)).order_by(Approval.created_at).limit(1)
    ).scalar_one_or_none()


def answer_pending(db: DB, msg: InboundMessage) -> bool:
    """Treat ``msg`` as the answer to a waiting question or plan if it is one; True when it was."""
    from claude_signal.core.conversation import reply
    from claude_signal.core.turn_control import approval_for_message

    text = msg.text.strip()
    if not text or text.startswith("/"):
        return False
    if msg.quote_timestamp:
        approval = approval_for_message(db, msg.quote_timestamp)
        if approval is None or approval.tool_name not in asks.INTERACTIVE_TOOLS:
            return False
        if approval.status != ApprovalStatus.PENDING:
            reply(db, msg, f"That question was already {approval.status.lower()}.")
            return True
    else:
        approval = waiting(db, msg.conversation)
        if approval is None:
            return False
    if approval.tool_name == asks.PLAN_TOOL:
        reply(db, msg, _answer_plan(db, approval, text, msg.sender))
    else:
        reply(db, msg, _answer_question(db, approval, text, msg.sender), suffix=f"approval:{approval.id}")
    return True


def _settle(db: DB, approval_id: str, status: ApprovalStatus, reason: str | None, by: str) -> bool:
    return db.execute(
        update(Approval).where(Approval.id == approval_id, Approval.status == ApprovalStatus.PENDING)
        .values(status=status, reason=reason, decided_by=by, decided_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount == 1


def _answer_question(db: DB, approval: Approval, text: str, by: str) -> str:
    asked = asks.questions(approval.tool_input or {})
    got = asks.answers_so_far(approval.reason)
    todo = [q for q in asked if q["question"] not in got]
    if not todo:
        return "Claude already has your answers."
    question = todo[0]
    got[question["question"]] = asks.match_answer(question, text)
    ack = f"Answer sent: {got[question['question']]}"
    if len(todo) == 1:
        _settle(db, approval.id, ApprovalStatus.APPROVED, json.dumps(got, ensure_ascii=False), by)
        return ack
    db.execute(update(Approval).where(Approval.id == approval.id, Approval.status == ApprovalStatus.PENDING)
               .values(reason=json.dumps(got, ensure_ascii=False)).execution_options(synchronize_session=False))
    following = asks.render_question(approval.id, todo[1], len(asked) - len(todo) + 1, len(asked))
    return f"Noted: {got[question['question']]}\n\n{following}"


def _answer_plan(db: DB, approval: Approval, text: str, by: str) -> str:
    choice = asks.plan_choice(text)
    if choice.kind == "approve":
        _settle(db, approval.id, ApprovalStatus.APPROVED, None, by)
        return "Plan approved: Claude starts on it."
    if choice.kind == "approve_edits":
        _settle(db, approval.id, ApprovalStatus.APPROVED, asks.PLAN_APPROVED_WITH_EDITS, by)
        return "Plan approved: Claude starts on it, and its edits are accepted for the rest of this turn."
    if choice.kind == "keep":
        _settle(db, approval.id, ApprovalStatus.DENIED, None, by)
        return "Claude keeps planning."
    _settle(db, approval.id, ApprovalStatus.DENIED, choice.text, by)
    return "Sent your feedback: Claude revises the plan."
