"""Questions and plans on the phone: how an answer is read, and the shape Claude gets it in."""

from __future__ import annotations

from claude_signal.claude import protocol as p
from claude_signal.rules import asks

QUESTION = {"question": "Which database?", "header": "DB", "multiSelect": False,
            "options": [{"label": "PostgreSQL", "description": "Server"}, {"label": "SQLite"}]}


def test_numbers_and_labels_pick_options_and_anything_else_is_free_text() -> None:
    assert asks.match_answer(QUESTION, "1") == "PostgreSQL"
    assert asks.match_answer(QUESTION, " sqlite. ") == "SQLite"
    assert asks.match_answer(QUESTION, "3") == "3"  # no third option: the person's own words
    assert asks.match_answer(QUESTION, "1,2") == "1,2"  # one choice only
    assert asks.match_answer(QUESTION, "whatever is simplest") == "whatever is simplest"


def test_multi_select_joins_labels_as_the_cli_does() -> None:
    several = {**QUESTION, "multiSelect": True}
    assert asks.match_answer(several, "2, 1") == "SQLite, PostgreSQL"


def test_answers_are_keyed_by_question_text_beside_the_questions() -> None:
    tool_input = {"questions": [QUESTION]}
    updated = asks.answered_input(tool_input, {"Which database?": "SQLite"})
    assert updated == {"questions": [QUESTION], "answers": {"Which database?": "SQLite"}}


def test_question_message_numbers_the_options() -> None:
    text = asks.render_question("ab12", QUESTION, 0, 1)
    assert text.splitlines()[:4] == ["Claude asks:", "Which database?", "1. PostgreSQL — Server", "2. SQLite"]


def test_plan_choices() -> None:
    assert asks.plan_choice("1") == asks.PlanChoice("approve")
    assert asks.plan_choice("2") == asks.PlanChoice("approve_edits")
    assert asks.plan_choice("Keep planning") == asks.PlanChoice("keep")
    assert asks.plan_choice("use smaller steps") == asks.PlanChoice("feedback", "use smaller steps")


def test_plan_approval_with_edits_carries_a_set_mode_rule() -> None:
    line = p.allow_response("r1", {"plan": "x"}, [asks.ACCEPT_EDITS])
    assert '"updatedPermissions":[{"type":"setMode","mode":"acceptEdits","destination":"session"}]' in line
    assert "updatedPermissions" not in p.allow_response("r1", {})
