"""The session state machine, and the one way to change a session's status: a compare-and-set UPDATE.

``CREATED → ACTIVE ⇄ PAUSED``, and any non-final state → ``TERMINATED``. The rules are pure data; the
:func:`transition` function turns them into ``UPDATE … WHERE id = :id AND status IN (:allowed)`` whose row
count says whether it happened, and writes the audit row in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import Executable, Row, String, bindparam, insert, select, update
from sqlalchemy.orm import Session as DB

from claude_signal.db.literals import one_of
from claude_signal.db.models import Session, Transition, utcnow
from claude_signal.rules import replies
from claude_signal.rules.states import SessionStatus

S = SessionStatus

ALLOWED: dict[SessionStatus, frozenset[SessionStatus]] = {
    S.CREATED: frozenset({S.ACTIVE, S.TERMINATED}),
    S.ACTIVE: frozenset({S.PAUSED, S.TERMINATED}),
    S.PAUSED: frozenset({S.ACTIVE, S.TERMINATED}),
    S.TERMINATED: frozenset(),
}


def sources_of(target: SessionStatus) -> frozenset[SessionStatus]:
    """Every status from which ``target`` may be reached."""
    return frozenset(src for src, targets in ALLOWED.items() if target in targets)


def is_allowed(current: SessionStatus, target: SessionStatus) -> bool:
    return target in ALLOWED[current]


class InvalidTransition(Exception):
    """The session is not in a state that allows the change; ``str()`` is the reply for the user."""

    def __init__(self, session: Session, target: SessionStatus) -> None:
        self.session = session
        self.target = target
        super().__init__(replies.invalid_transition(session.id, S(session.status), target))


@dataclass(frozen=True)
class TransitionResult:
    changed: bool
    previous: SessionStatus
    session: Session


def transition(
    db: DB,
    session_id: str,
    target: SessionStatus,
    *,
    reason: str,
    task_id: str | None = None,
    expected_version: int | None = None,
    expected_from: frozenset[SessionStatus] | None = None,
    values: dict[str, Any] | None = None,
) -> TransitionResult:
    """Move a session to ``target`` if its current status allows it; a same-state request is a no-op.

    Raises :class:`InvalidTransition` (its text is the reply for the user) when the move is not allowed and
    ``LookupError`` when the session does not exist. A fenced caller (``expected_version`` or
    ``expected_from``) gets ``changed=False`` instead of an exception when the row is no longer as it saw it.
    """
    allowed = sources_of(target) if expected_from is None else sources_of(target) & expected_from
    fenced = expected_version is not None or expected_from is not None
    for _attempt in range(5):
        current = db.get(Session, session_id, populate_existing=True)
        if current is None:
            raise LookupError(session_id)
        status = S(current.status)
        if expected_version is not None and current.version != expected_version:
            return TransitionResult(False, status, current)
        if status is target:
            return TransitionResult(False, status, current)
        if status not in allowed:
            if fenced:
                return TransitionResult(False, status, current)
            raise InvalidTransition(current, target)
        if _compare_and_set(db, current, target, reason, values):
            db.add(Transition(session_id=session_id, from_status=status, to_status=target, reason=reason,
                              task_id=task_id, at=utcnow()))
            db.flush()
            db.refresh(current)
            return TransitionResult(True, status, current)
    raise RuntimeError(f"session {session_id}: status kept changing under us")


def _compare_and_set(
    db: DB, current: Session, target: SessionStatus, reason: str, values: dict[str, Any] | None
) -> bool:
    """One UPDATE guarded by the status and version we read; its row count says whether we won."""
    now = utcnow()
    changes: dict[str, Any] = {"status": target.value, "version": current.version + 1, "updated_at": now,
                               "status_reason": reason}
    if target is S.TERMINATED:
        changes |= {"ended_at": now}
    changes |= values or {}
    result = db.execute(
        update(Session)
        .where(Session.id == current.id, Session.status == current.status, Session.version == current.version)
        .values(**changes)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def transition_many(
    db: DB, session_ids: Sequence[str], source: SessionStatus, target: SessionStatus, *, reason: str,
    task_id: str | None = None,
) -> list[Row[Any]]:
    """Move every session of ``session_ids`` still in ``source`` to ``target``: one compare-and-set UPDATE
    for the whole set and one INSERT for their audit rows (recovery pauses thousands at once). Returns the
    sessions it moved (id, new version, conversation, project path); the others changed meanwhile."""
    if not is_allowed(source, target):
        raise ValueError(f"{source} → {target} is not a transition")
    if not session_ids:
        return []
    now = utcnow()
    dialect = db.get_bind().dialect.name
    moved = list(db.connection().execute(_move_many(dialect), {
        "ids": list(session_ids), "source": source.value, "target": target.value, "now": now, "reason": reason}))
    if moved:
        db.connection().execute(_audit_many(dialect), {"ids": [row.id for row in moved], "source": source.value,
                                                "target": target.value, "reason": reason, "task": task_id,
                                                "now": now})
    return moved


@cache
def _move_many(dialect: str) -> Executable:
    table = Session.__table__
    return (update(table)
            .where(one_of(table.c.id, "ids", dialect), table.c.status == bindparam("source"))
            .values(status=bindparam("target"), version=table.c.version + 1, updated_at=bindparam("now"),
                    status_reason=bindparam("reason"))
            .returning(table.c.id, table.c.version, table.c.conversation, table.c.project_path))


@cache
def _audit_many(dialect: str) -> Executable:
    """The audit rows of a set of sessions, written by the database from their ids (INSERT … SELECT)."""
    sessions, audit = Session.__table__, Transition.__table__
    rows = select(sessions.c.id, bindparam("source", type_=String), bindparam("target", type_=String),
                  bindparam("reason", type_=String), bindparam("task", type_=String),
                  bindparam("now", type_=audit.c.at.type)).where(one_of(sessions.c.id, "ids", dialect))
    return insert(audit).from_select(["session_id", "from_status", "to_status", "reason", "task_id", "at"], rows)
