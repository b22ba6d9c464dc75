"""The bridge between a running ``claude`` and the database: :class:`DatabaseHooks` implements the driver's
hooks with rows (approvals, cancel flags, outbox messages); :class:`TurnLease` keeps the turn's lease.

Reads of the database are rate-limited (``poll_interval``), so a turn costs a query a second, not one per
output line; writes happen only when there is something to say.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from claude_signal.claude import driver as claude_driver
from claude_signal.claude import protocol as p
from claude_signal.claude.summaries import tool_summary
from claude_signal.config import Settings
from claude_signal.core import turn_state as turns
from claude_signal.core.unit_of_work import TaskContext
from claude_signal.core.wakeups import Wakeup, Wakeups
from claude_signal.host.process_groups import start_ticks
from claude_signal.rules import asks, attachments_out, previews, replies
from claude_signal.rules.batching import Batcher
from claude_signal.rules.states import ApprovalStatus
from claude_signal.wire.queues import SIGNAL_QUEUE, SIGNAL_TYPING

log = logging.getLogger(__name__)

TYPING_REFRESH = 10.0
EXPIRED_MESSAGE = "The user did not answer in time, so this was denied."
SHUTDOWN_REASON = "worker stopping"
MAX_PICTURES_PER_TURN = 10  # a tool that returns pictures in a loop must not flood the phone

# Set when this worker begins a clean shutdown: its turns interrupt themselves and end with a message, and
# their sessions stay open (a clean stop is not a crash).
STOPPING = threading.Event()


class TurnLease:
    """Renews a running turn's lease from a thread of the process that runs it, until the turn ends."""

    def __init__(self, turn_id: int, ctx: TaskContext) -> None:
        self.turn_id = turn_id
        self.ctx = ctx
        self.settings = ctx.settings
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
                with self.ctx.transaction() as db:
                    if not turns.renew_lease(db, self.turn_id, self.settings.lease_ttl):
                        return  # the turn ended, or recovery took it: the runner finds out on its next poll
            except Exception as error:  # noqa: BLE001 - a missed renewal is retried; the lease has slack
                log.warning("could not renew the lease of turn %d: %s", self.turn_id, error)


