"""How values reach a statement's SQL when plain bound parameters cost more than they must: our own
constants (statuses, flags, small numbers) written into it, and lists bound as one parameter.

The statements every message runs carried a dozen constants as parameters: each one built, adapted and
sent on every execution for the same answer. Written into the SQL, they cost nothing per execution, and
the planner sees them as the partial indexes are stated (see ``db.models``).
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import ColumnElement, any_, bindparam, literal_column
from sqlalchemy.dialects import postgresql

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def constant(value: str | int) -> ColumnElement[Any]:
    """``value`` as SQL text: a word in quotes, or an integer. Only for constants of the code, never for
    anything a message carries (those stay parameters)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TypeError(f"not a constant of the code: {value!r}")
    if isinstance(value, str):
        if not _WORD.fullmatch(value):
            raise ValueError(f"not a constant of the code: {value!r}")
        return literal_column(f"'{value}'")
    return literal_column(str(int(value)))


def one_of(column: ColumnElement[Any], name: str, dialect: str) -> ColumnElement[bool]:
    """``column`` is one of the list bound as ``name``. PostgreSQL takes the list as one array parameter
    (``= ANY``), so a statement about two thousand rows is as short as one about a single row; an expanding
    IN wrote a placeholder per item, which SQLAlchemy rendered and psycopg parsed again on every batch.
    SQLite has no arrays: an expanding IN there."""
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=postgresql.ARRAY(column.type)))
    return column.in_(bindparam(name, expanding=True))
