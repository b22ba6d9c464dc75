"""Claude's questions, plans and approvals with context, end to end from the phone: real workers, the fake
Signal server, and each test against the fake `claude` and the pinned real CLI (scripted Messages API).
Judged on what the fake Signal server received."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from claude_signal.db.engine import unit_of_work
from claude_signal.db.models import Outbox, Session
from tests.harness import wait_until
from tests.integration.conftest import System
from tests.integration.helpers import sessions

# About processes and the wire, not the database: one backend (SQLite) suffices; the database tests run on both.
pytestmark = [pytest.mark.transport, pytest.mark.parametrize("claude_cli", ["fake", "real"], indirect=True)]


def start(system: System, project: str = "shop") -> Session:
    system.publisher.send(f"/session start {system.projects / project}")
    system.wait_reply(lambda t: t.startswith("Started session") and project in t)
    return next(s for s in sessions(system.engine) if s.project_path.endswith(project))


def sent_timestamp(system: System, prefix: str) -> int:
    def find() -> int | None:
        with unit_of_work(system.engine) as db:
            return db.execute(select(Outbox.signal_timestamp).where(
                Outbox.text.startswith(prefix), Outbox.signal_timestamp.is_not(None))).scalars().first()
    return wait_until(find, message=f"'{prefix}' to be sent")


def test_question_shows_options_and_a_number_answers_it(system: System) -> None:
    system.worker()
    start(system)
    system.publisher.send("ask: Which database should I use?")
    (question,) = system.wait_reply(lambda t: t.startswith("Claude asks:"))
    assert "Which database should I use?" in question
    assert "1. yes — Go ahead" in question and "2. no — Do not" in question
    system.publisher.send("2")
    system.wait_reply(lambda t: t == "Answer sent: no")
    (answer,) = system.wait_reply(lambda t: "Echo: ask: Which database should I use?" in t)
    assert '"Which database should I use?"="no"' in answer  # Claude got the label, keyed by the question
    assert "\n\nDone in " in answer  # the cost line rides on the answer: one buzz, not two
    assert not [t for t in system.replies() if "AskUserQuestion" in t or t.startswith("Done in")]


def test_a_reply_to_the_question_is_a_free_answer(system: System) -> None:
    system.worker()
    start(system)
    system.publisher.send("ask: Which colour?")
    system.wait_reply(lambda t: t.startswith("Claude asks:"))
    target = sent_timestamp(system, "Claude asks:")
    system.publisher.send("teal, like the logo", quote_timestamp=target)
    system.wait_reply(lambda t: t == "Answer sent: teal, like the logo")
    (answer,) = system.wait_reply(lambda t: "Echo: ask: Which colour?" in t)
    assert '"Which colour?"="teal, like the logo"' in answer


def test_deny_skips_a_question_and_claude_carries_on(system: System) -> None:
    system.worker()
    start(system)
    system.publisher.send("ask: Deploy now?")
    system.wait_reply(lambda t: t.startswith("Claude asks:"))
    system.publisher.send("/deny not today")
    system.wait_reply(lambda t: t.startswith("Denied") and "not today" in t)
    (answer,) = system.wait_reply(lambda t: "Echo: ask: Deploy now?" in t)
    assert "The user chose not to answer: not today" in answer


def test_denied_tool_is_marked_in_the_stream(system: System) -> None:
    system.worker()
    start(system)
    command = "git push --force origin main && echo" + " pushed-and-done" * 10
    system.publisher.send(f"run: {command}")
    (ask,) = system.wait_reply(lambda t: t.startswith("Claude wants to run Bash:"))
    assert command in ask  # the whole command, not a clipped line
    system.publisher.send("/deny too risky")
    (answer,) = system.wait_reply(lambda t: "Echo: run: git push" in t)
    assert "› ✗ Bash: git push --force" in answer and "(denied)" in answer
    unmarked = [t for t in system.replies() if "› Bash: git push --force" in t]
    assert not unmarked, unmarked


def test_expired_tool_is_marked_in_the_stream(system: System) -> None:
    system.env["CLAUDE_SIGNAL_APPROVAL_TIMEOUT"] = "2"
    system.worker()
    start(system)
    system.publisher.send("run: make deploy")
    (answer,) = system.wait_reply(lambda t: "Echo: run: make deploy" in t)
    assert "› ✗ Bash: make deploy (not run: no answer in time)" in answer


def test_edit_request_shows_a_diff(system: System) -> None:
    if system.real_claude:
        pytest.skip("the scripted Messages API does not edit files; the fake covers the Edit request's shape")
    system.worker()
    start(system)
    system.publisher.send("edit: app.py")
    (ask,) = system.wait_reply(lambda t: t.startswith("Claude wants to run Edit"))
    assert "\n-a\n+b\n" in ask
    system.publisher.send("yes")  # a plain yes is not an answer to a permission: it becomes a prompt
    system.publisher.send("/approve")
    system.wait_reply(lambda t: "Echo: edit: app.py" in t and "Tool said: ran app.py" in t)


def test_plan_is_shown_and_approved_with_edits(system: System) -> None:
    system.worker()
    session = start(system)
    system.publisher.send("/mode plan")
    system.wait_reply(lambda t: t.startswith(f"Session {session.id} now uses permission mode plan"))
    system.publisher.send("plan: 1. Add the index\n2. Run the tests")
    (shown,) = system.wait_reply(lambda t: t.startswith("Claude's plan:"))
    assert "1. Add the index\n2. Run the tests" in shown and "3. Keep planning" in shown
    system.publisher.send("2")
    system.wait_reply(lambda t: t.startswith("Plan approved") and "accepted" in t)
    (answer,) = system.wait_reply(lambda t: "Echo: plan: 1. Add the index" in t)
    assert "User has approved your plan" in answer


def test_plan_feedback_reaches_claude(system: System) -> None:
    system.worker()
    session = start(system)
    system.publisher.send("/mode plan")
    system.wait_reply(lambda t: t.startswith(f"Session {session.id} now uses permission mode plan"))
    system.publisher.send("plan: Rewrite everything")
    system.wait_reply(lambda t: t.startswith("Claude's plan:"))
    system.publisher.send("smaller steps please")
    system.wait_reply(lambda t: t == "Sent your feedback: Claude revises the plan.")
    (answer,) = system.wait_reply(lambda t: "Echo: plan: Rewrite everything" in t)
    assert "The user wants changes to the plan: smaller steps please" in answer


def test_a_long_answer_carries_its_cost_line_in_its_last_part(system: System) -> None:
    """An answer longer than a batch still waits for the turn's end, so the phone gets the answer in
    parts and the cost line at the end of the last one, not as one more message of its own."""
    system.worker()
    start(system)
    words = " ".join(f"word{i}" for i in range(500))
    system.publisher.send(f"say back: {words}")
    system.wait_reply(lambda t: "Done in " in t, timeout=40)
    parts = [t for t in system.replies() if "word" in t or "Done in" in t]
    assert len(parts) >= 2 and "Echo: say back: word0" in parts[0]
    assert "word499" in parts[-1] and "\n\nDone in " in parts[-1]
    assert not [t for t in system.replies() if t.startswith("Done in")]
