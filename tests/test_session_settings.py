"""/model and /quiet: kept on the session, read by its next turn's claim."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from claude_signal.config import Settings
from claude_signal.core import session_settings
from claude_signal.core import turn_state as turns
from claude_signal.db.engine import unit_of_work
from tests.test_handling import ME, handle, live_worker, msg, replies_to, start_session  # noqa: F401


def test_model_and_quiet_are_kept_on_the_session_for_its_next_turn(engine: Engine, settings: Settings,
                                                                    project_root: Path) -> None:
    sid = start_session(engine, settings, project_root / "shop")
    replies = []
    for text in ("/model", "/model opus", "/model", "/quiet on", "/quiet"):
        m = msg(text)
        handle(engine, settings, m)
        replies += replies_to(engine, m)
    assert replies[0].startswith(f"Session {sid} uses Claude Code's default model.")
    assert replies[1] == f"Session {sid} now uses model opus (from the next message on)."
    assert replies[2].startswith(f"Session {sid} uses model opus.")
    assert replies[3].startswith(f"Session {sid} is quiet:") and replies[4] == replies[3]
    handle(engine, settings, msg("hello"))
    with unit_of_work(engine) as db:
        claimed = turns.claim_next(db, sid, ME, 30)
    assert claimed is not None and (claimed.model, claimed.quiet, claimed.owner) == ("opus", True, "alice")
    with unit_of_work(engine) as db:
        assert session_settings.model(db, None, "x", show=False).startswith("There is no current session")
