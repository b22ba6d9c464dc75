"""Our own constants (statuses, flags, small numbers) written into a statement's SQL instead of bound.

The statements every message runs carried a dozen such values as parameters: each one built, adapted and
sent on every execution for the same answer. Written into the SQL, they cost nothing per execution, and
the planner sees them as the partial indexes are stated (see ``db.models``).
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import ColumnElement, literal_column

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
