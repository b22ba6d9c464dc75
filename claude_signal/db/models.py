"""The tables. The database is the truth; every Celery message only wakes a worker up to read it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    false,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from claude_signal.db.literals import constant
from claude_signal.rules.states import (
    ApprovalStatus,
    InboxStatus,
    OutboxStatus,
    ScheduleStatus,
    SessionStatus,
    TurnStatus,
)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC (SQLite has no zones) and hands back aware UTC, so comparisons never mix kinds."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use claude_signal.db.models.utcnow()")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), dict[str, Any]: JSON}


class Session(Base):
    """A Claude Code conversation bound to one project directory on one host."""

    __tablename__ = "session"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    owner: Mapped[str] = mapped_column(String(128))
    conversation: Mapped[str] = mapped_column(String(128), index=True)
    project_path: Mapped[str] = mapped_column(Text)
    host: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default=SessionStatus.CREATED)
    status_reason: Mapped[str | None] = mapped_column(Text)
    claude_session_id: Mapped[str] = mapped_column(String(36), unique=True)
    permission_mode: Mapped[str] = mapped_column(String(32), default="default")
    approve_all: Mapped[bool] = mapped_column(default=False, doc="/approve all: allow every tool from now on")
    model: Mapped[str | None] = mapped_column(String(64), doc="/model: passed as --model; None is Claude's default")
    quiet: Mapped[bool] = mapped_column(default=False, server_default=false(),
                                        doc="/quiet: tool lines fold into the answer")
    version: Mapped[int] = mapped_column(Integer, default=0)
    origin_key: Mapped[str | None] = mapped_column(String(255), index=True)
    turn_count: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]

    __table_args__ = (
        # The database itself refuses two ACTIVE sessions in one directory of one host.
        Index(
            "uq_session_active_project",
            "host",
            "project_path",
            unique=True,
            sqlite_where=text("status = 'ACTIVE'"),
            postgresql_where=text("status = 'ACTIVE'"),
        ),
    )


class Conversation(Base):
    """A direct chat or a group, and the session its plain messages go to."""

    __tablename__ = "conversation"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    current_session_id: Mapped[str | None] = mapped_column(ForeignKey("session.id"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Turn(Base):
    """One prompt and the run of `claude` that answers it."""

    __tablename__ = "turn"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("session.id"), index=True)
    inbound_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    prompt: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=TurnStatus.QUEUED)
    worker_node: Mapped[str | None] = mapped_column(String(255))
    claude_pid: Mapped[int | None] = mapped_column(Integer)
    claude_pgid: Mapped[int | None] = mapped_column(Integer)
    claude_started: Mapped[int | None] = mapped_column(BigInteger, doc="process start time, clock ticks")
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    lease_expires_at: Mapped[datetime | None] = mapped_column(doc="renewed by the process running the turn, "
                                                                  "on the database's clock")
    cost_usd: Mapped[float | None] = mapped_column(Float)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    result_summary: Mapped[str | None] = mapped_column(Text)
    answer: Mapped[str | None] = mapped_column(Text, doc="what Claude said and did, for /export")
    hold_until: Mapped[datetime | None] = mapped_column(doc="a picture sent alone waits this long for its caption")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_turn_session_status", "session_id", "status"),
        Index("ix_turn_status_lease", "status", "lease_expires_at"),
        # One RUNNING turn per session, enforced by the database rather than by hope.
        Index(
            "uq_turn_one_running",
            "session_id",
            unique=True,
            sqlite_where=text("status = 'RUNNING'"),
            postgresql_where=text("status = 'RUNNING'"),
        ),
    )


class Inbox(Base):
    """One row per inbound Signal message; its key decides whether a delivery is new."""

    __tablename__ = "inbox"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    sender: Mapped[str] = mapped_column(String(128))
    conversation: Mapped[str] = mapped_column(String(128))
    text: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(String(16), default="message")
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, doc="the message as received, for re-handling")
    status: Mapped[str] = mapped_column(String(16), default=InboxStatus.RECEIVED)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    handled_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_inbox_status_received", "status", "received_at"),)


OUTBOX_UNSENT = (OutboxStatus.PENDING, OutboxStatus.SENDING)
_UNSENT_SQL = f"status IN ({', '.join(repr(str(value)) for value in OUTBOX_UNSENT)})"
_UNSENT_WHERE = text(_UNSENT_SQL)


def outbox_unsent(status: Any) -> Any:
    """``status`` is one of :data:`OUTBOX_UNSENT`, with the values written into the SQL as the partial index
    ``ix_outbox_unsent`` states them: a bound parameter would hide from the planner that the index applies
    (PostgreSQL's generic plans, SQLite always), and an expanding IN would be rendered on every execution."""
    return status.in_([constant(value) for value in OUTBOX_UNSENT])


class Outbox(Base):
    """A reply waiting to be posted to signal-cli-rest-api, written with the change it reports."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dedupe_key: Mapped[str] = mapped_column(String(255), unique=True)
    inbox_key: Mapped[str | None] = mapped_column(String(255), index=True)
    recipient: Mapped[str] = mapped_column(String(128))
    text: Mapped[str] = mapped_column(Text)
    text_mode: Mapped[str] = mapped_column(String(16), default="normal")
    attachments: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default=OutboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    signal_timestamp: Mapped[int | None] = mapped_column(BigInteger)
    parts_sent: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_outbox_status_next", "status", "next_attempt_at"),
        Index("ix_outbox_recipient_status", "recipient", "status"),
        # A recipient's unsent replies, oldest first: every reply asks whether one is ahead of it, and a
        # recipient's sent history grows for as long as the bot runs (the queries spell out the same
        # statuses, so both databases can prove the index covers them).
        Index("ix_outbox_unsent", "recipient", "id", sqlite_where=_UNSENT_WHERE, postgresql_where=_UNSENT_WHERE),
    )


class Approval(Base):
    """A tool use Claude asked permission for, decided from the phone."""

    __tablename__ = "approval"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    turn_id: Mapped[int] = mapped_column(ForeignKey("turn.id"), index=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("session.id"), index=True)
    request_id: Mapped[str] = mapped_column(String(128))
    tool_name: Mapped[str] = mapped_column(String(128))
    input_summary: Mapped[str] = mapped_column(Text)
    tool_input: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default=ApprovalStatus.PENDING)
    reason: Mapped[str | None] = mapped_column(Text)
    decided_by: Mapped[str | None] = mapped_column(String(128))
    decided_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Transition(Base):
    """Audit log: every status change of a session, why, and which task made it."""

    __tablename__ = "transition"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("session.id"), index=True)
    from_status: Mapped[str] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    task_id: Mapped[str | None] = mapped_column(String(255))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class Worker(Base):
    """One boot of a worker process: the host and plane it serves, its turn slots, and its last heartbeat.

    Keyed by the boot, not the node name, so two processes that share a name never overwrite each other.
    """

    __tablename__ = "worker"

    incarnation: Mapped[str] = mapped_column(String(36), primary_key=True)
    node: Mapped[str] = mapped_column(String(255))
    host: Mapped[str] = mapped_column(String(128), index=True)
    plane: Mapped[str] = mapped_column(String(16), doc="control or turns")
    slots: Mapped[int] = mapped_column(Integer, default=0, doc="turns it can run at once (turn plane)")
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_heartbeat: Mapped[datetime] = mapped_column(default=utcnow)
    stopped_at: Mapped[datetime | None]


class Schedule(Base):
    """A prompt that runs by itself (``/every``, ``/at``) as a queued turn of the session it belongs to.

    ``next_run_at`` is the occurrence still owed; it moves on only when a run for it exists, so an outage
    leaves it in the past and the next tick makes one catch-up run of it.
    """

    __tablename__ = "schedule"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("session.id"), index=True)
    owner: Mapped[str] = mapped_column(String(128))
    conversation: Mapped[str] = mapped_column(String(128), index=True)
    spec: Mapped[str] = mapped_column(Text, doc="canonical: 'interval <s>', 'cron <5 fields>', 'once <iso>'")
    label: Mapped[str] = mapped_column(Text, doc="what the user typed, as lists show it")
    prompt: Mapped[str] = mapped_column(Text)
    timezone: Mapped[str] = mapped_column(String(64), doc="cron fields are read in this zone")
    status: Mapped[str] = mapped_column(String(16), default=ScheduleStatus.ACTIVE)
    anchor_at: Mapped[datetime] = mapped_column(doc="intervals count from here")
    next_run_at: Mapped[datetime | None]
    last_run_at: Mapped[datetime | None]
    blocked_status: Mapped[str | None] = mapped_column(String(16), doc="the session state the user was told "
                                                                       "this schedule waits for, once")
    origin_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_schedule_status_next", "status", "next_run_at"),)


class ScheduleRun(Base):
    """One occurrence of a schedule that ran: its key (schedule and occurrence) makes it exactly once,
    however many beats or workers reach it."""

    __tablename__ = "schedule_run"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    schedule_id: Mapped[str] = mapped_column(ForeignKey("schedule.id"), index=True)
    occurrence_at: Mapped[datetime]
    turn_id: Mapped[int | None] = mapped_column(ForeignKey("turn.id"), index=True)
    missed: Mapped[int] = mapped_column(Integer, default=0, doc="occurrences this catch-up run stands for")
    catch_up: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
