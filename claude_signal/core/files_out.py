"""``/get <path>``: a file of the session's project, sent to the phone as an attachment.

The file lives on the session's host, so the command goes to that host's control queue
(``session.get_file``), like a start or a resume; the inbox row stays RECEIVED until the host has answered.
A path is relative to the project or absolute, and once resolved (symlinks too) it must lie inside the
project roots and outside the bot's data directory and Claude's configuration, be a regular file, and fit
Signal's attachment limit. The bytes go into the reply's outbox row, so the machine that sends it needs no
access to this one (:mod:`claude_signal.rules.attachments_out`).
"""

from __future__ import annotations

import logging
import mimetypes
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session as DB

from claude_signal.config import Settings
from claude_signal.core import releases
from claude_signal.core.inbox import mark_handled
from claude_signal.core.outbox import enqueue
from claude_signal.core.session_start import INTERNAL_ERROR
from claude_signal.core.unit_of_work import TaskContext
from claude_signal.core.wakeups import Wakeup, wake, wake_sender
from claude_signal.db.models import Inbox, Session
from claude_signal.host.project_paths import protected_dirs
from claude_signal.rules import commands, replies
from claude_signal.rules.attachments_out import SIGNAL_MAX_BYTES, OutFile, human_size, pack
from claude_signal.rules.states import InboxStatus, SessionStatus
from claude_signal.wire.inbound import InboundMessage
from claude_signal.wire.queues import SESSION_GET_FILE, host_queue

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Found:
    """A file that may be sent: where it is, and how the reply names it."""

    path: Path
    shown: str
    size: int


class Refused(Exception):
    """The path cannot be sent; ``str()`` is the reply."""


def pick(raw: str, project: str, roots: Sequence[Path], protected: Sequence[Path],
         limit: int = SIGNAL_MAX_BYTES) -> Found:
    """Resolve ``raw`` against the project and check it; raises :class:`Refused` with the reason."""
    given = Path(os.path.expanduser(raw))
    candidate = given if given.is_absolute() else Path(project) / given
    try:
        resolved = candidate.resolve(strict=True)
    except FileNotFoundError:
        raise Refused(f"There is no {raw} in {project}." if not given.is_absolute()
                      else f"There is no {raw} on this host.") from None
    except (OSError, RuntimeError, ValueError) as error:  # a loop of links, a NUL in the name, …
        raise Refused(f"{raw} cannot be opened ({error.__class__.__name__}).") from None
    allowed = [Path(os.path.expanduser(str(r))).resolve() for r in roots]
    if not any(resolved.is_relative_to(root) for root in allowed):
        leads = " leads" if resolved != Path(os.path.normpath(candidate.absolute())) else " is"  # a symlink
        raise Refused(f"{raw}{leads} outside the project roots; /get sends files from inside them only.")
    if any(resolved.is_relative_to(p) for p in protected):
        raise Refused(f"{raw} is inside claude-signal's data or Claude's configuration; /get does not send those.")
    if resolved.is_dir():
        raise Refused(f"{raw} is a folder; /get sends one file (ask Claude to zip it first).")
    if not resolved.is_file():
        raise Refused(f"{raw} is not a regular file.")
    size = resolved.stat().st_size
    if size > limit:
        raise Refused(f"{raw} is {human_size(size)}; Signal takes attachments up to {human_size(limit)}.")
    root = Path(project).resolve()
    shown = str(resolved.relative_to(root)) if resolved.is_relative_to(root) else str(resolved)
    return Found(resolved, shown, size)


def read(found: Found, limit: int = SIGNAL_MAX_BYTES) -> OutFile:
    """The file's bytes, read once (it may have grown since it was checked)."""
    with found.path.open("rb") as handle:
        raw = handle.read(limit + 1)
    if len(raw) > limit:
        raise Refused(f"{found.shown} grew past {human_size(limit)} while being read; Signal takes no more.")
    content_type = mimetypes.guess_type(found.path.name)[0] or "application/octet-stream"
    return OutFile.of(found.path.name, content_type, raw)


def fetch(raw: str, project: str, settings: Settings) -> OutFile | str:
    """The file to send, or the reply saying why not."""
    try:
        return read(pick(raw, project, settings.project_roots, protected_dirs(settings.home)))
    except Refused as why:
        return str(why)
    except OSError as error:  # unreadable (permissions), vanished between the check and the read, …
        return f"{raw} cannot be read ({error.__class__.__name__})."


# ------------------------------------------------------------------------------ the command's two halves


def request(db: DB, msg: InboundMessage, session: Session | None) -> bool:
    """On any worker: hand ``/get`` to the session's host. True: that host replies (the caller checked
    that the host is online)."""
    from claude_signal.core.conversation import Reply

    if session is None:
        raise Reply(replies.no_current_session())
    if session.status not in (SessionStatus.ACTIVE, SessionStatus.PAUSED):  # still starting, or ended
        raise Reply(replies.not_accepting_prompts(session.id, SessionStatus(session.status)))
    wake(db, Wakeup(SESSION_GET_FILE, (session.id, msg.key), queue=host_queue(session.host),
                       task_id=f"{msg.key}:get"))
    return True


def deliver(db: DB, msg: InboundMessage, outcome: OutFile | str, session_id: str) -> None:
    """On the host: the file (or why not) as the command's one reply."""
    if isinstance(outcome, str):
        text, files = outcome, None
    else:
        text, files = f"{outcome.filename} · {human_size(outcome.size)} from session {session_id}", pack([outcome])
    wake_sender(db, enqueue(db, recipient=msg.conversation, text=text, dedupe_key=f"{msg.key}:reply",
                               inbox_key=msg.key, attachments=files))


def send_file(ctx: TaskContext, session_id: str, inbox_key: str) -> str:
    """``/get``: read the file here and answer with it (or why not); the path comes from the inbox row, so
    the task's arguments name no file."""
    settings = ctx.settings
    with ctx.transaction() as db:
        inbox, session = db.get(Inbox, inbox_key), db.get(Session, session_id)
        if inbox is None or inbox.status != InboxStatus.RECEIVED or session is None:
            return "answered already"
        msg = InboundMessage.model_validate(inbox.payload)
        project = session.project_path
    command = commands.parse(msg.text)
    try:
        outcome = fetch(command.path, project, settings) if isinstance(command, commands.GetFile) \
            else "Usage: /get <path>"
    except Exception:  # answered: a silent retry would only fail again
        log.exception("/get in session %s failed", session_id)
        outcome = f"Could not send that file: {INTERNAL_ERROR}."
    with ctx.transaction() as db:
        deliver(db, msg, outcome, session_id)
        mark_handled(db, inbox_key)
    releases.release_successors(ctx, inbox_key)
    return "sent" if not isinstance(outcome, str) else "refused"
