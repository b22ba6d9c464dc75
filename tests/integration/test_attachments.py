"""Pictures and files from the phone, end to end: the real listener reads a frame with attachments from the
fake Signal server, workers fetch them by id (``GET /v1/attachments/{id}``), and Claude (the fake, and the
real CLI against the scripted Messages API) gets an image block or the saved file's path."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from tests.integration.conftest import ALICE, System

# About processes and the wire, not the database: one backend (SQLite) suffices; the database tests run on both.
pytestmark = [pytest.mark.transport, pytest.mark.parametrize("claude_cli", ["fake", "real"], indirect=True)]

# A 1x1 PNG: small, valid, and what the API would accept.
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9aw"
                       "AAAABJRU5ErkJggg==")


def start_shop(system: System) -> None:
    system.worker()
    system.listener()
    system.signal.direct(ALICE, "/session start shop")
    system.wait_reply(lambda t: t.startswith("Started session"))


def test_a_picture_with_a_caption_reaches_claude_as_an_image(system: System) -> None:
    start_shop(system)
    picture = system.signal.attachment(PNG, "image/png", "screenshot.png")
    system.signal.direct(ALICE, "what is on this?", attachments=[picture])
    (answer,) = system.wait_reply(lambda t: "Echo: " in t, timeout=40)
    assert f"[image image/png {len(PNG)} bytes] what is on this?" in answer
    assert ("GET", f"/v1/attachments/{picture['id']}", None) in system.signal.requests("/v1/attachments")


def test_a_file_is_saved_in_the_project_and_claude_gets_its_path(system: System) -> None:
    start_shop(system)
    report = system.signal.attachment(b"%PDF-1.4 quarterly numbers", "application/pdf", "Q3 report.pdf")
    system.signal.direct(ALICE, "", attachments=[report])
    (answer,) = system.wait_reply(lambda t: "Echo: " in t, timeout=40)
    assert "Saved Q3 report.pdf as .claude-signal/files/" in answer and ".gitignore" in answer
    saved = list(Path(system.projects / "shop" / ".claude-signal" / "files").iterdir())
    assert [p.read_bytes() for p in saved] == [b"%PDF-1.4 quarterly numbers"]
    assert f"it is saved at .claude-signal/files/{saved[0].name}" in answer


def test_an_oversized_picture_is_refused_with_a_clear_reply(system: System) -> None:
    start_shop(system)
    big = system.signal.attachment(b"\xff\xd8" + b"0" * (6 * 1024 * 1024), "image/jpeg", "huge.jpg")
    system.signal.direct(ALICE, "look", attachments=[big])
    system.wait_reply(lambda t: t.startswith("The picture huge.jpg is 6.0 MB"), timeout=40)
