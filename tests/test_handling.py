"""command.handle's domain against a real database: one effect per message, one reply per command."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from claude_signal.config import Settings
from claude_signal.core import conversation, dispatch, inbox, outbox
from claude_signal.core import session_start as hostops
from claude_signal.core.liveness import Identity, register
from claude_signal.core.wakeups import Wakeups
from claude_signal.db.engine import unit_of_work
from claude_signal.db.models import Inbox, Outbox, Session, Transition, Turn
from claude_signal.rules.states import SessionStatus, TurnStatus
from claude_signal.wire.inbound import FileRef, InboundMessage
from claude_signal.wire.queues import OUTBOX_SEND, SESSION_PROMPT, SESSION_START, host_queue
from tests.harness import statements_run

ME = Identity(node="w1@hosta", host="hosta", incarnation="inc-1", plane="turns", slots=2)
_ts = iter(range(1_700_000_000_000, 1_800_000_000_000))


def msg(text: str, sender: str = "alice", conversation: str | None = None) -> InboundMessage:
    return InboundMessage.build(sender=sender, conversation=conversation or sender, timestamp=next(_ts), text=text)


@pytest.fixture(autouse=True)
def live_worker(engine: Engine) -> None:
    with unit_of_work(engine) as db:
        register(db, ME)


def handle(engine: Engine, settings: Settings, m: InboundMessage, local_host: str = "hosta") -> Wakeups:
    with unit_of_work(engine) as db:
        return dispatch.handle(db, m, conversation.Context(settings=settings, task_id="t", local_host=local_host))


def replies_to(engine: Engine, m: InboundMessage) -> list[str]:
    with unit_of_work(engine) as db:
        return list(db.execute(select(Outbox.text).where(Outbox.inbox_key == m.key).order_by(Outbox.id)).scalars())


def run_host_step(engine: Engine, settings: Settings, wakeups: Wakeups) -> Wakeups:
    """Do what the host worker does for a session.start / session.resume wake-up."""
    (step,) = [w for w in wakeups if w.task.startswith("session.") and w.task != SESSION_PROMPT]
    session_id, inbox_key = step.args
    with unit_of_work(engine) as db:
        session = db.get(Session, session_id)
        check = hostops.precheck(session.project_path, settings.model_copy(update={"claude_bin": "/bin/true"}),
                                 "hosta")
    with unit_of_work(engine) as db:
        op = hostops.start if step.task == SESSION_START else hostops.resume
        return op(db, session_id, inbox_key, check, "task-host")


def start_session(engine: Engine, settings: Settings, path: Path, sender: str = "alice") -> str:
    wakeups = run_host_step(engine, settings, handle(engine, settings, msg(f"/session start {path}", sender)))
    assert any(w.task == OUTBOX_SEND for w in wakeups)
    with unit_of_work(engine) as db:
        return db.execute(select(Session.id).where(Session.status == SessionStatus.ACTIVE,
                                                   Session.project_path == str(path.resolve()))).scalar_one()


def test_start_goes_to_the_host_and_replies_once(engine: Engine, settings: Settings, project_root: Path) -> None:
    m = msg(f"/session start {project_root / 'shop'}")
    wakeups = handle(engine, settings, m)
    (start,) = list(wakeups)
    assert (start.task, start.queue) == (SESSION_START, host_queue("hosta"))
    assert replies_to(engine, m) == []  # the host replies, so the command gets exactly one answer
    run_host_step(engine, settings, wakeups)
    (text,) = replies_to(engine, m)
    with unit_of_work(engine) as db:
        session = db.execute(select(Session)).scalar_one()
        assert session.status == SessionStatus.ACTIVE
        assert db.get(Inbox, m.key).status == "HANDLED"
    assert text.startswith(f"Started session {session.id} on hosta in {project_root.resolve() / 'shop'}")


def test_same_message_twice_has_one_effect(engine: Engine, settings: Settings, project_root: Path) -> None:
    m = msg(f"/session start {project_root / 'shop'}")
    first = handle(engine, settings, m)
    again = handle(engine, settings, m)  # redelivered before the host finished: the same wake-up, no new row
    assert [w.args for w in again] == [w.args for w in first]
    run_host_step(engine, settings, first)
    run_host_step(engine, settings, again)
    assert [w.task for w in handle(engine, settings, m)] == [OUTBOX_SEND]  # done: only the unsent reply
    with unit_of_work(engine) as db:
        assert db.execute(select(func.count()).select_from(Session)).scalar_one() == 1
        assert db.execute(select(func.count()).select_from(Transition)).scalar_one() == 1
        assert db.execute(select(func.count()).select_from(Outbox)).scalar_one() == 1


@pytest.mark.parametrize(("path", "why"), [("missing", "does not exist"), ("file.txt", "is not a directory"),
                                           ("escape", "outside the allowed project roots"),
                                           ("shop/../../", "outside the allowed project roots")])
def test_start_rejects_bad_paths(engine: Engine, settings: Settings, project_root: Path, tmp_path: Path,
                                 path: str, why: str) -> None:
    (project_root / "file.txt").write_text("x")
    (project_root / "escape").symlink_to(tmp_path / "home", target_is_directory=True)
    (tmp_path / "home").mkdir(exist_ok=True)
    m = msg(f"/session start {project_root / path}")
    run_host_step(engine, settings, handle(engine, settings, m))
    (text,) = replies_to(engine, m)
    assert text.startswith("Could not start a session in") and why in text
    with unit_of_work(engine) as db:
        assert db.execute(select(Session.status)).scalar_one() == SessionStatus.TERMINATED


def test_one_active_session_per_directory(engine: Engine, settings: Settings, project_root: Path) -> None:
    first = start_session(engine, settings, project_root / "shop")
    m = msg(f"/session start {project_root / 'shop'}/")
    run_host_step(engine, settings, handle(engine, settings, m))
    assert replies_to(engine, m) == [
        f"Session {first} already holds {(project_root / 'shop').resolve()} on this host. Send messages there, "
        f"or /session stop {first} first."]


def test_unknown_and_offline_hosts(engine: Engine, settings: Settings, project_root: Path) -> None:
    m = msg("/session start nowhere:/srv/app")
    assert next(iter(handle(engine, settings, m))).task == OUTBOX_SEND
    assert replies_to(engine, m) == ["No worker has ever run on host 'nowhere' (known hosts: hosta). "
                                     "Start a worker there first."]
    offline = settings.model_copy(update={"lease_ttl": 0.000001})
    m = msg(f"/session start hosta:{project_root}")
    handle(engine, offline, m, local_host="hostb")  # handled by a worker elsewhere: hosta's heartbeat is old
    assert replies_to(engine, m)[0].startswith("Host 'hosta' is offline")
    m = msg(f"/session start hosta:{project_root}")
    handle(engine, offline, m)  # handled on hosta itself: it is up, whatever its last heartbeat says
    assert replies_to(engine, m) == []


def test_list_stop_resume_and_prefixes(engine: Engine, settings: Settings, project_root: Path) -> None:
    shop = start_session(engine, settings, project_root / "shop")
    blog = start_session(engine, settings, project_root / "blog")
    listing = msg("/session list")
    handle(engine, settings, listing)
    (text,) = replies_to(engine, listing)
    assert f"▶ {blog}" in text and f"  {shop}" in text  # the newest is current

    stop = msg(f"/session stop {shop[:5]}")
    handle(engine, settings, stop)
    assert replies_to(engine, stop) == [f"Stopped session {shop} ({(project_root / 'shop').resolve()}). "
                                        "/session start <path> opens a new one."]
    resume = msg(f"/session resume {shop}")
    handle(engine, settings, resume)
    assert replies_to(engine, resume) == [
        f"Session {shop} is terminated; start a new one with /session start <path>."]
    again = msg(f"/session stop {shop}")
    handle(engine, settings, again)
    assert replies_to(engine, again) == [f"Session {shop} was already stopped. /session start <path> opens a new one."]
    nothing = msg("/session resume ffffffff")
    handle(engine, settings, nothing)
    assert replies_to(engine, nothing) == ["No session matches 'ffffffff'. /session list shows your sessions."]


def test_other_people_cannot_touch_a_session(engine: Engine, settings: Settings, project_root: Path) -> None:
    shop = start_session(engine, settings, project_root / "shop")
    m = msg(f"/session stop {shop}", sender="mallory")
    handle(engine, settings, m)
    assert replies_to(engine, m) == [f"No session matches '{shop}'. /session list shows your sessions."]


def test_resume_of_paused_session_continues_on_its_host(engine: Engine, settings: Settings,
                                                        project_root: Path) -> None:
    from claude_signal.core.lifecycle import transition

    shop = start_session(engine, settings, project_root / "shop")
    with unit_of_work(engine) as db:
        transition(db, shop, SessionStatus.PAUSED, reason="test")
    m = msg(f"/session resume {shop[:4]}")
    wakeups = run_host_step(engine, settings, handle(engine, settings, m))
    (text,) = replies_to(engine, m)
    assert text.startswith(f"Resumed session {shop} on hosta")
    assert any(w.task == SESSION_PROMPT for w in wakeups)  # messages queued while paused run now
    with unit_of_work(engine) as db:
        assert db.get(Session, shop).status == SessionStatus.ACTIVE


def test_prompts_need_an_active_current_session(engine: Engine, settings: Settings, project_root: Path) -> None:
    m = msg("hello")
    handle(engine, settings, m)
    assert replies_to(engine, m) == [
        "There is no current session here. Start one with /session start <path> (see /session help)."]
    start_session(engine, settings, project_root / "shop")
    first, second = msg("one"), msg("two")
    assert [w.task for w in handle(engine, settings, first)] == [SESSION_PROMPT]
    handle(engine, settings, second)
    assert replies_to(engine, first) == []
    assert replies_to(engine, second) == ["Queued: Claude will get this after 1 earlier message."]
    with unit_of_work(engine) as db:
        assert list(db.execute(select(Turn.prompt).order_by(Turn.id)).scalars()) == ["one", "two"]


def test_unauthorized_sender_is_dropped_silently(engine: Engine, settings: Settings) -> None:
    strict = settings.model_copy(update={"authorized": ["alice"]})
    m = msg("/session list", sender="mallory")
    assert list(handle(engine, strict, m)) == []
    assert replies_to(engine, m) == []


@pytest.mark.parametrize("text", ["/frob", "/session start", "/status please"])
def test_every_command_gets_exactly_one_reply(engine: Engine, settings: Settings, text: str) -> None:
    m = msg(text)
    handle(engine, settings, m)
    handle(engine, settings, m)
    assert len(replies_to(engine, m)) == 1


def test_status_and_hosts(engine: Engine, settings: Settings, project_root: Path) -> None:
    shop = start_session(engine, settings, project_root / "shop")
    status, hosts = msg("/status"), msg("/hosts")
    handle(engine, settings, status)
    handle(engine, settings, hosts)
    assert replies_to(engine, status)[0].startswith(f"Session {shop}: active on hosta")
    assert replies_to(engine, hosts) == ["Hosts:\nhosta: online, 1 worker, 1 active session, 0 of 2 turn slots busy"]


def test_a_prompt_to_a_paused_session_resumes_it(engine: Engine, settings: Settings, project_root: Path) -> None:
    from claude_signal.core.lifecycle import transition

    shop = start_session(engine, settings, project_root / "shop")
    with unit_of_work(engine) as db:
        transition(db, shop, SessionStatus.PAUSED, reason="its turn's worker stopped")
    m = msg("carry on")
    assert [(w.task, w.queue) for w in handle(engine, settings, m)] == [(OUTBOX_SEND, "signal"),
                                                                         (SESSION_PROMPT, "turns.hosta")]
    assert replies_to(engine, m) == [f"Session {shop} was paused when its worker stopped; resuming it with this "
                                     "message."]
    with unit_of_work(engine) as db:
        assert db.get(Session, shop).status == SessionStatus.ACTIVE
        assert db.execute(select(Turn.prompt)).scalar_one() == "carry on"


def test_resume_without_an_id_takes_the_current_session(engine: Engine, settings: Settings,
                                                         project_root: Path) -> None:
    shop = start_session(engine, settings, project_root / "shop")
    m = msg("/session resume")
    handle(engine, settings, m)
    (text,) = replies_to(engine, m)
    assert text.startswith(f"Session {shop} is already active")


def test_a_full_host_says_the_prompt_waits_for_a_slot(engine: Engine, settings: Settings,
                                                      project_root: Path) -> None:
    sessions = [start_session(engine, settings, project_root / name) for name in ("shop", "blog")]
    (project_root / "docs").mkdir()
    with unit_of_work(engine) as db:  # both of the host's two slots are taken
        for sid in sessions:
            db.add(Turn(session_id=sid, prompt="long", status=TurnStatus.RUNNING))
    start_session(engine, settings, project_root / "docs")
    m = msg("write the docs")
    handle(engine, settings, m)
    assert replies_to(engine, m) == ["Waiting for a free slot on hosta: 2 turns running there "
                                     "(CLAUDE_SIGNAL_MAX_TURNS). Claude gets this as soon as one ends."]
    status = msg("/status")
    handle(engine, settings, status)
    assert "Waiting for a free slot on hosta" in replies_to(engine, status)[0]


def test_approve_all_can_be_undone_and_status_shows_it(engine: Engine, settings: Settings,
                                                        project_root: Path) -> None:
    shop = start_session(engine, settings, project_root / "shop")

    def say(text: str) -> str:
        m = msg(text)
        handle(engine, settings, m)
        (reply,) = replies_to(engine, m)
        return reply

    say("/approve all")
    assert "every tool approved (/approve none undoes it)" in say("/status")
    assert say("/approve none") == f"Session {shop}: Claude asks again before each tool that needs permission."
    assert "every tool approved" not in say("/status")
    say("/approve all")
    say("/mode plan")  # a new mode starts afresh: /approve all does not carry over
    status = say("/status")
    assert "Permission mode: plan" in status and "every tool approved" not in status
    assert "Model: Claude Code's default · tool lines: each shown (/quiet on folds them)" in status
    say("/model opus")
    say("/quiet on")
    assert "Model: opus · tool lines: folded into one line (/quiet off shows each)" in say("/status")


def test_racing_host_steps_start_once(engine: Engine, settings: Settings, project_root: Path) -> None:
    """Two deliveries of session.start that both read CREATED: one activates, the other stands down."""
    m = msg(f"/session start {project_root / 'shop'}")
    wakeups = handle(engine, settings, m)
    (step,) = list(wakeups)
    session_id, key = step.args
    check = hostops.precheck(str(project_root / "shop"), settings.model_copy(update={"claude_bin": "/bin/true"}),
                             "hosta")
    with unit_of_work(engine) as db:
        stale = db.get(Session, session_id)  # what the second delivery read before the first committed
    with unit_of_work(engine) as db:
        hostops.start(db, session_id, key, check, "first")
    with unit_of_work(engine) as db:
        outcome = hostops._activate(db, stale, str((project_root / "shop").resolve()), reason="started",
                                    task_id="second")
    assert outcome.raced and outcome.session is None
    with unit_of_work(engine) as db:
        assert db.get(Session, session_id).status == SessionStatus.ACTIVE


def test_two_copies_handled_at_once_have_one_effect_and_no_error(engine: Engine, settings: Settings,
                                                                    project_root: Path) -> None:
    """A message recorded while it waited is woken twice (by its predecessor's handler and by a copy from the
    listener), and two workers take the copies at the same moment. On PostgreSQL both read the row RECEIVED,
    the second failed on the turn's unique key and answered "something went wrong" for a prompt that ran."""
    start_session(engine, settings, project_root / "shop")
    prompts = [msg(f"step {n}") for n in range(12)]
    with unit_of_work(engine) as db:
        for m in prompts:
            inbox.record(db, m)  # each recorded while it waited for the message before it
    errors: list[Exception] = []

    def copy(m: InboundMessage, together: threading.Barrier) -> None:
        together.wait()
        try:
            handle(engine, settings, m)
        except Exception as error:  # noqa: BLE001 - the test reports it
            errors.append(error)

    for m in prompts:
        together = threading.Barrier(2)
        pair = [threading.Thread(target=copy, args=(m, together)) for _ in range(2)]
        for thread in pair:
            thread.start()
        for thread in pair:
            thread.join(30)
    assert errors == []
    with unit_of_work(engine) as db:
        counts = Counter(db.execute(select(Turn.inbound_key)).scalars())
    assert counts == Counter({m.key: 1 for m in prompts})
    assert not [t for m in prompts for t in replies_to(engine, m) if "went wrong" in t]


