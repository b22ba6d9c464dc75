"""Order within a conversation: a waiting message is woken by its predecessor, never polls, and a prompt
that followed a failed /session start or resume never reaches another session."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update

from claude_signal.config import Settings
from claude_signal.core import conversation, inbox, intake, ordering, releases
from claude_signal.core import session_start as hostops
from claude_signal.core.liveness import register
from claude_signal.core.unit_of_work import TaskContext
from claude_signal.core.wakeups import pending
from claude_signal.db.engine import unit_of_work
from claude_signal.db.models import Inbox, Session, Turn
from claude_signal.rules.states import InboxStatus, SessionStatus
from claude_signal.wire.inbound import COMMAND_TASK, InboundMessage
from claude_signal.wire.queues import SESSION_PROMPT
from tests.harness import RedisServer, statements_run
from tests.test_handling import ME, handle, replies_to, run_host_step, start_session
from tests.test_handling import msg as _msg

_last: dict[str, str] = {}


@pytest.fixture(autouse=True)
def live_worker(engine: Engine) -> None:
    _last.clear()
    with unit_of_work(engine) as db:
        register(db, ME)


def msg(text: str) -> InboundMessage:
    """The next message in Alice's chat, stamped with the one before it as the listener does."""
    m = _msg(text).model_copy(update={"after": _last.get("alice")})
    _last["alice"] = m.key
    return m


def wait(engine: Engine, settings: Settings, m: InboundMessage) -> None:
    """What command.handle does for a message whose predecessor is not handled: record it and stop."""
    with pytest.raises(conversation.NotYet):
        handle(engine, settings, m)
    with unit_of_work(engine) as db:
        inbox.record(db, m)


def wakes(engine: Engine, key: str) -> list[dict]:
    with unit_of_work(engine) as db:
        ordering.successors(db, key)
        return [w.args[0] for w in pending(db) if w.task == COMMAND_TASK]


def waking_context(engine: Engine, settings: Settings) -> tuple[TaskContext, list[dict]]:
    """A task context whose published ``command.handle`` wake-ups land in the list beside it."""
    woken: list[dict] = []
    ctx = TaskContext(settings, lambda: engine,
                      lambda wakeups: woken.extend(w.args[0] for w in wakeups if w.task == COMMAND_TASK))
    return ctx, woken


def turns(engine: Engine) -> list[tuple[str, str]]:
    with unit_of_work(engine) as db:
        return [(t.session_id, t.prompt) for t in db.execute(select(Turn).order_by(Turn.id)).scalars()]


def test_a_waiting_message_is_woken_when_its_predecessor_is_handled(engine: Engine, settings: Settings,
                                                                     project_root: Path) -> None:
    start = msg(f"/session start {project_root / 'shop'}")
    deferred = handle(engine, settings, start)  # the host has not run it yet
    prompt = msg("hello")
    wait(engine, settings, prompt)
    assert wakes(engine, start.key) == []  # nothing to wake while the start is still on the host's queue
    run_host_step(engine, settings, deferred)
    (woken,) = wakes(engine, start.key)
    assert woken["key"] == prompt.key
    handle(engine, settings, InboundMessage.model_validate(woken))
    with unit_of_work(engine) as db:
        started = db.execute(select(Session.id).where(Session.origin_key == start.key)).scalar_one()
    assert turns(engine) == [(started, "hello")]
    assert wakes(engine, start.key) == []  # handled: woken once


def test_a_predecessor_that_never_arrives_releases_a_prompt_with_a_reply(engine: Engine, settings: Settings,
                                                                           project_root: Path) -> None:
    start_session(engine, settings, project_root / "shop")
    orphan = _msg("delete the build directory").model_copy(update={"after": "alice:1"})  # alice:1 was lost
    wait(engine, settings, orphan)
    with unit_of_work(engine) as db:
        row = db.get(Inbox, orphan.key)
        row.received_at = row.received_at - timedelta(seconds=ordering.MISSING_WAIT + 1)
    handle(engine, settings, orphan)
    (text,) = replies_to(engine, orphan)
    assert text.startswith("Not sent to Claude: the message you sent just before it never reached me")
    assert turns(engine) == []
    with unit_of_work(engine) as db:
        assert db.get(Inbox, orphan.key).status == InboxStatus.HANDLED


def test_a_prompt_after_a_refused_start_goes_nowhere(engine: Engine, settings: Settings, project_root: Path) -> None:
    start_session(engine, settings, project_root / "shop")  # current before
    _last.clear()
    typo = msg(f"/session start {project_root / 'typo'}")
    run_host_step(engine, settings, handle(engine, settings, typo))
    assert replies_to(engine, typo)[0].startswith("Could not start a session")
    first, second = msg("delete the build directory"), msg("and the cache")
    handle(engine, settings, first)
    handle(engine, settings, second)  # sent before the refusal could be read: refused as well
    for m in (first, second):
        (text,) = replies_to(engine, m)
        assert text.startswith("Not sent to Claude: the /session start or /session resume before it failed")
    assert turns(engine) == []
    after = msg("/status")  # a command in between ends the chain: the next prompt goes to the current one
    handle(engine, settings, after)
    handle(engine, settings, msg("now build it"))
    assert [p for _, p in turns(engine)] == ["now build it"]


