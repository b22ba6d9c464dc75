"""A picture sent alone waits for its caption, on a real database: the next text becomes its prompt, while a
command, another picture or the end of the wait lets it go to Claude as it is."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, select, update

from claude_signal.config import Settings
from claude_signal.core import captions
from claude_signal.core import turn_state as turns
from claude_signal.core.wakeups import next_turn, pending
from claude_signal.db.engine import unit_of_work
from claude_signal.db.models import Turn, utcnow
from claude_signal.wire.inbound import FileRef, InboundMessage
from claude_signal.wire.queues import SESSION_PROMPT
from tests.harness import statements_run
from tests.test_handling import ME, handle, live_worker, msg, replies_to, start_session  # noqa: F401

PNG = FileRef(id="a.png", content_type="image/png", filename="a.png", size=70)


def picture(text: str = "", files: tuple[FileRef, ...] = (PNG,)) -> InboundMessage:
    plain = msg(text)
    return InboundMessage.build(sender=plain.sender, conversation=plain.conversation, timestamp=plain.timestamp,
                                text=text, files=files, attachments=len(files))


def all_turns(engine: Engine) -> list[tuple[str, str | None, bool]]:
    """(prompt, inbound key, held) of every turn, oldest first."""
    with unit_of_work(engine) as db:
        return [(t.prompt, t.inbound_key, t.hold_until is not None)
                for t in db.execute(select(Turn).order_by(Turn.id)).scalars()]


def claim(engine: Engine, session_id: str) -> turns.ClaimedTurn | None:
    with unit_of_work(engine) as db:
        return turns.claim_next(db, session_id, ME, 30)


def test_the_next_text_is_the_pictures_caption(engine: Engine, settings: Settings, project_root: Path) -> None:
    sid = start_session(engine, settings, project_root / "shop")
    alone = picture()
    wakeups = handle(engine, settings, alone)
    (later,) = [w for w in wakeups if w.task == SESSION_PROMPT]
    assert later.countdown == settings.caption_wait + 1  # the turn asks again when the wait is over
    assert replies_to(engine, alone) == [captions.waiting_note(settings.caption_wait)]
    assert "within 2 min" in replies_to(engine, alone)[0]
    assert claim(engine, sid) is None  # held: nothing runs yet
    caption = msg("why is this button grey?")
    assert next_turn(sid, "hosta") in handle(engine, settings, caption)
    assert all_turns(engine) == [("why is this button grey?", alone.key, False)]  # one turn, with the picture
    assert replies_to(engine, caption) == []
    claimed = claim(engine, sid)
    assert claimed is not None and (claimed.prompt, claimed.inbound_key) == ("why is this button grey?", alone.key)


def test_a_command_lets_the_picture_go_alone(engine: Engine, settings: Settings, project_root: Path) -> None:
    sid = start_session(engine, settings, project_root / "shop")
    alone = picture()
    handle(engine, settings, alone)
    assert next_turn(sid, "hosta") in handle(engine, settings, msg("/status"))
    assert all_turns(engine) == [("", alone.key, False)]
    handle(engine, settings, msg("not a caption any more"))  # the picture went: this is a prompt of its own
    assert [t[0] for t in all_turns(engine)] == ["", "not a caption any more"]
    assert claim(engine, sid) is not None


def test_after_the_wait_the_picture_runs_and_text_is_a_prompt(engine: Engine, settings: Settings,
                                                               project_root: Path) -> None:
    sid = start_session(engine, settings, project_root / "shop")
    handle(engine, settings, picture())
    with unit_of_work(engine) as db:  # the wait is over (on the database's clock, as claims judge it)
        db.execute(update(Turn).values(hold_until=utcnow() - timedelta(seconds=1)))
    handle(engine, settings, msg("and another thing"))
    assert [t[0] for t in all_turns(engine)] == ["", "and another thing"]
    claimed = claim(engine, sid)
    assert claimed is not None and claimed.prompt == ""


def test_only_a_lone_picture_waits(engine: Engine, settings: Settings, project_root: Path) -> None:
    start_session(engine, settings, project_root / "shop")
    handle(engine, settings, picture("with its own caption"))
    handle(engine, settings, picture(files=(FileRef(id="r.pdf", content_type="application/pdf"),)))
    first = picture()
    handle(engine, settings, first)
    handle(engine, settings, picture())  # a second picture lets the first go alone, and waits itself
    assert [held for *_, held in all_turns(engine)] == [False, False, False, True]


def test_release_without_a_session_or_a_held_picture_does_nothing(engine: Engine) -> None:
    with unit_of_work(engine) as db:
        captions.release(db, None)
        assert len(pending(db)) == 0


def test_with_no_picture_held_neither_a_command_nor_a_prompt_looks_for_one(engine: Engine, settings: Settings,
                                                                           project_root: Path) -> None:
    """Whether a picture waits is read with the conversation's session, so the messages that find none
    (almost all) spend no statement on it; a picture held in the same transaction is still let go."""
    sid = start_session(engine, settings, project_root / "shop")
    with statements_run(engine) as statements:
        handle(engine, settings, msg("/status"))
        handle(engine, settings, msg("a prompt"))
    assert not [s for s in statements if s.startswith("UPDATE turn SET hold_until")]
    assert not [s for s in statements if "turn.hold_until >" in s]  # add_caption's look
    assert [t[0] for t in all_turns(engine)] == ["a prompt"]
    with unit_of_work(engine) as db:  # a picture held after the session was read is let go all the same
        from claude_signal.core.conversation import current_session

        session = current_session(db, msg("x").conversation)
        assert session is not None and session.id == sid
        db.add(Turn(session_id=sid, prompt="", status="QUEUED", created_at=utcnow(),
                    hold_until=captions.hold_until(db, sid, 60)))
        db.flush()
        captions.release(db, session)
        assert next_turn(sid, "hosta") in pending(db)
