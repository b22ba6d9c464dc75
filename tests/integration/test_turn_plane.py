"""Two planes: commands, replies and approvals never wait behind Claude turns, and a full turn plane makes a
prompt wait visibly. Real Redis, real control and turn workers, the fake `claude`, the fake Signal server.

Each conversation here is a Signal group bound to its own session, as a person with several projects has.
"""

from __future__ import annotations

import os
import time

import pytest
from sqlalchemy import text

from claude_signal.host.process_groups import group_alive
from claude_signal.rules.states import SessionStatus, TurnStatus
from tests.harness import ROOT, SKEWED_CLOCK, wait_until
from tests.integration.conftest import ALICE, System
from tests.integration.helpers import sessions, turns

QUICK = 20.0  # "answered within seconds": far below the turns' own length (60 s), with room for a loaded machine
SKEWED = {"PYTHONPATH": f"{SKEWED_CLOCK}{os.pathsep}{ROOT}", "SKEWED_CLOCK_SECONDS": "-10"}  # 10 s behind


def group_session(system: System, name: str) -> str:
    """A group bound to a new session in a project of its own; returns the group's conversation id."""
    (system.projects / name).mkdir(exist_ok=True)
    group = system.signal.add_group(name, [ALICE])
    system.publisher.send(f"/session start {system.projects / name}", conversation=group.id)
    system.wait_reply(lambda t: t.startswith("Started session"), recipient=group.id)
    return group.id


def say(system: System, conversation: str, words: str) -> None:
    system.publisher.send(words, conversation=conversation)


def answered(system: System, conversation: str, predicate, timeout: float = QUICK) -> str:  # type: ignore[no-untyped-def]
    (reply,) = system.wait_reply(predicate, recipient=conversation, timeout=timeout)
    return reply


def running_count(system: System) -> int:
    return sum(t.status == TurnStatus.RUNNING for t in turns(system.engine))


def test_commands_approvals_and_cancel_answer_while_turns_outnumber_the_pool(system: System) -> None:
    """Twice as many long turns as control processes: /status, a permission request, its /approve and a
    /cancel are each answered within seconds."""
    system.scenario("", delay=60)  # "wait: …" prompts take a minute
    system.worker(concurrency=2)
    busy = [group_session(system, f"busy{i}") for i in range(4)]
    other = group_session(system, "other")
    for conversation in busy:
        say(system, conversation, "wait: a long refactor")
    wait_until(lambda: running_count(system) == 4, timeout=20, message="four turns running")
    say(system, busy[0], "/status")
    status = answered(system, busy[0], lambda t: t.startswith("Session ") and "Running: wait: a long refactor" in t)
    assert "Permission mode: default" in status
    say(system, other, "run: touch approved.txt")
    ask = answered(system, other, lambda t: t.startswith("Claude wants to run Bash: touch approved.txt"))
    approval_id = ask.split("/approve ")[1].split()[0]
    say(system, other, f"/approve {approval_id}")
    answered(system, other, lambda t: t.startswith(f"Approved {approval_id}"))
    answered(system, other, lambda t: "Echo: run: touch approved.txt" in t)
    say(system, busy[1], "/cancel")
    answered(system, busy[1], lambda t: t == 'Interrupting "wait: a long refactor"…')
    answered(system, busy[1], lambda t: t == "Interrupted.")
    say(system, busy[2], "/hosts")
    answered(system, busy[2], lambda t: t.startswith("Hosts:"))
    assert running_count(system) == 3  # the others still run


