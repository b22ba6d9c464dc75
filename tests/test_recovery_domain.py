"""Recovery of turns whose process died, against a real database and real processes.

Liveness belongs to the turn: a RUNNING turn whose lease lapsed (on the database's clock) is interrupted
and its session paused, once, with one notice per conversation; idle sessions and live turns are untouched.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from datetime import timedelta

from sqlalchemy import Engine, func, select

from claude_signal.core import outbox, recovery
from claude_signal.core import turn_state as turns
from claude_signal.core.liveness import Identity
from claude_signal.core.send_lanes import RECOVERY, exclusive
from claude_signal.db.clock import db_now
from claude_signal.db.engine import unit_of_work
from claude_signal.db.models import Approval, Outbox, Session, Transition, Turn, utcnow
from claude_signal.host.process_groups import start_ticks
from claude_signal.rules.states import ApprovalStatus, SessionStatus, TurnStatus
from tests.harness import RedisServer

ME = Identity("w1@hosta", "hosta", "inc-1", plane="turns", slots=8)


def active_session(engine: Engine, sid: str, conversation: str = "alice") -> None:
    with unit_of_work(engine) as db:
        db.add(Session(id=sid, owner="alice", conversation=conversation, project_path=f"/p/{sid}", host="hosta",
                       status=SessionStatus.ACTIVE, claude_session_id=f"00000000-0000-4000-8000-0000{sid}",
                       version=3, created_at=utcnow(), updated_at=utcnow()))


def running_turn(engine: Engine, sid: str, prompt: str = "p", lease_s: float = 60) -> int:
    """A RUNNING turn whose lease ends ``lease_s`` from now on the database's clock."""
    with unit_of_work(engine) as db:
        turn = Turn(session_id=sid, prompt=prompt, status=TurnStatus.RUNNING, worker_node=ME.node,
                    lease_expires_at=db_now(db) + timedelta(seconds=lease_s))
        db.add(turn)
        db.flush()
        return turn.id


def test_idle_sessions_and_live_turns_are_left_alone(engine: Engine) -> None:
    active_session(engine, "aaaa0001")  # idle: no process, nobody owns it
    active_session(engine, "aaaa0002")
    turn_id = running_turn(engine, "aaaa0002", lease_s=60)
    with unit_of_work(engine) as db:
        assert recovery.recover_orphans(db, task_id="r1") == ([], [])
        assert turns.renew_lease(db, turn_id, 60)
        assert set(db.execute(select(Session.status)).scalars()) == {SessionStatus.ACTIVE}


def test_lapsed_turn_is_interrupted_paused_and_announced_once(engine: Engine) -> None:
    active_session(engine, "aaaa0001")
    active_session(engine, "aaaa0002")  # idle: stays ACTIVE
    turn_id = running_turn(engine, "aaaa0001", "refactor the billing module", lease_s=-1)
    with unit_of_work(engine) as db:  # two messages wait behind it; they may build on what it was doing
        db.add_all([Turn(session_id="aaaa0001", prompt=p, status=TurnStatus.QUEUED) for p in ("then test", "ship")])
        db.add(Approval(id="ap01", turn_id=turn_id, session_id="aaaa0001", request_id="r", tool_name="Bash",
                        input_summary="Bash: make", status=ApprovalStatus.PENDING))
    with unit_of_work(engine) as db:
        paused, notices = recovery.recover_orphans(db, task_id="r1")
    assert [p.session_id for p in paused] == ["aaaa0001"]
    with unit_of_work(engine) as db:
        (text,) = db.execute(select(Outbox.text).where(Outbox.id.in_(notices))).scalars()
        assert db.get(Turn, turn_id).status == TurnStatus.INTERRUPTED
        assert db.get(Session, "aaaa0001").status == SessionStatus.PAUSED
        assert db.get(Session, "aaaa0002").status == SessionStatus.ACTIVE
        assert db.get(Approval, "ap01").status == ApprovalStatus.CANCELLED  # nobody can answer it any more
        assert not turns.renew_lease(db, turn_id, 60)  # a late renewal from a zombie changes nothing
    assert ('aaaa0001 (/p/aaaa0001) — interrupted: "refactor the billing module"; 2 messages queued behind it '
            "not run (send again what still matters)") in text
    with unit_of_work(engine) as db:
        assert set(db.execute(select(Turn.status).where(Turn.id != turn_id)).scalars()) == {TurnStatus.CANCELLED}
    assert "Your next message there resumes it (or /session resume aaaa0001)." in text
    with unit_of_work(engine) as db:  # a second recovery finds nothing
        assert recovery.recover_orphans(db, task_id="r2") == ([], [])


def test_concurrent_recoveries_pause_and_notify_once(engine: Engine) -> None:
    for i in range(5):
        active_session(engine, f"bbbb000{i}", conversation=f"c{i % 2}")
        running_turn(engine, f"bbbb000{i}", lease_s=-1)
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


