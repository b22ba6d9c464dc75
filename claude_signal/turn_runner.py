"""The bridge between a running ``claude`` and the database: :class:`DatabaseHooks` implements the driver's
hooks with rows (approvals, cancel flags, outbox messages), and :func:`run` executes one claimed turn.

Reads of the database are rate-limited (``poll_interval``), so a turn costs a query a second, not one per
output line; writes happen only when there is something to say. While the turn runs, a :class:`TurnLease`
thread of the same process renews its lease: if the process dies, the lease lapses and recovery takes over.
Whatever happens inside, the turn ends in a final state with one plain message.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from claude_signal import replies, runtime, schedule_runs, turns
from claude_signal.claude import driver as claude_driver
from claude_signal.claude import protocol as p
from claude_signal.claude.summaries import format_cost_line, result_error_text, tool_summary
from claude_signal.config import Settings
from claude_signal.db.models import ApprovalStatus, TurnStatus
from claude_signal.paths import PathRejected, recheck_project
from claude_signal.procs import start_ticks
from claude_signal.streaming import Batcher
from claude_signal.wakeups import SIGNAL_QUEUE, SIGNAL_TYPING, Wakeup, Wakeups

log = logging.getLogger(__name__)

TYPING_REFRESH = 10.0
SHUTDOWN_REASON = "worker stopping"

# Set when this worker begins a clean shutdown: its turns interrupt themselves and end with a message, and
# their sessions stay open (a clean stop is not a crash).
STOPPING = threading.Event()


class TurnLease:
    """Renews a running turn's lease from a thread of the process that runs it, until the turn ends."""

    def __init__(self, turn_id: int, settings: Settings) -> None:
        self.turn_id = turn_id
        self.settings = settings
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"turn-{turn_id}-lease", daemon=True)

    def __enter__(self) -> TurnLease:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._done.wait(self.settings.heartbeat_interval):
            try:
                with runtime.transaction() as db:
                    if not turns.renew_lease(db, self.turn_id, self.settings.lease_ttl):
                        return  # the turn ended, or recovery took it: the runner finds out on its next poll
            except Exception as error:  # noqa: BLE001 - a missed renewal is retried; the lease has slack
                log.warning("could not renew the lease of turn %d: %s", self.turn_id, error)


