"""Finding and pausing sessions whose worker died, and cleaning up what it left behind.

Orphaned = ACTIVE, and its lease has lapsed, or its owner node now runs a different incarnation (it
restarted), or its owner node is unknown. Pausing goes through the same compare-and-set as everything else,
fenced by the version read, so two workers recovering at once pause (and notify) each session once.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session as DB

from claude_signal import outbox, replies
from claude_signal.db.models import Session, SessionStatus, Turn, TurnStatus, Worker, utcnow
from claude_signal.lifecycle import transition
from claude_signal.procs import kill_recorded_group

log = logging.getLogger(__name__)

ORPHAN_REASON = "owner worker lost"


@dataclass(frozen=True)
class Paused:
    session_id: str
    version: int
    conversation: str
    project_path: str
    interrupted_prompt: str | None


@dataclass(frozen=True)
class LeftoverProcess:
    turn_id: int
    pid: int | None
    pgid: int
    started: int | None


def find_orphans(db: DB, now: datetime | None = None) -> list[Session]:
    now = now or utcnow()
    stmt = (
        select(Session)
        .outerjoin(Worker, Worker.node == Session.owner_node)
        .where(
            Session.status == SessionStatus.ACTIVE,
            or_(
                Session.lease_expires_at.is_(None),
                Session.lease_expires_at < now,
                Worker.node.is_(None),
                Worker.incarnation != Session.owner_incarnation,
            ),
        )
        .order_by(Session.id)
    )
    return list(db.execute(stmt).scalars())


def pause_orphan(db: DB, session: Session, *, task_id: str | None) -> Paused | None:
    """Pause one orphan if nobody beat us to it; its RUNNING turn becomes INTERRUPTED."""
    result = transition(
        db, session.id, SessionStatus.PAUSED, reason=ORPHAN_REASON, task_id=task_id,
        expected_version=session.version, expected_from=frozenset({SessionStatus.ACTIVE}),
        values={"owner_node": None, "owner_incarnation": None, "lease_expires_at": None},
    )
    if not result.changed:
        return None
    running = db.execute(
        select(Turn).where(Turn.session_id == session.id, Turn.status == TurnStatus.RUNNING)
    ).scalars().all()
    for turn in running:
        db.execute(update(Turn).where(Turn.id == turn.id, Turn.status == TurnStatus.RUNNING)
                   .values(status=TurnStatus.INTERRUPTED, finished_at=utcnow(),
                           result_summary="interrupted: the worker running it stopped")
                   .execution_options(synchronize_session=False))
    prompt = running[0].prompt if running else None
    return Paused(session.id, result.session.version, session.conversation, session.project_path, prompt)


def notify(db: DB, paused: list[Paused]) -> list[int]:
    """One message per conversation naming every session paused there; returns outbox ids."""
    by_conversation: dict[str, list[Paused]] = defaultdict(list)
    for item in paused:
        by_conversation[item.conversation].append(item)
    ids = []
    for conversation, items in sorted(by_conversation.items()):
        key = "recovery:" + ",".join(f"{p.session_id}@{p.version}" for p in items)
        text = replies.recovered([(p.session_id, p.project_path, p.interrupted_prompt) for p in items])
        ids.append(outbox.enqueue(db, recipient=conversation, text=text, dedupe_key=key))
    return ids


def recover_orphans(db: DB, *, task_id: str | None, now: datetime | None = None) -> tuple[list[Paused], list[int]]:
    paused = [p for s in find_orphans(db, now) if (p := pause_orphan(db, s, task_id=task_id))]
    if paused:
        log.warning("paused %d orphaned session(s): %s", len(paused), ", ".join(p.session_id for p in paused))
    return paused, notify(db, paused)


def leftover_processes(db: DB, host: str) -> list[LeftoverProcess]:
    """``claude`` groups recorded on this host by turns that are no longer running."""
    stmt = (
        select(Turn.id, Turn.claude_pid, Turn.claude_pgid, Turn.claude_started)
        .join(Session, Session.id == Turn.session_id)
        .where(Session.host == host, Turn.claude_pgid.is_not(None),
               or_(Turn.status != TurnStatus.RUNNING,
                   and_(Turn.status == TurnStatus.RUNNING, Session.status != SessionStatus.ACTIVE)))
    )
    return [LeftoverProcess(t, pid, pgid, started) for t, pid, pgid, started in db.execute(stmt).all()]


def reap_leftovers(leftovers: list[LeftoverProcess]) -> list[int]:
    """Kill what still lives; returns the turn ids whose record can now be cleared."""
    for item in leftovers:
        if kill_recorded_group(item.pid, item.pgid, item.started):
            log.warning("killed orphaned claude process group %d (turn %d)", item.pgid, item.turn_id)
    return [item.turn_id for item in leftovers]


def clear_process_records(db: DB, turn_ids: list[int]) -> None:
    if turn_ids:
        db.execute(update(Turn).where(Turn.id.in_(turn_ids)).values(claude_pgid=None)
                   .execution_options(synchronize_session=False))
