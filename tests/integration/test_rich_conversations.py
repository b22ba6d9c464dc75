"""Files and pictures out, captions that follow their picture, model, quiet, cost, budget and export, end to
end: the real listener reads each message from the fake Signal server, real workers handle it, and the
verdict is what the fake Signal server received (attachments decoded from ``/v2/send``)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from claude_signal.rules.attachments_out import SIGNAL_MAX_BYTES
from tests.fakes.signal_rest import SentFile
from tests.integration.conftest import ALICE, System

# About processes and the wire, not the database: one backend (SQLite) suffices; the database tests run on both.
pytestmark = pytest.mark.transport

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9aw"
                       "AAAABJRU5ErkJggg==")


def start_shop(system: System) -> None:
    system.worker()
    system.listener()
    system.signal.direct(ALICE, "/session start shop")
    system.wait_reply(lambda t: t.startswith("Started session"))


def with_files(system: System, count: int = 1, timeout: float = 30) -> list[dict]:
    return system.signal.wait_for_sent(lambda m: bool(m.get("base64_attachments")), count=count, timeout=timeout)


def test_get_sends_a_project_file_and_refuses_what_it_must_not(system: System) -> None:
    shop = system.projects / "shop"
    (shop / "src").mkdir()
    (shop / "src" / "app.py").write_text("print('hi')\n")
    secret = system.tmp / "secret.txt"
    secret.write_text("not yours")
    (shop / "escape.txt").symlink_to(secret)
    with (shop / "huge.bin").open("wb") as handle:
        handle.truncate(SIGNAL_MAX_BYTES + 1)  # sparse: as big as it says, without writing 100 MB
    start_shop(system)
    system.signal.direct(ALICE, "/get src/app.py")
    (sent,) = with_files(system)
    assert sent["message"].startswith("app.py · 12 bytes from session")
    assert system.signal.files_of(sent) == [SentFile("text/x-python", "app.py", b"print('hi')\n")]
    for path, why in [("escape.txt", "escape.txt leads outside the project roots"),
                      (str(secret), f"{secret} is outside the project roots"),
                      ("src", "src is a folder"),
                      ("nope.txt", f"There is no nope.txt in {shop.resolve()}"),
                      ("huge.bin", "huge.bin is 100.0 MB; Signal takes attachments up to 100.0 MB")]:
        system.signal.direct(ALICE, f"/get {path}")
        system.wait_reply(lambda t, why=why: t.startswith(why))
    assert len([m for m in system.signal.sent() if m.get("base64_attachments")]) == 1


@pytest.mark.parametrize("claude_cli", ["fake", "real"], indirect=True)
def test_a_picture_claude_reads_comes_back_as_a_picture_on_the_chosen_model(system: System) -> None:
    chart = system.projects / "shop" / "chart.png"
    chart.write_bytes(PNG)
    start_shop(system)
    system.signal.direct(ALICE, "/model")
    system.wait_reply(lambda t: "uses Claude Code's default model" in t)
    system.signal.direct(ALICE, "/model haiku")
    system.wait_reply(lambda t: t.endswith("now uses model haiku (from the next message on)."))
    system.signal.direct(ALICE, f"read: {chart.resolve()}")
    (picture,) = with_files(system, timeout=40)
    assert system.signal.files_of(picture) == [SentFile("image/png", "picture-1.png", PNG)]
    assert f"Read {chart.resolve()}" in picture["message"]
    system.wait_reply(lambda t: t.startswith(f"Echo: read: {chart.resolve()}"), timeout=40)
    if system.api is not None:  # the real CLI resolved the alias and asked the API for that model
        assert {r.get("model") for r in system.api.requests} == {"claude-haiku-4-5-20251001"}
    else:
        calls = [json.loads(line) for line in Path(system.env["FAKE_CLAUDE_LOG"]).read_text().splitlines()]
        turns = [c["argv"] for c in calls if "--session-id" in c["argv"] or any("--resume" in a for a in c["argv"])]
        assert turns and all("--model=haiku" in argv for argv in turns)


def test_quiet_folds_tool_lines_and_cost_and_export_tell_the_turns(system: System) -> None:
    start_shop(system)
    system.signal.direct(ALICE, "/mode bypassPermissions")
    system.wait_reply(lambda t: "now uses permission mode bypassPermissions" in t)
    system.signal.direct(ALICE, "/quiet on")
    system.wait_reply(lambda t: " is quiet: " in t)
    system.signal.direct(ALICE, "run: ls")
    (answer,) = system.wait_reply(lambda t: t.startswith("Echo: run: ls"), timeout=40)
    assert "\n\n› 1 tool: Bash\n\nDone in " in answer  # one message: the answer, its tools, its cost
    assert not [t for t in system.replies() if t.startswith("› ")]
    system.signal.direct(ALICE, "/cost")
    (cost,) = system.wait_reply(lambda t: t.startswith("Claude's cost"))
    assert "$0.0123 over 1 turn" in cost and "Today: $0.0123 · this month: $0.0123" in cost
    system.signal.direct(ALICE, "/export")
    (sent,) = with_files(system)
    assert sent["message"].startswith("Transcript of session ") and "1 turn" in sent["message"]
    (markdown,) = system.signal.files_of(sent)
    assert markdown.content_type == "text/markdown" and markdown.filename.endswith(".md")
    text = markdown.data.decode()
    assert "**You:**\n\nrun: ls\n" in text
    assert "**Claude:**\n\n› Bash: ls\n\nEcho: run: ls" in text and "$0.0123" in text


def test_a_picture_sent_alone_takes_the_next_message_as_its_caption(system: System) -> None:
    start_shop(system)
    system.signal.direct(ALICE, "", attachments=[system.signal.attachment(PNG, "image/png", "a.png")])
    system.wait_reply(lambda t: t.startswith("Got the picture."))
    system.signal.direct(ALICE, "what is on this?")
    system.wait_reply(lambda t: t.startswith(f"Echo: [image image/png {len(PNG)} bytes] what is on this? (turn 1;"),
                      timeout=40)
    system.signal.direct(ALICE, "", attachments=[system.signal.attachment(PNG, "image/png", "b.png")])
    system.wait_reply(lambda t: t.startswith("Got the picture."), count=2)
    system.signal.direct(ALICE, "/status")  # a command: the picture goes to Claude as it is, at once
    system.wait_reply(lambda t: t.startswith("Session "))
    system.wait_reply(lambda t: t.startswith(f"Echo: [image image/png {len(PNG)} bytes] (The user sent this "
                                             "picture without a caption.) (turn 2;"), timeout=40)
    assert len([t for t in system.replies() if t.startswith("Echo: ")]) == 2


def test_a_lone_picture_goes_alone_after_the_wait_and_a_spent_budget_refuses_new_turns(system: System) -> None:
    system.env.update(CLAUDE_SIGNAL_CAPTION_WAIT="2", CLAUDE_SIGNAL_DAILY_BUDGET="0.01")
    start_shop(system)
    system.signal.direct(ALICE, "", attachments=[system.signal.attachment(PNG, "image/png", "a.png")])
    system.wait_reply(lambda t: t.startswith("Got the picture.") and "within 2 s" in t)
    system.wait_reply(lambda t: "(The user sent this picture without a caption.) (turn 1;" in t, timeout=40)
    system.signal.direct(ALICE, "hello again")  # the first turn cost $0.0123, more than the day's $0.01
    system.wait_reply(lambda t: t.startswith("Not sent to Claude: today's budget of $0.01 is spent ($0.0123"))
    system.signal.direct(ALICE, "/cost")
    (cost,) = system.wait_reply(lambda t: "Daily budget: $0.01, $0.0000 left today" in t)
    assert "$0.0123 over 1 turn\n" in cost, cost  # the refused message was never a turn of Claude's
    assert not [t for t in system.replies() if "hello again" in t]