def test_attachment_that_cannot_be_fetched_gets_a_clear_reply(engine: Engine, settings: Settings) -> None:
    m = InboundMessage.build(sender="alice", conversation="alice", timestamp=next(_ts), text="", attachments=1)
    handle(engine, settings, m)
    (text,) = replies_to(engine, m)
    assert text.startswith("That attachment did not come through")


def test_oversized_picture_gets_a_clear_reply(engine: Engine, settings: Settings) -> None:
    big = FileRef(id="x.jpg", content_type="image/jpeg", filename="IMG_1.jpg", size=9 * 1024 * 1024)
    m = InboundMessage.build(sender="alice", conversation="alice", timestamp=next(_ts), text="look", attachments=1,
                             files=(big,))
    handle(engine, settings, m)
    (text,) = replies_to(engine, m)
    assert text.startswith("The picture IMG_1.jpg is 9.0 MB; Claude takes pictures up to 3.8 MB")


def test_own_reply_echoed_in_note_to_self_is_ignored(engine: Engine, settings: Settings) -> None:
    first = msg("/hosts", sender="owner", conversation="+15550000001")
    handle(engine, settings, first)
    (reply_text,) = replies_to(engine, first)
    with unit_of_work(engine) as db:
        oid = db.execute(select(Outbox.id).where(Outbox.inbox_key == first.key)).scalar_one()
        outbox.claim(db, oid)
        outbox.mark_sent(db, oid, 424242)
    echo = InboundMessage.build(sender="owner", conversation="+15550000001", timestamp=424242, text=reply_text,
                                note_to_self=True)
    assert not handle(engine, settings, echo).items
    assert replies_to(engine, echo) == []


