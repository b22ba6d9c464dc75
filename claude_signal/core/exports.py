"""``/export``: the session's conversation as a Markdown file on the phone.

Built from what the database recorded for each turn: the prompt (and the files sent with it) and what
Claude said and did (``Turn.answer``; turns from before it was recorded fall back to the result summary).
:func:`render` is pure; :func:`load` reads the rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session as DB

from claude_signal.db.models import Inbox, Session, Turn
from claude_signal.host.timezone import zone
from claude_signal.rules.attachments_out import OutFile
from claude_signal.rules.replies import plural
from claude_signal.rules.states import TurnStatus

MAX_RECORDED_ANSWER = 200_000  # characters of a turn kept for /export; a runaway turn must not bloat the row

ENDINGS = {TurnStatus.FAILED: "failed", TurnStatus.INTERRUPTED: "interrupted", TurnStatus.CANCELLED: "cancelled",
           TurnStatus.QUEUED: "not run yet", TurnStatus.RUNNING: "still running"}


def recorded_answer(transcript: list[str]) -> str | None:
    """What a turn keeps of what Claude said and did (its prose and tool lines, in order), bounded."""
    text = "\n\n".join(transcript)
    if len(text) > MAX_RECORDED_ANSWER:
        text = text[:MAX_RECORDED_ANSWER] + "\n\n… (cut: the rest of this turn was too long to keep)"
    return text or None


@dataclass(frozen=True)
class TurnRecord:
    at: datetime
    prompt: str
    files: tuple[str, ...]
    answer: str | None
    status: str
    cost_usd: float | None
    duration_ms: int | None


def load(db: DB, session_id: str) -> list[TurnRecord]:
    rows = db.execute(select(Turn, Inbox.payload).outerjoin(Inbox, Inbox.key == Turn.inbound_key)
                      .where(Turn.session_id == session_id).order_by(Turn.id)).all()
    records = []
    for turn, payload in rows:
        files = tuple(str(f.get("filename") or f.get("content_type") or "file")
                      for f in (payload or {}).get("files") or [] if isinstance(f, dict))
        answer = turn.answer if turn.answer is not None else turn.result_summary
        records.append(TurnRecord(turn.created_at, turn.prompt, files, answer, turn.status, turn.cost_usd,
                                  turn.duration_ms))
    return records


def render(session: Session, records: list[TurnRecord], zone_name: str, now: datetime) -> str:
    """The conversation in Markdown: a heading per turn, the prompt, then Claude's part. Pure."""
    tz = zone(zone_name)
    total = sum(r.cost_usd or 0.0 for r in records)
    out = [f"# Session {session.id}", "",
           f"{session.host}:{session.project_path} · {plural(len(records), 'turn')} · ${total:.4f} · "
           f"exported {now.astimezone(tz):%Y-%m-%d %H:%M} ({zone_name})"]
    for number, record in enumerate(records, 1):
        out += ["", f"## {number} · {record.at.astimezone(tz):%Y-%m-%d %H:%M}", "", "**You:**", ""]
        out += [f"📎 {name}" for name in record.files]
        if record.prompt.strip():
            out += ["", record.prompt.strip()] if record.files else [record.prompt.strip()]
        out += ["", "**Claude:**", "", record.answer.strip() if record.answer and record.answer.strip() else "…"]
        ending = ENDINGS.get(TurnStatus(record.status)) if record.status in TurnStatus.__members__ else None
        if ending:
            out += ["", f"_({ending})_"]
        elif record.cost_usd is not None:
            out += ["", f"_{(record.duration_ms or 0) / 1000:.1f}s · ${record.cost_usd:.4f}_"]
    return "\n".join(out) + "\n"


def as_file(session: Session, markdown: str) -> OutFile:
    return OutFile.of(f"session-{session.id}.md", "text/markdown", markdown.encode("utf-8"))
