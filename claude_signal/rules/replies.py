"""Every sentence the bot says, in one place. Pure functions of plain values.

Each error reply says what to do next; nothing here ever includes a stack trace or raw JSON.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from claude_signal.rules.states import SessionStatus

HELP = """claude-signal commands:
/session start <path>  open a Claude Code session (or <host>:<path>)
/session list          your sessions (/session list all includes ended ones)
/session resume [id]   continue a paused session and make it current
/session stop [id]     end a session (the current one without an id)
/status                the current session and its work
/hosts                 machines with a running worker
/cancel                interrupt the running turn
/approve [id|all]      allow what Claude asked for (all: for the rest of the session)
/approve none          ask again before each tool (undoes /approve all)
/deny [id] [reason]    refuse it
/mode <default|acceptEdits|plan|bypassPermissions>
/model [name]          the session's model (sonnet, opus, haiku, an id; default)
/quiet [on|off]        fold the tools Claude runs into its answer
/get <path>            a file of the project, as an attachment
/export                the conversation as a Markdown file
/cost                  what this session, today and this month cost
/every <when> <prompt> run a prompt on a schedule (30m, 2h, daily 09:00, weekdays 09:00, "cron")
/at <time> <prompt>    run one once (18:30, in 10m, tomorrow 08:00)
/schedules             list them; /unschedule, /pause, /resume <schedule id>
Anything else is a message to Claude in the current session."""


@dataclass(frozen=True)
class SessionView:
    """What a reply needs to know about a session."""

    id: str
    status: str
    host: str
    project_path: str
    turn_count: int = 0
    cost_usd: float = 0.0
    current: bool = False
    reason: str | None = None


def invalid_transition(session_id: str, current: SessionStatus, target: SessionStatus) -> str:
    if current is SessionStatus.TERMINATED:
        return f"Session {session_id} is terminated; start a new one with /session start <path>."
    if target is SessionStatus.ACTIVE and current is SessionStatus.CREATED:
        return f"Session {session_id} is still starting; wait for its confirmation, then send a message."
    if target is SessionStatus.PAUSED:
        return f"Session {session_id} is {current.lower()}, so there is nothing to pause."
    return f"Session {session_id} is {current.lower()}; /session list shows what you can do with it."


def started(view: SessionView) -> str:
    return (f"Started session {view.id} on {view.host} in {view.project_path}. "
            "Send a message to talk to Claude; /session stop ends it.")


def resumed(view: SessionView, *, transcript_missing: bool = False) -> str:
    turns = "no turns yet" if view.turn_count == 0 else f"{plural(view.turn_count, 'turn')} so far"
    head = f"Resumed session {view.id} on {view.host} in {view.project_path} ({turns})."
    if transcript_missing:
        return (head + " Claude's transcript of it is missing on this host, so Claude will not remember "
                "the earlier turns; your next message starts over in the same directory.")
    return head + " Claude continues the same conversation; send a message."


def resume_failed(session_id: str, why: str) -> str:
    return f"Could not resume session {session_id}: {why}"


def already_active(view: SessionView) -> str:
    return f"Session {view.id} is already active on {view.host} in {view.project_path}; it is now current."


def stopped(view: SessionView) -> str:
    return f"Stopped session {view.id} ({view.project_path}). /session start <path> opens a new one."


def already_stopped(session_id: str) -> str:
    return f"Session {session_id} was already stopped. /session start <path> opens a new one."


def start_failed(path: str, why: str) -> str:
    if why.startswith(path + " "):  # the reason names the path again: once is enough on a phone
        why = "it" + why[len(path):]
    return f"Could not start a session in {path}: {why}"


def prompt_after_failed_switch() -> str:
    return ("Not sent to Claude: the /session start or /session resume before it failed, so it would have gone "
            "to another session. Send it again once the session you want is current (/status shows which).")


def prompt_predecessor_lost() -> str:
    return ("Not sent to Claude: the message you sent just before it never reached me, so I can't tell which "
            "session it was meant for. Check /status, then send both again.")


def directory_taken(holder_id: str, path: str) -> str:
    return (f"Session {holder_id} already holds {path} on this host. Send messages there, "
            f"or /session stop {holder_id} first.")


def no_session_matches(ref: str) -> str:
    return f"No session matches '{ref}'. /session list shows your sessions."


def ambiguous(ref: str, ids: Sequence[str]) -> str:
    return f"'{ref}' matches several sessions ({', '.join(ids)}); type more of the id."


def no_current_session() -> str:
    return "There is no current session here. Start one with /session start <path> (see /session help)."


def unknown_command(word: str, text: str = "") -> str:
    from claude_signal.rules.commands import command_names
    from claude_signal.rules.suggest import command

    guess = command(text or word, command_names())
    if guess:
        return f"I don't know {word}. Did you mean {guess}? /help lists the commands."
    return f"I don't know {word}. /session help lists the commands; plain text goes to Claude."


def unknown_host(host: str, known: Iterable[str]) -> str:
    names = ", ".join(sorted(known)) or "none yet"
    return f"No worker has ever run on host '{host}' (known hosts: {names}). Start a worker there first."


def _last_seen(last_seen: datetime | None) -> str:
    return f" (last seen {last_seen:%Y-%m-%d %H:%M} UTC)" if last_seen else ""


def host_offline(host: str, last_seen: datetime | None) -> str:
    return f"Host '{host}' is offline{_last_seen(last_seen)}. Start its worker, then try again."


def start_host_offline(host: str, path: str, last_seen: datetime | None) -> str:
    """A start the host never took: it went away after the command was accepted."""
    return (f"Host '{host}' is offline{_last_seen(last_seen)}; the session in {path} was not started. "
            "Start its worker, then send /session start again.")


def resume_host_offline(host: str, session_id: str, last_seen: datetime | None) -> str:
    return (f"Host '{host}' is offline{_last_seen(last_seen)}; session {session_id} was not resumed. "
            f"Start its worker, then send /session resume {session_id} again.")


def session_list(views: Sequence[SessionView], *, include_ended: bool) -> str:
    if not views:
        tail = "" if include_ended else " (/session list all includes ended ones)"
        return f"No sessions{tail}. Start one with /session start <path>."
    lines = ["Sessions:"]
    for v in views:
        mark = "▶ " if v.current else "  "
        lines.append(f"{mark}{v.id} {v.status.lower():<10} {v.host}:{v.project_path}  {plural(v.turn_count, 'turn')}")
    return "\n".join(lines)


def status(view: SessionView | None, *, running: str | None, queued: int, pending_approvals: int,
           mode: str = "default", approve_all: bool = False, slot_wait: str | None = None,
           next_scheduled: str | None = None, model: str | None = None, quiet: bool = False) -> str:
    if view is None:
        return no_current_session()
    model = model or "Claude Code's default"
    lines = [f"Session {view.id}: {view.status.lower()} on {view.host} in {view.project_path}",
             f"{plural(view.turn_count, 'turn')}, ${view.cost_usd:.4f} so far",
             f"Permission mode: {mode}" + (" · every tool approved (/approve none undoes it)" if approve_all else ""),
             f"Model: {model} · tool lines: "
             + ("folded into one line (/quiet off shows each)" if quiet else "each shown (/quiet on folds them)")]
    if running:
        lines.append(f"Running: {running}")
    if queued:
        lines.append(f"Queued: {plural(queued, 'message')}")
    if slot_wait:
        lines.append(slot_wait)
    if pending_approvals:
        lines.append(f"Waiting for you: {plural(pending_approvals, 'request')}; /approve or /deny")
    if next_scheduled:
        lines.append(next_scheduled)
    if view.status == SessionStatus.PAUSED:
        lines.append(f"Paused: your next message, or /session resume {view.id}, continues it.")
    return "\n".join(lines)


@dataclass(frozen=True)
class HostView:
    host: str
    online: bool
    workers: int
    active_sessions: int
    last_seen: datetime | None
    slots: int = 0
    running: int = 0


def hosts(views: Sequence[HostView]) -> str:
    if not views:
        return "No worker has registered yet. Start one with `claude-signal worker`."
    lines = ["Hosts:"]
    for v in views:
        state = "online" if v.online else f"offline since {v.last_seen:%Y-%m-%d %H:%M} UTC"
        line = f"{v.host}: {state}, {plural(v.workers, 'worker')}, {plural(v.active_sessions, 'active session')}"
        if v.online:
            line += f", {v.running} of {v.slots} turn slots busy"
        lines.append(line)
    return "\n".join(lines)


def recovered(items: Sequence[tuple[str, str, str | None, int]]) -> str:
    """One message for every session a crash interrupted: (session id, path, interrupted prompt or None, how
    many queued messages behind it were dropped)."""
    head = "The worker running these sessions stopped, so they are paused:"
    lines = [head]
    for session_id, path, prompt, dropped in items:
        what = f' — interrupted: "{clip(prompt, 60)}"' if prompt else ""
        if dropped:
            what += f"; {plural(dropped, 'message')} queued behind it not run (send again what still matters)"
        lines.append(f"{session_id} ({path}){what}")
    lines.append("Your next message there resumes it" + (" (or /session resume <id>)." if len(items) > 1
                                                          else f" (or /session resume {items[0][0]})."))
    return "\n".join(lines)


def not_accepting_prompts(session_id: str, status: SessionStatus) -> str:
    if status is SessionStatus.PAUSED:
        return (f"Session {session_id} is paused. /session resume {session_id} continues it; "
                "then send your message again.")
    if status is SessionStatus.CREATED:
        return f"Session {session_id} is still starting; send your message again once it is confirmed."
    return f"Session {session_id} has ended. Start a new one with /session start <path>."


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def queued(ahead: int) -> str:
    return f"Queued: Claude will get this after {plural(ahead, 'earlier message')}."


def waiting_for_slot(host: str, running: int) -> str:
    return (f"Waiting for a free slot on {host}: {plural(running, 'turn')} running there "
            "(CLAUDE_SIGNAL_MAX_TURNS). Claude gets this as soon as one ends.")


def auto_resumed(session_id: str) -> str:
    return f"Session {session_id} was paused when its worker stopped; resuming it with this message."


def approve_all_off(session_id: str) -> str:
    return f"Session {session_id}: Claude asks again before each tool that needs permission."


def turn_failed_internally(prompt: str) -> str:
    return (f'Something went wrong on our side while Claude worked on "{clip(prompt, 60)}", so that turn '
            "ended (the details are in the worker's log). The session is still usable: send your next message.")


def turn_stopped_by_shutdown(prompt: str, host: str) -> str:
    return (f'Interrupted "{clip(prompt, 60)}": the worker on {host} is stopping. The session stays open; '
            "send the message again when the worker is back.")


def nothing_running(session_id: str) -> str:
    return f"Nothing is running in session {session_id}."


def cancelling(prompt: str) -> str:
    return f'Interrupting "{clip(prompt, 60)}"…'


def no_pending_approvals() -> str:
    return "Nothing is waiting for approval."


def several_pending(items: Sequence[tuple[str, str, str]]) -> str:
    lines = ["Several requests are waiting; name one (or /approve all):"]
    lines += [f"{aid}: {tool} {clip(summary, 60)}" for aid, tool, summary in items]
    return "\n".join(lines)


def no_such_approval(ref: str, pending: Sequence[str]) -> str:
    waiting = ", ".join(pending) or "none"
    return f"No waiting request matches '{ref}' (waiting: {waiting})."


def approved(approval_id: str, tool: str, summary: str) -> str:
    return f"Approved {approval_id}: {clip(summary, 80) or tool}."


def approved_all(session_id: str, count: int) -> str:
    now = f" ({plural(count, 'waiting request')} approved)" if count else ""
    return f"Approving every tool for the rest of session {session_id}{now}."


def denied(approval_id: str, tool: str, reason: str | None) -> str:
    why = f": {reason}" if reason else ""
    return f"Denied {approval_id} ({tool}){why}."


def approval_request(approval_id: str, summary: str) -> str:
    return (f"Claude wants to run {summary}\n"
            f"/approve {approval_id} or /deny {approval_id} [reason] (or reply 👍 / 👎 to this message)")


def approval_expired(approval_id: str, summary: str, minutes: float) -> str:
    return f"No answer within {minutes:.0f} min, so I denied {approval_id} ({clip(summary, 60)})."


def already_decided(approval_id: str, status: str) -> str:
    return f"Request {approval_id} was already {status.lower()}."


def mode_set(session_id: str, mode: str) -> str:
    return f"Session {session_id} now uses permission mode {mode} (from the next message on)."


def turn_timed_out(reason: str) -> str:
    return f"Stopped Claude: {reason}. Send a message to continue, or /status to check the session."


def claude_crashed(exit_code: int | None) -> str:
    code = f" (exit code {exit_code})" if exit_code is not None else ""
    return f"Claude stopped without finishing{code}. Send your message again; /status shows the session."


def internal_error() -> str:
    return "Something went wrong on my side handling that; it is logged. Please try again."


def clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
