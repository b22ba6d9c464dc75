"""Liveness belongs to the turn: real worker processes killed with SIGKILL, stopped cleanly, duplicated.

Idle sessions belong to nobody, so no restart touches them; a running turn whose process died is
interrupted once, its ``claude`` killed, its conversation told once, and its session resumes by itself on
the next prompt.
"""

from __future__ import annotations

import re

import pytest

from claude_signal.host.process_groups import group_alive
from claude_signal.rules.states import SessionStatus, TurnStatus
from tests.harness import wait_until
from tests.integration.conftest import ALICE, System
from tests.integration.helpers import sessions, transitions, turns

NOTICE = "The worker running these sessions stopped"


def start(system: System, project: str = "shop") -> str:
    system.publisher.send(f"/session start {system.projects / project}")
    system.wait_reply(lambda t: t.startswith("Started session") and project in t)
    return next(s for s in sessions(system.engine) if s.project_path.endswith(project)).id


def status_of(system: System, session_id: str) -> str:
    return next(s.status for s in sessions(system.engine) if s.id == session_id)


def notices(system: System) -> list[str]:
    return [t for t in system.replies() if t.startswith(NOTICE)]


def running_claude(system: System) -> int:
    """The process group of the one running turn, once its ``claude`` has started."""
    return wait_until(lambda: next((t.claude_pgid for t in turns(system.engine) if t.claude_pgid
                                    and t.status == TurnStatus.RUNNING), None), message="claude to start")


@pytest.mark.both_databases
def test_restart_after_kill_interrupts_only_the_running_turn(system: System) -> None:
    system.scenario("slow", delay=120)
    workers = system.worker()
    shop, blog = start(system, "shop"), start(system, "blog")  # blog stays idle
    system.publisher.send(f"/session resume {shop}")  # make shop current again (it is already active)
    system.wait_reply(lambda t: t.startswith(f"Session {shop} is already active"))
    system.publisher.send("long job")
    pgid = running_claude(system)
    workers.kill9()
    system.scenario("")
    system.worker()  # recovery runs from worker_ready
    (notice,) = system.wait_reply(lambda t: t.startswith(NOTICE))
    assert f'{shop} ' in notice and 'interrupted: "long job"' in notice and blog not in notice
    wait_until(lambda: not group_alive(pgid), timeout=15, message="the orphaned claude to be killed")
    assert (status_of(system, shop), status_of(system, blog)) == (SessionStatus.PAUSED, SessionStatus.ACTIVE)
    # The paused session resumes by itself on the next prompt, saying so in one line.
    system.publisher.send("again")
    system.wait_reply(lambda t: t.startswith(f"Session {shop} was paused when its worker stopped; resuming it"))
    system.wait_reply(lambda t: "Echo: again" in t)
    assert status_of(system, shop) == SessionStatus.ACTIVE
    # Later sweeps find nothing more to do.
    wait_until(lambda: system.workers[-1].control.log().count("recovery.run") >= 4, message="a few more sweeps")
    assert len(notices(system)) == 1


def test_killed_turn_process_is_noticed_while_the_control_plane_lives(system: System) -> None:
    """kill -9 of the process running a turn, nothing else: its lease lapses, the host's own sweep
    interrupts it, kills its claude and tells the user once; commands are answered all along."""
    system.scenario("slow", delay=120)
    workers = system.worker()
    shop = start(system)
    system.publisher.send("long job")
    pgid = running_claude(system)
    workers.turns.kill9()
    system.publisher.send("/status")
    system.wait_reply(lambda t: t.startswith(f"Session {shop}") and "Running: long job" in t, timeout=10)
    (notice,) = system.wait_reply(lambda t: t.startswith(NOTICE), timeout=30)
    assert 'interrupted: "long job"' in notice
    wait_until(lambda: not group_alive(pgid), timeout=15, message="the orphaned claude to be killed")
    assert [t.status for t in turns(system.engine)] == [TurnStatus.INTERRUPTED]
    system.scenario("")
    workers.turns.start()  # what the supervisor does
    system.publisher.send("are you back?")
    system.wait_reply(lambda t: "Echo: are you back?" in t)
    assert len(notices(system)) == 1


@pytest.mark.both_databases
def test_two_workers_recovering_at_once_notify_once(system: System) -> None:
    system.scenario("slow", delay=120)
    first = system.worker("w1")
    shop = start(system)
    system.publisher.send("long job")
    running_claude(system)
    first.kill9()
    system.scenario("")
    a = system.worker("w1", start=False).start(wait=False)
    b = system.worker("w2", start=False).start(wait=False)
    a.wait_ready()
    b.wait_ready()
    system.wait_reply(lambda t: t.startswith(NOTICE))
    wait_until(lambda: "recovery.run" in b.control.log() and "recovery.run" in a.control.log(),
               message="both to recover")
    assert len(notices(system)) == 1
    assert transitions(system.engine, shop) == [("CREATED", "ACTIVE"), ("ACTIVE", "PAUSED")]


