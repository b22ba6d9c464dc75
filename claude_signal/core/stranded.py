"""Starts and resumes whose host went away before it could take them.

``/session start`` and ``/session resume`` are accepted while their host is online and finished by a worker
there (its ``host.<H>`` queue). If every worker of that host dies before one takes the task and none comes
back, nothing ever would: the start stays CREATED, the person waits for an answer, and the messages after it
in the conversation wait for it. The sweep, which every host runs, refuses such a command once it has waited
``PATIENCE`` lease periods and its host has no fresh heartbeat. One compare-and-set decides between the sweep
and a host that comes back at the last moment (for a start the session CREATED → TERMINATED, which the
host's own move to ACTIVE is fenced against; for a resume the inbox row RECEIVED → HANDLED, which the host
claims first), so each command is carried out or refused, once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session as DB

from claude_signal.core import ordering, outbox
from claude_signal.core.conversation import Reply, current_session, find_session
from claude_signal.core.inbox import mark_handled
from claude_signal.core.lifecycle import transition
from claude_signal.core.liveness import HostState, host_states
from claude_signal.core.wakeups import wake_sender
from claude_signal.db.models import Inbox, Session, utcnow
from claude_signal.rules import commands as c
from claude_signal.rules import replies
from claude_signal.rules.states import InboxStatus, SessionStatus
from claude_signal.wire.inbound import InboundMessage

log = logging.getLogger(__name__)

PATIENCE = 2.0  # lease periods a start or resume waits for its offline host before it is refused


@dataclass
class Refused:
    """Replies to send, and the inbox keys now HANDLED whose successors may go on."""

    keys: list[str] = field(default_factory=list)


def refuse_stranded(db: DB, *, lease_ttl: float, task_id: str | None) -> Refused:
    """Refuse every start and resume pending longer than ``PATIENCE`` leases for a host that is offline."""
    refused = Refused()
    since = utcnow() - timedelta(seconds=PATIENCE * lease_ttl)
    hosts = {state.host: state for state in host_states(db, lease_ttl=lease_ttl)}

    def offline(host: str) -> HostState | None:
        """The host's state when it is offline (a host no worker ran on lately counts), else None."""
        state = hosts.get(host) or HostState(host, online=False, workers=0, active_sessions=0, last_seen=None)
        return None if state.online else state

    _refuse_starts(db, since, offline, task_id, refused)
    _refuse_resumes(db, since, offline, refused)
    return refused


Offline = Callable[[str], HostState | None]


def _refuse_starts(db: DB, since: datetime, offline: Offline, task_id: str | None, refused: Refused) -> None:
    starts = db.execute(
        select(Session.id, Session.version, Session.host, Session.project_path, Inbox.key, Inbox.conversation)
        .join(Inbox, Inbox.key == Session.origin_key)
        .where(Session.status == SessionStatus.CREATED, Inbox.status == InboxStatus.RECEIVED,
               Inbox.received_at < since)
    ).all()
    for session_id, version, host, path, key, conversation in starts:
        if (state := offline(host)) is None:
            continue
        lost = transition(db, session_id, SessionStatus.TERMINATED, reason=f"host {host} offline before it started",
                          task_id=task_id, expected_version=version,
                          expected_from=frozenset({SessionStatus.CREATED}))
        if lost.changed:  # else the host took it meanwhile
            _answer(db, refused, key, conversation, replies.start_host_offline(host, path, state.last_seen))
            log.warning("session %s: host %s went offline before starting it; refused", session_id, host)


def _refuse_resumes(db: DB, since: datetime, offline: Offline, refused: Refused) -> None:
    resumes = db.execute(
        select(Inbox.key, Inbox.payload, Inbox.received_at)
        .where(Inbox.status == InboxStatus.RECEIVED, Inbox.kind == "message", Inbox.received_at < since,
               Inbox.text.ilike("%resume%"))
    ).all()
    for key, payload, received_at in resumes:
        msg = InboundMessage.model_validate(payload)
        command = c.parse(msg.text)
        if not isinstance(command, c.SessionResume):
            continue
        if ordering.verdict(db, msg, received_at) is ordering.Verdict.WAIT:
            continue  # not handed to its host yet: the message before it wakes it
        try:
            session = find_session(db, msg, command.ref) if command.ref else current_session(db, msg.conversation)
        except Reply:
            continue  # handling it again answers that
        if session is None or session.status != SessionStatus.PAUSED or (state := offline(session.host)) is None:
            continue
        if mark_handled(db, key):  # else the host claimed it meanwhile
            _answer(db, refused, key, msg.conversation,
                    replies.resume_host_offline(session.host, session.id, state.last_seen))
            log.warning("session %s: host %s went offline before resuming it; refused", session.id, session.host)


def _answer(db: DB, refused: Refused, key: str, conversation: str, text: str) -> None:
    wake_sender(db, outbox.enqueue(db, recipient=conversation, text=text, dedupe_key=f"{key}:reply",
                                              inbox_key=key))
    mark_handled(db, key)
    refused.keys.append(key)
