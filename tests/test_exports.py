"""/export: the recorded turns as Markdown, and the command's reply with the file, on a real database."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, select, update

from claude_signal.config import Settings
from claude_signal.core import exports
from claude_signal.db.engine import unit_of_work
from claude_signal.db.models import Outbox, Session, Turn
from claude_signal.rules.attachments_out import unpack
from claude_signal.rules.states import TurnStatus
from claude_signal.wire.inbound import FileRef, InboundMessage
from tests.test_handling import handle, live_worker, msg, replies_to, start_session  # noqa: F401

AT = datetime(2026, 5, 1, 11, 58, tzinfo=UTC)


def test_render_reads_like_the_conversation() -> None:
    session = Session(id="1a2b3c4d", host="laptop", project_path="/home/me/shop")
    records = [
        exports.TurnRecord(AT, "why does the test fail?", (), "› Bash: pytest -q\n\nThe fixture is stale.",
                           TurnStatus.DONE, 0.0123, 4000),
        exports.TurnRecord(AT, "", ("screenshot.png",), "A grey button.", TurnStatus.DONE, 0.01, 2000),
        exports.TurnRecord(AT, "go on", (), None, TurnStatus.INTERRUPTED, None, None),
    ]
    text = exports.render(session, records, "Europe/Berlin", AT)
    assert text.startswith("# Session 1a2b3c4d\n\nlaptop:/home/me/shop · 3 turns · $0.0223 · exported "
                           "2026-05-01 13:58 (Europe/Berlin)\n")
    assert ("## 1 · 2026-05-01 13:58\n\n**You:**\n\nwhy does the test fail?\n\n**Claude:**\n\n"
            "› Bash: pytest -q\n\nThe fixture is stale.\n\n_4.0s · $0.0123_\n") in text
    assert "**You:**\n\n📎 screenshot.png\n\n**Claude:**\n\nA grey button." in text
    assert "**You:**\n\ngo on\n\n**Claude:**\n\n…\n\n_(interrupted)_\n" in text


def test_export_replies_with_the_file(engine: Engine, settings: Settings, project_root: Path) -> None:
    sid = start_session(engine, settings, project_root / "shop")
    picture = InboundMessage.build(sender="alice", conversation="alice", timestamp=msg("x").timestamp,
                                   text="what is this?", files=(FileRef(id="a.png", content_type="image/png",
                                                                        filename="a.png"),), attachments=1)
    handle(engine, settings, picture)
    with unit_of_work(engine) as db:
        db.execute(update(Turn).values(status=TurnStatus.DONE, answer="A chart.", cost_usd=0.5, duration_ms=1500))
    export = msg("/export")
    handle(engine, settings, export)
    (text,) = replies_to(engine, export)
    assert text == f"Transcript of session {sid}: 1 turn (session-{sid}.md)."
    with unit_of_work(engine) as db:
        (file,) = unpack(db.execute(select(Outbox.attachments).where(Outbox.inbox_key == export.key)).scalar_one())
    assert (file.filename, file.content_type) == (f"session-{sid}.md", "text/markdown")
    body = base64.b64decode(file.data).decode()
    assert "📎 a.png\n\nwhat is this?\n\n**Claude:**\n\nA chart.\n\n_1.5s · $0.5000_" in body


def test_a_turns_recorded_answer_is_bounded() -> None:
    from claude_signal.core.exports import MAX_RECORDED_ANSWER, recorded_answer

    assert recorded_answer([]) is None
    assert recorded_answer(["› Bash: ls", "Two files."]) == "› Bash: ls\n\nTwo files."
    long = recorded_answer(["x" * (MAX_RECORDED_ANSWER + 10)])
    assert long is not None and long.endswith("(cut: the rest of this turn was too long to keep)")
    assert len(long) < MAX_RECORDED_ANSWER + 100
