"""Orphan detection and pausing, against a real database and real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from datetime import timedelta

from sqlalchemy import Engine, func, select, update

from claude_signal import recovery
from claude_signal.db.engine import unit_of_work
from claude_signal.db.models import Outbox, Session, SessionStatus, Transition, Turn, TurnStatus, utcnow
from claude_signal.procs import start_ticks
from claude_signal.workers import Identity, heartbeat, register

OLD = Identity("w1@hosta", "hosta", "inc-old")
NEW = Identity("w1@hosta", "hosta", "inc-new")


def active_session(engine: Engine, sid: str, owner: Identity, lease_s: float = 60, conversation: str = "alice") -> None:
    with unit_of_work(engine) as db:
        db.add(Session(id=sid, owner="alice", conversation=conversation, project_path=f"/p/{sid}", host=owner.host,
                       status=SessionStatus.ACTIVE, claude_session_id=f"00000000-0000-4000-8000-0000{sid}",
                       version=3, owner_node=owner.node, owner_incarnation=owner.incarnation,
                       lease_expires_at=utcnow() + timedelta(seconds=lease_s), created_at=utcnow(),
                       updated_at=utcnow()))


def test_live_owner_keeps_its_sessions(engine: Engine) -> None:
    with unit_of_work(engine) as db:
        register(db, OLD)
    active_session(engine, "aaaa0001", OLD)
    with unit_of_work(engine) as db:
        assert recovery.find_orphans(db) == []
        assert heartbeat(db, OLD, lease_ttl=60) == 1


def test_restart_with_new_incarnation_orphans_and_notifies_once(engine: Engine) -> None:
    with unit_of_work(engine) as db:
        register(db, OLD)
    active_session(engine, "aaaa0001", OLD)
    active_session(engine, "aaaa0002", OLD)
    with unit_of_work(engine) as db:
        db.add(Turn(session_id="aaaa0001", prompt="refactor the billing module", status=TurnStatus.RUNNING))
        register(db, NEW)  # the node came back: its old incarnation is gone
    with unit_of_work(engine) as db:
        paused, notices = recovery.recover_orphans(db, task_id="r1")
    assert sorted(p.session_id for p in paused) == ["aaaa0001", "aaaa0002"]
    with unit_of_work(engine) as db:
        (text,) = db.execute(select(Outbox.text).where(Outbox.id.in_(notices))).scalars()
        assert db.execute(select(Turn.status)).scalar_one() == TurnStatus.INTERRUPTED
        assert set(db.execute(select(Session.status)).scalars()) == {SessionStatus.PAUSED}
    assert 'aaaa0001 (/p/aaaa0001) — interrupted: "refactor the billing module"' in text
    assert "Resume with /session resume aaaa0001" in text
    with unit_of_work(engine) as db:  # a second recovery finds nothing
        assert recovery.recover_orphans(db, task_id="r2") == ([], [])


def test_expired_lease_is_an_orphan(engine: Engine) -> None:
    with unit_of_work(engine) as db:
        register(db, OLD)
    active_session(engine, "aaaa0003", OLD, lease_s=-1)
    with unit_of_work(engine) as db:
        assert [s.id for s in recovery.find_orphans(db)] == ["aaaa0003"]


def test_concurrent_recoveries_pause_and_notify_once(engine: Engine) -> None:
    with unit_of_work(engine) as db:
        register(db, OLD)
    for i in range(5):
        active_session(engine, f"bbbb000{i}", OLD, lease_s=-1, conversation=f"c{i % 2}")
    barrier = threading.Barrier(4)
    results: list[int] = []

    def recover() -> None:
        barrier.wait()
        with unit_of_work(engine) as db:
            results.append(len(recovery.recover_orphans(db, task_id="race")[0]))

    threads = [threading.Thread(target=recover) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(results) == 5
    with unit_of_work(engine) as db:
        assert db.execute(select(func.count()).select_from(Transition)).scalar_one() == 5
        texts = list(db.execute(select(Outbox.text)).scalars())
    # one message per conversation per recovering worker that won sessions there; every session named once
    named = [sid for text in texts for sid in (f"bbbb000{i}" for i in range(5)) if sid in text]
    assert sorted(named) == [f"bbbb000{i}" for i in range(5)]


def test_leftover_claude_group_is_killed(engine: Engine) -> None:
    """A recorded process group that outlived its turn is killed; an unrelated pid is never touched."""
    child = subprocess.Popen(["sh", "-c", "trap '' HUP; sleep 300 & wait"], start_new_session=True)
    try:
        with unit_of_work(engine) as db:
            register(db, OLD)
        active_session(engine, "cccc0001", OLD)
        with unit_of_work(engine) as db:
            db.add(Turn(session_id="cccc0001", prompt="p", status=TurnStatus.INTERRUPTED, claude_pid=child.pid,
                        claude_pgid=child.pid, claude_started=start_ticks(child.pid)))
        with unit_of_work(engine) as db:
            leftovers = recovery.leftover_processes(db, "hosta")
            assert recovery.leftover_processes(db, "hostb") == []
        cleared = recovery.reap_leftovers(leftovers)
        assert child.wait(10) == -signal.SIGKILL
        with unit_of_work(engine) as db:
            recovery.clear_process_records(db, cleared)
            assert recovery.leftover_processes(db, "hosta") == []
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)


def test_reused_pid_is_not_killed(engine: Engine) -> None:
    with unit_of_work(engine) as db:
        register(db, OLD)
    active_session(engine, "cccc0002", OLD)
    me = os.getpid()
    with unit_of_work(engine) as db:  # our own pid, but with a different start time: not the recorded process
        db.add(Turn(session_id="cccc0002", prompt="p", status=TurnStatus.DONE, claude_pid=me,
                    claude_pgid=os.getpgid(me), claude_started=(start_ticks(me) or 0) + 1))
        db.execute(update(Turn).values(status=TurnStatus.DONE))
    with unit_of_work(engine) as db:
        leftovers = recovery.leftover_processes(db, "hosta")
    recovery.reap_leftovers(leftovers)  # we are still alive to assert this
    assert start_ticks(me) is not None
