"""/cost's figures and the daily budget, from turns recorded in a real database; days and months are those
of the configured time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
from sqlalchemy.orm import Session as DB

from claude_signal.config import Settings
from claude_signal.core import costs
from claude_signal.db.models import Session, Turn
from claude_signal.rules.states import SessionStatus, TurnStatus

NOW = datetime(2026, 3, 29, 22, 30, tzinfo=UTC)  # 00:30 on March 30 in Berlin, the first night of summer time
_ids = count(1)


def test_days_and_months_start_at_local_midnight() -> None:
    day, month = costs.period_starts(NOW, "Europe/Berlin")
    assert day == datetime(2026, 3, 29, 22, 0, tzinfo=UTC)  # midnight CEST (+2)
    assert month == datetime(2026, 2, 28, 23, 0, tzinfo=UTC)  # March 1st was still CET (+1)
    assert costs.period_starts(NOW, "UTC") == (datetime(2026, 3, 29, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC))


def session(db: DB, owner: str) -> Session:
    n = next(_ids)
    row = Session(id=f"s{n:07d}", owner=owner, conversation=owner, project_path=f"/p/{n}", host="hosta",
                  status=SessionStatus.ACTIVE, claude_session_id=f"00000000-0000-0000-0000-{n:012d}",
                  created_at=NOW, updated_at=NOW)
    db.add(row)
    db.flush()
    return row


def turn(db: DB, s: Session, cost: float | None, finished: datetime | None) -> None:
    db.add(Turn(session_id=s.id, prompt="p", status=TurnStatus.DONE if finished else TurnStatus.RUNNING,
                cost_usd=cost, finished_at=finished, created_at=NOW))
    db.flush()


@pytest.fixture
def berlin(settings: Settings) -> Settings:
    return settings.model_copy(update={"timezone": "Europe/Berlin", "daily_budget": 0.05})


def test_spend_is_per_person_today_and_this_month(db: DB, berlin: Settings) -> None:
    alice, alice2, bob = session(db, "alice"), session(db, "alice"), session(db, "bob")
    turn(db, alice, 0.01, NOW - timedelta(minutes=10))  # today (after local midnight)
    turn(db, alice2, 0.02, NOW - timedelta(minutes=5))  # today, another of her sessions
    turn(db, alice, 0.04, NOW - timedelta(hours=1))  # yesterday in Berlin, though the same UTC date
    turn(db, alice, 0.08, datetime(2026, 2, 28, 22, 0, tzinfo=UTC))  # February in Berlin
    turn(db, alice, None, None)  # still running: no cost yet
    turn(db, bob, 1.00, NOW - timedelta(minutes=1))
    figures = costs.spend(db, "alice", berlin, NOW)
    assert figures == costs.Spend(today=pytest.approx(0.03), month=pytest.approx(0.07))
    assert costs.spend(db, "carol", berlin, NOW) == costs.Spend(0.0, 0.0)


def test_the_budget_refuses_once_spent(db: DB, berlin: Settings) -> None:
    alice = session(db, "alice")
    turn(db, alice, 0.049, NOW - timedelta(minutes=10))
    assert costs.budget_refusal(db, "alice", berlin, NOW) is None
    turn(db, alice, 0.002, NOW - timedelta(minutes=1))
    refusal = costs.budget_refusal(db, "alice", berlin, NOW)
    assert refusal == ("Not sent to Claude: today's budget of $0.05 is spent ($0.0510 so far). New messages go "
                       "through again after midnight (Europe/Berlin); /cost shows the figures.")
    assert costs.budget_refusal(db, "alice", berlin.model_copy(update={"daily_budget": None}), NOW) is None


def test_report(berlin: Settings) -> None:
    s = Session(id="1a2b3c4d", cost_usd=0.0246, turn_count=2)
    text = costs.report(s, costs.Spend(today=0.03, month=0.5), berlin)
    assert text == ("Claude's cost (as Claude Code estimates it):\nSession 1a2b3c4d: $0.0246 over 2 turns\n"
                    "Today: $0.0300 · this month: $0.5000\nDaily budget: $0.05, $0.0200 left today")
    assert "Session" not in costs.report(None, costs.Spend(0, 0), berlin.model_copy(update={"daily_budget": None}))
