"""What the user typed, as a typed command. Pure: no I/O, no database.

Commands are case-insensitive; anything that does not start with ``/`` is a prompt for Claude. A command
with missing or extra words becomes :class:`Usage`, which carries the reply that says how to type it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PERMISSION_MODES = ("default", "acceptEdits", "plan", "bypassPermissions")

_HOST_PATH = re.compile(r"^(?P<host>[A-Za-z0-9][A-Za-z0-9._-]*):(?P<path>[/~].*)$")


@dataclass(frozen=True)
class Target:
    """Where a session should open: a path, optionally on a named host."""

    path: str
    host: str | None = None


@dataclass(frozen=True)
class SessionStart:
    target: Target


@dataclass(frozen=True)
class SessionList:
    include_ended: bool = False


@dataclass(frozen=True)
class SessionResume:
    ref: str | None  # None: the conversation's current session


@dataclass(frozen=True)
class SessionStop:
    ref: str | None


@dataclass(frozen=True)
class Help:
    pass


@dataclass(frozen=True)
class Status:
    pass


@dataclass(frozen=True)
class Hosts:
    pass


@dataclass(frozen=True)
class Cancel:
    pass


@dataclass(frozen=True)
class Approve:
    ref: str | None = None
    all: bool = False
    none: bool = False  # /approve none: take back /approve all


@dataclass(frozen=True)
class Deny:
    ref: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Mode:
    mode: str


@dataclass(frozen=True)
class GetFile:
    """/get <path>: send a file of the session's project to the phone."""

    path: str


@dataclass(frozen=True)
class Export:
    pass


@dataclass(frozen=True)
class Cost:
    pass


@dataclass(frozen=True)
class Model:
    """/model shows the session's model; /model <name> sets it; /model default goes back to Claude's."""

    name: str | None = None
    show: bool = False


@dataclass(frozen=True)
class Quiet:
    on: bool | None = None  # None: show the setting


@dataclass(frozen=True)
class Prompt:
    text: str


@dataclass(frozen=True)
class Usage:
    """A known command typed wrongly; ``text`` says how to type it."""

    text: str


@dataclass(frozen=True)
class Unknown:
    word: str


Command = (
    SessionStart | SessionList | SessionResume | SessionStop | Help | Status | Hosts | Cancel | Approve
    | Deny | Mode | GetFile | Export | Cost | Model | Quiet | Prompt | Usage | Unknown
)

# A model alias (sonnet, opus, haiku, sonnet[1m]) or a full id, Bedrock's with a ':' too; never a flag.
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@\[\]-]{0,63}$")


def parse_target(raw: str) -> Target:
    """``~/code/shop`` or ``laptop:~/code/shop``; a bare path has no host."""
    match = _HOST_PATH.match(raw)
    if match:
        return Target(path=match["path"], host=match["host"])
    return Target(path=raw)


def parse(text: str) -> Command:
    """Turn one Signal message into a command."""
    stripped = text.strip()
    if not stripped.startswith("/") or stripped == "/":
        return Prompt(text=text)
    head, _, rest = stripped.partition(" ")
    word = head[1:].lower()
    rest = rest.strip()
    handler = _TOP_LEVEL.get(word)
    if handler is None:
        return Unknown(word=head)
    return handler(rest)


def _session(rest: str) -> Command:
    sub, _, arg = rest.partition(" ")
    sub = sub.lower()
    arg = arg.strip()
    if sub in ("", "help"):
        return Help()
    if sub in ("start", "new"):
        if not arg:
            return Usage("Usage: /session start <path> or /session start <host>:<path>, "
                         "e.g. /session start ~/code/shop")
        return SessionStart(parse_target(arg))
    if sub in ("list", "ls"):
        return SessionList(include_ended=arg.lower() == "all")
    if sub == "resume":
        if " " in arg:
            return Usage("Usage: /session resume [id] (the current session without an id). "
                         "/session list shows the ids.")
        return SessionResume(arg.lower() or None)
    if sub in ("stop", "end"):
        if " " in arg:
            return Usage("Usage: /session stop <id> (or /session stop for the current session).")
        return SessionStop(arg.lower() or None)
    from claude_signal.rules.suggest import SESSION_WORDS, closest

    guess = closest(sub, SESSION_WORDS)
    hint = f" Did you mean /session {guess}{' ' + arg if arg else ''}?" if guess else ""
    return Usage(f"Unknown /session command '{sub}'.{hint} Try /session help.")


def _no_args(command: Command, usage: str):  # type: ignore[no-untyped-def]
    def build(rest: str) -> Command:
        return Usage(usage) if rest else command

    return build


def _approve(rest: str) -> Command:
    if not rest:
        return Approve()
    if rest.lower() == "all":
        return Approve(all=True)
    if rest.lower() == "none":
        return Approve(none=True)
    if " " in rest:
        return Usage("Usage: /approve [id|all|none]")
    return Approve(ref=rest.lower())


def _deny(rest: str) -> Command:
    if not rest:
        return Deny()
    first, _, reason = rest.partition(" ")
    if re.fullmatch(r"[0-9a-fA-F]{2,16}", first):
        return Deny(ref=first.lower(), reason=reason.strip() or None)
    return Deny(reason=rest)


def _mode(rest: str) -> Command:
    for mode in PERMISSION_MODES:
        if rest.lower() == mode.lower():
            return Mode(mode)
    return Usage("Usage: /mode <" + "|".join(PERMISSION_MODES) + ">")


def _get(rest: str) -> Command:
    path = rest.strip().strip("'\"")
    if not path:
        return Usage("Usage: /get <path>, relative to the session's project (e.g. /get src/app.py) or absolute "
                     "inside the project roots.")
    return GetFile(path)


def _model(rest: str) -> Command:
    if not rest:
        return Model(show=True)
    if rest.lower() == "default":
        return Model(None)
    if not _MODEL_NAME.match(rest):
        return Usage("Usage: /model <name>, e.g. /model sonnet, /model opus, /model haiku or a full model id; "
                     "/model default goes back to Claude Code's default.")
    return Model(rest)


def _quiet(rest: str) -> Command:
    word = rest.lower()
    if word in ("", "on", "off"):
        return Quiet(None if not word else word == "on")
    return Usage("Usage: /quiet on (fold tool lines into the answer) or /quiet off (show each one).")


_TOP_LEVEL = {
    "session": _session,
    "s": _session,
    "help": _no_args(Help(), "Usage: /help"),
    "status": _no_args(Status(), "Usage: /status"),
    "hosts": _no_args(Hosts(), "Usage: /hosts"),
    "cancel": _no_args(Cancel(), "Usage: /cancel"),
    "approve": _approve,
    "deny": _deny,
    "mode": _mode,
    "get": _get,
    "export": _no_args(Export(), "Usage: /export"),
    "cost": _no_args(Cost(), "Usage: /cost"),
    "model": _model,
    "quiet": _quiet,
}


def _schedule(word: str):  # type: ignore[no-untyped-def]
    from claude_signal.rules import schedule_commands

    def build(rest: str) -> Command:
        parsed = schedule_commands.parse(word, rest)
        return Usage(parsed) if isinstance(parsed, str) else parsed  # type: ignore[return-value]

    return build


_TOP_LEVEL.update({word: _schedule(word) for word in ("every", "at", "schedules", "unschedule", "pause", "resume")})


def command_names() -> list[str]:
    """Every top-level command word (for "did you mean")."""
    return [name for name in _TOP_LEVEL if len(name) > 1]
