"""The parser is pure: what the user types becomes a typed command, and wrong typing a usage reply."""

import pytest

from claude_signal.rules import commands as c


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/session start ~/code/shop", c.SessionStart(c.Target("~/code/shop"))),
        ("/SESSION START laptop:/srv/app", c.SessionStart(c.Target("/srv/app", host="laptop"))),
        ("/session start /tmp/a:b", c.SessionStart(c.Target("/tmp/a:b"))),
        ("/session list", c.SessionList()),
        ("/session list all", c.SessionList(include_ended=True)),
        ("/session resume 3FA2", c.SessionResume("3fa2")),
        ("/session stop 3fa2c1d0", c.SessionStop("3fa2c1d0")),
        ("/session stop", c.SessionStop(None)),
        ("/session help", c.Help()),
        ("/session", c.Help()),
        ("/Status", c.Status()),
        ("/hosts", c.Hosts()),
        ("/cancel", c.Cancel()),
        ("/approve", c.Approve()),
        ("/approve all", c.Approve(all=True)),
        ("/approve a1b2c3", c.Approve(ref="a1b2c3")),
        ("/deny a1b2c3 too risky", c.Deny(ref="a1b2c3", reason="too risky")),
        ("/deny not like that", c.Deny(reason="not like that")),
        ("/mode acceptedits", c.Mode("acceptEdits")),
        ("fix the failing test", c.Prompt("fix the failing test")),
        ("  /status  ", c.Status()),
        ("/", c.Prompt("/")),
        ("/frobnicate now", c.Unknown("/frobnicate")),
        ("/get src/app.py", c.GetFile("src/app.py")),
        ('/get "Q3 report.pdf"', c.GetFile("Q3 report.pdf")),
        ("/export", c.Export()),
        ("/cost", c.Cost()),
        ("/model", c.Model(show=True)),
        ("/model haiku", c.Model("haiku")),
        ("/model sonnet[1m]", c.Model("sonnet[1m]")),
        ("/model default", c.Model(None)),
        ("/quiet", c.Quiet(None)),
        ("/Quiet ON", c.Quiet(True)),
        ("/quiet off", c.Quiet(False)),
    ],
)
def test_parse(text: str, expected: c.Command) -> None:
    assert c.parse(text) == expected


@pytest.mark.parametrize("text", ["/session start", "/session resume a b", "/status now",
                                  "/mode turbo", "/session frob", "/approve a b", "/get", "/export all",
                                  "/cost me", "/model --dangerously-skip-permissions", "/model a b",
                                  "/quiet loud"])
def test_wrong_typing_gets_usage(text: str) -> None:
    parsed = c.parse(text)
    assert isinstance(parsed, c.Usage)
    assert "/" in parsed.text  # says how to type it


def test_resume_and_approve_none_forms() -> None:
    assert c.parse("/session resume") == c.SessionResume(None)  # the current session
    assert c.parse("/Session Resume AB12") == c.SessionResume("ab12")
    assert c.parse("/approve none") == c.Approve(none=True)
