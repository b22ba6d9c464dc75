"""A /session start or resume whose host went away after accepting it: the sweep refuses it once, says so,
and lets the messages behind it go on; a host that is back in time carries it out, and one back too late
does nothing twice. Against a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update

from claude_signal.config import Settings
from claude_signal.core import stranded
from claude_signal.core.liveness import Identity, register
from claude_signal.core.wakeups import pending
from claude_signal.db.clock import db_now
from claude_signal.db.engine import unit_of_work
from claude_signal.db.models import Inbox, Session, Worker
from claude_signal.rules.states import InboxStatus, SessionStatus
from claude_signal.wire.inbound import InboundMessage
from claude_signal.wire.queues import OUTBOX_SEND
from tests.test_handling import ME, handle, replies_to, run_host_step, start_session
from tests.test_ordering import _last, msg, turns, wait, wakes

HOSTB = Identity(node="w2@hostb", host="hostb", incarnation="inc-b", plane="control")


@pytest.fixture(autouse=True)
def two_hosts(engine: Engine) -> None:
    _last.clear()
    with unit_of_work(engine) as db:
        register(db, ME)
        register(db, HOSTB)


def hostb_silent_for(engine: Engine, seconds: float) -> None:
    with unit_of_work(engine) as db:
        db.execute(update(Worker).where(Worker.host == "hostb")
                   .values(last_heartbeat=db_now(db) - timedelta(seconds=seconds)))


def pending_for(engine: Engine, m: InboundMessage, seconds: float) -> None:
    with unit_of_work(engine) as db:
        row = db.get(Inbox, m.key)
        row.received_at = row.received_at - timedelta(seconds=seconds)


def sweep(engine: Engine, settings: Settings, asked: list[str] | None = None) -> stranded.Refused:
    """One sweep's refusals; ``asked`` collects the tasks it asked to wake after its commit."""
    with unit_of_work(engine) as db:
        refused = stranded.refuse_stranded(db, lease_ttl=settings.lease_ttl, task_id="sweep")
        if asked is not None:
            asked.extend(w.task for w in pending(db))
    return refused


def status(engine: Engine, session_id: str) -> str:
    with unit_of_work(engine) as db:
        return db.get(Session, session_id).status


def inbox_status(engine: Engine, m: InboundMessage) -> str:
    with unit_of_work(engine) as db:
        return db.get(Inbox, m.key).status


def test_a_start_whose_host_vanished_is_refused_once_and_the_prompt_behind_it_too(
        engine: Engine, settings: Settings, project_root: Path) -> None:
    start_session(engine, settings, project_root / "shop")  # current before: the prompt must not go there
    _last.clear()
    start = msg(f"/session start hostb:{project_root / 'blog'}")
    deferred = handle(engine, settings, start)  # hostb looked online: the start waits on its queue
    prompt = msg("delete the build directory")
    wait(engine, settings, prompt)
    bound = stranded.PATIENCE * settings.lease_ttl
    hostb_silent_for(engine, settings.lease_ttl + 1)
    assert sweep(engine, settings).keys == []  # offline, but the start has not waited long enough
    pending_for(engine, start, bound + 1)
    hostb_silent_for(engine, 1)
    assert sweep(engine, settings).keys == []  # waited long, but the host is online: it will take it
    hostb_silent_for(engine, settings.lease_ttl + 1)

    asked: list[str] = []
    refused = sweep(engine, settings, asked)
    assert refused.keys == [start.key] and asked == [OUTBOX_SEND]
    assert sweep(engine, settings).keys == []  # once
    (text,) = replies_to(engine, start)
    assert text.startswith("Host 'hostb' is offline (last seen ")
    assert f"the session in {project_root / 'blog'} was not started" in text
    with unit_of_work(engine) as db:
        session = db.execute(select(Session).where(Session.origin_key == start.key)).scalar_one()
    assert session.status == SessionStatus.TERMINATED and inbox_status(engine, start) == InboxStatus.HANDLED

    (woken,) = wakes(engine, start.key)  # released: the prompt behind it goes on, and is refused
    handle(engine, settings, InboundMessage.model_validate(woken))
    (answer,) = replies_to(engine, prompt)
    assert answer.startswith("Not sent to Claude: the /session start or /session resume before it failed")
    assert turns(engine) == []

    run_host_step(engine, settings, deferred)  # hostb comes back much later and takes the old task
    assert replies_to(engine, start) == [text] and status(engine, session.id) == SessionStatus.TERMINATED


def test_a_host_back_in_time_starts_it_once(engine: Engine, settings: Settings, project_root: Path) -> None:
    start = msg(f"/session start hostb:{project_root / 'blog'}")
    deferred = handle(engine, settings, start)
    pending_for(engine, start, stranded.PATIENCE * settings.lease_ttl + 1)
    run_host_step(engine, settings, deferred)  # the host took it just before the sweep looked
    hostb_silent_for(engine, settings.lease_ttl + 1)  # and went away again right after
    assert sweep(engine, settings).keys == []
    (text,) = replies_to(engine, start)
    assert text.startswith("Started session")
    with unit_of_work(engine) as db:
        assert db.execute(select(Session.status).where(Session.origin_key == start.key)).scalar_one() == "ACTIVE"


def paused_on_hostb(engine: Engine, settings: Settings, project_root: Path) -> str:
    start = msg(f"/session start hostb:{project_root / 'blog'}")
    run_host_step(engine, settings, handle(engine, settings, start))
    with unit_of_work(engine) as db:
        session_id = db.execute(select(Session.id).where(Session.origin_key == start.key)).scalar_one()
        db.execute(update(Session).where(Session.id == session_id).values(status=SessionStatus.PAUSED))
    return session_id


def test_a_resume_whose_host_vanished_is_refused_once(engine: Engine, settings: Settings,
                                                      project_root: Path) -> None:
    paused = paused_on_hostb(engine, settings, project_root)
    start_session(engine, settings, project_root / "shop")  # current now
    _last.clear()
    resume = msg(f"/session resume {paused}")
    deferred = handle(engine, settings, resume)
    prompt = msg("publish the draft")
    wait(engine, settings, prompt)
    pending_for(engine, resume, stranded.PATIENCE * settings.lease_ttl + 1)
    hostb_silent_for(engine, settings.lease_ttl + 1)

    assert sweep(engine, settings).keys == [resume.key]
    assert sweep(engine, settings).keys == []
    (text,) = replies_to(engine, resume)
    assert text.startswith("Host 'hostb' is offline") and f"session {paused} was not resumed" in text
    (woken,) = wakes(engine, resume.key)
    handle(engine, settings, InboundMessage.model_validate(woken))
    assert replies_to(engine, prompt)[0].startswith("Not sent to Claude")  # not to the current session
    assert turns(engine) == []

    run_host_step(engine, settings, deferred)  # back too late: the claim is gone, nothing happens
    assert replies_to(engine, resume) == [text] and status(engine, paused) == SessionStatus.PAUSED


def test_a_resume_the_host_claimed_first_is_left_to_it(engine: Engine, settings: Settings,
                                                       project_root: Path) -> None:
    paused = paused_on_hostb(engine, settings, project_root)
    resume = msg(f"/session resume {paused}")
    deferred = handle(engine, settings, resume)
    pending_for(engine, resume, stranded.PATIENCE * settings.lease_ttl + 1)
    run_host_step(engine, settings, deferred)
    hostb_silent_for(engine, settings.lease_ttl + 1)
    assert sweep(engine, settings).keys == []
    (text,) = replies_to(engine, resume)
    assert text.startswith(f"Resumed session {paused}") and status(engine, paused) == SessionStatus.ACTIVE
