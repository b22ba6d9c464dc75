"""Per-session preferences set from the phone: ``/model`` (passed as ``--model`` on the next turn) and
``/quiet`` (tool lines fold into the answer). Each is a row change the next turn reads when it is claimed."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session as DB

from claude_signal.db.models import Session
from claude_signal.rules import replies
from claude_signal.rules.states import SessionStatus


def _usable(session: Session | None) -> str | None:
    if session is None:
        return replies.no_current_session()
    if session.status == SessionStatus.TERMINATED:
        return replies.not_accepting_prompts(session.id, SessionStatus.TERMINATED)
    return None


def model(db: DB, session: Session | None, name: str | None, *, show: bool) -> str:
    problem = _usable(session)
    if problem is not None or session is None:
        return problem or replies.no_current_session()
    if show:
        if session.model is None:
            return (f"Session {session.id} uses Claude Code's default model. /model <name> picks one: sonnet, "
                    "opus, haiku or a full model id.")
        return f"Session {session.id} uses model {session.model}. /model default goes back to Claude Code's default."
    db.execute(update(Session).where(Session.id == session.id).values(model=name)
               .execution_options(synchronize_session=False))
    if name is None:
        return f"Session {session.id} goes back to Claude Code's default model (from the next message on)."
    return f"Session {session.id} now uses model {name} (from the next message on)."


def quiet(db: DB, session: Session | None, on: bool | None) -> str:
    problem = _usable(session)
    if problem is not None or session is None:
        return problem or replies.no_current_session()
    state = session.quiet if on is None else on
    if on is not None:
        db.execute(update(Session).where(Session.id == session.id).values(quiet=on)
                   .execution_options(synchronize_session=False))
    if state:
        return (f"Session {session.id} is quiet: the tools Claude runs are folded into one line at the end of "
                "its answer. /quiet off shows each one as it runs.")
    return f"Session {session.id} shows each tool Claude runs as it runs. /quiet on folds them into the answer."
