"""Thousands of malformed, oversized, look-alike and spoofed frames through the real listener and workers.

Afterwards: no unauthorized sender has an inbox row, a session or a reply; no session opened outside the
project roots; nothing was sent anywhere but to the authorized person; and both processes still answer.
The frames are drawn from a seeded generator (the seed is printed), so a failure can be replayed.
"""

from __future__ import annotations

import json
import os
import random

import pytest
from sqlalchemy import select

from claude_signal.db.engine import unit_of_work
from claude_signal.db.models import Inbox, Session
from tests.harness import wait_until
from tests.integration.conftest import ACCOUNT, ALICE, System

MALLORY = "+15550000666"
FRAMES = int(os.environ.get("CLAUDE_SIGNAL_TEST_HOSTILE_FRAMES", "2000"))

# About processes and the wire, not the database: one backend (SQLite) suffices; the database tests run on both.
pytestmark = pytest.mark.transport


def envelope(number: object, uuid: object, ts: object, body: dict) -> dict:
    return {"account": ACCOUNT, "envelope": {"source": number, "sourceNumber": number, "sourceUuid": uuid,
                                             "sourceName": "x", "sourceDevice": 1, "timestamp": ts, **body}}


def data(text: object, ts: object, **extra: object) -> dict:
    return {"dataMessage": {"timestamp": ts, "message": text, **extra}}


def hostile(rng: random.Random, ts: int, roots: str) -> str:
    """One frame's text: broken, oversized, spoofed or an authorized person's hostile path."""
    evil_paths = ["/etc", "/", f"{roots}/../..", f"{roots}/shop/../../..", "~/.claude", "~/.claude-signal",
                  "/proc/self", f"{roots}/shop\x00/etc", "shop/../../../etc"]
    text = rng.choice([f"/session start {rng.choice(evil_paths)}", "/approve all", "/mode bypassPermissions",
                       "hello\ud800world", "a\x00b", "🙂" * 50, "/session stop", "run: rm -rf /"])
    kind = rng.randrange(12)
    if kind == 0:
        return rng.choice(["", "{", "[]", "null", "42", '"text"', "{\"envelope\": 5}", "\x00\x01", "}{"])
    if kind == 1:
        return json.dumps(envelope(MALLORY, "mallory-uuid", ts, data(text, ts)))[: rng.randrange(1, 200)]
    if kind == 2:  # wrong types everywhere
        return json.dumps(envelope(rng.choice([None, 5, [], {}]), rng.choice([None, 7, ["x"]]),
                                   rng.choice(["soon", None, -1, 1e30]), data(rng.choice([None, 5, {}]), ts)))
    if kind == 3:  # a stranger
        return json.dumps(envelope(MALLORY, "mallory-uuid", ts, data(text, ts)))
    if kind == 4:  # look-alikes of Alice: her number with another uuid, her uuid with another number, near misses
        number, uuid = rng.choice([(ALICE, "mallory-uuid"), (MALLORY, "alice-uuid"), (ALICE + "\u200b", "alice-uuid"),
                                   (" " + ALICE, "alice-uuid "), (ALICE, "ALICE-UUID")])
        return json.dumps(envelope(number, uuid, ts, data(text, ts)))
    if kind == 5:  # sync transcripts in a stranger's envelope, claiming to be the owner's Note to Self
        sent = {"destination": ACCOUNT, "destinationNumber": ACCOUNT, "timestamp": ts, "message": text}
        return json.dumps(envelope(MALLORY, "mallory-uuid", ts, {"syncMessage": {"sentMessage": sent}}))
    if kind == 6:  # a stranger in a group, and a group id that is not base64
        return json.dumps(envelope(MALLORY, "mallory-uuid", ts, data(text, ts, groupInfo={
            "groupId": rng.choice(["not base64!", "", "Zm9v", None]), "type": "DELIVER"})))
    if kind == 7:  # oversized
        size = rng.choice([70_000] * 19 + [1_100_000])
        return json.dumps(envelope(MALLORY, "mallory-uuid", ts, data("x" * size, ts)))
    if kind == 8:  # reactions and quotes aimed at nothing
        return json.dumps(envelope(MALLORY, "mallory-uuid", ts, data(None, ts, reaction={
            "emoji": "👍", "targetAuthor": ACCOUNT, "targetSentTimestamp": rng.randrange(10**13), "isRemove": False})))
    if kind == 9:  # an error frame
        return json.dumps({"error": {"message": "org.asamk.signal.manager.api.UntrustedIdentityException"},
                           "account": ACCOUNT})
    if kind == 10:  # deep nesting
        return "[" * 5000 + "]" * 5000
    return json.dumps(envelope(ALICE, "alice-uuid", ts, data(text, ts)))  # Alice, with hostile content


@pytest.mark.timeout(300)
def test_hostile_frames_change_nothing_and_both_processes_still_answer(system: System) -> None:
    seed = int(os.environ.get("CLAUDE_SIGNAL_TEST_SEED", random.SystemRandom().randrange(10**6)))
    print(f"hostile frames seed: {seed} (CLAUDE_SIGNAL_TEST_SEED={seed} replays it)")
    rng = random.Random(seed)
    worker = system.worker()
    listener = system.listener()
    for _ in range(FRAMES):
        system.signal.inject_raw(hostile(rng, system.signal.next_timestamp(), str(system.projects)))
    system.signal.direct(ALICE, "/hosts")  # read after the others: once answered, they were handled
    system.wait_reply(lambda t: t.startswith("Hosts:"), timeout=240)
    wait_until(lambda: _inbox_settled(system), timeout=60, message="every recorded message to be handled")

    with unit_of_work(system.engine) as db:
        senders = set(db.execute(select(Inbox.sender)).scalars())
        paths = list(db.execute(select(Session.project_path)).scalars())
    assert senders <= {"alice-uuid"}, senders
    root = str(system.projects.resolve())
    assert all(p == root or p.startswith(root + "/") for p in paths), paths
    recipients = {r for m in system.signal.sent() for r in m.get("recipients", [])}
    assert recipients <= {"alice-uuid", ALICE}, recipients
    assert all("Traceback" not in m.get("message", "") for m in system.signal.sent())
    # Both processes still answer, through the real listener.
    assert listener.proc is not None and listener.proc.poll() is None
    system.signal.direct(ALICE, "/session list")
    system.wait_reply(lambda t: t.startswith(("Sessions:", "No sessions")), timeout=60)
    assert all(p.proc is not None and p.proc.poll() is None for p in worker.planes)


def _inbox_settled(system: System) -> bool:
    with unit_of_work(system.engine) as db:
        return not db.execute(select(Inbox.key).where(Inbox.status == "RECEIVED")).first()
