"""Chaos: workers are killed with SIGKILL at random moments while a conversation goes on through the real
listener, then the invariants are checked once everything has settled: no message lost, no effect twice,
no session owned twice, no `claude` left running. The seed is printed so a failure can be replayed
(CLAUDE_SIGNAL_CHAOS_SEED)."""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from claude_signal.core.lifecycle import ALLOWED
from claude_signal.db.engine import unit_of_work
from claude_signal.db.models import Inbox, Outbox, Session, Transition, Turn
from claude_signal.host.process_groups import group_alive
from claude_signal.rules.states import InboxStatus, OutboxStatus, SessionStatus
from tests.harness import wait_until
from tests.integration.conftest import ALICE, System

pytestmark = pytest.mark.integration

TERMINAL_TURNS = {"DONE", "FAILED", "INTERRUPTED", "CANCELLED"}


def script(system: System, rng: random.Random) -> list[tuple[str, str]]:
    """(conversation, text) pairs: a direct chat and a group, each starting a session and talking to it."""
    steps = [("direct", f"/session start {system.projects / 'shop'}"),
             ("group", f"/session start {system.projects / 'blog'}")]
    for n in range(8):
        steps.append((rng.choice(["direct", "group"]), rng.choice([f"prompt {n}", f"prompt {n}", "/status", "/hosts"])))
    steps.append(("direct", "/session list"))
    return steps


def settled(system: System) -> bool:
    with unit_of_work(system.engine) as db:
        inbox = db.execute(select(Inbox.status)).scalars().all()
        turns = db.execute(select(Turn.status, Session.status).join(Session)).all()
        unsent = db.execute(select(Outbox.id).where(Outbox.status != OutboxStatus.SENT)).scalars().all()
    return (bool(inbox) and all(s == InboxStatus.HANDLED for s in inbox) and not unsent
            and all(t in TERMINAL_TURNS or (t == "QUEUED" and s != SessionStatus.ACTIVE) for t, s in turns))


def inbox_count(system: System) -> int:
    with unit_of_work(system.engine) as db:
        return len(db.execute(select(Inbox.key)).scalars().all())


@pytest.mark.both_databases
def test_random_kills_break_no_invariant(system: System) -> None:
    seed = int(os.environ.get("CLAUDE_SIGNAL_CHAOS_SEED", random.randrange(1_000_000)))
    print(f"chaos seed {seed}")
    rng = random.Random(seed)
    workers = [system.worker("w1"), system.worker("w2")]
    system.listener()
    group = system.signal.add_group("blog-thread", [ALICE])
    steps = script(system, rng)
    kills = sorted(rng.sample(range(2, len(steps)), 3))
    sent = 0
    for index, (where, text) in enumerate(steps):
        if where == "direct":
            system.signal.direct(ALICE, text)
        else:
            system.signal.group_message(ALICE, group, text)
        sent += 1
        time.sleep(rng.uniform(0.05, 0.8))
        if index in kills:
            victim = rng.randrange(len(workers))
            workers[victim].kill9()
            workers[victim] = system.worker(f"w{victim + 1}")  # same node name, new incarnation
    # A message lost in a kill's hand-off comes back within the listener's re-publish bound (30 s).
    wait_until(lambda: settled(system) and inbox_count(system) >= sent, timeout=120, interval=0.5,
               message="every message in the inbox and the system settled")

    with unit_of_work(system.engine) as db:
        inbox = db.execute(select(Inbox.key)).scalars().all()
        sessions = db.execute(select(Session)).scalars().all()
        transitions = db.execute(select(Transition).order_by(Transition.id)).scalars().all()
        turns = db.execute(select(Turn)).scalars().all()
        outbox_keys = db.execute(select(Outbox.dedupe_key)).scalars().all()
    # nothing lost: every message read from Signal was recorded once and handled
    assert len(inbox) == sent == len(set(inbox))
    # nothing twice: one session per start, one turn per prompt, one reply row per key, valid transitions
    assert len(sessions) == 2
    assert len({s.origin_key for s in sessions}) == 2
    assert all(n == 1 for n in Counter(t.inbound_key for t in turns).values())
    assert len(outbox_keys) == len(set(outbox_keys))
    for session in sessions:
        path = [(t.from_status, t.to_status) for t in transitions if t.session_id == session.id]
        assert all(b in ALLOWED.get(a, set()) for a, b in path), path
        assert all(path[i][1] == path[i + 1][0] for i in range(len(path) - 1)), path
    # never owned twice: at most one active session per project and host, owned by a live incarnation
    active = [s for s in sessions if s.status == SessionStatus.ACTIVE]
    assert len({(s.host, s.project_path) for s in active}) == len(active)
    # no claude left behind
    calls = [json.loads(line) for line in Path(system.env["FAKE_CLAUDE_LOG"]).read_text().splitlines()]
    for call in calls:
        wait_until(lambda call=call: not group_alive(call["pid"]), timeout=15, message=f"claude {call['pid']} to end")