def test_a_prompt_after_a_start_refused_at_once_goes_nowhere(engine: Engine, settings: Settings,
                                                              project_root: Path) -> None:
    start_session(engine, settings, project_root / "shop")
    _last.clear()
    handle(engine, settings, msg("/session start nowhere:/srv/app"))  # unknown host: answered at once
    prompt = msg("run the migrations")
    handle(engine, settings, prompt)
    assert replies_to(engine, prompt)[0].startswith("Not sent to Claude")
    assert turns(engine) == []


def test_a_prompt_after_a_failed_resume_goes_nowhere(engine: Engine, settings: Settings, project_root: Path) -> None:
    paused = start_session(engine, settings, project_root / "blog")
    with unit_of_work(engine) as db:
        db.execute(update(Session).where(Session.id == paused).values(status=SessionStatus.PAUSED))
    start_session(engine, settings, project_root / "shop")  # current now
    (project_root / "blog").rmdir()
    _last.clear()
    resume = msg(f"/session resume {paused}")
    run_host_step(engine, settings, handle(engine, settings, resume))
    assert replies_to(engine, resume)[0].startswith(f"Could not resume session {paused}")
    prompt = msg("publish the draft")
    handle(engine, settings, prompt)
    assert replies_to(engine, prompt)[0].startswith("Not sent to Claude")
    assert turns(engine) == []


def test_a_prompt_after_a_successful_resume_goes_to_it(engine: Engine, settings: Settings,
                                                        project_root: Path) -> None:
    paused = start_session(engine, settings, project_root / "blog")
    with unit_of_work(engine) as db:
        db.execute(update(Session).where(Session.id == paused).values(status=SessionStatus.PAUSED))
    start_session(engine, settings, project_root / "shop")
    _last.clear()
    run_host_step(engine, settings, handle(engine, settings, msg(f"/session resume {paused[:4]}")))
    handle(engine, settings, msg("publish the draft"))
    assert turns(engine) == [(paused, "publish the draft")]


def test_a_nul_byte_in_the_path_is_a_failed_start_with_a_reply(settings: Settings, project_root: Path) -> None:
    """The path check raised ValueError on a NUL, so the host task died without a word."""
    check = hostops.precheck(f"{project_root}/sh\x00op", settings, "hosta")
    assert check.path is None and check.problem


def test_a_nul_byte_is_repaired_on_the_way_in(engine: Engine, settings: Settings, project_root: Path) -> None:
    """PostgreSQL text cannot hold a NUL: the message is repaired and recorded, and the start is answered."""
    start = msg(f"/session start {project_root}/sh\x00op")
    assert "\x00" not in start.text
    run_host_step(engine, settings, handle(engine, settings, start))
    (text,) = replies_to(engine, start)
    assert text.startswith("Could not start a session")
    with unit_of_work(engine) as db:
        assert db.get(Inbox, start.key).status == InboxStatus.HANDLED


def test_copies_of_a_handled_message_wake_its_successors_once(engine: Engine, settings: Settings,
                                                              redis_server: RedisServer) -> None:
    """The task that handles a message wakes those waiting for it and leaves a mark, so a copy of it wakes
    nobody; one that had nobody waiting leaves no mark (a copy then finds nobody waiting either)."""
    ctx, woken = waking_context(engine, settings.model_copy(update={"broker_url": redis_server.url,
                                                                     "signal_sender": False}))
    first, second = msg("/status"), msg("/status")
    wait(engine, settings, second)
    assert intake.take(ctx, first.model_dump(mode="json"), "t1") == "ok"
    assert [w["key"] for w in woken] == [second.key]
    assert redis_server.client().exists(releases.PREFIX + first.key)
    intake.take(ctx, first.model_dump(mode="json"), "t1-copy")
    assert [w["key"] for w in woken] == [second.key], "a copy of the handled message woke its successor again"

    alone = _msg("/status", conversation="other")  # nobody waits for it
    assert intake.take(ctx, alone.model_dump(mode="json"), "t2") == "ok"
    assert not redis_server.client().exists(releases.PREFIX + alone.key)
    intake.take(ctx, alone.model_dump(mode="json"), "t2-copy")
    assert [w["key"] for w in woken] == [second.key]