@dataclass
class DatabaseHooks:
    """Driver hooks backed by the database: each change is its own transaction, whose wake-ups (replies to
    send) leave when it commits."""

    turn: turns.ClaimedTurn
    ctx: TaskContext
    poll_interval: float = 1.0
    batcher: Batcher = field(default_factory=Batcher)
    seq: int = 0
    approvals: dict[str, str] = field(default_factory=dict)  # claude request id -> approval id
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)  # claude request id -> tool name
    decided: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # approval id -> decision
    tool_lines: dict[str, str] = field(default_factory=dict)  # tool use id -> its line in the stream
    withheld: dict[str, tuple[str, bool]] = field(default_factory=dict)  # request id -> (line, withdrawn)
    transcript: list[str] = field(default_factory=list)  # what Claude said and did, kept with the turn
    pictures: int = 0  # images from tools forwarded so far
    _last_poll: float = 0.0
    _stop: str | None = None
    _approve_all: bool = False
    _typing_at: float = 0.0

    @property
    def settings(self) -> Settings:
        return self.ctx.settings

    # -- driver hooks -------------------------------------------------------------------------------

    def on_spawn(self, pid: int, pgid: int) -> None:
        with self.ctx.transaction() as db:
            turns.record_process(db, self.turn.turn_id, pid, pgid, start_ticks(pid))
        self._typing(force=True)

    def on_event(self, event: Any) -> None:
        now = time.monotonic()
        if isinstance(event, p.AssistantText):
            if event.text.strip():
                self.transcript.append(event.text.strip())
            self._emit(self.batcher.add_text(event.text, now))
        elif isinstance(event, p.ToolUse):
            if event.name in asks.INTERACTIVE_TOOLS:
                return  # its question or plan is shown readably when Claude asks
            self.tool_lines[event.id] = tool_summary(event.name, event.input)
            self.transcript.append(f"› {self.tool_lines[event.id]}")
            self._emit(self.batcher.add_tool(self.tool_lines[event.id], now))
        elif isinstance(event, p.ToolResult) and event.images:
            self._forward_pictures(event)
        else:
            self._emit(self.batcher.due(now))
        self._typing()

    def _forward_pictures(self, result: p.ToolResult) -> None:
        """Pictures a tool returned go to the phone as attachments, captioned with what came before them
        (so the answer keeps its order) or with the tool that made them."""
        room = MAX_PICTURES_PER_TURN - self.pictures
        numbered = enumerate(result.images[:max(room, 0)], self.pictures + 1)
        files = [f for f in (attachments_out.picture(i.media_type, i.data, n) for n, i in numbered) if f]
        if not files:
            return
        self.pictures += len(files)
        before = self.batcher.flush()
        caption = before[0] if before else f"Picture from {self.tool_lines.get(result.tool_use_id, 'a tool')}"
        with self.ctx.transaction() as db:
            self.seq += 1
            turns.say(db, self.turn, f"out:{self.seq}", caption,
                      attachments=attachments_out.pack(files))

    def on_permission_request(self, request: Any) -> None:
        self._refresh(force=True)
        tool_input = dict(request.input or {})
        self.inputs[request.request_id] = tool_input
        self.kinds[request.request_id] = request.tool_name
        interactive = request.tool_name == asks.QUESTION_TOOL and asks.questions(tool_input)
        if not interactive and (self._approve_all or self.turn.permission_mode == "bypassPermissions"):
            return
        line = self.tool_lines.get(request.tool_use_id or "")
        if line:  # shown again once decided (marked if it did not run), unless it already went out
            self.withheld[request.request_id] = (line, self.batcher.withdraw(line))
        self._emit(self.batcher.flush())  # the user needs the context before the question
        with self.ctx.transaction() as db:
            approval_id = turns.open_approval(db, self.turn, request.request_id, request.tool_name,
                                              self._summary(request.tool_name, tool_input), tool_input,
                                              self._message(request.tool_name, tool_input))
        self.approvals[request.request_id] = approval_id

    @staticmethod
    def _summary(tool: str, tool_input: dict[str, Any]) -> str:
        if tool in asks.INTERACTIVE_TOOLS:
            return asks.summary(tool, tool_input)
        return tool_summary(tool, tool_input)

    def _message(self, tool: str, tool_input: dict[str, Any]) -> Callable[[str], str]:
        """How the request is worded on the phone, given its approval id."""
        if tool == asks.QUESTION_TOOL:
            asked = asks.questions(tool_input)
            return lambda aid: asks.render_question(aid, asked[0], 0, len(asked))
        if tool == asks.PLAN_TOOL:
            return lambda aid: asks.render_plan(aid, tool_input)
        body = previews.request_text(tool, tool_summary(tool, tool_input), tool_input)
        return lambda aid: replies.approval_request(aid, body)

    def poll_permission(self, request_id: str) -> Any:
        decision = self._poll_permission(request_id)
        if decision is not None:
            self._show_decided(request_id, decision)
        return decision

    def _show_decided(self, request_id: str, decision: Any) -> None:
        """The withheld tool line comes back: as it was when the tool runs, marked when it does not."""
        line, withdrawn = self.withheld.pop(request_id, ("", False))
        if not line or (decision.behavior == "allow" and not withdrawn):
            return
        if decision.behavior != "allow":
            expired = decision.message.startswith(EXPIRED_MESSAGE)
            marked = f"✗ {line} ({'not run: no answer in time' if expired else 'denied'})"
            self.transcript = [f"› {marked}" if t == f"› {line}" else t for t in self.transcript]
            line = marked
        self._emit(self.batcher.add_tool(line, time.monotonic()))

    def _poll_permission(self, request_id: str) -> Any:
        original = self.inputs.get(request_id, {})
        tool = self.kinds.get(request_id, "")
        approval_id = self.approvals.get(request_id)
        if approval_id is None:
            if self._approve_all or self.turn.permission_mode == "bypassPermissions":
                return claude_driver.Decision.allow(original)
            return None
        if approval_id not in self.decided and self._due():
            self._poll_decisions()
        if self._approve_all and tool not in asks.INTERACTIVE_TOOLS:
            return claude_driver.Decision.allow(original)
        decided = self.decided.pop(approval_id, None)
        if decided is None:
            return None
        status, reason = decided
        if tool == asks.QUESTION_TOOL:
            return _question_decision(status, reason, original)
        if tool == asks.PLAN_TOOL:
            return _plan_decision(status, reason, original)
        if status == ApprovalStatus.APPROVED:
            return claude_driver.Decision.allow(original)
        if status == ApprovalStatus.EXPIRED:
            return claude_driver.Decision.deny(EXPIRED_MESSAGE)
        return claude_driver.Decision.deny(f"The user denied this{': ' + reason if reason else '.'}")

    def _poll_decisions(self) -> None:
        """One read for every open question of this turn, so several pending approvals are each answered
        as soon as the person answers it, independently of the others."""
        open_ids = [a for a in self.approvals.values() if a not in self.decided]
        with self.ctx.transaction() as db:
            turns.expire_overdue_approvals(db, self.turn, self.settings.approval_timeout)
            self.decided.update(turns.decisions(db, open_ids))
        self._refresh(force=True)

    def on_permission_cancelled(self, request_id: str) -> None:
        approval_id = self.approvals.pop(request_id, None)
        if approval_id:
            with self.ctx.transaction() as db:
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
        with self.ctx.transaction() as db:
            sig = turns.signals(db, self.turn.turn_id, self.turn.session_id, self.turn.session_version)
        self._stop = self._stop if self._stop == SHUTDOWN_REASON else sig.stop
        self._approve_all = sig.approve_all

    def _emit(self, texts: list[str]) -> None:
        if not texts:
            return
        with self.ctx.transaction() as db:
            for text in texts:
                self.seq += 1
                turns.say(db, self.turn, f"out:{self.seq}", text)

    def _typing(self, force: bool = False) -> None:
        now = time.monotonic()
        if not self.settings.account or (not force and now - self._typing_at < TYPING_REFRESH):
            return
        self._typing_at = now
        _publish_typing(self.ctx, self.turn.conversation, True, self.turn.turn_id)

    def stop_typing(self) -> None:
        if self.settings.account:
            _publish_typing(self.ctx, self.turn.conversation, False, self.turn.turn_id)



