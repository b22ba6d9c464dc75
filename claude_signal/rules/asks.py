"""Claude's questions (``AskUserQuestion``) and plans (``ExitPlanMode``) as phone messages, and the person's
answers back in the shape the CLI expects. Pure: no I/O, no database.

Both arrive as ordinary ``can_use_tool`` requests; they are not permissions but conversations, so they are
shown readably with numbered choices and answered by a number, a label or free text
(``shared/reference/claude-cli-interactive.md`` §a, §b).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

QUESTION_TOOL = "AskUserQuestion"
PLAN_TOOL = "ExitPlanMode"
INTERACTIVE_TOOLS = (QUESTION_TOOL, PLAN_TOOL)

# A setMode rule sent with a plan's approval: the live process goes on with edits auto-approved.
ACCEPT_EDITS = {"type": "setMode", "mode": "acceptEdits", "destination": "session"}
KEEP_PLANNING = "Keep planning: the user wants a revised plan before any change is made."


def questions(tool_input: dict[str, Any]) -> list[dict[str, Any]]:
    """The well-formed questions of an ``AskUserQuestion`` input (tolerant of odd shapes)."""
    raw = tool_input.get("questions") if isinstance(tool_input, dict) else None
    return [q for q in raw or [] if isinstance(q, dict) and isinstance(q.get("question"), str)]


def labels(question: dict[str, Any]) -> list[str]:
    return [str(o.get("label", "")) for o in question.get("options") or [] if isinstance(o, dict)]


def render_question(approval_id: str, question: dict[str, Any], index: int, total: int) -> str:
    """The question, its numbered options, and how to answer."""
    head = f"Claude asks ({index + 1} of {total}):" if total > 1 else "Claude asks:"
    lines = [head, str(question["question"])]
    for number, option in enumerate(question.get("options") or [], start=1):
        if isinstance(option, dict):
            note = f" — {option['description']}" if option.get("description") else ""
            lines.append(f"{number}. {option.get('label', '')}{note}")
    several = " (several: 1,3)" if question.get("multiSelect") else ""
    lines.append(f"Answer with a number{several}, a label, or your own words. /deny {approval_id} skips it.")
    return "\n".join(lines)


def match_answer(question: dict[str, Any], text: str) -> str:
    """A number (or numbers, for multi-select) or a label picks options; anything else is a free answer.
    Several labels are joined with ", " as the CLI does."""
    options = labels(question)
    text = text.strip()
    numbers = re.fullmatch(r"\d+(\s*[, ]\s*\d+)*", text)
    if numbers:
        picked = [int(n) for n in re.findall(r"\d+", text)]
        if all(1 <= n <= len(options) for n in picked) and (len(picked) == 1 or question.get("multiSelect")):
            return ", ".join(options[n - 1] for n in dict.fromkeys(picked))
    for label in options:
        if label.casefold() == text.rstrip(".!").casefold():
            return label
    return text


def answers_so_far(reason: str | None) -> dict[str, str]:
    """Answers recorded on a question's row (JSON in its ``reason``) while it waits for the rest."""
    try:
        value = json.loads(reason or "{}")
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def answered_input(tool_input: dict[str, Any], answers: dict[str, str]) -> dict[str, Any]:
    """The allow's ``updatedInput``: the questions as received plus answers keyed by question text."""
    return {**tool_input, "answers": dict(answers)}


def plan_text(tool_input: dict[str, Any]) -> str:
    plan = tool_input.get("plan") if isinstance(tool_input, dict) else None
    return plan.strip() if isinstance(plan, str) and plan.strip() else "(Claude did not include the plan's text.)"


def render_plan(approval_id: str, tool_input: dict[str, Any]) -> str:
    return "\n".join([
        "Claude's plan:", "", plan_text(tool_input), "",
        "1. Approve",
        "2. Approve, and accept Claude's edits for the rest of this turn",
        "3. Keep planning",
        f"Or send what to change (/deny {approval_id} <feedback> works too).",
    ])


@dataclass(frozen=True)
class PlanChoice:
    kind: Literal["approve", "approve_edits", "keep", "feedback"]
    text: str = ""


def plan_choice(text: str) -> PlanChoice:
    word = text.strip().rstrip(".!").casefold()
    if word in ("1", "approve", "yes", "ok", "go", "👍"):
        return PlanChoice("approve")
    if word in ("2", "approve edits", "accept edits", "edits"):
        return PlanChoice("approve_edits")
    if word in ("3", "keep planning", "keep", "plan more"):
        return PlanChoice("keep")
    return PlanChoice("feedback", text.strip())


PLAN_APPROVED_WITH_EDITS = "acceptEdits"


def summary(tool: str, tool_input: dict[str, Any]) -> str:
    """The one line kept on the approval row (lists of waiting requests show it)."""
    if tool == QUESTION_TOOL:
        asked = questions(tool_input)
        return f"question: {asked[0]['question']}" if asked else "a question"
    return "plan approval"
