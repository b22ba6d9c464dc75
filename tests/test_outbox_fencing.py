"""A sender that lost its lane or its row's claim stops, and one POST cannot outlast the hold."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from claude_signal.core import outbox
from claude_signal.core.send_lanes import recipient_lane
from claude_signal.db.engine import unit_of_work
from claude_signal.db.models import Outbox, utcnow
from claude_signal.edge.signal_client import SendError, SignalClient
from claude_signal.rules.states import OutboxStatus


def add(engine: Engine) -> int:
    with unit_of_work(engine) as db:
        return outbox.enqueue(db, recipient="alice", text="hello", dedupe_key="k1")


def test_a_sender_whose_claim_lapsed_cannot_renew_it_nor_hand_the_row_back(engine: Engine) -> None:
    oid = add(engine)
    with unit_of_work(engine) as db:
        stale = outbox.claim(db, oid, hold=1)
        db.expunge(stale)
    with unit_of_work(engine) as db:
        assert outbox.renew_claim(db, stale, hold=1)  # still ours
    with unit_of_work(engine) as db:  # it stalled; its claim lapsed and a second sender took the row
        fresh = outbox.claim(db, oid, now=utcnow() + timedelta(seconds=5), hold=30)
        assert fresh is not None
        db.expunge(fresh)
    with unit_of_work(engine) as db:
        assert not outbox.renew_claim(db, stale, hold=1)
        outbox.mark_failed_attempt(db, stale, "timed out", retryable=True, max_age=3600)
        outbox.mark_parts_sent(db, oid, 1, None, attempt=stale.attempts)
    with unit_of_work(engine) as db:
        row = db.get(Outbox, oid)
        assert (row.status, row.parts_sent) == (OutboxStatus.SENDING, 0)  # the second sender's, untouched
        assert outbox.renew_claim(db, fresh, hold=30)




def test_a_lapsed_lane_is_reported_lost_and_stays_lost(redis_url: str) -> None:
    with recipient_lane(redis_url, "alice", ttl=0.2) as first:
        assert first.held and first.renew()
        time.sleep(0.5)  # stalled past its ttl
        with recipient_lane(redis_url, "alice", ttl=30) as second:
            assert second.held
            assert not first.renew()
            assert second.renew()
        assert not first.renew()


@pytest.fixture
def trickling_server() -> Iterator[str]:
    """An HTTP server that answers a send one byte at a time, a little faster than any read timeout."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)
                body = b'{"timestamp": "1700000000000"}'
                conn.sendall(b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n" % len(body))
                for byte in body:
                    if stop.wait(0.2):
                        return
                    conn.sendall(bytes([byte]))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(timeout=5)
    listener.close()


def test_one_post_ends_within_its_overall_deadline(trickling_server: str) -> None:
    """Each byte comes within the per-phase read timeout, the whole answer takes about six seconds: the
    send gives up (retryably) instead of holding the lane and the claim past their hold."""
    client = SignalClient(trickling_server, "+15550000001", timeout=1.0)
    with pytest.raises(SendError) as failed:
        client.send("alice", "hello")
    assert failed.value.retryable and "did not answer within" in str(failed.value)
    client.close()