def test_message_waits_for_the_one_before_it(engine: Engine, settings: Settings) -> None:
    first = msg("/session help")
    second = InboundMessage.build(sender="alice", conversation="alice", timestamp=next(_ts), text="/hosts",
                                  after=first.key)
    with pytest.raises(conversation.NotYet):
        handle(engine, settings, second)
    handle(engine, settings, first)
    handle(engine, settings, second)
    assert replies_to(engine, second)[0].startswith("Hosts:")


def test_empty_authorized_means_nobody(engine: Engine, settings: Settings) -> None:
    m = msg("/session list")
    assert list(handle(engine, settings.model_copy(update={"authorized": []}), m)) == []
    assert replies_to(engine, m) == []


def test_authorized_number_with_another_uuid_is_dropped(engine: Engine, settings: Settings) -> None:
    paired = settings.model_copy(update={"authorized": ["alice-uuid", "+15550000002"]})
    spoof = InboundMessage.build(sender="mallory-uuid", sender_number="+15550000002", conversation="mallory-uuid",
                                 timestamp=next(_ts), text="/session list")
    assert list(handle(engine, paired, spoof)) == []
    real = InboundMessage.build(sender="alice-uuid", sender_number="+15550000002", conversation="alice-uuid",
                                timestamp=next(_ts), text="/session list")
    handle(engine, paired, real)
    assert replies_to(engine, spoof) == [] and len(replies_to(engine, real)) == 1


