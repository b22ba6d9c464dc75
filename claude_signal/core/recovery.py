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
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from functools import cache

from sqlalchemy import Executable, and_, bindparam, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session as DB

from claude_signal.core import outbox, stranded, sweep
from claude_signal.core.lifecycle import transition_many
from claude_signal.core.releases import release_successors
from claude_signal.core.send_lanes import RECOVERY, Lane, exclusive
from claude_signal.core.unit_of_work import TaskContext
from claude_signal.core.wakeups import wake_sender
from claude_signal.db.clock import tx_now
from claude_signal.db.literals import one_of
from claude_signal.db.models import Approval, Outbox, Session, Turn, utcnow
from claude_signal.host.process_groups import kill_recorded_group
from claude_signal.rules import replies
from claude_signal.rules.states import ApprovalStatus, OutboxStatus, SessionStatus, TurnStatus

log = logging.getLogger(__name__)

ORPHAN_REASON = "its turn's worker stopped"
BATCH = 2000  # turns per transaction: short enough never to hold up a heartbeat
# SQLite has one writer at a time and no queue: a writer waiting for the lock sleeps up to 100 ms between
# tries, so a recovery that began its next batch at once would starve the heartbeats until it is done.
SQLITE_YIELD = 0.1


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


@cache
def _statements(dialect: str) -> dict[str, Executable]:
    """Built once per process: recovery runs them for batches of thousands."""
    turn, approval = Turn.__table__, Approval.__table__
    now = bindparam("now")

    def lapsed(t):  # type: ignore[no-untyped-def]
        return and_(t.c.status == TurnStatus.RUNNING, or_(t.c.lease_expires_at.is_(None), t.c.lease_expires_at < now))

    return {
        # SKIP LOCKED (PostgreSQL): recoveries that do meet take disjoint batches instead of deadlocking. The
        # batch is read first and updated by its ids: as a subquery of the UPDATE, a planner misled by stale
        # statistics (leases lapse all at once) ran it once per row of the table.
        "lapsed": select(turn.c.id).where(lapsed(turn)).order_by(turn.c.id).limit(bindparam("limit"))
        .with_for_update(skip_locked=True),
        "interrupt": update(turn).where(one_of(turn.c.id, "ids", dialect), lapsed(turn))
        .values(status=TurnStatus.INTERRUPTED, finished_at=bindparam("finished"), lease_expires_at=None,
                result_summary="interrupted: the worker running it stopped")
        .returning(turn.c.id, turn.c.session_id, turn.c.prompt),
        "approvals": update(approval)
        .where(one_of(approval.c.turn_id, "ids", dialect), approval.c.status == ApprovalStatus.PENDING)
        .values(status=ApprovalStatus.CANCELLED, reason="turn interrupted", decided_at=bindparam("finished")),
        "drop": update(turn).where(one_of(turn.c.session_id, "ids", dialect), turn.c.status == TurnStatus.QUEUED)
        .values(status=TurnStatus.CANCELLED, finished_at=bindparam("finished"),
                result_summary="not run: the turn before it was interrupted")
        .returning(turn.c.session_id),
    }


def interrupt_lapsed_turns(db: DB, *, task_id: str | None, limit: int = BATCH) -> list[Paused]:
    """Interrupt up to ``limit`` RUNNING turns whose lease lapsed and pause their sessions, as a handful of
    set operations: the turns, their open questions, their sessions (with the audit rows) and the turns
    queued behind them. Every step is guarded, so a turn renewed meanwhile or taken by another recovery is
    left alone."""
    statements = _statements(db.get_bind().dialect.name)
    finished = utcnow()
    conn = db.connection()
    now = tx_now(db)  # the notices written in this transaction use it too
    batch = list(conn.execute(statements["lapsed"], {"now": now, "limit": limit}).scalars())
    if not batch:
        return []
    stopped = sorted(conn.execute(statements["interrupt"], {"ids": batch, "now": now, "finished": finished}).all())
    conn.execute(statements["approvals"], {"ids": [t.id for t in stopped], "finished": finished})
    moved = {row.id: row for row in transition_many(db, sorted({t.session_id for t in stopped}),
                                                    SessionStatus.ACTIVE, SessionStatus.PAUSED,
                                                    reason=ORPHAN_REASON, task_id=task_id)}
    if not moved:
        return []
    dropped = Counter(conn.execute(statements["drop"], {"ids": list(moved), "finished": finished}).scalars())
    return [Paused(s.id, s.version, s.conversation, s.project_path, t.prompt, dropped[s.id])
            for t in stopped if (s := moved.get(t.session_id)) is not None]


@dataclass
class Notices:
    """The notices one recovery run wrote, by conversation: a conversation whose orphans come in several
    batches gets one notice naming them all, rewritten while it waits to be sent."""

    written: dict[str, tuple[int, list[Paused]]] = field(default_factory=dict)

    def ids(self) -> list[int]:
        return [outbox_id for outbox_id, _ in self.written.values()]


def notify(db: DB, paused: list[Paused], notices: Notices | None = None) -> list[int]:
    """One message per conversation naming every session paused there (in this run, with ``notices``);
    written in bulk, in the transaction that paused them. Returns the ids of the notices it wrote or grew."""
    notices = notices if notices is not None else Notices()
    by_conversation: dict[str, list[Paused]] = defaultdict(list)
    for item in paused:
        by_conversation[item.conversation].append(item)
    fresh: dict[str, list[Paused]] = {}
    grow: dict[str, tuple[int, list[Paused]]] = {}
    for conversation, items in by_conversation.items():
        if conversation in notices.written:
            outbox_id, earlier = notices.written[conversation]
            grow[conversation] = (outbox_id, [*earlier, *items])
        else:
            fresh[conversation] = items
    rewritten = _grow(db, grow) if grow else set()
    for conversation, (outbox_id, items) in grow.items():
        if outbox_id in rewritten:
            notices.written[conversation] = (outbox_id, items)
        else:
            fresh[conversation] = by_conversation[conversation]
    notices.written.update(_write(db, fresh))
    return sorted(notices.written[c][0] for c in by_conversation)