def test_the_predecessor_is_read_by_the_statement_that_records_the_message(engine: Engine, settings: Settings,
                                                                          project_root: Path) -> None:
    """Almost every message names the one before it: the insert that records it brings back that one's
    state too, so the check costs no statement of its own (a waiting message woken later, whose row exists,
    asks apart: see the test above). On PostgreSQL the same statement reads the conversation's session,
    which nearly every message needs: the insert is a CTE of that read."""
    sid = start_session(engine, settings, project_root / "shop")
    first, second = msg("/status"), msg("/status")
    handle(engine, settings, first)
    with statements_run(engine) as statements:
        handle(engine, settings, second)
        asks = [s for s in statements if s.startswith("SELECT inbox.status, inbox.received_at")]
        (text,) = replies_to(engine, second)
        assert asks == [] and f"Session {sid[:8]}: active" in text
        (recording,) = [s for s in statements if "INSERT INTO inbox" in s]
        assert "before" in recording
        session_reads = [s for s in statements if s.startswith("SELECT") and "FROM session JOIN conversation" in s]
        if engine.dialect.name == "postgresql":
            assert session_reads == [] and "LEFT OUTER JOIN session" in recording
        else:
            assert len(session_reads) == 1
        assert not [s for s in statements if s.startswith("UPDATE inbox")]  # written HANDLED by its insert
    with unit_of_work(engine) as db:
        assert db.get(Inbox, second.key).status == InboxStatus.HANDLED


def test_a_message_written_handled_can_still_be_left_to_a_host(engine: Engine, settings: Settings) -> None:
    """The safety net of a message recorded HANDLED at once that turns out to be a host's to finish: the row
    goes back to RECEIVED, and the transaction no longer counts it as handled."""
    m = msg("/status")
    with unit_of_work(engine) as db:
        assert inbox.record(db, m, handled_here=True).status == InboxStatus.RECEIVED  # new to the inbox
        assert inbox.handled_now(db, m.key) and inbox.mark_handled(db, m.key)
        inbox.leave_for_host(db, m.key)
        assert not inbox.handled_now(db, m.key)
    with unit_of_work(engine) as db:
        row = db.get(Inbox, m.key)
        assert (row.status, row.handled_at) == (InboxStatus.RECEIVED, None)
        assert inbox.record(db, m).status == InboxStatus.RECEIVED  # a copy finds it waiting for its host


def test_the_mark_of_a_posted_reply_tells_whether_anyone_waits(engine: Engine, settings: Settings,
                                                                redis_server: RedisServer) -> None:
    """When the task posted its reply itself, the statement that marks it sent also says whether a message
    waits for this one: a waiting one is woken, and with nobody waiting no other statement looks."""
    from tests.fakes.signal_rest import FakeSignalServer

    signal = FakeSignalServer(account="+15550000001")
    signal.contact("+15550000002", "alice-uuid", "Alice")
    signal.start()
    try:
        settings = settings.model_copy(update={"broker_url": redis_server.url, "signal_sender": True,
                                                "account": "+15550000001", "signal_api": signal.url})
        ctx, woken = waking_context(engine, settings)
        first, second = msg("/status"), msg("/status")
        wait(engine, settings, second)
        assert intake.take(ctx, first.model_dump(mode="json"), "t1") == "ok"
        assert [w["key"] for w in woken] == [second.key]
        with statements_run(engine) as statements:
            alone = _msg("/status", conversation="other")  # nobody waits for it
            assert intake.take(ctx, alone.model_dump(mode="json"), "t2") == "ok"
        assert [w["key"] for w in woken] == [second.key]
        assert len(signal.sent()) == 2  # both answered, each posted by the task that wrote it
        assert [s for s in statements if s.startswith("UPDATE outbox")]  # the mark, which asked
        assert not [s for s in statements if s.startswith("SELECT inbox.payload")]
    finally:
        signal.stop()


def test_what_the_recording_statement_read_of_the_session_is_what_the_commands_see(
        engine: Engine, settings: Settings, project_root: Path) -> None:
    """Chained messages (the recording statement reads the session on PostgreSQL): with no session yet,
    after a start, after a stop, and for a copy of a message already handled (its insert adds no row, so
    nothing rides on it)."""
    first = msg("/status")
    handle(engine, settings, first)
    assert "no current session" in replies_to(engine, first)[0].lower()
    sid = start_session(engine, settings, project_root / "shop")
    status = msg("/status")
    handle(engine, settings, status)
    assert f"Session {sid[:8]}: active" in replies_to(engine, status)[0]
    prompt = msg("what changed?")
    assert any(w.task == SESSION_PROMPT for w in handle(engine, settings, prompt))
    stop = msg("/session stop")
    handle(engine, settings, stop)
    after_stop = msg("/status")
    handle(engine, settings, after_stop)
    assert f"Session {sid[:8]}: terminated" in replies_to(engine, after_stop)[0]
    assert handle(engine, settings, after_stop) is not None  # a copy: answered already, nothing read twice
    assert len(replies_to(engine, after_stop)) == 1
