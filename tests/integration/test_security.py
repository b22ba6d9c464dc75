"""Trust boundaries against the running system: real workers, real Redis, the fake Signal server."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from claude_signal.db.models import Inbox
from tests.harness import wait_until
from tests.integration.conftest import ACCOUNT, ALICE, System
from tests.integration.helpers import count, sessions

MALLORY = "+15550000666"


def claude_calls(system: System) -> list[dict]:
    return [json.loads(line) for line in Path(system.env["FAKE_CLAUDE_LOG"]).read_text().splitlines()]


def test_claude_never_sees_the_bots_settings_or_passwords(system: System) -> None:
    system.env.update({"POSTGRES_PASSWORD": "hunter2", "CLAUDE_SIGNAL_FLOWER_AUTH": "admin:hunter2",
                       "ANTHROPIC_MODEL": "claude-test"})
    system.worker()
    system.publisher.send(f"/session start {system.projects / 'shop'}")
    system.wait_reply(lambda t: t.startswith("Started session"))
    system.publisher.send("hello")
    system.wait_reply(lambda t: "Done in " in t)
    (version, turn) = claude_calls(system)
    assert version["argv"] == ["--version"]  # the host's check before the session started
    for call in (version, turn):
        names = set(call["env"])
        assert {"PATH", "HOME", "CLAUDE_CONFIG_DIR", "ANTHROPIC_MODEL", "FAKE_CLAUDE_LOG"} <= names
        assert not [n for n in names if n.startswith("CLAUDE_SIGNAL_") or "PASSWORD" in n or n == "CLAUDECODE"]


FORGER = """
import sys, time
from celery import Celery
broker, project, signature = sys.argv[1:4]
app = Celery("attacker", broker=broker)
ts = int(time.time() * 1000)
record = {"key": f"alice-uuid:{ts}", "sender": "alice-uuid", "sender_number": "+15550000002",
          "conversation": "alice-uuid", "timestamp": ts, "text": f"/session start {project}"}
headers = {"claude_signal_sig": signature} if signature else {}
app.send_task("command.handle", args=[record], task_id=f"in:{record['key']}", queue="shared",
              routing_key="shared", headers=headers)
app.close()
"""

# About processes and the wire, not the database: one backend (SQLite) suffices; the database tests run on both.
pytestmark = pytest.mark.transport


def forge(system: System, signature: str = "") -> None:
    """Publish ``/session start`` as Alice with the broker alone: a Celery app of the attacker's own."""
    subprocess.run([sys.executable, "-c", FORGER, system.redis.url, str(system.projects / "shop"), signature],
                   check=True, timeout=60)


@pytest.mark.parametrize("authorized", ["alice-uuid,+15550000002", ""])
def test_a_command_forged_with_broker_access_alone_has_no_effect(system: System, authorized: str) -> None:
    system.env["CLAUDE_SIGNAL_AUTHORIZED"] = authorized
    worker = system.worker()
    forge(system)
    forge(system, signature="0" * 64)
    wait_until(lambda: worker.log().count("rejected task command.handle") == 2, message="both to be rejected")
    assert "no signature" in worker.log() and "invalid signature" in worker.log()
    assert count(system.engine, Inbox) == 0 and sessions(system.engine) == []
    assert system.signal.sent() == []


def frame(number: str, uuid: str, text: str, ts: int) -> dict:
    """A 1:1 data message as signal-cli emits it, with any number and uuid."""
    return {"account": ACCOUNT, "envelope": {
        "source": number, "sourceNumber": number, "sourceUuid": uuid, "sourceName": "?", "sourceDevice": 1,
        "timestamp": ts, "serverReceivedTimestamp": ts + 4, "serverDeliveredTimestamp": ts + 8,
        "dataMessage": {"timestamp": ts, "message": text, "expiresInSeconds": 0, "viewOnce": False}}}


@pytest.mark.transport
def test_forged_sync_transcripts_and_mismatched_identities_get_nothing(system: System) -> None:
    owner = system.signal.contact(ACCOUNT)
    system.env["CLAUDE_SIGNAL_AUTHORIZED"] = f"alice-uuid,{ALICE},{owner.uuid},{ACCOUNT}"
    system.worker()
    listener = system.listener()
    start = f"/session start {system.projects / 'shop'}"
    system.signal.sync_sent(ACCOUNT, start, sender=MALLORY)  # "Note to Self" in a stranger's envelope
    system.signal.sync_sent(ACCOUNT, start, sender=ALICE)  # even an authorized person is not the account
    system.signal.inject(frame(ALICE, "mallory-uuid", start, system.signal.next_timestamp()))
    system.signal.direct(ALICE, "/hosts")  # read after the others: once it is answered, they were handled
    system.wait_reply(lambda t: t.startswith("Hosts:"))
    time.sleep(1)
    assert [m["message"][:6] for m in system.signal.sent()] == ["Hosts:"]
    assert count(system.engine, Inbox) == 1 and sessions(system.engine) == []
    assert listener.log().count("not from the account itself") == 2
    assert "unauthorized sender +15550000002 mallory-uuid" in listener.log()


@pytest.mark.transport
def test_owners_chatter_in_groups_is_never_answered(system: System) -> None:
    system.env["CLAUDE_SIGNAL_AUTHORIZED"] = ACCOUNT  # the bot is a linked device of its owner's number
    system.worker()
    system.listener()
    friends = system.signal.add_group("friends", [ALICE])
    system.signal.sync_sent(friends, "see you at 8")  # the owner, typing in a group of friends
    system.signal.sync_sent(ALICE, "running late")  # and to a friend directly
    system.signal.group_message(ALICE, friends, "ok!")
    system.signal.sync_sent(friends, "/session help")  # an explicit command is the bot's business
    system.wait_reply(lambda t: t.startswith("claude-signal commands:"), recipient=friends.id)
    system.signal.note_to_self("/hosts")
    system.wait_reply(lambda t: t.startswith("Hosts:"), recipient=ACCOUNT)
    time.sleep(1)
    assert [(m["recipients"], m["message"][:6]) for m in system.signal.sent()] == [
        ([friends.id], "claude"), ([ACCOUNT], "Hosts:")]
    assert sessions(system.engine) == []


def test_a_directory_swapped_between_turns_stops_the_turn(system: System) -> None:
    system.worker()
    system.publisher.send(f"/session start {system.projects / 'shop'}")
    system.wait_reply(lambda t: t.startswith("Started session"))
    system.publisher.send("first")
    system.wait_reply(lambda t: "Done in " in t)
    shop = system.projects / "shop"
    shop.rename(system.projects / "shop.old")
    shop.symlink_to(system.env["CLAUDE_SIGNAL_HOME"])  # now the bot's data directory, key and all
    system.publisher.send("second")
    system.wait_reply(lambda t: "outside the allowed project roots" in t)
    assert len([c for c in claude_calls(system) if c["argv"] != ["--version"]]) == 1  # the first turn only
