"""The driver against the fake `claude` executable: real processes, real pipes, real process groups."""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from claude_signal.claude import protocol as p
from claude_signal.claude.driver import Decision, TurnOutcome, TurnSpec, build_argv, run_turn
from claude_signal.claude.summaries import result_error_text, tool_summary
from claude_signal.host.process_groups import group_alive
from tests.harness import wait_until

FAKE = str(Path(__file__).parent / "fakes" / "claude")
FAKE_ENV = ("FAKE_CLAUDE_LOG", "FAKE_CLAUDE_SCENARIO", "FAKE_CLAUDE_DELAY")  # the fake's knobs pass the allowlist


@dataclass
class Hooks:
    decide: Decision | None = None
    interrupt_after: float | None = None
    events: list[Any] = field(default_factory=list)
    requests: list[p.CanUseTool] = field(default_factory=list)
    pgid: int | None = None
    started: float = field(default_factory=time.monotonic)

    def on_spawn(self, pid: int, pgid: int) -> None:
        self.pgid = pgid

    def on_event(self, event: Any) -> None:
        self.events.append(event)

    def on_permission_request(self, request: p.CanUseTool) -> None:
        self.requests.append(request)

    def poll_permission(self, request_id: str) -> Decision | None:
        return self.decide

    def on_permission_cancelled(self, request_id: str) -> None:
        self.events.append(("cancelled", request_id))

    def should_interrupt(self) -> bool:
        return self.interrupt_after is not None and time.monotonic() - self.started > self.interrupt_after

    def texts(self) -> list[str]:
        return [e.text for e in self.events if isinstance(e, p.AssistantText)]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {**os.environ, "CLAUDE_CONFIG_DIR": str(tmp_path / "cfg"), "FAKE_CLAUDE_LOG": str(tmp_path / "calls"),
           "CLAUDECODE": "1"}
    env.pop("FAKE_CLAUDE_SCENARIO", None)
    return env


def turn(tmp_path: Path, env: dict[str, str], prompt: str, sid: str, *, resume: bool = False,
         hooks: Hooks | None = None, scenario: str | None = None, **spec: Any) -> tuple[TurnOutcome, Hooks]:
    hooks = hooks or Hooks()
    run_env = {**env, **({"FAKE_CLAUDE_SCENARIO": scenario} if scenario else {})}
    outcome = run_turn(TurnSpec(FAKE, str(tmp_path), prompt, sid, resume, env=run_env, env_extra=FAKE_ENV,
                                **spec), hooks)
    assert hooks.pgid is not None
    # A killed orphan lingers as a zombie until init reaps it, so allow a moment.
    wait_until(lambda: not group_alive(hooks.pgid), timeout=5, message="the process group to be gone")
    return outcome, hooks


def test_argv_first_turn_then_resume() -> None:
    assert build_argv("claude", session_id="s", resume=False, permission_mode="plan")[-4:] == [
        "--permission-mode", "plan", "--session-id", "s"]
    assert build_argv("claude", session_id="s", resume=True, permission_mode="default")[-1] == "--resume=s"
    assert build_argv("claude", session_id="s", resume=True, permission_mode="default", model="haiku")[-2:] == [
        "--model=haiku", "--resume=s"]  # one argument: a model name can never be read as another flag


def test_conversation_continues_across_processes(tmp_path: Path, env: dict[str, str]) -> None:
    sid = str(uuid.uuid4())
    first, _ = turn(tmp_path, env, "remember the number 7", sid)
    second, hooks = turn(tmp_path, env, "what was the number?", sid, resume=True)
    assert first.status == second.status == "done"
    assert hooks.texts() == ["Echo: what was the number? (turn 2; earlier: remember the number 7)"]
    assert second.result is not None and second.result.total_cost_usd == pytest.approx(0.0123)
    calls = [json.loads(line) for line in Path(env["FAKE_CLAUDE_LOG"]).read_text().splitlines()]
    assert [c["claudecode"] for c in calls] == [False, False]  # CLAUDECODE never reaches claude
    assert all(c["cwd"] == str(tmp_path) for c in calls)


def test_unknown_resume_says_what_to_do(tmp_path: Path, env: dict[str, str]) -> None:
    outcome, _ = turn(tmp_path, env, "hi", str(uuid.uuid4()), resume=True)
    assert outcome.status == "failed" and outcome.result is not None
    assert result_error_text(outcome.result).startswith("Claude's transcript of this conversation is not on this host")


@pytest.mark.parametrize(("decision", "expected"), [
    (Decision.allow({"command": "pytest -q"}), "ran pytest -q"),
    (Decision.deny("not now"), "not now"),
])
def test_permission_round_trip(tmp_path: Path, env: dict[str, str], decision: Decision, expected: str) -> None:
    outcome, hooks = turn(tmp_path, env, "run: pytest -q", str(uuid.uuid4()), hooks=Hooks(decide=decision))
    assert [r.tool_name for r in hooks.requests] == ["Bash"]
    (result,) = [e for e in hooks.events if isinstance(e, p.ToolResult)]
    assert result.content_text == expected and result.is_error == (decision.behavior == "deny")
    assert outcome.status == "done"
    assert tool_summary("Bash", hooks.requests[0].input) == "Bash: pytest -q"


