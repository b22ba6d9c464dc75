"""Values that reach SQL other than as one bound parameter each: the code's constants, and lists."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from claude_signal.db.engine import unit_of_work
from claude_signal.db.literals import constant, one_of
from claude_signal.db.models import Outbox, utcnow
from claude_signal.rules.states import OutboxStatus


def test_only_the_codes_own_constants_are_written_into_sql() -> None:
    rendered = select(Outbox.id).where(Outbox.status == constant(OutboxStatus.SENT), Outbox.attempts > constant(2))
    assert "outbox.status = 'SENT' AND outbox.attempts > 2" in str(rendered.compile(dialect=postgresql.dialect()))
    for hostile in ("x' OR '1'='1", "SENT;", "", True, 1.5, None):
        with pytest.raises((TypeError, ValueError)):
            constant(hostile)  # type: ignore[arg-type]


def test_a_list_is_one_parameter_on_postgresql_however_long(engine: Engine) -> None:
    """Recovery updates thousands of rows by id: on PostgreSQL the statement's text does not grow with the
    list (one array parameter), on SQLite an IN list; both select exactly the rows named."""
    pg = str(select(Outbox.id).where(one_of(Outbox.id, "ids", "postgresql")).compile(dialect=postgresql.dialect()))
    assert "= ANY (%(ids)s::INTEGER[])" in pg
    lite = select(Outbox.id).where(one_of(Outbox.id, "ids", "sqlite")).compile(dialect=sqlite.dialect())
    assert "IN (__[POSTCOMPILE_ids])" in str(lite)
    dialect = engine.dialect.name
    now = utcnow()
    with unit_of_work(engine) as db:
        db.execute(insert(Outbox), [{"dedupe_key": f"k{i}", "recipient": "alice", "text": "hi",
                                     "next_attempt_at": now, "created_at": now} for i in range(3000)])
        ids = db.execute(select(Outbox.id).order_by(Outbox.id)).scalars().all()
        chosen = ids[::3]
        changed = db.execute(update(Outbox).where(one_of(Outbox.id, "ids", dialect)).values(text="chosen"),
                             {"ids": chosen}).rowcount
        assert changed == len(chosen) == 1000
        marked = select(Outbox.id).where(Outbox.text == "chosen").order_by(Outbox.id)
        assert db.execute(marked).scalars().all() == chosen