def test_a_full_turn_plane_makes_prompts_wait_visibly(system: System) -> None:
    system.env["CLAUDE_SIGNAL_MAX_TURNS"] = "2"
    system.scenario("slow", delay=60)
    system.worker()
    first, second, third = (group_session(system, name) for name in ("one", "two", "three"))
    say(system, first, "job one")
    say(system, second, "job two")
    wait_until(lambda: running_count(system) == 2, timeout=20, message="both slots taken")
    say(system, third, "job three")
    answered(system, third, lambda t: t.startswith("Waiting for a free slot on hosta: 2 turns running"))
    say(system, third, "/status")
    answered(system, third, lambda t: "Queued: 1 message" in t and "Waiting for a free slot on hosta" in t)
    say(system, first, "/cancel")
    answered(system, first, lambda t: t == "Interrupted.")
    wait_until(lambda: any(t.prompt == "job three" and t.status == TurnStatus.RUNNING for t in turns(system.engine)),
               timeout=QUICK, message="the waiting prompt to take the free slot")


def test_a_fault_inside_a_turn_ends_it_with_one_message(system: System) -> None:
    """The database refuses the turn's answer (a stand-in for any exception escaping a turn): the turn ends
    FAILED with one plain message, and the session goes on."""
    system.worker()
    shop = group_session(system, "shop-fault")
    with system.engine.begin() as conn:
        if system.engine.dialect.name == "sqlite":
            conn.execute(text("CREATE TRIGGER refuse_echo BEFORE INSERT ON outbox WHEN NEW.text LIKE 'Echo:%' "
                              "BEGIN SELECT RAISE(ABORT, 'injected fault'); END"))
        else:
            conn.execute(text("ALTER TABLE outbox ADD CONSTRAINT refuse_echo CHECK (text NOT LIKE 'Echo:%') NOT VALID"))
    say(system, shop, "hello")
    failed = answered(system, shop, lambda t: t.startswith("Something went wrong on our side"), timeout=30)
    assert '"hello"' in failed and "Traceback" not in failed
    assert [t.status for t in turns(system.engine)] == [TurnStatus.FAILED]
    with system.engine.begin() as conn:
        if system.engine.dialect.name == "sqlite":
            conn.execute(text("DROP TRIGGER refuse_echo"))
        else:
            conn.execute(text("ALTER TABLE outbox DROP CONSTRAINT refuse_echo"))
    say(system, shop, "again")
    answered(system, shop, lambda t: "Echo: again" in t, timeout=30)
    assert [s.status for s in sessions(system.engine)] == [SessionStatus.ACTIVE]
    assert not [t for t in system.replies(shop) if "stopped" in t and "worker" in t]


@pytest.mark.both_databases
def test_identical_workers_on_one_host_never_pause_each_other(system: System) -> None:
    """Three `claude-signal worker`s with the same HOST and node names (as `--scale worker=3` makes) run
    side by side for several lease periods while a turn runs, then one stops: nothing is paused and the
    host stays online."""
    system.env["CLAUDE_SIGNAL_IDLE_TIMEOUT"] = system.env["CLAUDE_SIGNAL_TURN_TIMEOUT"] = "60"
    system.scenario("slow", delay=12)
    system.worker("w")
    shop = group_session(system, "shop-scale")
    say(system, shop, "slow work")
    wait_until(lambda: running_count(system) == 1, message="the turn to run")
    extra = [system.worker("w"), system.worker("w")]
    time.sleep(4 * 3)  # four lease periods (LEASE_TTL is 3 s here)
    answered(system, shop, lambda t: "Echo: slow work" in t, timeout=30)
    extra[0].stop()
    say(system, shop, "/hosts")
    hosts = answered(system, shop, lambda t: t.startswith("Hosts:"))
    assert "hosta: online" in hosts
    assert not [t for t in system.replies(shop) if t.startswith("The worker running these sessions stopped")]
    assert [s.status for s in sessions(system.engine)] == [SessionStatus.ACTIVE]


def test_a_session_resumed_in_a_group_answers_in_that_group(system: System) -> None:
    system.worker()
    system.publisher.send(f"/session start {system.projects / 'shop'}")
    system.wait_reply(lambda t: t.startswith("Started session"))
    (session,) = sessions(system.engine)
    group = system.signal.add_group("shop-thread", [ALICE])
    say(system, group.id, f"/session resume {session.id}")
    answered(system, group.id, lambda t: t.startswith(f"Session {session.id} is already active"))
    say(system, group.id, "hello from the group")
    answered(system, group.id, lambda t: "Echo: hello from the group" in t)
    assert not [t for t in system.replies() if "hello from the group" in t]  # not in the direct chat


