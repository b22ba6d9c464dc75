"""The database's clock. Leases and heartbeats are written and compared with it, never with a machine's
own, so a worker whose clock runs behind neither loses its turns nor keeps a dead host online."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.orm import Session as DB

_QUERIES = {
    # SQLite runs inside the process, so its clock is this machine's: one machine, one clock.
    "sqlite": "SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')",
    "postgresql": "SELECT CAST(clock_timestamp() AT TIME ZONE 'UTC' AS TEXT)",
}


def db_now(db: DB) -> datetime:
    """Now, as the database sees it, in aware UTC."""
    dialect = db.get_bind().dialect.name
    raw = db.execute(text(_QUERIES.get(dialect, "SELECT CURRENT_TIMESTAMP"))).scalar_one()
    value = raw if isinstance(raw, datetime) else datetime.fromisoformat(str(raw))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_NOW = "claude_signal.transaction_now"


def tx_now(db: DB) -> datetime:
    """The database's now, read once per transaction: what one transaction writes and compares agrees,
    and a worker whose clock is off neither holds back nor rushes what another machine wrote."""
    now: datetime | None = db.info.get(_NOW)
    if now is None:
        now = db.info[_NOW] = db_now(db)
    return now
