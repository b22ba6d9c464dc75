"""Chaos under load: a few hundred commands and prompts from several people in their groups, through the
real listener, while the listener, a control plane's main process, its pool processes, the turn plane and
Redis are SIGKILLed at seeded random instants (CLAUDE_SIGNAL_CHAOS_SEED replays one) and restarted.
Judged on what the fake Signal server received: every command answered exactly once, every prompt's
answer delivered at most once and, per conversation, in order (exactly once unless its turn was
interrupted, which is then said), no ``claude`` left, every turn final."""

from __future__ import annotations

import json
import os
import random
import re
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from claude_signal.db.engine import unit_of_work
from claude_signal.db.models import Inbox, Turn
from claude_signal.procs import group_alive
from tests.harness import wait_until
from tests.integration.chaos_faults import Faults
from tests.integration.conftest import ALICE, System
from tests.integration.test_chaos import TERMINAL_TURNS, settled

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

PEOPLE = {ALICE: "alice-uuid", "+15550000003": "bob-uuid", "+15550000004": "carol-uuid"}
MESSAGES_PER_GROUP = 40
ECHO = re.compile(r"Echo: (g\d+-p\d+) ")


def test_kills_under_load_lose_and_repeat_nothing(system: System) -> None:
    seed = int(os.environ.get("CLAUDE_SIGNAL_CHAOS_SEED", random.randrange(1_000_000)))
    print(f"chaos seed {seed}")
    rng = random.Random(seed)
    for number, uuid in PEOPLE.items():
        if number != ALICE:
            system.signal.contact(number, uuid, uuid.split("-")[0].title())
    system.env["CLAUDE_SIGNAL_AUTHORIZED"] = ",".join([*PEOPLE.values(), *PEOPLE])
    workers = system.worker("w1")
    system.listener()
    groups = []
    for n, number in enumerate(PEOPLE):
        (system.projects / f"p{n}").mkdir()
        groups.append((number, system.signal.add_group(f"g{n}", [number])))
    plan: list[tuple[int, str]] = [(g, f"/session start {system.projects / f'p{g}'}") for g in range(len(groups))]
    for i in range(MESSAGES_PER_GROUP - 1):
        for g in rng.sample(range(len(groups)), len(groups)):
            plan.append((g, f"g{g}-p{i}" if rng.random() < 0.6 else rng.choice(["/hosts", "/session help"])))
    faults = Faults(system, workers, rng)
    kill_at = set(rng.sample(range(10, len(plan) - 5), 6))
    for index, (g, text) in enumerate(plan):
        number, group = groups[g]
        system.signal.group_message(number, group, text)
        time.sleep(rng.uniform(0.0, 0.08))
        if index in kill_at:
            print(f"at message {index}: {faults.strike()}")
    faults.heal()
    wait_until(lambda: _all_in(system, len(plan)) and settled(system), timeout=300, interval=1,
               message="every message handled, every reply sent")

    with unit_of_work(system.engine) as db:
        turns = {t.prompt: t.status for t in db.execute(select(Turn)).scalars()}
    assert all(status in TERMINAL_TURNS for status in turns.values()), turns
    for g, (_, group) in enumerate(groups):
        sent = [text for gg, text in plan if gg == g]
        received = [m["message"] for m in system.signal.sent() if group.id in m.get("recipients", [])]
        # every command answered exactly once
        assert sum(r.startswith("Hosts:") for r in received) == sent.count("/hosts")
        assert sum(r.startswith("claude-signal commands:") for r in received) == sent.count("/session help"), received
        assert sum(r.startswith("Started session") for r in received) == 1
        # every prompt's answer once, in order; missing only where its turn was interrupted
        echoes = [m.group(1) for r in received if (m := ECHO.match(r))]
        assert all(n == 1 for n in Counter(echoes).values()), Counter(echoes).most_common(3)
        prompts = [t for t in sent if not t.startswith("/")]
        assert echoes == [p for p in prompts if p in echoes], "answers out of order"
        missing = [p for p in prompts if p not in echoes]
        assert all(turns.get(p) in {"INTERRUPTED", "CANCELLED", "FAILED", None} for p in missing), missing
    calls = [json.loads(line) for line in Path(system.env["FAKE_CLAUDE_LOG"]).read_text().splitlines()]
    for call in calls:
        wait_until(lambda call=call: not group_alive(call["pid"]), timeout=15, message=f"claude {call['pid']} to end")


def _all_in(system: System, count: int) -> bool:
    with unit_of_work(system.engine) as db:
        return len(db.execute(select(Inbox.key)).scalars().all()) >= count

