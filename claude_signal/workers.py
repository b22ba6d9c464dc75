"""Who is alive: worker rows with a per-boot incarnation and a heartbeat, and the leases of their sessions.

A worker's main process renews, every ``heartbeat_interval``, its own row and the lease of every ACTIVE
session it owns. A session whose lease lapsed, or whose owner node came back with a new incarnation, is an
orphan for :mod:`claude_signal.recovery` to pause.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session as DB

from claude_signal.db.models import Session, SessionStatus, Worker, utcnow
from claude_signal.db.upsert import insert_or_ignore


@dataclass(frozen=True)
class Identity:
    """This worker process tree: its Celery node name, the host it serves, and this boot's incarnation."""

    node: str
    host: str
    incarnation: str


def register(db: DB, me: Identity, now: datetime | None = None) -> None:
    """Record this boot; a restart under the same node name replaces the incarnation, orphaning the old."""
    now = now or utcnow()
    values = {"host": me.host, "incarnation": me.incarnation, "started_at": now, "last_heartbeat": now,
              "stopped_at": None}
    if not insert_or_ignore(db, Worker, {"node": me.node, **values}, "node"):
        db.execute(update(Worker).where(Worker.node == me.node).values(**values)
                   .execution_options(synchronize_session=False))


def heartbeat(db: DB, me: Identity, lease_ttl: float, now: datetime | None = None) -> int:
    """Say we are alive and extend our sessions' leases; returns how many leases were renewed."""
    now = now or utcnow()
    db.execute(update(Worker).where(Worker.node == me.node, Worker.incarnation == me.incarnation)
               .values(last_heartbeat=now, host=me.host).execution_options(synchronize_session=False))
    return db.execute(
        update(Session)
        .where(Session.owner_node == me.node, Session.owner_incarnation == me.incarnation,
               Session.status == SessionStatus.ACTIVE)
        .values(lease_expires_at=now + timedelta(seconds=lease_ttl))
        .execution_options(synchronize_session=False)
    ).rowcount


def mark_stopped(db: DB, me: Identity, now: datetime | None = None) -> None:
    db.execute(update(Worker).where(Worker.node == me.node, Worker.incarnation == me.incarnation)
               .values(stopped_at=now or utcnow()).execution_options(synchronize_session=False))


@dataclass(frozen=True)
class HostState:
    host: str
    online: bool
    workers: int
    active_sessions: int
    last_seen: datetime | None


def host_states(db: DB, *, stale_after: float, now: datetime | None = None) -> list[HostState]:
    """Every host a worker ever ran on, whether one is alive there now, and its active sessions."""
    now = now or utcnow()
    fresh = now - timedelta(seconds=stale_after)
    rows = db.execute(select(Worker.host, Worker.last_heartbeat, Worker.stopped_at)).all()
    active = dict(db.execute(select(Session.host, func.count()).where(Session.status == SessionStatus.ACTIVE)
                             .group_by(Session.host)).all())
    by_host: dict[str, list[tuple[datetime, bool]]] = {}
    for host, beat, stopped in rows:
        by_host.setdefault(host, []).append((beat, stopped is None and beat >= fresh))
    return [
        HostState(host=host, online=any(alive for _, alive in beats), workers=sum(a for _, a in beats),
                  active_sessions=int(active.get(host, 0)), last_seen=max(b for b, _ in beats))
        for host, beats in sorted(by_host.items())
    ]


def host_state(db: DB, host: str, *, stale_after: float) -> HostState | None:
    for state in host_states(db, stale_after=stale_after):
        if state.host == host:
            return state
    return None
