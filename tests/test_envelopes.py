"""From a signal-cli frame to what the workers get: real frames from the fake, parsed by real signalbot."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import pytest
from signalbot.messages.parser import parse

from claude_signal.edge.envelopes import Access, Ignored, group_recipient, to_inbound
from claude_signal.wire.inbound import InboundMessage
from tests.fakes.signal_rest import FakeSignalServer

BOT = "+15550000001"
ALICE = "+15550000002"


@pytest.fixture
def fake() -> FakeSignalServer:
    server = FakeSignalServer(BOT)  # never started: frames stay in its backlog
    server.contact(ALICE, "alice-uuid", "Alice")
    return server


def events(fake: FakeSignalServer) -> list[Any]:
    signal = SimpleNamespace(download_attachments=False)
    return [asyncio.run(parse(signal, json.dumps(frame))) for frame in fake.take_backlog()]  # type: ignore[arg-type]


def only(fake: FakeSignalServer, authorized: set[str] | None = None) -> InboundMessage | Ignored:
    (event,) = events(fake)
    return to_inbound(event, Access(BOT, frozenset(authorized or {"alice-uuid"})))


def test_direct_message(fake: FakeSignalServer) -> None:
    ts = fake.direct(ALICE, "/status")
    msg = only(fake)
    assert isinstance(msg, InboundMessage)
    assert (msg.key, msg.sender, msg.sender_number, msg.conversation, msg.text, msg.kind) == (
        f"alice-uuid:{ts}", "alice-uuid", ALICE, "alice-uuid", "/status", "message")
    assert not msg.note_to_self


def test_authorized_by_number_too(fake: FakeSignalServer) -> None:
    fake.direct(ALICE, "hi")
    assert isinstance(only(fake, {ALICE}), InboundMessage)


def test_stranger_is_ignored(fake: FakeSignalServer) -> None:
    fake.direct("+15559999999", "hi")
    result = only(fake)
    assert isinstance(result, Ignored) and result.reason.startswith("unauthorized sender +15559999999")
    assert result.notable  # logged as a warning: the operator should see strangers


def test_group_message_replies_to_the_group(fake: FakeSignalServer) -> None:
    group = fake.add_group("shop", [ALICE])
    fake.group_message(ALICE, group, "hello")
    msg = only(fake)
    assert isinstance(msg, InboundMessage)
    assert msg.conversation == group.id == group_recipient(group.internal_id)
    assert msg.group_id == group.internal_id


def test_note_to_self_is_the_owner(fake: FakeSignalServer) -> None:
    fake.note_to_self("/session list")
    msg = only(fake, {BOT})
    assert isinstance(msg, InboundMessage)
    assert msg.conversation == BOT and msg.note_to_self and msg.text == "/session list"


def test_owner_writing_to_someone_else_is_not_a_command(fake: FakeSignalServer) -> None:
    fake.sync_sent("+15557777777", "see you at 8")
    assert isinstance(only(fake, {BOT}), Ignored)


def test_edit_and_quote(fake: FakeSignalServer) -> None:
    original = fake.direct(ALICE, "fix teh bug")
    fake.edit(ALICE, original, "fix the bug")
    fake.direct(ALICE, "yes", quote_timestamp=12345)
    first, edit, quoted = (to_inbound(e, Access(BOT, frozenset({"alice-uuid"}))) for e in events(fake))
    assert isinstance(edit, InboundMessage) and edit.kind == "edit" and edit.key != first.key  # type: ignore[union-attr]
    assert isinstance(quoted, InboundMessage) and quoted.quote_timestamp == 12345


def test_reaction_targets_a_message_and_removal_is_ignored(fake: FakeSignalServer) -> None:
    fake.reaction(ALICE, "👍", 4242)
    fake.reaction(ALICE, "👍", 4242, remove=True)
    added, removed = (to_inbound(e, Access(BOT, frozenset({"alice-uuid"}))) for e in events(fake))
    assert isinstance(added, InboundMessage)
    assert (added.kind, added.reaction_emoji, added.reaction_target_timestamp) == ("reaction", "👍", 4242)
    assert added.key == "alice-uuid:4242:reaction:👍"
    assert isinstance(removed, Ignored)


def test_typing_and_receipts_are_not_messages(fake: FakeSignalServer) -> None:
    fake.typing(ALICE)
    (event,) = events(fake)
    result = to_inbound(event, Access(BOT, frozenset({"alice-uuid"})))
    assert isinstance(result, Ignored) and not result.notable


def test_the_listener_imports_neither_the_database_nor_pexpect() -> None:
    import subprocess
    import sys

    code = ("import sys, claude_signal.edge.listener; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'pexpect', 'alembic') "
            "or m.startswith(('claude_signal.db', 'tasks'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_lone_surrogate_in_a_frame_is_repaired(fake: FakeSignalServer) -> None:
    fake.direct(ALICE, "broken \ud800 text")  # json.dumps writes it as the escape "\\ud800"
    msg = only(fake)
    assert isinstance(msg, InboundMessage)
    assert msg.text == "broken \ufffd text"
    msg.model_dump_json().encode()  # writable as UTF-8
