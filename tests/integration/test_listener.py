"""End to end through the Signal edge: fake signal-cli-rest-api ⇄ real signalbot listener → real Redis →
real workers → outbox → fake signal-cli-rest-api."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session as DB

from claude_signal.db.models import Inbox, Outbox, Turn
from claude_signal.edge.envelopes import group_recipient
from claude_signal.rules.chunking import SIGNAL_MAX_BYTES
from tests.harness import wait_until
from tests.integration.conftest import ACCOUNT, ALICE, System
from tests.integration.helpers import count, one_session

# About processes and the wire, not the database: one backend (SQLite) suffices; the database tests run on both.
pytestmark = [pytest.mark.transport, pytest.mark.integration]


PART_MARK = re.compile(r"^\((\d+)/(\d+)\)$")


def part_mark(text: str) -> tuple[int, int] | None:
    """(n, total) from the "(n/total)" line that ends each part of a split reply."""
    match = PART_MARK.match(text.splitlines()[-1]) if text else None
    return (int(match[1]), int(match[2])) if match else None


def start_shop(system: System) -> None:
    system.signal.direct(ALICE, f"/session start {system.projects / 'shop'}")
    system.wait_reply(lambda t: t.startswith("Started session"))


def inbox_keys(system: System) -> list[str]:
    with DB(system.engine) as db:
        return list(db.execute(select(Inbox.key).order_by(Inbox.received_at)).scalars())


def inbox_texts(system: System) -> list[str]:
    with DB(system.engine) as db:
        return [str(text) for text in db.execute(select(Inbox.text)).scalars()]


def turn_prompts(system: System) -> list[str]:
    with DB(system.engine) as db:
        return list(db.execute(select(Turn.prompt).order_by(Turn.id)).scalars())


@pytest.mark.transport
def test_command_round_trip(system: System) -> None:
    system.worker()
    system.listener()
    system.signal.direct(ALICE, "/session help")
    (text,) = system.wait_reply(lambda t: t.startswith("claude-signal commands:"))
    assert "/session start" in text
    assert inbox_keys(system) and inbox_keys(system)[0].startswith("alice-uuid:")


@pytest.mark.transport
def test_unauthorized_sender_leaves_no_trace(system: System) -> None:
    system.worker()
    listener = system.listener()
    system.signal.direct("+15559999999", "/session start /etc")
    system.signal.direct(ALICE, "/hosts")  # read after the stranger's: once it is answered, both were seen
    system.wait_reply(lambda t: t.startswith("Hosts:"))
    assert len(inbox_keys(system)) == 1
    assert all("+15559999999" not in m["recipients"] for m in system.signal.sent())
    assert "unauthorized sender +15559999999" in listener.log()
    assert count(system.engine, Outbox) == 1


def test_duplicated_frame_has_one_effect(system: System) -> None:
    system.worker()
    system.listener()
    ts = system.signal.direct(ALICE, f"/session start {system.projects / 'shop'}")
    system.signal.direct(ALICE, f"/session start {system.projects / 'shop'}", timestamp=ts)  # a second copy
    system.wait_reply(lambda t: t.startswith("Started session"))
    # and once more after a listener restart, which forgets what it has seen: the inbox still knows
    system.listeners[0].stop()
    system.listener()
    system.signal.direct(ALICE, f"/session start {system.projects / 'shop'}", timestamp=ts)
    system.signal.direct(ALICE, "/session list")
    system.wait_reply(lambda t: t.startswith("Sessions:"))
    assert len([t for t in system.replies() if t.startswith("Started session")]) == 1
    assert len(inbox_keys(system)) == 2
    one_session(system.engine)


def test_broker_outage_loses_nothing_and_keeps_order(system: System) -> None:
    system.worker()
    listener = system.listener()
    system.redis.stop()
    system.signal.direct(ALICE, f"/session start {system.projects / 'shop'}")
    system.signal.direct(ALICE, "first prompt")
    system.signal.direct(ALICE, "second prompt")
    wait_until(lambda: "kept in" in listener.log(), message="the listener to spool")
    spool = Path(system.env["CLAUDE_SIGNAL_HOME"]) / "listener-spool.jsonl"
    assert len(spool.read_text().splitlines()) == 3
    system.redis.start()
    texts = system.wait_reply(lambda t: t.startswith("Echo: second prompt"), timeout=60)
    assert "earlier: first prompt" in texts[0]  # the session started first, the prompts ran in order
    assert turn_prompts(system) == ["first prompt", "second prompt"]
    assert len(inbox_keys(system)) == 3
    assert len([t for t in system.replies() if t.startswith("Started session")]) == 1
    wait_until(lambda: spool.stat().st_size == 0, message="the spool to empty")


def test_a_message_lost_in_the_broker_still_gets_its_reply(system: System) -> None:
    """Published is not delivered: a copy that dies in kombu's hand-off (popped, never recorded unacked) is
    published again by the listener, which keeps its journal record until a worker says the inbox has it."""
    listener = system.listener(CLAUDE_SIGNAL_REPUBLISH_AFTER="2")
    broker = system.redis.client()
    system.signal.direct(ALICE, "/hosts")
    wait_until(lambda: broker.llen("shared") == 1, message="the listener to publish")
    assert broker.delete("shared") == 1  # taken off the list by a worker that died before recording it
    system.worker()
    system.wait_reply(lambda t: t.startswith("Hosts:"), timeout=40)
    spool = Path(system.env["CLAUDE_SIGNAL_HOME"]) / "listener-spool.jsonl"
    wait_until(lambda: spool.stat().st_size == 0, timeout=20, message="the acknowledged record to leave")
    assert "publishing it again" in listener.log()
    assert len(system.replies()) == 1


@pytest.mark.transport
def test_listener_restart_replays_its_spool(system: System) -> None:
    listener = system.listener()  # no broker while it reads
    system.redis.stop()
    system.signal.direct(ALICE, "/hosts")
    wait_until(lambda: "kept in" in listener.log(), message="the listener to spool")
    assert listener.stop() == 0
    assert "1 message(s) left in the spool" in listener.log()
    system.redis.start()
    system.worker()
    system.listener()
    system.wait_reply(lambda t: t.startswith("Hosts:"), timeout=30)


@pytest.mark.transport
def test_websocket_drop_loses_nothing(system: System) -> None:
    system.worker()
    listener = system.listener()
    seen = system.signal.connections
    system.signal.drop_websockets()
    system.signal.direct(ALICE, "/session help")  # arrives while the socket is down; buffered by the fake
    system.signal.direct(ALICE, "/hosts")
    system.signal.wait_connected(timeout=30, after=seen)
    system.wait_reply(lambda t: t.startswith("claude-signal commands:"), timeout=30)
    system.wait_reply(lambda t: t.startswith("Hosts:"), timeout=30)
    assert listener.proc is not None and listener.proc.poll() is None


@pytest.mark.transport
def test_error_frame_does_not_stop_the_listener(system: System) -> None:
    """signal-cli's error frames and frames that are not JSON are skipped with a log line."""
    system.worker()
    listener = system.listener()
    system.signal.error_frame()
    system.signal.inject_raw("<html>502 Bad Gateway</html>")
    system.signal.direct(ALICE, "/hosts")
    system.wait_reply(lambda t: t.startswith("Hosts:"), timeout=30)
    assert "skipped a frame that is not JSON: '<html>502 Bad Gateway</html>'" in listener.log()


