"""Talking to Claude from the phone, end to end: real workers, real Redis, the fake Signal server, and each
test twice: against the fake `claude` and against the pinned real Claude Code CLI talking to a scripted
Messages API on loopback. Where the two disagree, the real one is right."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from claude_signal.db.engine import unit_of_work
from claude_signal.db.models import Session, Turn
from claude_signal.host.process_groups import group_alive
from claude_signal.rules.states import SessionStatus, TurnStatus
from tests.harness import wait_until
from tests.integration.conftest import System
from tests.integration.helpers import one_session, sessions

# About processes and the wire, not the database: one backend (SQLite) suffices; the database tests run on both.
pytestmark = [pytest.mark.transport, pytest.mark.parametrize("claude_cli", ["fake", "real"], indirect=True)]


def fake_only(system: System, why: str) -> None:
    if system.real_claude:
        pytest.skip(f"the real CLI cannot be made to {why}; the fake covers it")


def start(system: System, project: str = "shop") -> Session:
    system.publisher.send(f"/session start {system.projects / project}")
    system.wait_reply(lambda t: t.startswith("Started session") and project in t)
    return next(s for s in sessions(system.engine) if s.project_path.endswith(project))


def turns(system: System) -> list[Turn]:
    with unit_of_work(system.engine) as db:
        return list(db.execute(select(Turn).order_by(Turn.id)).scalars())


def test_conversation_remembers_and_resumes(system: System) -> None:
    system.worker()
    start(system)
    system.publisher.send("my name is Ada")
    system.wait_reply(lambda t: "Echo: my name is Ada (turn 1; earlier: nothing)" in t)
    system.wait_reply(lambda t: "Done in " in t)
    system.publisher.send("what is my name?")
    system.wait_reply(lambda t: "(turn 2; earlier: my name is Ada)" in t)
    # The machine's workers crash while the session is idle: an idle session belongs to no process, so it
    # stays open, nobody is told anything, and the same Claude conversation goes on.
    system.workers[0].kill9()
    system.worker()
    system.publisher.send("and now?")
    system.wait_reply(lambda t: "(turn 3; earlier: my name is Ada | what is my name?)" in t)
    assert not [t for t in system.replies() if "stopped" in t or "paused" in t]
    wait_until(lambda: one_session(system.engine).turn_count == 3, message="the third turn to be recorded")
    assert [t.status for t in turns(system)] == [TurnStatus.DONE] * 3


def test_messages_queue_behind_a_running_turn(system: System) -> None:
    system.scenario("slow", delay=2)
    system.worker()
    start(system)
    system.publisher.send("first")
    wait_until(lambda: [t.status for t in turns(system)] == [TurnStatus.RUNNING], message="the first turn to run")
    system.publisher.send("second")
    system.wait_reply(lambda t: t == "Queued: Claude will get this after 1 earlier message.")
    system.wait_reply(lambda t: "Echo: second (turn 2; earlier: first)" in t, timeout=40)
    assert [t.prompt for t in turns(system)] == ["first", "second"]


def test_cancel_mid_turn_leaves_no_process(system: System) -> None:
    system.scenario("slow", delay=60)
    system.worker()
    start(system)
    system.publisher.send("take your time")
    running = wait_until(lambda: next((t for t in turns(system) if t.claude_pgid), None), message="claude to start")
    system.publisher.send("/cancel")
    system.wait_reply(lambda t: t == 'Interrupting "take your time"…')
    system.wait_reply(lambda t: t == "Interrupted.")
    assert turns(system)[0].status == TurnStatus.INTERRUPTED
    wait_until(lambda: not group_alive(running.claude_pgid), timeout=10, message="claude's group to be gone")


def test_approve_and_deny_from_the_phone(system: System) -> None:
    system.worker()
    session = start(system)
    system.publisher.send("run: touch approved.txt")
    (ask,) = system.wait_reply(lambda t: t.startswith("Claude wants to run Bash: touch approved.txt"))
    approval_id = ask.split("/approve ")[1].split()[0]
    system.publisher.send(f"/approve {approval_id}")
    system.wait_reply(lambda t: t.startswith(f"Approved {approval_id}"))
    system.wait_reply(lambda t: "Echo: run: touch approved.txt" in t)
    system.publisher.send("run: touch denied.txt")
    (ask,) = system.wait_reply(lambda t: t.startswith("Claude wants to run Bash: touch denied.txt"))
    system.publisher.send("/deny too risky")
    system.wait_reply(lambda t: t.startswith("Denied") and "too risky" in t)
    system.wait_reply(lambda t: "Echo: run: touch denied.txt" in t)
    system.publisher.send("/approve all")
    system.wait_reply(lambda t: t.startswith("Approving every tool for the rest of session"))
    system.publisher.send("run: touch all.txt")
    system.wait_reply(lambda t: "Echo: run: touch all.txt" in t)
    assert not [t for t in system.replies() if t.startswith("Claude wants to run Bash: touch all.txt")]
    if system.real_claude:  # the real CLI really runs what was approved, and only that
        project = Path(session.project_path)
        assert (project / "approved.txt").exists() and (project / "all.txt").exists()
        assert not (project / "denied.txt").exists()


def test_unanswered_approval_is_denied_after_the_timeout(system: System) -> None:
    system.env["CLAUDE_SIGNAL_APPROVAL_TIMEOUT"] = "2"
    system.worker()
    start(system)
    system.publisher.send("run: deploy")
    system.wait_reply(lambda t: t.startswith("No answer within 0 min, so I denied") or "denied" in t.lower())
    system.wait_reply(lambda t: "Echo: run: deploy" in t)


@pytest.mark.transport
@pytest.mark.parametrize(("scenario", "expected"), [
    ("not_logged_in", "Claude is not logged in on this machine"),
    ("overloaded", "Anthropic's servers are overloaded"),
    ("max_turns", "Claude reached its limit of steps"),
    ("crash", "Claude stopped without finishing"),
])
def test_failure_scenarios_reply_in_plain_language(system: System, scenario: str, expected: str) -> None:
    if scenario == "max_turns":
        fake_only(system, "stop at a step limit (the bot passes no --max-turns)")
    if scenario == "crash":
        fake_only(system, "exit without a result at will")
    if scenario == "not_logged_in" and system.real_claude:
        del system.env["ANTHROPIC_API_KEY"]  # no key and no login: the real CLI's own "Not logged in"
    else:
        system.scenario(scenario)
    system.worker()
    session = start(system)
    system.publisher.send("hello")
    (text,) = system.wait_reply(lambda t: t.startswith(expected))
    assert "{" not in text and "Traceback" not in text
    assert not [r for r in system.replies() if r.startswith("API Error")], "the CLI's raw notice reached the phone"
    system.publisher.send("/status")  # the session is still usable
    system.wait_reply(lambda t: session.id in t and t.startswith("Session"))


def test_kill_mid_turn_pauses_and_leaves_no_claude(system: System) -> None:
    system.scenario("slow", delay=120)
    worker = system.worker()
    session = start(system)
    system.publisher.send("long job")
    running = wait_until(lambda: next((t for t in turns(system) if t.claude_pgid), None), message="claude to start")
    worker.kill9()
    system.scenario("")
    system.worker()
    (notice,) = system.wait_reply(lambda t: t.startswith("The worker running these sessions stopped"))
    assert f'{session.id} ' in notice and 'interrupted: "long job"' in notice
    wait_until(lambda: not group_alive(running.claude_pgid), timeout=15, message="the orphaned claude to be killed")
    assert one_session(system.engine).status == SessionStatus.PAUSED
    assert turns(system)[0].status == TurnStatus.INTERRUPTED
    system.publisher.send(f"/session resume {session.id}")
    system.wait_reply(lambda t: t.startswith(f"Resumed session {session.id}"))
    system.publisher.send("again")
    system.wait_reply(lambda t: "Echo: again" in t)
    log = [json.loads(line) for line in Path(system.env["FAKE_CLAUDE_LOG"]).read_text().splitlines()]
    assert {a for call in log for a in call["argv"] if session.claude_session_id in a}  # same Claude session id


def test_stop_mid_turn_ends_claude_and_the_session(system: System) -> None:
    system.scenario("slow", delay=60)
    system.worker()
    session = start(system)
    system.publisher.send("a long refactor")
    running = wait_until(lambda: next((t for t in turns(system) if t.claude_pgid), None), message="claude to start")
    system.publisher.send(f"/session stop {session.id}")
    system.wait_reply(lambda t: t.startswith(f"Stopped session {session.id}"))
    wait_until(lambda: not group_alive(running.claude_pgid), timeout=15, message="claude's group to be gone")
    wait_until(lambda: turns(system)[0].status != TurnStatus.RUNNING, message="the turn to end")
    assert one_session(system.engine).status == SessionStatus.TERMINATED
    system.publisher.send("anyone there?")
    system.wait_reply(lambda t: t.startswith(f"Session {session.id} has ended") and "/session start" in t)


@pytest.mark.transport
def test_mode_applies_to_the_next_turn(system: System) -> None:
    system.worker()
    session = start(system)
    system.publisher.send("/mode plan")
    system.wait_reply(lambda t: t.startswith(f"Session {session.id} now uses permission mode plan"))
    system.publisher.send("make a plan")
    system.wait_reply(lambda t: "Echo: make a plan" in t)
    calls = [json.loads(line) for line in Path(system.env["FAKE_CLAUDE_LOG"]).read_text().splitlines()]
    argv = next(c["argv"] for c in calls if "--version" not in c["argv"])
    assert argv[argv.index("--permission-mode") + 1] == "plan"


def test_resume_where_the_transcript_is_missing_says_so(system: System) -> None:
    worker = system.worker()
    session = start(system)
    system.publisher.send("remember me")
    system.wait_reply(lambda t: "Echo: remember me" in t)
    system.publisher.send("wait: long job")
    wait_until(lambda: any(t.prompt == "wait: long job" and t.claude_pgid for t in turns(system)),
               message="the long turn's claude to start")
    worker.kill9()  # the restart's recovery pauses the session whose turn was running
    for transcript in Path(system.env["CLAUDE_CONFIG_DIR"]).rglob(f"{session.claude_session_id}.jsonl"):
        transcript.unlink()
    system.worker()
    wait_until(lambda: one_session(system.engine).status == SessionStatus.PAUSED, timeout=30,
               message="the session to be paused")
    system.publisher.send(f"/session resume {session.id}")
    (text,) = system.wait_reply(lambda t: t.startswith(f"Resumed session {session.id}"))
    assert "transcript of it is missing on this host" in text
    system.publisher.send("who am I?")
    system.wait_reply(lambda t: "Echo: who am I? (turn 1; earlier: nothing)" in t)


def _signal_timestamp_of(system: System, prefix: str) -> int:
    from claude_signal.db.models import Outbox

    def find() -> int | None:
        with unit_of_work(system.engine) as db:
            return db.execute(select(Outbox.signal_timestamp).where(Outbox.text.startswith(prefix),
                                                                    Outbox.signal_timestamp.is_not(None))
                              ).scalar_one_or_none()
    return wait_until(find, message=f"'{prefix}' to be sent")


def test_reaction_and_reply_decide_approvals(system: System) -> None:
    system.worker()
    start(system)
    system.publisher.send("run: make test")
    system.wait_reply(lambda t: t.startswith("Claude wants to run Bash: make test"))
    target = _signal_timestamp_of(system, "Claude wants to run Bash: make test")
    system.publisher.publish(system.publisher.message("", kind="reaction", reaction_emoji="👍",
                                                      reaction_target_timestamp=target))
    system.wait_reply(lambda t: t.startswith("Approved"))
    system.wait_reply(lambda t: "Echo: run: make test" in t)
    system.publisher.send("run: make deploy")
    system.wait_reply(lambda t: t.startswith("Claude wants to run Bash: make deploy"))
    target = _signal_timestamp_of(system, "Claude wants to run Bash: make deploy")
    system.publisher.send("no, not on a Friday", quote_timestamp=target)
    system.wait_reply(lambda t: t.startswith("Denied") and "not on a Friday" in t)
    system.wait_reply(lambda t: "Echo: run: make deploy" in t)
