"""Who is alive: one row per worker boot, with the plane it serves, its turn slots and a heartbeat.

Every row is keyed by the boot's incarnation, so two processes with the same node name (``--scale
worker=3``, or a restart) never overwrite or stop each other. A host is online while one of its workers'
heartbeats is younger than ``LEASE_TTL`` on the database's clock: the same bound that ends a turn's lease.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session as DB

from claude_signal.db.clock import db_now
from claude_signal.db.models import Session, Turn, Worker
from claude_signal.rules.states import SessionStatus, TurnStatus

Plane = Literal["control", "turns"]
FORGET_AFTER = timedelta(days=7)  # rows of workers gone this long are deleted when another registers


@dataclass(frozen=True)
class Identity:
    """This worker process: its Celery node name, the host it serves, this boot's incarnation, its plane
    and how many turns it runs at once."""

    node: str
    host: str
    incarnation: str
    plane: Plane = "control"
    slots: int = 0


def register(db: DB, me: Identity) -> None:
    """Record this boot as a row of its own (a redelivered registration changes nothing)."""
    now = db_now(db)
    if db.get(Worker, me.incarnation) is None:
        db.add(Worker(incarnation=me.incarnation, node=me.node, host=me.host, plane=me.plane, slots=me.slots,
                      started_at=now, last_heartbeat=now))
    db.execute(delete(Worker).where(Worker.last_heartbeat < now - FORGET_AFTER)
               .execution_options(synchronize_session=False))


def heartbeat(db: DB, me: Identity) -> None:
    db.execute(update(Worker).where(Worker.incarnation == me.incarnation)
               .values(last_heartbeat=db_now(db), stopped_at=None).execution_options(synchronize_session=False))


def mark_stopped(db: DB, me: Identity) -> None:
    """This boot is over; other workers, whatever their names, are untouched."""
    db.execute(update(Worker).where(Worker.incarnation == me.incarnation)
               .values(stopped_at=db_now(db)).execution_options(synchronize_session=False))


@dataclass(frozen=True)
class HostState:
    host: str
    online: bool
    workers: int
    active_sessions: int
    last_seen: datetime | None
    slots: int = 0  # turn slots of the live turn workers there
    running: int = 0  # turns running there now


def host_states(db: DB, *, lease_ttl: float, host: str | None = None) -> list[HostState]:
    """Every host a worker ran on recently (or just ``host``), whether one is alive there now, its
    sessions, slots and running turns."""
    fresh = db_now(db) - timedelta(seconds=lease_ttl)
    only = (lambda column: [column == host]) if host is not None else (lambda column: [])
    rows = db.execute(select(Worker.host, Worker.plane, Worker.slots, Worker.last_heartbeat, Worker.stopped_at)
                      .where(*only(Worker.host))).all()
    active = dict(db.execute(select(Session.host, func.count()).where(Session.status == SessionStatus.ACTIVE,
                                                                      *only(Session.host))
                             .group_by(Session.host)).all())
    running = dict(db.execute(select(Session.host, func.count()).join(Turn, Turn.session_id == Session.id)
                              .where(Turn.status == TurnStatus.RUNNING, *only(Session.host))
                              .group_by(Session.host)).all())
    by_host: dict[str, list[tuple[datetime, bool, str, int]]] = {}
    for name, plane, slots, beat, stopped in rows:
        by_host.setdefault(name, []).append((beat, stopped is None and beat >= fresh, plane, slots))
    return [
        HostState(host=name, online=any(alive for _, alive, _, _ in rows_), workers=sum(a for _, a, _, _ in rows_),
                  active_sessions=int(active.get(name, 0)), last_seen=max(b for b, _, _, _ in rows_),
                  slots=sum(s for _, alive, plane, s in rows_ if alive and plane == "turns"),
                  running=int(running.get(name, 0)))
        for name, rows_ in sorted(by_host.items())
    ]


def host_state(db: DB, host: str, *, lease_ttl: float) -> HostState | None:
    """One host's state, read with queries narrowed to it (every prompt asks)."""
    found = host_states(db, lease_ttl=lease_ttl, host=host)
    return found[0] if found else None
