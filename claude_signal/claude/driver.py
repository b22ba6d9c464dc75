"""One turn of a Claude session: spawn ``claude``, send the prompt, relay events, answer permission requests,
honour cancel and the watchdogs, and always reap the process group.

The caller supplies :class:`TurnHooks` (the worker implements them on the database), so this module knows
nothing of Celery, Signal or SQL and is tested against the fake ``claude`` alone.
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import pexpect

from claude_signal.claude import protocol as p
from claude_signal.claude.environment import claude_env
from claude_signal.claude.transport import Transport

Status = Literal["done", "failed", "interrupted", "timed_out", "crashed"]


def build_argv(claude_bin: str, *, session_id: str, resume: bool, permission_mode: str,
               model: str | None = None) -> list[str]:
    """First turn names the conversation (``--session-id``); later turns continue it (``--resume=``). The
    model is passed on every spawn: one process per turn, and a resume is not known to restore it."""
    argv = [claude_bin, "--output-format", "stream-json", "--verbose", "--input-format", "stream-json",
            "--permission-prompt-tool", "stdio", "--permission-mode", permission_mode]
    if model:
        argv += [f"--model={model}"]
    return [*argv, f"--resume={session_id}"] if resume else [*argv, "--session-id", session_id]


def build_env(base: Mapping[str, str], extra: Iterable[str] = ()) -> dict[str, str]:
    """Only allowlisted variables (never the bot's settings or an inherited ``CLAUDECODE``, which makes the
    CLI refuse to start), plus the names in ``extra``."""
    return claude_env(base, extra)


@dataclass(frozen=True)
class Decision:
    behavior: Literal["allow", "deny"]
    updated_input: dict[str, Any] = field(default_factory=dict)
    message: str = ""
    updated_permissions: tuple[dict[str, Any], ...] = ()

    @classmethod
    def allow(cls, updated_input: dict[str, Any], permissions: tuple[dict[str, Any], ...] = ()) -> Decision:
        return cls("allow", dict(updated_input), updated_permissions=permissions)

    @classmethod
    def deny(cls, message: str) -> Decision:
        return cls("deny", message=message)


class TurnHooks(Protocol):
    def on_spawn(self, pid: int, pgid: int) -> None: ...
    def on_event(self, event: Any) -> None: ...
    def on_permission_request(self, request: p.CanUseTool) -> None: ...
    def poll_permission(self, request_id: str) -> Decision | None: ...
    def on_permission_cancelled(self, request_id: str) -> None: ...
    def should_interrupt(self) -> bool: ...


@dataclass(frozen=True)
class TurnSpec:
    claude_bin: str
    cwd: str
    prompt: str
    session_id: str
    resume: bool
    permission_mode: str = "default"
    model: str | None = None  # /model; None: Claude Code's default
    blocks: tuple[dict[str, Any], ...] = ()  # images sent with the prompt
    env: Mapping[str, str] = field(default_factory=dict)
    env_extra: tuple[str, ...] = ()  # names passed besides the allowlist (CLAUDE_SIGNAL_CLAUDE_ENV)
    idle_timeout: float = 600.0
    turn_timeout: float = 3600.0
    max_line: int = p.DEFAULT_MAX_LINE
    poll_interval: float = 0.2
    interrupt_grace: float = 10.0
    reap_grace: float = 5.0


@dataclass
class TurnOutcome:
    status: Status
    result: p.Result | None = None
    exit_code: int | None = None
    reason: str = ""
    noise: list[str] = field(default_factory=list)


_ids = itertools.count(1)


def _request_id() -> str:
    return f"req_{next(_ids)}_{secrets.token_hex(4)}"


@dataclass
class _Turn:
    spec: TurnSpec
    hooks: TurnHooks
    transport: Transport
    pending: dict[str, p.CanUseTool] = field(default_factory=dict)
    result: p.Result | None = None
    noise: list[str] = field(default_factory=list)
    stop: tuple[Status, str] | None = None
    stop_sent_at: float | None = None

    def handle(self, event: p.Event) -> None:
        if isinstance(event, p.Result):
            self.result = event
        elif isinstance(event, p.CanUseTool):
            self.pending[event.request_id] = event
            self.hooks.on_permission_request(event)
        elif isinstance(event, p.ControlCancel):
            if self.pending.pop(event.request_id, None) is not None:
                self.hooks.on_permission_cancelled(event.request_id)
        elif isinstance(event, p.ControlRequest):
            self.transport.write_line(p.error_response(event.request_id,
                                                       f"Unsupported control request subtype: {event.subtype}"))
        elif isinstance(event, p.Noise | p.Oversized):
            self.noise = [*self.noise[-19:], event.line if isinstance(event, p.Noise) else f"<{event.size} bytes>"]
        else:
            self.hooks.on_event(event)

    def answer_permissions(self) -> bool:
        """Send every decision that has come in; True if one was sent (Claude has work again)."""
        answered = False
        for request_id, request in list(self.pending.items()):
            decision = self.hooks.poll_permission(request_id)
            if decision is None:
                continue
            del self.pending[request_id]
            answered = True
            if decision.behavior == "allow":
                self.transport.write_line(p.allow_response(request_id, decision.updated_input or request.input,
                                                           list(decision.updated_permissions)))
            else:
                self.transport.write_line(p.deny_response(request_id, decision.message))
        return answered

    def check_watchdogs(self, now: float, started: float, last_output: float) -> None:
        if self.stop is not None:
            return
        if self.hooks.should_interrupt():
            self.stop = ("interrupted", "interrupted on request")
        elif now - started > self.spec.turn_timeout:
            self.stop = ("timed_out", f"the turn ran longer than {self.spec.turn_timeout:.0f}s")
        elif not self.pending and now - last_output > self.spec.idle_timeout:
            self.stop = ("timed_out", f"no output for {self.spec.idle_timeout:.0f}s")
        if self.stop is not None:
            self.transport.write_line(p.control_request(_request_id(), "interrupt"))
            self.stop_sent_at = now


def run_turn(spec: TurnSpec, hooks: TurnHooks) -> TurnOutcome:
    """Run one prompt to its ``result`` (or to an interrupt, a watchdog, a crash) and reap the process."""
    argv = build_argv(spec.claude_bin, session_id=spec.session_id, resume=spec.resume,
                      permission_mode=spec.permission_mode, model=spec.model)
    transport = Transport(argv, cwd=spec.cwd, env=build_env(spec.env, spec.env_extra))
    try:
        transport.start()
    except (OSError, pexpect.ExceptionPexpect) as error:
        return TurnOutcome("crashed", reason=f"could not start {spec.claude_bin}: {error}")
    turn = _Turn(spec, hooks, transport)
    try:
        hooks.on_spawn(transport.pid, transport.pgid)
        transport.write_line(p.control_request(_request_id(), "initialize", hooks=None))
        transport.write_line(p.user_message(spec.prompt, list(spec.blocks)))
        _pump(turn)
    finally:
        exit_code = transport.reap(grace=spec.reap_grace)
    return _outcome(turn, exit_code)


def _pump(turn: _Turn) -> None:
    framer = p.LineFramer(turn.spec.max_line)
    started = last_output = time.monotonic()
    while turn.result is None:
        chunk = turn.transport.read_chunk(turn.spec.poll_interval)
        now = time.monotonic()
        if chunk == b"":
            for line in framer.close():
                for event in p.parse_line(line):
                    turn.handle(event)
            return
        if chunk:
            last_output = now
            for line in framer.feed(chunk):
                for event in [line] if isinstance(line, p.Oversized) else p.parse_line(line):
                    turn.handle(event)
        if turn.answer_permissions():
            last_output = now  # the idle watchdog counts from the answer, not from before the question
        turn.check_watchdogs(now, started, last_output)
        if turn.stop_sent_at is not None and now - turn.stop_sent_at > turn.spec.interrupt_grace:
            return  # it ignored the interrupt: reaping ends it


def _outcome(turn: _Turn, exit_code: int | None) -> TurnOutcome:
    result = turn.result
    if turn.stop is not None:
        status, reason = turn.stop
        return TurnOutcome(status, result, exit_code, reason, turn.noise)
    if result is None:
        return TurnOutcome("crashed", None, exit_code, f"claude exited ({exit_code}) without a result", turn.noise)
    if result.is_error:
        return TurnOutcome("failed", result, exit_code, result.subtype, turn.noise)
    return TurnOutcome("done", result, exit_code, "", turn.noise)
