"""Insert-or-ignore on a unique key, the same on SQLite and PostgreSQL.

The statement for each table, key and set of columns is built once per process (with bound parameters)
and reused: building it costs more than running it, and it runs for every inbound message and reply.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from sqlalchemy import Executable, Table, bindparam
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session as DB

from claude_signal.db.models import Base


def insert_ignoring(dialect: str, table: Table, values: dict[str, Any], key: str) -> Any:
    """``INSERT … ON CONFLICT (key) DO NOTHING`` in ``dialect``, for statements that need more than
    :func:`insert_or_ignore` offers (values computed in SQL, subqueries in RETURNING)."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(table).values(values).on_conflict_do_nothing(index_elements=[key])


@cache
def _statement(dialect: str, model: type[Base], key: str, columns: tuple[str, ...],
               returning: tuple[str, ...]) -> Executable:
    table = model.__table__
    stmt = insert_ignoring(dialect, table, {name: bindparam(f"v_{name}") for name in columns}, key)
    return stmt.returning(*(table.c[name] for name in returning)) if returning else stmt


def _run(db: DB, model: type[Base], values: dict[str, Any], key: str, returning: tuple[str, ...]) -> Any:
    stmt = _statement(db.get_bind().dialect.name, model, key, tuple(values), returning)
    db.flush()  # objects added before go first, as the ORM's autoflush would do (a Core statement skips it)
    return db.connection().execute(stmt, {f"v_{name}": value for name, value in values.items()})


def insert_or_ignore(db: DB, model: type[Base], values: dict[str, Any], key: str) -> bool:
    """Insert one row unless a row with the same ``key`` exists; True when this call inserted it."""
    return _run(db, model, values, key, ()).rowcount == 1


def insert_or_ignore_returning(db: DB, model: type[Base], values: dict[str, Any], key: str,
                               returning: Sequence[str]) -> Any:
    """Insert one row unless a row with the same ``key`` exists; the new row's ``returning`` columns, or
    None when it existed (the caller reads it then)."""
    return _run(db, model, values, key, tuple(returning)).first()