@pytest.mark.both_databases
def test_host_that_goes_away_pauses_its_running_turns_and_answers_at_once(system: System) -> None:
    """No restart at all: another host notices the lapsed lease; commands for the dead host get an answer."""
    system.scenario("slow", delay=120)
    system.worker("w1", "hosta")
    watcher = system.worker("w9", "hostb")
    shop = start(system)
    system.publisher.send("long job")
    running_claude(system)
    system.workers[0].kill9()
    system.wait_reply(lambda t: t.startswith(NOTICE), timeout=40)
    assert status_of(system, shop) == SessionStatus.PAUSED
    assert "recovery.run" in watcher.control.log()
    system.publisher.send("/session resume")  # no id: the current session
    system.wait_reply(lambda t: t.startswith("Host 'hosta' is offline"), timeout=10)
    system.publisher.send("hello?")
    system.wait_reply(lambda t: t.startswith("Host 'hosta' is offline"), count=2, timeout=10)
    system.scenario("")
    system.worker("w1", "hosta")
    system.publisher.send(f"/session resume {shop}")
    system.wait_reply(lambda t: t.startswith(f"Resumed session {shop}"))
    assert status_of(system, shop) == SessionStatus.ACTIVE


@pytest.mark.transport  # the compare-and-sets are tested on both databases in tests/test_stranded.py
def test_a_start_whose_host_vanished_is_answered_and_the_prompt_behind_it_refused(system: System) -> None:
    """hostb accepted the start (its turn plane still beat) while its control plane, which takes starts, was
    dead; then the rest of it died and nothing came back. hosta's sweep refuses the start and says so; the
    prompt sent right behind it is refused rather than sent to the current session; and when hostb returns
    at last, its old task changes nothing."""
    system.worker("w1", "hosta")
    hostb = system.worker("w2", "hostb", extra_env={"CLAUDE_SIGNAL_SIGNAL_SENDER": "false"})  # a remote machine
    system.listener()
    system.signal.direct(ALICE, f"/session start {system.projects / 'shop'}")  # current, on hosta
    system.wait_reply(lambda t: t.startswith("Started session"))
    hostb.control.kill9()
    system.signal.direct(ALICE, f"/session start hostb:{system.projects / 'blog'}")
    system.signal.direct(ALICE, "delete the build directory")
    wait_until(lambda: [s for s in sessions(system.engine) if s.host == "hostb"], message="hostb to get the start")
    hostb.turns.kill9()
    (refusal,) = system.wait_reply(lambda t: t.startswith("Host 'hostb' is offline"), timeout=40)
    assert f"the session in {system.projects / 'blog'} was not started" in refusal
    system.wait_reply(lambda t: t.startswith("Not sent to Claude: the /session start"))
    hostb.control.start()  # too late: it takes the old task
    wait_until(lambda: re.search(r"Task session\.start\[.*\] succeeded", hostb.control.log()), timeout=30,
               message="hostb to run the old start")
    replies = system.replies()
    assert sum(t.startswith("Host 'hostb' is offline") for t in replies) == 1
    assert sum(t.startswith("Started session") for t in replies) == 1  # the one on hosta
    (blog,) = [s for s in sessions(system.engine) if s.host == "hostb"]
    assert blog.status == SessionStatus.TERMINATED
    assert not any("Echo: delete the build directory" in t for t in replies)


def test_clean_restart_interrupts_the_running_turn_and_pauses_nothing(system: System) -> None:
    system.scenario("slow", delay=120)
    workers = system.worker()
    blog = start(system, "blog")  # idle
    shop = start(system, "shop")
    system.publisher.send("long job")
    pgid = running_claude(system)
    workers.stop()  # SIGTERM, as Ctrl-C of `claude-signal up` does
    system.wait_reply(lambda t: t.startswith('Interrupted "long job": the worker on hosta is stopping'))
    assert not group_alive(pgid)
    assert {status_of(system, shop), status_of(system, blog)} == {SessionStatus.ACTIVE}
    assert [t.status for t in turns(system.engine)] == [TurnStatus.INTERRUPTED]
    system.scenario("")
    system.worker()
    system.publisher.send("and now")
    system.wait_reply(lambda t: "Echo: and now" in t)
    assert notices(system) == []
    assert status_of(system, blog) == SessionStatus.ACTIVE


def test_state_survives_stopping_every_process(system: System) -> None:
    workers = system.worker()
    shop = start(system)
    workers.stop()
    system.redis.stop()
    system.signal.stop()
    system.signal.start()
    system.redis.start()
    system.worker()
    system.publisher.send("/session list")
    (listing,) = system.wait_reply(lambda t: t.startswith("Sessions:"))
    assert shop in listing
    system.publisher.send("still there?")
    system.wait_reply(lambda t: "Echo: still there?" in t)
    assert notices(system) == []
