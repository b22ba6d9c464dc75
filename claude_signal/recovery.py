"""Turns whose process died: interrupt them, pause their sessions, tell each conversation once, and kill
what they left behind on this host.

Liveness belongs to the turn. A RUNNING turn holds a lease that the process running it renews on the
database's clock; a turn whose lease lapsed has lost its process (killed, crashed, or cut off from the
database), whoever started its session. Idle sessions hold nothing and are never touched. Every step is a
compare-and-set, so two recoveries running at once interrupt (and announce) each turn once.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session as DB

from claude_signal import outbox, replies
from claude_signal.db.clock import db_now
from claude_signal.db.models import Session, SessionStatus, Turn, TurnStatus, utcnow
from claude_signal.lifecycle import transition
from claude_signal.procs import kill_recorded_group
from claude_signal.turns import cancel_pending_approvals

log = logging.getLogger(__name__)

ORPHAN_REASON = "its turn's worker stopped"
BATCH = 500


@dataclass(frozen=True)
class Paused:
    session_id: str
    version: int
    conversation: str
    project_path: str
    interrupted_prompt: str | None
    dropped: int = 0  # queued turns behind the interrupted one, cancelled: they may have built on it


@dataclass(frozen=True)
class LeftoverProcess:
    turn_id: int
    pid: int | None
    pgid: int
    started: int | None


def _lapsed(now):  # type: ignore[no-untyped-def]
    return and_(Turn.status == TurnStatus.RUNNING,
                or_(Turn.lease_expires_at.is_(None), Turn.lease_expires_at < now))


def interrupt_lapsed_turns(db: DB, *, task_id: str | None, limit: int = BATCH) -> list[Paused]:
    """Interrupt up to ``limit`` RUNNING turns whose lease lapsed; pause their sessions."""
    now = db_now(db)
    lapsed = db.execute(select(Turn.id, Turn.session_id, Turn.prompt).where(_lapsed(now))
                        .order_by(Turn.id).limit(limit)).all()
    paused = []
    for turn_id, session_id, prompt in lapsed:
        won = db.execute(
            update(Turn).where(Turn.id == turn_id, _lapsed(now))
            .values(status=TurnStatus.INTERRUPTED, finished_at=utcnow(), lease_expires_at=None,
                    result_summary="interrupted: the worker running it stopped")
            .execution_options(synchronize_session=False)
        ).rowcount
        if not won:
            continue  # renewed meanwhile, or another recovery took it
        cancel_pending_approvals(db, [turn_id], "turn interrupted")
        session = db.get(Session, session_id, populate_existing=True)
        if session is None or session.status != SessionStatus.ACTIVE:
            continue
        result = transition(db, session.id, SessionStatus.PAUSED, reason=ORPHAN_REASON, task_id=task_id,
                            expected_version=session.version, expected_from=frozenset({SessionStatus.ACTIVE}))
        if result.changed:
            dropped = db.execute(
                update(Turn).where(Turn.session_id == session.id, Turn.status == TurnStatus.QUEUED)
                .values(status=TurnStatus.CANCELLED, finished_at=utcnow(),
                        result_summary="not run: the turn before it was interrupted")
                .execution_options(synchronize_session=False)
            ).rowcount
            paused.append(Paused(session.id, result.session.version, session.conversation, session.project_path,
                                 prompt, dropped))
    return paused


def notify(db: DB, paused: list[Paused]) -> list[int]:
    """One message per conversation naming every session paused there; returns outbox ids."""
    by_conversation: dict[str, list[Paused]] = defaultdict(list)
    for item in paused:
        by_conversation[item.conversation].append(item)
    ids = []
    for conversation, items in sorted(by_conversation.items()):
        # A digest keeps the key short however many sessions one notice names, and stable across retries.
        digest = hashlib.sha256(",".join(f"{p.session_id}@{p.version}" for p in items).encode()).hexdigest()[:32]
        text = replies.recovered([(p.session_id, p.project_path, p.interrupted_prompt, p.dropped) for p in items])
        ids.append(outbox.enqueue(db, recipient=conversation, text=text, dedupe_key=f"recovery:{digest}"))
    return ids


def recover_orphans(db: DB, *, task_id: str | None) -> tuple[list[Paused], list[int]]:
    paused = interrupt_lapsed_turns(db, task_id=task_id)
    if paused:
        log.warning("paused %d session(s) whose turn lost its worker: %s", len(paused),
                    ", ".join(p.session_id for p in paused))
    return paused, notify(db, paused)


def leftover_processes(db: DB, host: str) -> list[LeftoverProcess]:
    """``claude`` groups recorded on this host by turns that are no longer running."""
    stmt = (
        select(Turn.id, Turn.claude_pid, Turn.claude_pgid, Turn.claude_started)
        .join(Session, Session.id == Turn.session_id)
        .where(Session.host == host, Turn.claude_pgid.is_not(None), Turn.status != TurnStatus.RUNNING)
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
