"""The listener's journal and forwarder: durable, ordered, replayed after an outage or a restart.

The broker side uses a real Redis through the listener's own publisher; only its availability is varied.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from claude_signal.edge.forwarder import Chain
from claude_signal.edge.journal import Spool
from claude_signal.edge.listener import Forwarder
from claude_signal.edge.publisher import BrokerUnavailable, InboundPublisher
from claude_signal.wire import inbox_acks
from claude_signal.wire.inbound import InboundMessage
from tests.harness import RedisServer, free_port, wait_until


def message(n: int, conversation: str = "alice") -> InboundMessage:
    return InboundMessage.build(sender="alice", conversation=conversation, timestamp=1000 + n, text=f"m{n}")


def test_records_come_back_in_order_until_committed(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.jsonl")
    for n in range(3):
        spool.append({"n": n})
    pending = list(spool.pending())
    assert [r["n"] for _, r in pending] == [0, 1, 2]
    spool.commit(pending[0][0])
    assert [r["n"] for _, r in spool.pending()] == [1, 2]
    reopened = Spool(tmp_path / "s.jsonl")  # a restart sees the same
    assert [r["n"] for _, r in reopened.pending()] == [1, 2]


def test_fully_committed_journal_starts_afresh(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.jsonl")
    spool.append({"n": 1})
    (offset, _), = spool.pending()
    spool.commit(offset)
    assert spool.path.stat().st_size == 0
    spool.append({"n": 2})
    assert [r["n"] for _, r in spool.pending()] == [2]


def test_torn_last_record_is_skipped_not_fatal(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.jsonl")
    spool.append({"n": 1})
    with open(spool.path, "ab") as raw:
        raw.write(b'{"n": 2')  # a crash mid-write
    assert [r.get("n") for _, r in spool.pending()] == [1, None]
    reopened = Spool(tmp_path / "s.jsonl")  # the restart after that crash
    reopened.append({"n": 3})
    assert [r.get("n") for _, r in reopened.pending()] == [1, None, 3]


def queued_keys(redis: RedisServer) -> list[str]:
    client = redis.client()
    return [json.loads(m)["headers"]["id"] for m in reversed(client.lrange("shared", 0, -1))]


@contextmanager
def forwarding(tmp_path: Path, *, spool: type[Spool] = Spool, broker_up: bool = True,
               redis: RedisServer | None = None, republish_after: float = 30.0
               ) -> Iterator[tuple[Forwarder, RedisServer]]:
    """A forwarder on a journal in ``tmp_path`` publishing to a private Redis (started unless told not to)."""
    own = redis is None
    redis = redis or RedisServer(tmp_path / "redis")
    if broker_up and redis.proc is None:
        redis.start()
    publisher = InboundPublisher(redis.url, connect_timeout=0.5)
    forwarder = Forwarder(spool(tmp_path / "s.jsonl"), publisher, max_backoff=0.3,
                          republish_after=republish_after, check_every=0.1).start()
    try:
        yield forwarder, redis
    finally:
        forwarder.stop()
        publisher.close()
        if own:
            redis.stop()


def test_forwarder_spools_through_an_outage_and_replays_in_order(tmp_path: Path) -> None:
    with forwarding(tmp_path, broker_up=False) as (forwarder, redis):
        for n in range(5):  # the broker is not running yet
            assert forwarder.submit(message(n))
        wait_until(lambda: forwarder.spool.backlog() == 5)
        redis.start()
        wait_until(lambda: len(queued_keys(redis)) == 5, timeout=20, message="the replay")
        assert queued_keys(redis) == [f"in:alice:{1000 + n}" for n in range(5)]
        assert forwarder.spool.backlog() == 5  # published is not delivered: kept until the inbox has them
        for n in range(5):
            inbox_acks.mark(redis.client(), f"alice:{1000 + n}")
        wait_until(lambda: forwarder.spool.backlog() == 0, message="the acknowledged records to leave")
        assert forwarder.spool.path.stat().st_size == 0


def test_forwarder_chains_messages_of_a_conversation_and_drops_repeats(tmp_path: Path) -> None:
    with forwarding(tmp_path) as (forwarder, redis):
        assert forwarder.submit(message(1))
        assert forwarder.submit(message(2, conversation="group.x"))
        assert forwarder.submit(message(3))
        assert not forwarder.submit(message(3))  # the same frame twice
        wait_until(lambda: len(queued_keys(redis)) == 3)
        bodies = [json.loads(m) for m in reversed(redis.client().lrange("shared", 0, -1))]
        afters = [json.loads(base64.b64decode(b["body"]))[0][0]["after"] for b in bodies]
        assert afters == [None, None, "alice:1001"]


def test_the_chain_outlives_a_listener_restart(tmp_path: Path) -> None:
    """The first message after a restart still names the last one read before it, even when every earlier
    record was acknowledged and the journal emptied: it must not overtake a predecessor still waiting."""
    redis = RedisServer(tmp_path / "redis").start()
    try:
        with forwarding(tmp_path, redis=redis) as (forwarder, _):
            assert forwarder.submit(message(1))
            assert forwarder.submit(message(2))
            wait_until(lambda: len(queued_keys(redis)) == 2)
            for n in (1, 2):
                inbox_acks.mark(redis.client(), f"alice:{1000 + n}")
            wait_until(lambda: forwarder.spool.path.stat().st_size == 0, message="the journal to empty")
        with forwarding(tmp_path, redis=redis) as (forwarder, _):  # the listener, started again
            assert forwarder.submit(message(3))
            wait_until(lambda: len(queued_keys(redis)) == 3)
            bodies = [json.loads(m) for m in reversed(redis.client().lrange("shared", 0, -1))]
            afters = [json.loads(base64.b64decode(b["body"]))[0][0]["after"] for b in bodies]
        assert afters == [None, "alice:1001", "alice:1002"]
    finally:
        redis.stop()


def test_only_what_was_synced_is_handed_out(tmp_path: Path) -> None:
    """The forwarder publishes what one fsync made durable; a record appended after it waits for the next."""
    spool = Spool(tmp_path / "s.jsonl")
    spool.append({"n": 1})
    spool.append({"n": 2})
    synced = spool.sync()
    spool.append({"n": 3})
    assert [r["n"] for _, r in spool.pending(0, until=synced)] == [1, 2]
    assert [r["n"] for _, r in spool.pending(0)] == [1, 2, 3]


class SlowDiskSpool(Spool):
    """A disk whose fsync has made only the first ``durable`` bytes safe so far (None: everything)."""

    durable: int | None = None

    def sync(self) -> int:
        size = super().sync()
        return size if self.durable is None else min(size, self.durable)


def test_the_forwarder_publishes_only_what_the_journal_made_durable(tmp_path: Path) -> None:
    with forwarding(tmp_path, spool=SlowDiskSpool) as (forwarder, redis):
        forwarder.spool.durable = 0  # type: ignore[attr-defined]
        assert forwarder.submit(message(1))
        time.sleep(0.5)  # several forwarder passes (check_every is 0.1 s)
        assert queued_keys(redis) == [], "a record went out before an fsync covered it"
        forwarder.spool.durable = None  # type: ignore[attr-defined]
        assert forwarder.submit(message(2))
        wait_until(lambda: queued_keys(redis) == ["in:alice:1001", "in:alice:1002"], message="the publish")


class UnsyncableSpool(Spool):
    def sync(self) -> int:
        raise OSError(5, "Input/output error")


def test_a_journal_that_cannot_be_synced_still_lets_messages_through(tmp_path: Path) -> None:
    with forwarding(tmp_path, spool=UnsyncableSpool) as (forwarder, redis):
        assert forwarder.submit(message(1))
        assert forwarder.submit(message(2))
        wait_until(lambda: queued_keys(redis) == ["in:alice:1001", "in:alice:1002"], message="the publish")


def test_a_batch_goes_out_in_order_with_its_sent_events(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path / "redis").start()
    events = redis.client().pubsub()
    events.psubscribe("*celeryev*")
    events.get_message(timeout=1)  # the subscription's confirmation
    publisher = InboundPublisher(redis.url, connect_timeout=0.5)
    try:
        publisher.publish_many([message(n).model_dump(mode="json") for n in range(3)])
        assert queued_keys(redis) == [f"in:alice:{1000 + n}" for n in range(3)]
        sent = []
        while (event := events.get_message(timeout=1)) is not None:
            sent.append(json.loads(base64.b64decode(json.loads(event["data"])["body"])))
        assert [(e["type"], e["uuid"]) for e in sent] == [("task-sent", f"in:alice:{1000 + n}") for n in range(3)]
    finally:
        events.close()
        publisher.close()
        redis.stop()


def test_publisher_reports_an_unreachable_broker() -> None:
    publisher = InboundPublisher(f"redis://127.0.0.1:{free_port()}/0", connect_timeout=0.5)
    with pytest.raises(BrokerUnavailable):
        publisher.publish(message(1))
    publisher.close()


class FullDiskSpool(Spool):
    def append(self, record: dict) -> None:  # type: ignore[type-arg]
        raise OSError(28, "No space left on device")


def test_a_full_disk_does_not_lose_the_message(tmp_path: Path) -> None:
    with forwarding(tmp_path, spool=FullDiskSpool) as (forwarder, redis):
        assert forwarder.submit(message(1))
        wait_until(lambda: queued_keys(redis) == ["in:alice:1001"], message="the held message to be published")


def published(redis: RedisServer) -> list[dict]:  # type: ignore[type-arg]
    bodies = [json.loads(m) for m in reversed(redis.client().lrange("shared", 0, -1))]
    return [json.loads(base64.b64decode(b["body"]))[0][0] for b in bodies]


def test_the_chain_is_rebuilt_from_the_journal_after_a_crash_and_written_only_to_empty_it(tmp_path: Path) -> None:
    """The conversations' last messages are not written per message: a listener killed with records in its
    journal rebuilds them from the journal; the map's file is written when the journal is about to empty."""
    redis = RedisServer(tmp_path / "redis").start()
    try:
        with forwarding(tmp_path, redis=redis) as (forwarder, _):
            chain_file = forwarder._chain.path
            assert forwarder.submit(message(1)) and forwarder.submit(message(2, conversation="group.x"))
            wait_until(lambda: len(queued_keys(redis)) == 2)
            assert not chain_file.exists()  # nothing acknowledged yet: the journal holds both
            assert Chain(forwarder.spool).last == {"alice": "alice:1001", "group.x": "alice:1002"}  # a restart
            for n in (1, 2):
                inbox_acks.mark(redis.client(), f"alice:{1000 + n}")
            wait_until(lambda: forwarder.spool.size() == 0, message="the journal to empty")
            assert json.loads(chain_file.read_text()) == {"alice": "alice:1001", "group.x": "alice:1002"}
    finally:
        redis.stop()