@pytest.mark.transport
def test_frame_over_a_mebibyte_is_read_and_the_socket_stays(system: System) -> None:
    """websockets' default limit is 1 MiB; signalbot used it, so one long message closed the socket."""
    system.worker()
    listener = system.listener()
    seen = system.signal.connections
    huge = "a long paste " + "x" * (3 * 1024 * 1024)
    system.signal.direct(ALICE, huge)
    system.signal.direct(ALICE, "/hosts")
    system.wait_reply(lambda t: t.startswith("Hosts:"), timeout=30)
    system.wait_reply(lambda t: "no current session" in t.lower(), timeout=30)
    assert system.signal.connections == seen, "the listener reconnected"
    assert any(len(t) > 3 * 1024 * 1024 for t in inbox_texts(system))
    assert listener.proc is not None and listener.proc.poll() is None


@pytest.mark.transport
def test_long_reply_arrives_split_and_complete(system: System) -> None:
    system.worker()
    system.listener()
    start_shop(system)
    paragraphs = [f"Paragraph {n}: " + "lorem ipsum dolor sit amet " * 12 for n in range(14)]
    prompt = "\n\n".join(paragraphs)
    assert 4000 < len(prompt.encode()) < 8000
    system.signal.direct(ALICE, prompt)
    system.wait_reply(lambda t: (mark := part_mark(t)) is not None and mark[0] == mark[1], timeout=40)
    parts = [t for t in system.replies() if part_mark(t)]  # replies go out in order: the last one came last
    total = len(parts)
    assert total >= 3
    assert [part_mark(p) for p in parts] == [(n, total) for n in range(1, total + 1)]
    assert all(len(p.encode()) <= SIGNAL_MAX_BYTES for p in parts)
    joined = "\n\n".join(p.rsplit("\n", 1)[0] for p in parts)
    for paragraph in paragraphs:
        assert paragraph.strip() in joined


@pytest.mark.transport
def test_a_failed_part_is_retried_without_repeating_the_others(system: System) -> None:
    system.worker()
    system.listener()
    start_shop(system)
    prompt = "\n\n".join(f"Point {n}: " + "the quick brown fox " * 20 for n in range(12))
    system.signal.fail_send_after(1, status=500)  # part 1 goes out, part 2 fails once
    system.signal.direct(ALICE, prompt)
    system.wait_reply(lambda t: "Done in " in t, timeout=40)
    marks = [mark for t in system.replies() if (mark := part_mark(t))]
    total = len(marks)
    assert total >= 2
    assert marks == [(n, total) for n in range(1, total + 1)]  # each part once, in order
    assert "not sent (attempt 1" in system.workers[0].log()


