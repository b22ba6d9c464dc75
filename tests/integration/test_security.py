"""Trust boundaries against the running system: real workers, real Redis, the fake Signal server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from claude_signal.db.models import Inbox
from tests.harness import wait_until
from tests.integration.conftest import System
from tests.integration.helpers import count, sessions


def test_claude_never_sees_the_bots_settings_or_passwords(system: System) -> None:
    system.env.update({"POSTGRES_PASSWORD": "hunter2", "CLAUDE_SIGNAL_FLOWER_AUTH": "admin:hunter2",
                       "ANTHROPIC_MODEL": "claude-test"})
    system.worker()
    system.publisher.send(f"/session start {system.projects / 'shop'}")
    system.wait_reply(lambda t: t.startswith("Started session"))
    system.publisher.send("hello")
    system.wait_reply(lambda t: t.startswith("Done in"))
    (call, *_) = [json.loads(line) for line in Path(system.env["FAKE_CLAUDE_LOG"]).read_text().splitlines()]
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
