"""Chaos under load: a few hundred commands and prompts from several people in their groups, through the
real listener, while the listener, a control plane's main process, its pool processes, the turn plane and
Redis are SIGKILLed at seeded random instants (each kind at least once; CLAUDE_SIGNAL_CHAOS_SEED replays
a run) and restarted. (The listener dies once it has journaled what was sent: a frame pushed to a listener
that dies before journaling it is lost by signal-cli-rest-api itself, which keeps no copy in json-rpc mode.)
Judged on what the fake Signal server received: every command answered exactly
once and never with an error, every prompt's answer delivered at most once and, per conversation, in
order (exactly once unless its turn was interrupted, which that conversation is then told), no ``claude``
left, every turn final. The one repeat allowed is the one Signal's API cannot prevent: a reply whose
sender was killed between its POST and recording it is posted again; each such copy is identified, and
there are no more of them than the kills could cut sends.

It runs on SQLite and on PostgreSQL, in about a minute each on two quiet cores. On PostgreSQL it once
found a turn plane that stopped consuming after a Redis restart (kombu read an idle pub/sub socket with no
timeout); :func:`claude_signal.wire.kombu_patches.never_block_on_a_gone_subscription` is the fix, and the
timeout message names what is still missing if anything like it comes back.
"""

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
from claude_signal.db.models import Inbox, Outbox, Turn
from claude_signal.host.process_groups import group_alive
from tests.harness import wait_until
from tests.integration.chaos_faults import FAULTS, Faults
from tests.integration.conftest import ALICE, System
from tests.integration.test_chaos import TERMINAL_TURNS, settled

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

PEOPLE = {ALICE: "alice-uuid", "+15550000003": "bob-uuid", "+15550000004": "carol-uuid",
          "+15550000005": "dan-uuid"}
MESSAGES_PER_GROUP = 76  # a start and 75 prompts or commands each: 304 messages
KILLS = 8
ECHO = re.compile(r"Echo: (g\d+-p\d+) ")
INTERRUPTED = re.compile(r' — interrupted: "(g\d+-p\d+)"')
DROPPED = re.compile(r"; (\d+) messages? queued behind it not run")


@pytest.mark.both_databases
def test_kills_under_load_lose_and_repeat_nothing(system: System) -> None:
    seed = int(os.environ.get("CLAUDE_SIGNAL_CHAOS_SEED", random.randrange(1_000_000)))
    print(f"chaos seed {seed}")
    rng = random.Random(seed)
    for number, uuid in PEOPLE.items():
        if number != ALICE:
            system.signal.contact(number, uuid, uuid.split("-")[0].title())
    system.env["CLAUDE_SIGNAL_AUTHORIZED"] = ",".join([*PEOPLE.values(), *PEOPLE])
    system.env["CLAUDE_SIGNAL_SEND_INTERVAL"] = "0.05"  # pacing for Signal's rate limit; the fake has none
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
    kinds = [*FAULTS, *(rng.choice(FAULTS) for _ in range(KILLS - len(FAULTS)))]
    rng.shuffle(kinds)
    strikes = dict(zip(sorted(rng.sample(range(10, len(plan) - 5), KILLS)), kinds, strict=True))
    began = time.monotonic()
    for index, (g, text) in enumerate(plan):
        number, group = groups[g]
        faults.sent(f"{PEOPLE[number]}:{system.signal.group_message(number, group, text)}")
        time.sleep(rng.uniform(0.0, 0.08))
        if index in strikes:
            print(f"at message {index}: {faults.strike(strikes[index])}")
    faults.heal()
    sending = time.monotonic() - began
    try:
        wait_until(lambda: _all_in(system, len(plan)) and settled(system), timeout=300, interval=1,
                   message="every message handled, every reply sent")
    except AssertionError as timeout:
        raise AssertionError(f"{timeout}; {_unsettled(system, plan)}") from None
    print(f"{len(plan)} messages sent in {sending:.0f}s, all handled and answered after "
          f"{time.monotonic() - began:.0f}s")

    with unit_of_work(system.engine) as db:
        turns = {t.prompt: t.status for t in db.execute(select(Turn)).scalars()}
        claims = dict(db.execute(select(Outbox.signal_timestamp, Outbox.attempts)
                                 .where(Outbox.signal_timestamp.is_not(None))).all())
    assert all(status in TERMINAL_TURNS for status in turns.values()), turns
    posts = system.signal.sent()
    replies, repeats = _one_post_per_reply(posts, claims)
    print(f"{len(posts)} replies posted; posted again after a kill cut the send: {repeats}")
    assert len(repeats) <= 2 * kinds.count("control main") + kinds.count("pool process"), repeats
    assert not [r for r in replies if r.get("message", "").startswith("Something went wrong")]
    for g, (_, group) in enumerate(groups):
        sent = [text for gg, text in plan if gg == g]
        received = [r.get("message", "") for r in replies if group.id in r.get("recipients", [])]
        # every command answered exactly once
        assert sum(r.startswith("Hosts:") for r in received) == sent.count("/hosts")
        assert sum(r.startswith("claude-signal commands:") for r in received) == sent.count("/session help")
        assert sum(r.startswith("Started session") for r in received) == 1
        # every prompt's answer once, in order; missing only where its turn was interrupted, and then said so
        echoes = [m.group(1) for r in received if (m := ECHO.match(r))]
        assert all(n == 1 for n in Counter(echoes).values()), Counter(echoes).most_common(3)
        prompts = [t for t in sent if not t.startswith("/")]
        assert echoes == [p for p in prompts if p in echoes], "answers out of order"
        missing = [p for p in prompts if p not in echoes]
        assert all(turns.get(p) in {"INTERRUPTED", "CANCELLED"} for p in missing), [(p, turns.get(p)) for p in missing]
        told = [m.group(1) for r in received for m in INTERRUPTED.finditer(r)]
        assert sorted(told) == sorted(p for p in prompts if turns.get(p) == "INTERRUPTED")
        dropped = sum(int(m.group(1)) for r in received for m in DROPPED.finditer(r))
        assert dropped == sum(turns.get(p) == "CANCELLED" for p in prompts)
    calls = [json.loads(line) for line in Path(system.env["FAKE_CLAUDE_LOG"]).read_text().splitlines()]
    for call in calls:
        wait_until(lambda call=call: not group_alive(call["pid"]), timeout=15, message=f"claude {call['pid']} to end")