def test_group_is_bound_to_its_session(system: System) -> None:
    system.scenario("", delay=2)  # "wait: …" takes 2 s: long enough for "typing…" to show while it runs
    system.worker()
    system.listener()
    group = system.signal.add_group("shop-thread", [ALICE])
    system.signal.group_message(ALICE, group, f"/session start {system.projects / 'shop'}")
    gid = group_recipient(group.internal_id)
    assert gid == group.id
    system.wait_reply(lambda t: t.startswith("Started session"), recipient=gid)
    system.signal.group_message(ALICE, group, "wait: hello from the group")
    system.wait_reply(lambda t: t.startswith("Echo: wait: hello from the group"), recipient=gid, timeout=30)
    wait_until(lambda: [m for m, _, b in system.signal.requests("/v1/typing-indicator/") if m == "DELETE"],
               message="typing… to be cleared")
    session = one_session(system.engine)
    assert session.conversation == gid
    typing = [method for method, _, body in system.signal.requests("/v1/typing-indicator/")
              if body["recipient"] == gid]
    assert typing[0] == "PUT" and typing[-1] == "DELETE"  # "typing…" shown in the group while Claude ran
    assert typing.index("DELETE") > typing.index("PUT")  # and never left showing after it
    # the direct chat has no current session: the group's binding is its own
    system.signal.direct(ALICE, "hello direct")
    system.wait_reply(lambda t: "No current session" in t or "no current session" in t.lower())


@pytest.mark.transport
def test_note_to_self(system: System) -> None:
    system.signal.echo_own_sends_to_self = True  # as a second client of the account would see our replies
    system.env["CLAUDE_SIGNAL_AUTHORIZED"] = ACCOUNT  # the bot is a linked device of its owner's number
    system.worker()
    system.listener()
    system.signal.note_to_self("/session help")
    system.wait_reply(lambda t: t.startswith("claude-signal commands:"), recipient=ACCOUNT)
    system.signal.sync_sent(ALICE, "/hosts")  # the owner writing to someone else: not for the bot
    system.signal.note_to_self("/hosts")
    system.wait_reply(lambda t: t.startswith("Hosts:"), recipient=ACCOUNT)
    time.sleep(1.5)  # give an echoed reply time to be (wrongly) taken as a command
    texts = system.replies(ACCOUNT)
    assert len(texts) == 2, texts
    assert all(ALICE not in m["recipients"] and "alice-uuid" not in m["recipients"] for m in system.signal.sent())


@pytest.mark.transport
def test_rate_limited_send_is_retried(system: System) -> None:
    system.worker()
    system.listener()
    system.signal.fail_next_sends(1, status=429)
    system.signal.direct(ALICE, "/hosts")
    system.wait_reply(lambda t: t.startswith("Hosts:"), timeout=30)
    assert "rate-limit-challenge" in system.workers[0].log()


@pytest.mark.transport
def test_up_runs_everything_and_stops_cleanly(system: System, tmp_path: Path) -> None:
    home = tmp_path / "up-home"
    env = {k: v for k, v in system.env.items() if k not in ("CLAUDE_SIGNAL_BROKER_URL", "CLAUDE_SIGNAL_DATABASE_URL")}
    env.update(CLAUDE_SIGNAL_HOME=str(home), CLAUDE_SIGNAL_HOST="uphost", CLAUDE_SIGNAL_DEFAULT_HOST="uphost")
    seen = system.signal.connections
    proc = subprocess.Popen([sys.executable, "-m", "claude_signal.ops.cli", "up", "-c", "1"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        system.signal.wait_connected(timeout=60, after=seen)
        system.signal.direct(ALICE, "/hosts")
        (text,) = system.wait_reply(lambda t: t.startswith("Hosts:"), timeout=60)
        assert "uphost" in text
        assert (home / "claude-signal.db").exists()
        assert any((home / "redis").glob("appendonly*")), "the embedded Redis keeps an append-only file"
        children = _children(proc.pid)
        assert len(children) >= 3  # redis, worker, listener
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        for pid in children:
            assert not _alive(pid), f"child {pid} left running"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        output = proc.stdout.read().decode() if proc.stdout else ""
    assert "claude-signal is up on uphost" in output


def test_up_without_an_account_explains_how_to_link(tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "CLAUDE_SIGNAL_HOME": str(tmp_path / "h")}
    done = subprocess.run([sys.executable, "-m", "claude_signal.ops.cli", "up"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2
    assert "qrcodelink" in done.stderr and "CLAUDE_SIGNAL_ACCOUNT" in done.stderr
    assert "Traceback" not in done.stderr


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"