@dataclass
class DatabaseHooks:
    """Driver hooks backed by the database; collects the wake-ups to publish as it goes."""

    turn: turns.ClaimedTurn
    settings: Settings
    poll_interval: float = 1.0
    batcher: Batcher = field(default_factory=Batcher)
    wakeups: Wakeups = field(default_factory=Wakeups)
    seq: int = 0
    approvals: dict[str, str] = field(default_factory=dict)  # claude request id -> approval id
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    decided: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # approval id -> decision
    _last_poll: float = 0.0
    _stop: str | None = None
    _approve_all: bool = False
    _typing_at: float = 0.0

    # -- driver hooks -------------------------------------------------------------------------------

    def on_spawn(self, pid: int, pgid: int) -> None:
        with runtime.transaction() as db:
            turns.record_process(db, self.turn.turn_id, pid, pgid, start_ticks(pid))
        self._typing(force=True)

    def on_event(self, event: Any) -> None:
        now = time.monotonic()
        if isinstance(event, p.AssistantText):
            self._emit(self.batcher.add_text(event.text, now))
        elif isinstance(event, p.ToolUse):
            self._emit(self.batcher.add_tool(tool_summary(event.name, event.input), now))
        else:
            self._emit(self.batcher.due(now))
        self._typing()

    def on_permission_request(self, request: Any) -> None:
        self._refresh(force=True)
        self.inputs[request.request_id] = dict(request.input or {})
        if self._approve_all or self.turn.permission_mode == "bypassPermissions":
            return
        self._emit(self.batcher.flush())  # the user needs the context before the question
        with runtime.transaction() as db:
            approval_id = turns.open_approval(db, self.wakeups, self.turn, request.request_id, request.tool_name,
                                              tool_summary(request.tool_name, request.input or {}),
                                              dict(request.input or {}))
        self.approvals[request.request_id] = approval_id
        self._publish()

    def poll_permission(self, request_id: str) -> Any:
        original = self.inputs.get(request_id, {})
        if self._approve_all or self.turn.permission_mode == "bypassPermissions":
            return claude_driver.Decision.allow(original)
        approval_id = self.approvals.get(request_id)
        if approval_id is None:
            return None
        if approval_id not in self.decided and self._due():
            self._poll_decisions()
        if self._approve_all:
            return claude_driver.Decision.allow(original)
        decided = self.decided.pop(approval_id, None)
        if decided is None:
            return None
        status, reason = decided
        if status == ApprovalStatus.APPROVED:
            return claude_driver.Decision.allow(original)
        if status == ApprovalStatus.EXPIRED:
            return claude_driver.Decision.deny("The user did not answer in time, so this was denied.")
        return claude_driver.Decision.deny(f"The user denied this{': ' + reason if reason else '.'}")

    def _poll_decisions(self) -> None:
        """One read for every open question of this turn, so several pending approvals are each answered
        as soon as the person answers it, independently of the others."""
        open_ids = [a for a in self.approvals.values() if a not in self.decided]
        with runtime.transaction() as db:
            turns.expire_overdue_approvals(db, self.wakeups, self.turn, self.settings.approval_timeout)
            self.decided.update(turns.decisions(db, open_ids))
        self._publish()
        self._refresh(force=True)

    def on_permission_cancelled(self, request_id: str) -> None:
        approval_id = self.approvals.pop(request_id, None)
        if approval_id:
            with runtime.transaction() as db:
                turns.settle_approval(db, approval_id, ApprovalStatus.CANCELLED, "withdrawn by Claude", "claude")

    def should_interrupt(self) -> bool:
        if STOPPING.is_set() and self._stop is None:
            self._stop = SHUTDOWN_REASON
        self._refresh()
        self._emit(self.batcher.due(time.monotonic()))
        self._typing()
        return self._stop is not None

    # -- helpers ------------------------------------------------------------------------------------

    @property
    def stop_reason(self) -> str | None:
        return self._stop

    def _due(self) -> bool:
        return time.monotonic() - self._last_poll >= self.poll_interval

    def _refresh(self, force: bool = False) -> None:
        if not force and not self._due():
            return
        self._last_poll = time.monotonic()
        with runtime.transaction() as db:
            sig = turns.signals(db, self.turn.turn_id, self.turn.session_id, self.turn.session_version)
        self._stop = self._stop if self._stop == SHUTDOWN_REASON else sig.stop
        self._approve_all = sig.approve_all

    def _emit(self, texts: list[str]) -> None:
        if not texts:
            return
        with runtime.transaction() as db:
            for text in texts:
                self.seq += 1
                turns.say(db, self.wakeups, self.turn, f"out:{self.seq}", text)
        self._publish()

    def _publish(self) -> None:
        from claude_signal.celery import app

        runtime.publish(app, self.wakeups)
        self.wakeups = Wakeups()

    def _typing(self, force: bool = False) -> None:
        now = time.monotonic()
        if not self.settings.account or (not force and now - self._typing_at < TYPING_REFRESH):
            return
        self._typing_at = now
        _publish_typing(self.turn.conversation, True)

    def stop_typing(self) -> None:
        if self.settings.account:
            _publish_typing(self.turn.conversation, False)


def _publish_typing(conversation: str, on: bool) -> None:
    """The turn may run on a machine that cannot reach signal-cli-rest-api: the indicator goes by queue."""
    from claude_signal.celery import app

    runtime.publish(app, Wakeups([Wakeup(SIGNAL_TYPING, (conversation, on), queue=SIGNAL_QUEUE)]))


def spec_for(turn: turns.ClaimedTurn, settings: Settings) -> claude_driver.TurnSpec:
    from claude_signal.hostops import transcript_path

    recheck_project(turn.project_path, settings)  # raises PathRejected: the directory may have changed
    resume = transcript_path(turn.project_path, turn.claude_session_id).exists()
    return claude_driver.TurnSpec(
        claude_bin=settings.claude_bin, cwd=turn.project_path, prompt=turn.prompt,
        session_id=turn.claude_session_id, resume=resume, permission_mode=turn.permission_mode,
        env=dict(os.environ), idle_timeout=settings.idle_timeout, turn_timeout=settings.turn_timeout,
        env_extra=tuple(settings.claude_env),
    )


