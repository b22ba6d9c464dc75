"""Every status change is one compare-and-set with an audit row, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Engine, select

from claude_signal.core.lifecycle import ALLOWED, InvalidTransition, is_allowed, transition
from claude_signal.db.engine import unit_of_work
from claude_signal.db.models import Session, Transition, utcnow
from claude_signal.rules.states import SessionStatus

S = SessionStatus


def make_session(engine: Engine, status: S = S.CREATED, sid: str = "3fa2c1d0") -> str:
    with unit_of_work(engine) as db:
        db.add(Session(id=sid, owner="alice", conversation="alice", project_path="/p", host="h", status=status,
                       claude_session_id=f"00000000-0000-4000-8000-0000{sid}", version=0, created_at=utcnow(),
                       updated_at=utcnow()))
    return sid


def audit(engine: Engine, sid: str) -> list[tuple[str, str]]:
    with unit_of_work(engine) as db:
        rows = db.execute(select(Transition).where(Transition.session_id == sid).order_by(Transition.id)).scalars()
        return [(t.from_status, t.to_status) for t in rows]


def test_rules() -> None:
    assert is_allowed(S.CREATED, S.ACTIVE)
    assert is_allowed(S.ACTIVE, S.PAUSED) and is_allowed(S.PAUSED, S.ACTIVE)
    assert all(is_allowed(s, S.TERMINATED) for s in (S.CREATED, S.ACTIVE, S.PAUSED))
    assert ALLOWED[S.TERMINATED] == frozenset()
    assert not is_allowed(S.CREATED, S.PAUSED)


def test_transition_bumps_version_and_audits(engine: Engine) -> None:
    sid = make_session(engine)
    with unit_of_work(engine) as db:
        result = transition(db, sid, S.ACTIVE, reason="started", task_id="t1")
        assert result.changed and result.previous is S.CREATED
        assert result.session.version == 1
    with unit_of_work(engine) as db:
        result = transition(db, sid, S.PAUSED, reason="pause")
    assert result.session.version == 2
    assert audit(engine, sid) == [("CREATED", "ACTIVE"), ("ACTIVE", "PAUSED")]


def test_same_state_is_a_noop(engine: Engine) -> None:
    sid = make_session(engine, S.PAUSED)
    with unit_of_work(engine) as db:
        result = transition(db, sid, S.PAUSED, reason="again")
    assert not result.changed
    assert result.session.version == 0
    assert audit(engine, sid) == []


def test_invalid_transition_is_a_reply_not_a_crash(engine: Engine) -> None:
    sid = make_session(engine, S.TERMINATED)
    with unit_of_work(engine) as db, pytest.raises(InvalidTransition) as caught:
        transition(db, sid, S.ACTIVE, reason="resume")
    assert str(caught.value) == f"Session {sid} is terminated; start a new one with /session start <path>."


def test_stale_version_does_nothing(engine: Engine) -> None:
    sid = make_session(engine, S.ACTIVE)
    with unit_of_work(engine) as db:
        transition(db, sid, S.PAUSED, reason="first")
    with unit_of_work(engine) as db:
        result = transition(db, sid, S.ACTIVE, reason="fenced", expected_version=0)
    assert not result.changed
    assert result.session.status == S.PAUSED
    assert audit(engine, sid) == [("ACTIVE", "PAUSED")]


def test_racing_transitions_change_once(engine: Engine) -> None:
    """Eight threads try to pause the same ACTIVE session with the version they read: one wins."""
    sid = make_session(engine, S.ACTIVE)
    barrier = threading.Barrier(8)
    outcomes: list[bool] = []

    def attempt() -> None:
        barrier.wait()
        with unit_of_work(engine) as db:
            outcomes.append(transition(db, sid, S.PAUSED, reason="race", expected_version=0,
                                       expected_from=frozenset({S.ACTIVE})).changed)

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == [False] * 7 + [True]
    assert audit(engine, sid) == [("ACTIVE", "PAUSED")]