def test_a_lone_surrogate_is_repaired_and_keeps_the_chain(tmp_path: Path) -> None:
    """JSON can carry "\\ud800", which no UTF-8 encoder takes: it once raised after the chain had moved."""
    with forwarding(tmp_path) as (forwarder, redis):
        bad = InboundMessage.build(sender="alice", conversation="alice", timestamp=1001, text="half \ud800 a pair")
        assert forwarder.submit(bad)
        assert forwarder.submit(message(2))
        wait_until(lambda: len(queued_keys(redis)) == 2, message="both published")
        first, second = published(redis)
        assert first["text"] == "half \ufffd a pair"
        assert second["after"] == "alice:1001" == first["key"]


def test_repair_keeps_well_formed_text_and_joins_split_pairs() -> None:
    from claude_signal.wire.inbound import repair_text

    assert repair_text("plain ✓ 😀") == "plain ✓ 😀"
    assert repair_text("\ud83d\ude00 \udfff") == "😀 \ufffd"


def test_only_text_that_utf8_or_postgresql_would_refuse_needs_repair() -> None:
    from claude_signal.wire.inbound import needs_repair

    fine = [None, "", "/status", "héllo ✓ 😀", "x" * 10_000 + "é"]
    broken = ["a\x00b", "é\x00", "\ud800", "x\udfffy", "\ud83d\ude00", "😀" * 100 + "\udc00"]
    assert [needs_repair(text) for text in fine] == [False] * len(fine)
    assert [needs_repair(text) for text in broken] == [True] * len(broken)


