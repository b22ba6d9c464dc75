"""Who counts as whom: the authorization rule and the screen on raw frames (real frames from the fake)."""

from __future__ import annotations

import pytest

from claude_signal.edge.frames import screen
from claude_signal.wire.senders import authorized
from tests.fakes.signal_rest import FakeSignalServer

BOT = "+15550000001"
ALICE = "+15550000002"
MALLORY = "+15550000666"


@pytest.mark.parametrize(("listed", "number", "uuid", "ok"), [
    ([], ALICE, "alice-uuid", False),  # an empty list: nobody
    ([ALICE], ALICE, "alice-uuid", True),  # numbers only: the number decides
    ([ALICE], ALICE, None, True),
    (["alice-uuid"], None, "alice-uuid", True),
    (["alice-uuid", ALICE], ALICE, "alice-uuid", True),
    (["alice-uuid", ALICE], ALICE, "mallory-uuid", False),  # her number, someone else's account
    (["alice-uuid", ALICE], ALICE, None, True),
    (["alice-uuid", ALICE], MALLORY, "mallory-uuid", False),
    ([ALICE], MALLORY, "alice-uuid", False),
])
def test_number_and_uuid_name_the_same_authorized_person(listed: list[str], number: str | None,
                                                         uuid: str | None, ok: bool) -> None:
    assert authorized(listed, number, uuid) is ok


@pytest.fixture
def fake() -> FakeSignalServer:
    server = FakeSignalServer(BOT)  # never started: frames stay in its backlog
    server.contact(ALICE, "alice-uuid", "Alice")
    server.contact(MALLORY, "mallory-uuid", "Mallory")
    return server


def only_frame(fake: FakeSignalServer) -> dict:
    (frame,) = fake.take_backlog()
    return frame


def test_owner_note_to_self_and_others_messages_pass(fake: FakeSignalServer) -> None:
    fake.note_to_self("/status")
    assert screen(only_frame(fake), BOT) is None
    fake.direct(ALICE, "/status")
    assert screen(only_frame(fake), BOT) is None
    fake.group_message(ALICE, fake.add_group("g", [ALICE]), "hi")
    assert screen(only_frame(fake), BOT) is None


def test_sync_transcript_in_a_strangers_envelope_is_not_the_owners(fake: FakeSignalServer) -> None:
    fake.note_to_self("/mode bypassPermissions")
    frame = only_frame(fake)
    frame["envelope"].update(source=MALLORY, sourceNumber=MALLORY, sourceUuid="mallory-uuid")
    reason, notable = screen(frame, BOT)  # type: ignore[misc]
    assert "not from the account itself" in reason and MALLORY in reason and notable


def test_owners_message_to_someone_else_is_not_a_command(fake: FakeSignalServer) -> None:
    fake.sync_sent(ALICE, "/session start ~/x")  # signalbot would present it as Alice's
    reason, notable = screen(only_frame(fake), BOT)  # type: ignore[misc]
    assert reason == "the owner's own message to someone else" and not notable


def test_owner_in_a_group_is_left_to_the_worker(fake: FakeSignalServer) -> None:
    group = fake.add_group("friends", [ALICE])
    fake.sync_sent(ALICE, "see you at 8")
    frame = only_frame(fake)
    sent = frame["envelope"]["syncMessage"]["sentMessage"]
    sent["groupInfo"] = {"groupId": group.internal_id, "groupName": group.name, "revision": 1, "type": "DELIVER"}
    assert screen(frame, BOT) is None