@pytest.mark.both_databases
def test_a_worker_with_a_skewed_clock_keeps_its_turns(system: System) -> None:
    """hostb's wall clock runs 10 s behind (LEASE_TTL is 3 s). Leases and heartbeats are written and
    compared on the database's clock, so hosta's sweeps never take hostb's live turn for a dead one, and
    hostb is online."""
    system.env["CLAUDE_SIGNAL_DEFAULT_HOST"] = "hostb"
    system.env["CLAUDE_SIGNAL_IDLE_TIMEOUT"] = system.env["CLAUDE_SIGNAL_TURN_TIMEOUT"] = "60"
    system.scenario("", delay=10)
    system.worker("w1", "hosta")
    system.worker("w2", "hostb", extra_env=SKEWED)
    shop = group_session(system, "shop-skew")
    say(system, shop, "/hosts")
    hosts = answered(system, shop, lambda t: t.startswith("Hosts:"))
    assert "hosta: online" in hosts and "hostb: online" in hosts
    say(system, shop, "wait: across several lease periods")
    answered(system, shop, lambda t: "Echo: wait: across several lease periods" in t, timeout=40)
    assert "recovery.run" in system.workers[0].control.log()  # hosta swept meanwhile
    assert [t.status for t in turns(system.engine)] == [TurnStatus.DONE]
    assert not [t for t in system.replies(shop) if t.startswith("The worker running these sessions stopped")]


def test_a_host_that_cannot_reach_signal_runs_turns_and_the_other_host_speaks(system: System) -> None:
    """hostb has no way to signal-cli-rest-api (SIGNAL_SENDER false, an address where nothing listens):
    its turns run there, and their replies and typing indicators leave from hosta, next to Signal. hosta's
    clock runs a minute behind: a reply is due by the database's clock, so hostb's are sent at once (by
    hosta's own clock they were a minute in the future, and waited for the sweep)."""
    system.env["CLAUDE_SIGNAL_DEFAULT_HOST"] = "hostb"
    system.scenario("", delay=2)  # "wait: …" takes 2 s, so "typing…" shows while it runs
    system.worker("w1", "hosta", extra_env={**SKEWED, "SKEWED_CLOCK_SECONDS": "-60"})
    system.worker("w2", "hostb", extra_env={"CLAUDE_SIGNAL_SIGNAL_SENDER": "false",
                                            "CLAUDE_SIGNAL_SIGNAL_API": "http://127.0.0.1:9"})
    shop = group_session(system, "shop-remote")
    say(system, shop, "wait: hello from afar")
    answered(system, shop, lambda t: "Echo: wait: hello from afar" in t, timeout=30)
    wait_until(lambda: [m for m, _, _ in system.signal.requests("/v1/typing-indicator") if m == "DELETE"],
               message="typing… to be cleared")
    assert {s.host for s in sessions(system.engine)} == {"hostb"}
    typing = [method for method, path, _ in system.signal.requests("/v1/typing-indicator")]
    assert "PUT" in typing and "DELETE" in typing
    assert "Task outbox.send[" not in system.workers[1].log() and "Task signal.typing[" not in system.workers[1].log()
    assert "Task outbox.send[" in system.workers[0].control.log()


@pytest.mark.transport
def test_stopping_the_turn_plane_leaves_no_claude(system: System) -> None:
    system.scenario("slow", delay=60)
    workers = system.worker()
    shop = group_session(system, "shop-stop")
    say(system, shop, "long")
    pgid = wait_until(lambda: next((t.claude_pgid for t in turns(system.engine) if t.claude_pgid), None),
                      message="claude to start")
    workers.turns.stop()
    assert not group_alive(pgid)
    answered(system, shop, lambda t: t.startswith('Interrupted "long": the worker on hosta is stopping'))
