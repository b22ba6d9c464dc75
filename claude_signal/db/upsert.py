"""Insert-or-ignore on a unique key, the same on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session as DB

from claude_signal.db.models import Base


def insert_or_ignore(db: DB, model: type[Base], values: dict[str, Any], key: str) -> bool:
    """Insert one row unless a row with the same ``key`` exists; True when this call inserted it."""
    dialect = db.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(model).values(**values).on_conflict_do_nothing(index_elements=[key])
    return db.execute(stmt).rowcount == 1