def _publish_typing(ctx: TaskContext, conversation: str, on: bool, turn_id: int) -> None:
    """The turn may run on a machine that cannot reach signal-cli-rest-api: the indicator goes by queue."""
    ctx.publish(Wakeups([Wakeup(SIGNAL_TYPING, (conversation, on, turn_id), queue=SIGNAL_QUEUE)]))


def _question_decision(status: str, reason: str | None, original: dict[str, Any]) -> claude_driver.Decision:
    """Answers go back as an allow whose input carries them keyed by question text; a skipped or unanswered
    question is a deny whose message says so (Claude carries on without it)."""
    answers = asks.answers_so_far(reason) if status == ApprovalStatus.APPROVED else {}
    if answers:
        return claude_driver.Decision.allow(asks.answered_input(original, answers))
    if status == ApprovalStatus.EXPIRED:
        return claude_driver.Decision.deny("The user did not answer in time; go on without the answer.")
    why = f": {reason}" if status == ApprovalStatus.DENIED and reason else "."
    return claude_driver.Decision.deny(f"The user chose not to answer{why}")


def _plan_decision(status: str, reason: str | None, original: dict[str, Any]) -> claude_driver.Decision:
    if status == ApprovalStatus.APPROVED:
        edits = (asks.ACCEPT_EDITS,) if reason == asks.PLAN_APPROVED_WITH_EDITS else ()
        return claude_driver.Decision.allow(original, edits)
    if status == ApprovalStatus.EXPIRED:
        return claude_driver.Decision.deny("The user did not answer in time; keep planning.")
    return claude_driver.Decision.deny(f"The user wants changes to the plan: {reason}" if reason
                                       else asks.KEEP_PLANNING)
