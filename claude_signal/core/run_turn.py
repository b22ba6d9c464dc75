"""One claimed turn, start to end: the spec ``claude`` runs with, the driver, and what its outcome means
for the turn's row. The driver's hooks on the database are :mod:`claude_signal.core.turn_hooks`.

While the turn runs, a :class:`~claude_signal.core.turn_hooks.TurnLease` thread of the same process renews
its lease: if the process dies, the lease lapses and recovery takes over. Whatever happens inside, the turn
ends in a final state with one plain message.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import Any

from claude_signal.claude import driver as claude_driver
from claude_signal.claude.summaries import format_cost_line, result_error_text
from claude_signal.config import Settings
from claude_signal.core import attachments_in, delivery, exports, schedule_runs
from claude_signal.core import turn_state as turns
from claude_signal.core.turn_hooks import SHUTDOWN_REASON, DatabaseHooks, TurnLease
from claude_signal.core.unit_of_work import TaskContext
from claude_signal.host.project_paths import PathRejected, recheck_project
from claude_signal.rules import replies
from claude_signal.rules.batching import Batcher
from claude_signal.rules.states import TurnStatus

log = logging.getLogger(__name__)










def _attachments(turn: turns.ClaimedTurn, ctx: TaskContext) -> attachments_in.Prepared:
    """The prompt's pictures and files, fetched here on the session's host (raises FetchFailed)."""
    from claude_signal.db.models import Inbox

    if not turn.inbound_key:
        return attachments_in.Prepared()
    with ctx.transaction(read_only=True) as db:
        row = db.get(Inbox, turn.inbound_key)
        files = attachments_in.files_of(row.payload if row is not None else None)
    if not files:
        return attachments_in.Prepared()
    settings = ctx.settings
    return attachments_in.prepare(files, turn.project_path, settings.signal_api, settings.signal_timeout * 3)


def spec_for(turn: turns.ClaimedTurn, settings: Settings,
             prepared: attachments_in.Prepared | None = None) -> claude_driver.TurnSpec:
    from claude_signal.core.session_start import transcript_path

    recheck_project(turn.project_path, settings)  # raises PathRejected: the directory may have changed
    resume = transcript_path(turn.project_path, turn.claude_session_id).exists()
    prepared = prepared or attachments_in.Prepared()
    return claude_driver.TurnSpec(
        claude_bin=settings.claude_bin, cwd=turn.project_path,
        prompt=attachments_in.prompt_with(turn.prompt, prepared), blocks=tuple(prepared.blocks),
        session_id=turn.claude_session_id, resume=resume, permission_mode=turn.permission_mode, model=turn.model,
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


def run(turn: turns.ClaimedTurn, ctx: TaskContext) -> None:
    """Drive one turn to its end and record it. Whatever escapes (a database error, a bug), the turn ends
    FAILED with one plain message and the session stays usable."""
    with TurnLease(turn.turn_id, ctx):
        try:
            _run(turn, ctx)
        except Exception:
            log.exception("turn %d of session %s failed inside the worker", turn.turn_id, turn.session_id)
            _fail(turn, ctx)


def _run(turn: turns.ClaimedTurn, ctx: TaskContext) -> None:
    settings = ctx.settings
    hooks = DatabaseHooks(turn=turn, ctx=ctx, batcher=Batcher(quiet=turn.quiet))
    with ctx.transaction() as db:
        schedule_runs.announce(db, turn.turn_id, turn.conversation)  # marks a scheduled turn's answer
    if (refusal := _over_budget(turn, ctx)) is not None:
        _refuse(turn, ctx, refusal)
        return
    try:
        recheck_project(turn.project_path, settings)  # before anything is saved into the directory
        prepared = _attachments(turn, ctx)
        for note in prepared.notes:
            hooks.batcher.add_text(note, time.monotonic())
        outcome = claude_driver.run_turn(spec_for(turn, settings, prepared), hooks)
    except (PathRejected, attachments_in.FetchFailed) as why:  # claude never runs in a directory that fails
        outcome = claude_driver.TurnOutcome("failed", reason=str(why))
    finally:
        hooks.stop_typing()
    tail = hooks.batcher.finish()
    result, last_line = outcome_to_result(outcome, hooks.stop_reason, turn, settings.host)
    result = dataclasses.replace(result, answer=exports.recorded_answer(hooks.transcript))
    if tail and result.status == TurnStatus.DONE:  # one buzz: the cost line ends the answer's last message
        tail, last_line = tail[:-1], f"{tail[-1]}\n\n{last_line}"
    hooks._emit(tail)
    with ctx.transaction() as db:
        delivery.offer_here(db, settings)
        turns.say(db, turn, "final", last_line)
        turns.finish(db, turn, result)
        # The turn's last words are posted from here when this machine reaches Signal (a crash before the
        # post leaves them to the sweep, as a lost wake-up would).
        mine = delivery.claim_here(db, settings)
    if mine and (posted := delivery.post_here(ctx, mine, time.monotonic())):
        with ctx.transaction() as db:
            delivery.mark_posted(db, posted)
    log.info("turn %d of session %s: %s (%s)", turn.turn_id, turn.session_id, result.status, outcome.status)


def _over_budget(turn: turns.ClaimedTurn, ctx: TaskContext) -> str | None:
    if ctx.settings.daily_budget is None:
        return None
    from claude_signal.core import costs

    with ctx.transaction(read_only=True) as db:
        return costs.budget_refusal(db, turn.owner, ctx.settings)


def _refuse(turn: turns.ClaimedTurn, ctx: TaskContext, why: str) -> None:
    """End a turn that may not run (the daily budget is spent) with one message saying why."""
    with ctx.transaction() as db:
        turns.say(db, turn, "final", why)
        turns.finish(db, turn, turns.TurnResult(TurnStatus.CANCELLED, "daily budget reached", reached_claude=False))


def _fail(turn: turns.ClaimedTurn, ctx: TaskContext) -> None:
    """End a turn that broke inside the worker. If even this cannot reach the database, the lease lapses
    (its renewal stops with this function) and recovery ends the turn instead."""
    with ctx.transaction() as db:
        turns.say(db, turn, "failed", replies.turn_failed_internally(turn.prompt))
        turns.finish(db, turn, turns.TurnResult(TurnStatus.FAILED, "internal error"))