def test_many_orphans_in_one_conversation_get_one_short_notice(engine: Engine) -> None:
    """The notice's dedupe key stays short however many sessions it names (it once overflowed 255 chars)."""
    for i in range(40):
        active_session(engine, f"dddd{i:04d}")
        running_turn(engine, f"dddd{i:04d}", lease_s=-1)
    with unit_of_work(engine) as db:
        paused, notices = recovery.recover_orphans(db, task_id="r1")
    assert len(paused) == 40 and len(notices) == 1
    with unit_of_work(engine) as db:
        key = db.execute(select(Outbox.dedupe_key)).scalar_one()
    assert len(key) < 64


def test_leftover_claude_group_is_killed(engine: Engine) -> None:
    """A recorded process group that outlived its turn is killed; an unrelated pid is never touched."""
    child = subprocess.Popen(["sh", "-c", "trap '' HUP; sleep 300 & wait"], start_new_session=True)
    try:
        active_session(engine, "cccc0001")
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


def test_reused_pid_is_not_killed_and_the_recorded_group_is(engine: Engine) -> None:
    """A recorded pid whose start time differs names another process now (the kernel reused the number): its
    group is left alone. The same process recorded with its own start time is the leftover, and dies."""
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)
    leftover = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        for session_id, proc, skew in (("cccc0002", stranger, 1), ("cccc0003", leftover, 0)):
            active_session(engine, session_id)
            ticks = start_ticks(proc.pid)
            assert ticks is not None
            with unit_of_work(engine) as db:
                db.add(Turn(session_id=session_id, prompt="p", status=TurnStatus.DONE, claude_pid=proc.pid,
                            claude_pgid=proc.pid, claude_started=ticks + skew))
        with unit_of_work(engine) as db:
            leftovers = recovery.leftover_processes(db, "hosta")
        recovery.reap_leftovers(leftovers)
        assert leftover.wait(timeout=10) == -signal.SIGKILL
        assert stranger.poll() is None  # still running: not ours
    finally:
        for proc in (stranger, leftover):
            proc.kill()
            proc.wait()


def test_orphans_paused_batch_by_batch_get_one_notice_per_conversation(engine: Engine) -> None:
    """Thousands of orphans are paused a batch per transaction; a conversation whose orphans span several
    batches still gets one notice naming them all, grown while it waits, and a notice that went out
    meanwhile is left as it was (the later orphans get one of their own)."""
    for i in range(8):
        active_session(engine, f"eeee{i:04d}", conversation="bob" if i == 0 else "alice")
        running_turn(engine, f"eeee{i:04d}", prompt=f"job {i}", lease_s=-1)
    notices = recovery.Notices()

    def batch() -> tuple[list[str], list[int]]:
        with unit_of_work(engine) as db:
            paused, ids = recovery.recover_orphans(db, task_id="r1", limit=3, notices=notices)
        return [p.session_id for p in paused], ids

    first, ids = batch()
    with unit_of_work(engine) as db:
        alice, bob = (db.execute(select(Outbox.id).where(Outbox.id.in_(ids), Outbox.recipient == who)).scalar_one()
                      for who in ("alice", "bob"))
    second, grown = batch()
    assert (len(first), len(second), grown) == (3, 3, [alice])  # alice's notice grew
    with unit_of_work(engine) as db:  # a sender takes it before the last batch
        assert outbox.claim(db, alice) is not None
    third, (later,) = batch()
    assert batch() == ([], []) and later not in (alice, bob) and third == ["eeee0006", "eeee0007"]
    with unit_of_work(engine) as db:
        texts = {i: db.get(Outbox, i).text for i in (bob, alice, later)}
        assert db.execute(select(func.count()).select_from(Transition)).scalar_one() == 8
        assert set(db.execute(select(Session.status)).scalars()) == {SessionStatus.PAUSED}
    assert "eeee0000" in texts[bob] and "eeee0001" not in texts[bob]
    assert all(f"eeee{i:04d}" in texts[alice] for i in range(1, 6)) and "eeee0006" not in texts[alice]
    assert "eeee0006" in texts[later] and "eeee0007" in texts[later] and "eeee0005" not in texts[later]


def test_one_recovery_at_a_time(engine: Engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """While one recovery holds the lock, another pauses nothing and says so; the holder does them all."""
    for i in range(3):
        active_session(engine, f"ffff{i:04d}")
        running_turn(engine, f"ffff{i:04d}", lease_s=-1)
    server = RedisServer(tmp_path / "redis", appendonly=False).start()
    try:
        with exclusive(server.url, RECOVERY, ttl=30) as holder:
            with exclusive(server.url, RECOVERY, ttl=30) as other:
                assert recovery.recover_all(lambda: unit_of_work(engine), other, task_id="late") is None
            paused, notices = recovery.recover_all(lambda: unit_of_work(engine), holder, task_id="first")
    finally:
        server.stop()
    assert len(paused) == 3 and len(notices) == 1
