"""The database's clock. Leases and heartbeats are written and compared with it, never with a machine's
own, so a worker whose clock runs behind neither loses its turns nor keeps a dead host online.

Asking costs a statement, and nearly every transaction needs the time:
- SQLite runs inside the process, on the machine that holds the file: its clock is that machine's real-time
  clock, read here the way SQLite reads it (no statement, and the same answer in every process).
- PostgreSQL's clock is the server's. A process reads it (the best of a few reads: the one that came back
  quickest says it most exactly), together with its own elapsed-time clock, and then tells the server's
  time by how much time has elapsed since. It reads it afresh every :data:`REANCHOR_AFTER` seconds (a
  server whose clock NTP stepped is followed within that). The elapsed-time clock counts a suspended
  machine's sleep, so a laptop that wakes is not behind. Two processes may so disagree by a fraction of a
  millisecond: nothing compares times that finely (leases and backoffs are seconds), and what is due at
  once is written as due a moment earlier (``core.outbox.new_row``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session as DB

_QUERIES = {
    # SQLite runs inside the process, so its clock is this machine's: one machine, one clock.
    "sqlite": "SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')",
    "postgresql": "SELECT CAST(clock_timestamp() AT TIME ZONE 'UTC' AS TEXT)",
}

REANCHOR_AFTER = 30.0  # seconds between two reads of the database's clock
WALL_JUMP = 0.5  # seconds this machine's wall clock may move otherwise than time elapsed before a read
ANCHOR_READS = 3  # reads per anchor; the quickest one is kept

_ELAPSED_CLOCK = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)


def _elapsed() -> float:
    return time.clock_gettime(_ELAPSED_CLOCK)


@dataclass(frozen=True)
class _Anchor:
    db: datetime  # the database's clock when it was read
    elapsed: float  # this process's elapsed-time clock then
    wall: float  # this machine's wall clock then

    def now(self, elapsed: float, wall: float) -> datetime | None:
        """The database's now, or None when this anchor is too old or the wall clock jumped."""
        since = elapsed - self.elapsed
        if since > REANCHOR_AFTER or since < 0 or abs((wall - self.wall) - since) > WALL_JUMP:
            return None
        return self.db + timedelta(seconds=since)


_anchors: dict[str, _Anchor] = {}  # by database URL


def read_db_clock(db: DB) -> datetime:
    """Now, asked of the database, in aware UTC."""
    dialect = db.get_bind().dialect.name
    raw = db.execute(text(_QUERIES.get(dialect, "SELECT CURRENT_TIMESTAMP"))).scalar_one()
    value = raw if isinstance(raw, datetime) else datetime.fromisoformat(str(raw))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def db_now(db: DB) -> datetime:
    """Now, as the database sees it, in aware UTC (see the module's docstring for how it is told)."""
    bind = db.get_bind()
    if bind.dialect.name == "sqlite":
        return datetime.fromtimestamp(time.clock_gettime(time.CLOCK_REALTIME), UTC)
    key = str(bind.engine.url)
    elapsed, wall = _elapsed(), time.time()
    anchor = _anchors.get(key)
    now = anchor.now(elapsed, wall) if anchor is not None else None
    if now is not None:
        return now
    anchor = _anchors[key] = _read_anchor(db)
    return anchor.now(_elapsed(), time.time()) or anchor.db


def _read_anchor(db: DB) -> _Anchor:
    best: tuple[float, _Anchor] | None = None
    for _ in range(ANCHOR_READS):
        before = _elapsed()
        value = read_db_clock(db)
        after = _elapsed()
        took = after - before
        if best is None or took < best[0]:
            best = (took, _Anchor(value, (before + after) / 2, time.time() - took / 2))
    assert best is not None
    return best[1]


_NOW = "claude_signal.transaction_now"


def tx_now(db: DB) -> datetime:
    """The database's now, once per transaction: what one transaction writes and compares agrees, and a
    worker whose clock is off neither holds back nor rushes what another machine wrote."""
    now: datetime | None = db.info.get(_NOW)
    if now is None:
        now = db.info[_NOW] = db_now(db)
    return now