def _text(items: list[Paused]) -> str:
    return replies.recovered([(p.session_id, p.project_path, p.interrupted_prompt, p.dropped) for p in items])


def _write(db: DB, by_conversation: dict[str, list[Paused]]) -> dict[str, tuple[int, list[Paused]]]:
    """New notices, one INSERT for all of them; a digest keeps each key short however many sessions it
    names, and stable across retries."""
    if not by_conversation:
        return {}
    keys = {c: "recovery:" + hashlib.sha256(",".join(f"{p.session_id}@{p.version}" for p in items).encode())
            .hexdigest()[:32] for c, items in by_conversation.items()}
    table = Outbox.__table__
    insert = postgresql.insert if db.get_bind().dialect.name == "postgresql" else sqlite.insert
    db.connection().execute(insert(table).on_conflict_do_nothing(index_elements=["dedupe_key"]), [
        outbox.new_row(db, dedupe_key=keys[c], recipient=c, text=_text(items))
        for c, items in sorted(by_conversation.items())])
    ids = dict(db.connection().execute(select(table.c.dedupe_key, table.c.id)
                                       .where(table.c.dedupe_key.in_(list(keys.values())))).all())
    return {c: (ids[keys[c]], items) for c, items in by_conversation.items()}


def _grow(db: DB, merged: dict[str, tuple[int, list[Paused]]]) -> set[int]:
    """Rewrite notices of this run that are still waiting to be sent; returns the ids it could rewrite (a
    notice already sent stays as it is, and the newly paused get one of their own)."""
    table = Outbox.__table__
    db.connection().execute(
        update(table).where(table.c.id == bindparam("oid"), table.c.status == OutboxStatus.PENDING,
                            table.c.attempts == 0).values(text=bindparam("body")),
        [{"oid": oid, "body": _text(items)} for oid, items in merged.values()])
    wanted = [oid for oid, _ in merged.values()]
    return set(db.connection().execute(select(table.c.id).where(
        table.c.id.in_(wanted), table.c.status == OutboxStatus.PENDING, table.c.attempts == 0)).scalars())


def recover_orphans(db: DB, *, task_id: str | None, limit: int = BATCH,
                    notices: Notices | None = None) -> tuple[list[Paused], list[int]]:
    """One batch: interrupt, pause and announce; the caller commits, and calls again while it finds more."""
    paused = interrupt_lapsed_turns(db, task_id=task_id, limit=limit)
    if paused:
        log.warning("paused %d session(s) whose turn lost its worker: %s", len(paused),
                    ", ".join(p.session_id for p in paused[:20]) + (" …" if len(paused) > 20 else ""))
    return paused, notify(db, paused, notices)


def recover_all(transaction: Callable[[], AbstractContextManager[DB]], lock: Lane, *,
                task_id: str | None) -> tuple[list[Paused], list[int]] | None:
    """Batch after batch, each in a transaction of its own, until no orphan is left; None when another
    recovery holds ``lock`` (it does them all). Returns the paused sessions and their notices' ids, which
    the caller wakes only now: a notice grows while its conversation's orphans come in."""
    if not lock.held:
        return None
    paused: list[Paused] = []
    notices = Notices()
    while True:
        with transaction() as db:
            batch, _ = recover_orphans(db, task_id=task_id, notices=notices)
            single_writer = db.get_bind().dialect.name == "sqlite"
        paused += batch
        if not batch or not lock.renew():  # done, or the lock lapsed: the next holder goes on
            return paused, notices.ids()
        if single_writer:
            time.sleep(SQLITE_YIELD)  # let the heartbeats (and everyone else) write between batches


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


LOCK_TTL = 60.0  # renewed after every batch; a recovery that dies frees it within this


def run(ctx: TaskContext, task_id: str | None, reason: str) -> dict[str, object]:
    """``recovery.run``: pause orphaned sessions (in batches, one recovery at a time), kill what they left
    on this host, refuse starts and resumes whose host went away, re-send lost wake-ups."""
    settings = ctx.settings
    with exclusive(settings.resolved_broker_url, RECOVERY, ttl=LOCK_TTL) as lock:
        done = recover_all(ctx.transaction, lock, task_id=task_id)
    paused, notices = done if done is not None else ([], [])
    with ctx.transaction(read_only=True) as db:
        leftovers = leftover_processes(db, settings.host)
    cleared = reap_leftovers(leftovers)
    with ctx.transaction() as db:
        refused = stranded.refuse_stranded(db, lease_ttl=settings.lease_ttl, task_id=task_id)
    with ctx.transaction() as db:
        for outbox_id in notices:  # sent once the whole run has written them (a notice grows across batches)
            wake_sender(db, outbox_id)
        clear_process_records(db, cleared)
        rewoken = len(sweep.due(db))
    for key in refused.keys:  # the messages that waited for a refused start or resume go on now
        release_successors(ctx, key)
    return {"reason": reason, "paused": len(paused), "reaped": len(cleared), "refused": refused.keys,
            "rewoken": rewoken, "busy": done is None}