def test_withdrawn_permission_request(tmp_path: Path, env: dict[str, str]) -> None:
    _, hooks = turn(tmp_path, env, "run: ls", str(uuid.uuid4()), scenario="cancel_permission")
    assert ("cancelled", hooks.requests[0].request_id) in hooks.events


def test_interrupt_ends_a_slow_turn(tmp_path: Path, env: dict[str, str]) -> None:
    outcome, _ = turn(tmp_path, {**env, "FAKE_CLAUDE_DELAY": "60"}, "think hard", str(uuid.uuid4()),
                      hooks=Hooks(interrupt_after=0.5), scenario="slow")
    assert outcome.status == "interrupted"
    assert outcome.result is not None and outcome.result.terminal_reason == "aborted_streaming"


def test_idle_watchdog(tmp_path: Path, env: dict[str, str]) -> None:
    outcome, _ = turn(tmp_path, {**env, "FAKE_CLAUDE_DELAY": "60"}, "hang", str(uuid.uuid4()), scenario="slow",
                      idle_timeout=1.0)
    assert outcome.status == "timed_out" and outcome.reason == "no output for 1s"


@pytest.mark.parametrize("scenario", ["hang_after_result", "ignore_sigterm"])
def test_stubborn_processes_are_reaped(tmp_path: Path, env: dict[str, str], scenario: str) -> None:
    env = {**env, "FAKE_CLAUDE_SCENARIO": "hang_after_result"}
    outcome, _ = turn(tmp_path, env, "hi", str(uuid.uuid4()), scenario=scenario, reap_grace=0.5)
    assert outcome.status == "done"


def test_grandchildren_die_with_the_turn(tmp_path: Path, env: dict[str, str]) -> None:
    outcome, _ = turn(tmp_path, env, "hi", str(uuid.uuid4()), scenario="spawn_grandchild")
    assert outcome.status == "done"  # turn() asserted the whole group is gone


def test_crash_without_result(tmp_path: Path, env: dict[str, str]) -> None:
    outcome, _ = turn(tmp_path, env, "hi", str(uuid.uuid4()), scenario="crash")
    assert (outcome.status, outcome.exit_code) == ("crashed", 2)


def test_noise_big_lines_and_split_characters(tmp_path: Path, env: dict[str, str]) -> None:
    _, noisy = turn(tmp_path, env, "hi", str(uuid.uuid4()), scenario="noise")
    assert noisy.texts() == ["Echo: hi (turn 1; earlier: nothing)"]
    big, hooks = turn(tmp_path, env, "hi", str(uuid.uuid4()), scenario="big_line")
    assert big.status == "done" and len(hooks.texts()[0]) > 2_000_000
    _, split = turn(tmp_path, env, "hi", str(uuid.uuid4()), scenario="split_utf8")
    assert split.texts()[0] == "héllo 🙂 wörld"


@pytest.mark.parametrize(("scenario", "start"), [
    ("not_logged_in", "Claude is not logged in on this machine"),
    ("overloaded", "Anthropic's servers are overloaded"),
    ("max_turns", "Claude reached its limit of steps"),
])
def test_error_results_become_plain_language(tmp_path: Path, env: dict[str, str], scenario: str, start: str) -> None:
    outcome, _ = turn(tmp_path, env, "hi", str(uuid.uuid4()), scenario=scenario)
    assert outcome.status == "failed" and outcome.result is not None
    text = result_error_text(outcome.result)
    assert text.startswith(start) and "{" not in text


def test_an_unknown_model_says_how_to_pick_another(tmp_path: Path, env: dict[str, str]) -> None:
    outcome, _ = turn(tmp_path, env, "hi", str(uuid.uuid4()), model="no-such-model")
    assert outcome.status == "failed" and outcome.result is not None
    assert result_error_text(outcome.result).startswith("Claude does not know the model this session asks for. "
                                                        "/model <name> picks another")


@pytest.mark.parametrize(("status", "text", "expected"), [
    (529, "API Error: 529 Overloaded. If it persists, check your inference gateway (127.0.0.1:42947).",
     "Anthropic's servers are overloaded"),
    (None, "API Error: Repeated 529 Overloaded errors · check status.anthropic.com",
     "Anthropic's servers are overloaded"),
    (None, "Request rejected (429) · gateway 127.0.0.1:5290", "Claude's usage limit is reached"),
    (None, "You've hit your session limit · resets 5pm", "Claude's usage limit is reached"),
    (None, "API Error: 500 internal error at 10.0.0.1:4290", "Claude stopped with an error: API Error: 500"),
])
def test_api_errors_are_told_apart_by_status_not_by_digits_in_an_address(
        status: int | None, text: str, expected: str) -> None:
    """A gateway port like 42947 once turned an overload into "usage limit reached" (CI, seeded port)."""
    result = p.Result("success", True, text, "s", 0.0, 10, 1, api_error_status=status, terminal_reason="api_error")
    assert result_error_text(result).startswith(expected)