def test_a_lost_broker_copy_is_published_again_until_the_inbox_has_it(tmp_path: Path) -> None:
    """kombu can lose a message between taking it off the list and recording it unacked: publishing is not
    delivery, so the journal keeps the record and publishes it again."""
    with forwarding(tmp_path, republish_after=0.5) as (forwarder, redis):
        assert forwarder.submit(message(1))
        wait_until(lambda: queued_keys(redis) == ["in:alice:1001"], message="the first copy")
        redis.client().delete("shared")  # the copy dies in the hand-off
        wait_until(lambda: queued_keys(redis) == ["in:alice:1001"], message="the copy published again")
        assert forwarder.spool.backlog() == 1
        inbox_acks.mark(redis.client(), "alice:1001")  # what a worker does once the inbox row is committed
        wait_until(lambda: forwarder.in_flight() == 0 and forwarder.spool.backlog() == 0,
                   message="the record to leave the journal")
        assert forwarder.spool.path.stat().st_size == 0


def test_a_restart_publishes_what_the_inbox_never_acknowledged(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path / "redis").start()
    try:
        with forwarding(tmp_path, redis=redis) as (forwarder, _):
            forwarder.submit(message(1))
            forwarder.submit(message(2))
            wait_until(lambda: len(queued_keys(redis)) == 2, message="both published")
            inbox_acks.mark(redis.client(), "alice:1001")
            wait_until(lambda: forwarder.spool.backlog() == 1, message="the first acknowledged")
        redis.client().delete("shared")  # the second never arrived anywhere
        with forwarding(tmp_path, redis=redis) as (forwarder, _):
            wait_until(lambda: queued_keys(redis) == ["in:alice:1002"], message="the replay of the second only")
    finally:
        redis.stop()