def _one_post_per_reply(posts: list[dict], claims: dict[int, int]) -> tuple[list[dict], list[str]]:  # type: ignore[type-arg]
    """The POST each reply recorded as its delivery, and the texts of the others.

    Signal has no idempotent send: a sender killed between its POST and recording it leaves the reply to be
    claimed and posted again, so the phone shows it twice. That is the one repeat allowed, and it is
    recognisable: a POST no reply recorded, identical to one that a reply claimed more than once recorded.
    (Every reply here is one part, so each reply records the timestamp of its one POST.)
    """
    def what(post: dict) -> tuple[tuple[str, ...], str]:  # type: ignore[type-arg]
        return tuple(post["recipients"]), post.get("message", "")

    by_timestamp = {post["_timestamp"]: post for post in posts}
    assert set(claims) <= set(by_timestamp)
    reclaimed = {what(by_timestamp[ts]) for ts, attempts in claims.items() if attempts > 1}
    repeats = [post for post in posts if post["_timestamp"] not in claims]
    assert all(what(post) in reclaimed for post in repeats), [what(post) for post in repeats]
    return [post for post in posts if post["_timestamp"] in claims], [what(post)[1][:60] for post in repeats]


def _unsettled(system: System, plan: list[tuple[int, str]]) -> str:
    """What keeps the system from settling, for the failure message."""
    with unit_of_work(system.engine) as db:
        inbox = Counter(str(s) for s in db.execute(select(Inbox.status)).scalars())
        unsent = Counter(str(s) for s in db.execute(select(Outbox.status).where(Outbox.status != "SENT")).scalars())
        turns = Counter(str(s) for s in db.execute(select(Turn.status)).scalars())
        waiting = db.execute(select(Inbox.key, Inbox.text).where(Inbox.status != "HANDLED").limit(5)).all()
        texts = Counter(db.execute(select(Inbox.text)).scalars())
    absent = [f"#{index} {text}" for index, (_, text) in enumerate(plan) if texts.pop(text, 0) < 1
              and not text.startswith("/")][:10]
    return (f"inbox {sum(inbox.values())} of {len(plan)} ({dict(inbox)}), prompts never in the inbox {absent}, "
            f"unsent replies {dict(unsent)}, turns {dict(turns)}, first unhandled {waiting}")


def _all_in(system: System, count: int) -> bool:
    with unit_of_work(system.engine) as db:
        return len(db.execute(select(Inbox.key)).scalars().all()) >= count