def outcome_to_result(outcome: Any, stop_reason: str | None, turn: turns.ClaimedTurn | None = None,
                      host: str = "") -> tuple[turns.TurnResult, str]:
    """The turn's final status and the last line the user sees."""
    result = outcome.result
    cost = getattr(result, "total_cost_usd", None)
    duration = getattr(result, "duration_ms", None)
    if outcome.status == "interrupted" or stop_reason:
        if stop_reason == "session no longer active":
            return turns.TurnResult(TurnStatus.CANCELLED, "session stopped", cost, duration), "Stopped."
        if stop_reason == SHUTDOWN_REASON:
            return (turns.TurnResult(TurnStatus.INTERRUPTED, "the worker stopped", cost, duration),
                    replies.turn_stopped_by_shutdown(turn.prompt if turn else "", host))
        return turns.TurnResult(TurnStatus.INTERRUPTED, "interrupted", cost, duration), "Interrupted."
    if outcome.status == "timed_out":
        return turns.TurnResult(TurnStatus.FAILED, outcome.reason, cost, duration), replies.turn_timed_out(
            outcome.reason)
    if outcome.status == "failed" and result is None:
        return turns.TurnResult(TurnStatus.FAILED, outcome.reason, cost, duration), outcome.reason
    if result is not None and result.is_error:
        text = result_error_text(result)
        return turns.TurnResult(TurnStatus.FAILED, text, cost, duration), text
    if result is None:
        text = replies.claude_crashed(outcome.exit_code)
        return turns.TurnResult(TurnStatus.FAILED, text, cost, duration), text
    return (turns.TurnResult(TurnStatus.DONE, (result.result_text or "")[:500], cost, duration),
            format_cost_line(duration or 0, cost or 0.0))


def run(turn: turns.ClaimedTurn, settings: Settings) -> Wakeups:
    """Drive one turn to its end and record it; returns the wake-ups still to publish. Whatever escapes
    (a database error, a bug), the turn ends FAILED with one plain message and the session stays usable."""
    with TurnLease(turn.turn_id, settings):
        try:
            return _run(turn, settings)
        except Exception:
            log.exception("turn %d of session %s failed inside the worker", turn.turn_id, turn.session_id)
            return _fail(turn)


def _run(turn: turns.ClaimedTurn, settings: Settings) -> Wakeups:
    hooks = DatabaseHooks(turn=turn, settings=settings)
    schedule_runs.announce(turn.turn_id, turn.conversation, hooks.wakeups)  # marks a scheduled turn's answer
    try:
        outcome = claude_driver.run_turn(spec_for(turn, settings), hooks)
    except PathRejected as why:  # claude never runs in a directory that no longer passes
        outcome = claude_driver.TurnOutcome("failed", reason=str(why))
    finally:
        hooks.stop_typing()
    hooks._emit(hooks.batcher.flush())
    result, last_line = outcome_to_result(outcome, hooks.stop_reason, turn, settings.host)
    with runtime.transaction() as db:
        turns.say(db, hooks.wakeups, turn, "final", last_line)
        wakeups = turns.finish(db, turn, result)
    wakeups.extend(hooks.wakeups)
    log.info("turn %d of session %s: %s (%s)", turn.turn_id, turn.session_id, result.status, outcome.status)
    return wakeups


def _fail(turn: turns.ClaimedTurn) -> Wakeups:
    """End a turn that broke inside the worker. If even this cannot reach the database, the lease lapses
    (its renewal stops with this function) and recovery ends the turn instead."""
    wakeups = Wakeups()
    with runtime.transaction() as db:
        turns.say(db, wakeups, turn, "failed", replies.turn_failed_internally(turn.prompt))
        wakeups.extend(turns.finish(db, turn, turns.TurnResult(TurnStatus.FAILED, "internal error")))
    return wakeups