def test_a_publish_tries_an_unreachable_broker_once(tmp_path: Path) -> None:
    """kombu's own retries held the forwarder 6 s per attempt while Redis was away; the forwarder's loop,
    with its short back-off, is the one that retries."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    accepted = []

    def refuse() -> None:  # a port that accepts and hangs up at once, counting the attempts
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                conn, _ = server.accept()
                accepted.append(conn)
                conn.close()

    stop = threading.Event()
    thread = threading.Thread(target=refuse, daemon=True)
    thread.start()
    publisher = InboundPublisher(f"redis://127.0.0.1:{server.getsockname()[1]}/0", connect_timeout=0.5)
    try:
        with pytest.raises(BrokerUnavailable):
            publisher.publish(message(1))
        assert len(accepted) == 1
    finally:
        stop.set()
        thread.join()
        server.close()
        publisher.close()


def test_copies_lost_in_a_broker_restart_are_published_again_at_once(tmp_path: Path) -> None:
    """A Redis that restarts without its data loses the copy; the next one was due only after
    ``republish_after`` (or 16 times that), so its conversation waited minutes."""
    redis = RedisServer(tmp_path / "redis", appendonly=False).start()
    try:
        with forwarding(tmp_path, redis=redis, republish_after=60.0) as (forwarder, _):
            assert forwarder.submit(message(1))
            wait_until(lambda: queued_keys(redis) == ["in:alice:1001"], message="the first copy")
            assert redis.proc is not None
            redis.proc.kill()
            redis.proc.wait(10)
            redis.start()  # same port, nothing in it
            wait_until(lambda: queued_keys(redis) == ["in:alice:1001"], timeout=10,
                       message="the copy published again")
    finally:
        redis.stop()


def test_a_copy_lost_while_workers_take_later_ones_goes_again_within_the_bound(tmp_path: Path) -> None:
    """While nothing says a copy was lost the waits between copies double; once workers acknowledge a
    message published after its last copy (the queue is first in, first out), that copy was lost, and it
    goes again within ``republish_after``."""
    with forwarding(tmp_path, republish_after=0.5) as (forwarder, redis):
        assert forwarder.submit(message(1))
        # copies at 0, 0.5, 1.5 and 3.5 s: the next one would come 4 s later
        wait_until(lambda: queued_keys(redis).count("in:alice:1001") == 4, timeout=10, message="four copies")
        redis.client().delete("shared")  # every copy died in the hand-off
        assert forwarder.submit(message(2))
        wait_until(lambda: queued_keys(redis) == ["in:alice:1002"], message="a later message")
        inbox_acks.mark(redis.client(), "alice:1002")  # and a worker took it
        wait_until(lambda: queued_keys(redis) == ["in:alice:1002", "in:alice:1001"], timeout=2.5,
                   message="the first published again within the bound")
