"""Trust boundaries against the running system: real workers, real Redis, the fake Signal server."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.conftest import System


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