GROUP = "group.Z3JvdXA="


def in_group(text: str, sender: str = "owner") -> InboundMessage:
    return InboundMessage.build(sender=sender, conversation=GROUP, group_id="group", timestamp=next(_ts), text=text)


def test_owners_chatter_in_a_group_without_a_session_is_not_answered(engine: Engine, settings: Settings) -> None:
    chatter = [in_group("see you at 8"), in_group("lol, /session help is neat", sender="alice")]
    edit = InboundMessage.build(sender="owner", conversation=GROUP, group_id="group", timestamp=next(_ts),
                                text="see you at 9", kind="edit")
    for m in [*chatter, edit]:
        assert list(handle(engine, settings, m)) == []
        assert replies_to(engine, m) == []
    explicit = in_group("/session help")
    handle(engine, settings, explicit)
    assert replies_to(engine, explicit)[0].startswith("claude-signal commands:")
    with unit_of_work(engine) as db:
        assert db.execute(select(func.count()).select_from(Turn)).scalar_one() == 0


def test_a_group_bound_to_a_session_takes_prompts(engine: Engine, settings: Settings, project_root: Path) -> None:
    start = in_group(f"/session start {project_root / 'shop'}")
    run_host_step(engine, settings, handle(engine, settings, start))
    prompt = in_group("fix the tests")
    assert any(w.task == SESSION_PROMPT for w in handle(engine, settings, prompt))


def test_status_reads_the_turns_with_the_session(engine: Engine, settings: Settings, project_root: Path) -> None:
    """/status reports the running prompt, the queue and the open questions, read by the same statement
    that finds the conversation's session (one statement fewer for the most frequent command)."""
    from claude_signal.db.models import Approval, Turn, utcnow

    sid = start_session(engine, settings, project_root / "shop")
    with unit_of_work(engine) as db:
        running = Turn(session_id=sid, prompt="refactor the cart", status="RUNNING", created_at=utcnow())
        db.add_all([running, Turn(session_id=sid, prompt="a", created_at=utcnow()),
                    Turn(session_id=sid, prompt="b", created_at=utcnow())])
        db.flush()
        db.add(Approval(id="ab12", turn_id=running.id, session_id=sid, request_id="r", tool_name="Bash",
                        input_summary="rm -rf build"))
    with statements_run(engine) as statements:
        asked = msg("/status")
        handle(engine, settings, asked)
    (text,) = replies_to(engine, asked)
    assert "Running: refactor the cart" in text and "Queued: 2 messages" in text
    assert "Waiting for you: 1 request" in text
    selects = [s for s in statements if s.startswith("SELECT")]
    assert len(selects) == 1 and "FROM session JOIN conversation" in selects[0]
