"""Moves journaled messages to the broker, in order, and keeps each until the inbox has it.

Publishing is not delivery: kombu takes a message off the Redis list and records it as unacknowledged in
two steps, so a worker killed in between loses it, and json-rpc Signal keeps no copy. So a record stays in
the journal, "in flight", until a worker acknowledges that the inbox holds it
(:mod:`claude_signal.wire.inbox_acks`). One not acknowledged within ``republish_after`` seconds is published
again. How soon after that depends on what the workers do. The queue is first in, first out: once they
acknowledge a message published after a record's last copy, that copy was lost (not merely waiting), so it
goes again every ``republish_after``. Without such evidence (the workers are away, or behind a backlog
that the copies would only lengthen) the wait doubles up to ``MAX_REPUBLISH_FACTOR`` times the bound. A
broker that restarted (its run id changed) may have lost every copy it held: each record in flight is
published again at once. The inbox makes every extra copy a no-op. While records are in flight the thread
looks for acknowledgements every ``check_every`` seconds (one pipelined round trip), and at most every
``SETTLE_EVERY`` seconds however fast messages arrive (a look asks about every record in flight, so one per
message would cost quadratically in a burst); with nothing in flight it sleeps until a message arrives.
A broker outage holds the loop for at most ``max_backoff`` seconds between attempts, so messages move
within seconds of the broker's return.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from claude_signal.edge.journal import Spool
from claude_signal.edge.publisher import BrokerUnavailable, InboundPublisher
from claude_signal.wire.inbound import InboundMessage


class Chain:
    """The last message read in each conversation, kept beside the journal so it outlives a restart: the
    first message after one still names its predecessor, and cannot overtake one that was read before the
    restart but has not been handled yet (lost in the broker, waiting for its own predecessor).

    A restart rebuilds the map from its file and every record still in the journal, so the file is written
    only when the journal is about to be emptied (:meth:`save`), not for every message."""

    def __init__(self, spool: Spool) -> None:
        self.path = spool.path.with_name(spool.path.name + ".chain")
        self.last: dict[str, str] = {}
        self._lock = threading.Lock()  # the listener advances it while the forwarder saves it
        with contextlib.suppress(FileNotFoundError, ValueError):
            loaded = json.loads(self.path.read_text())
            self.last = {str(k): str(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}
        for _, record in spool.pending(0):  # records journaled after the map was last written
            if record.get("conversation") and record.get("key") and record.get("kind") != "reaction":
                self.last[record["conversation"]] = record["key"]

    def advance(self, conversation: str, key: str) -> None:
        with self._lock:
            self.last[conversation] = key

    def save(self) -> None:
        with self._lock:
            text = json.dumps(self.last)
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            tmp.write_text(text)
            os.replace(tmp, self.path)
        except OSError as error:  # the journal itself still orders this run; only a restart would forget
            log.warning("cannot keep the conversations' last messages in %s: %s", self.path, error)


log = logging.getLogger(__name__)

RECENT_KEYS = 2048
SETTLE_EVERY = 0.2  # seconds between two looks at the acknowledgements, at most one per this
MAX_REPUBLISH_FACTOR = 16


@dataclass
class Flight:
    """A published record the inbox has not acknowledged yet."""

    record: dict[str, Any]
    start: int | None  # where it begins in the journal; None when the disk failed and it lives in memory
    first: float  # monotonic time of its first copy
    published: float  # and of its last
    wait: float  # how long after that copy the next one goes, unless a later message overtook it


class Forwarder:
    """Journal first, then publish in order from a thread of its own; an outage or a lost copy only delays."""

    def __init__(self, spool: Spool, publisher: InboundPublisher, *, max_backoff: float = 2.0,
                 republish_after: float = 30.0, check_every: float = 1.0) -> None:
        self.spool = spool
        self.publisher = publisher
        self.max_backoff = max_backoff
        self.republish_after = republish_after
        self.check_every = min(check_every, republish_after)
        self.settle_every = min(SETTLE_EVERY, self.check_every)
        self._settled_at = float("-inf")
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="forwarder", daemon=True)
        self._chain = Chain(spool)
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._unjournaled: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._flights: OrderedDict[str, Flight] = OrderedDict()
        self._read = spool.cursor()  # journal offset up to which records have been published
        self._committed = self._read
        self._consumed_before = float("-inf")  # what was published before this was taken off the queue
        self._broker_run: str | None = None
        self._sync_failed = False

    def start(self) -> Forwarder:
        self._thread.start()
        self._wake.set()  # replay what a previous run left
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after one last attempt to hand over what is spooled; the rest waits for the next start."""
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout)

    def in_flight(self) -> int:
        return len(self._flights)

    def submit(self, msg: InboundMessage) -> bool:
        """Keep ``msg`` (durably, in order); False when it is a frame already seen or cannot be kept.

        The record is built and encoded before any bookkeeping moves: a message that cannot be journaled
        must not become the predecessor its successors in the conversation wait for.
        """
        if msg.key in self._recent:
            return False
        after = self._chain.last.get(msg.conversation) if msg.kind != "reaction" else None
        record = msg.model_copy(update={"after": after}).model_dump(mode="json")
        try:
            line = self.spool.encode(record)
        except ValueError as error:  # the model repairs text, so this is a bug: say so, keep the chain intact
            log.error("refused %s from %s: it cannot be journaled (%s)", msg.key, msg.sender, error)
            return False
        self._recent[msg.key] = None
        if len(self._recent) > RECENT_KEYS:
            self._recent.popitem(last=False)
        if msg.kind != "reaction":  # before the journal has it, so a save before emptying the journal has it too
            self._chain.advance(msg.conversation, msg.key)
        try:
            self.spool.append(line)
        except OSError as error:  # a full or broken disk: keep it in memory rather than drop it
            log.error("cannot journal %s (%s); holding it in memory until the inbox has it", msg.key, error)
            with self._lock:
                self._unjournaled.append(record)
        self._wake.set()
        return True

    def _run(self) -> None:
        while True:
            self._wake.wait(self.check_every if self._flights else None)
            self._wake.clear()
            stopping = self._stopping.is_set()
            try:
                self._drain(final=stopping)
            except Exception:  # the forwarder must outlive any one failure; it retries
                log.exception("forwarding failed; retrying in a second")
                if not self._stopping.wait(1.0):
                    self._wake.set()
            if stopping:
                return

    def _drain(self, *, final: bool = False) -> None:
        delay = 0.2
        outage_logged = False
        while True:
            try:
                count = self._publish_new()
                now = time.monotonic()
                # the broker's run id must be known before a copy can be lost to its restart
                if (final or outage_logged or self._broker_run is None
                        or now - self._settled_at >= self.settle_every):
                    self._settle()
                    self._settled_at = now
            except BrokerUnavailable as error:
                if not outage_logged:
                    log.warning("broker unreachable (%s); %d message(s) kept in %s until it is back",
                                error, self.spool.backlog(), self.spool.path)
                    outage_logged = True
                if final or self._stopping.wait(delay):
                    return
                delay = min(self.max_backoff, delay * 2)
                continue
            if outage_logged:
                log.info("broker is back; replayed the spooled messages (%d this pass)", count)
            return

    def _publish_new(self) -> int:
        """Publish what was journaled (or held in memory) since the last pass, all in one round trip."""
        batch: list[tuple[dict[str, Any], int | None]] = []
        read = self._read
        for end, record in self.spool.pending(self._read, until=self._sync()):
            if record:  # an unreadable record is logged by the spool and skipped
                batch.append((record, read))
            read = end
        with self._lock:
            held = list(self._unjournaled)
        batch.extend((record, None) for record in held)  # read after the journaled ones, when the disk failed
        fresh, seen = [], set()
        for record, start in batch:
            key = record.get("key")
            if isinstance(key, str) and key not in self._flights and key not in seen:  # else its copy covers it
                fresh.append((record, start))
                seen.add(key)
        self.publisher.publish_many([record for record, _ in fresh])
        now = time.monotonic()
        for record, start in fresh:
            self._flights[record["key"]] = Flight(record, start, now, now, self.republish_after)
        self._read = read
        gone = {id(record) for record in held}
        with self._lock:
            self._unjournaled = [r for r in self._unjournaled if id(r) not in gone]
        return len(batch)

    def _sync(self) -> int | None:
        """fsync the journal before publishing what it holds; how far it is durable (None: the disk failed,
        and what it holds goes out all the same: a broken disk must not stop messages)."""
        try:
            synced = self.spool.sync()
        except OSError as error:
            if not self._sync_failed:
                log.error("cannot fsync the journal %s (%s); publishing without it", self.spool.path, error)
            self._sync_failed = True
            return None
        self._sync_failed = False
        return synced

    def _settle(self) -> None:
        """Forget what the inbox has, re-publish what is overdue, move the journal's cursor."""
        if self._flights:
            acknowledged, run = self.publisher.acknowledged_and_broker_run(list(self._flights))
            now = time.monotonic()
            for key in acknowledged:
                self._consumed_before = max(self._consumed_before, self._flights.pop(key).first)
            if run != self._broker_run:
                if self._broker_run is not None and self._flights:
                    log.warning("the broker restarted; publishing the %d message(s) in flight again",
                                len(self._flights))
                    for flight in self._flights.values():
                        flight.wait = 0.0
                self._broker_run = run
            for key, flight in self._flights.items():
                self._republish_if_due(key, flight, now)
        open_starts = [f.start for f in self._flights.values() if f.start is not None]
        cursor = min(open_starts, default=self._read)
        if cursor != self._committed:  # one cursor write per change, not per pass
            if cursor >= self.spool.size():  # the journal will be emptied: the chain's file must hold it all
                self._chain.save()
            stored = self.spool.commit(cursor)
            if stored != cursor:  # emptied: everything read was acknowledged
                self._read = stored
            self._committed = stored

    def _republish_if_due(self, key: str, flight: Flight, now: float) -> None:
        """Another copy once its wait is over; that wait is the bound once a later message overtook it."""
        lost = flight.published < self._consumed_before  # a message published after its last copy was taken
        wait = min(flight.wait, self.republish_after) if lost else flight.wait
        if now < flight.published + wait:
            return
        log.warning("%s is not in the inbox %.0fs after its last copy; publishing it again",
                    key, now - flight.published)
        self.publisher.publish(flight.record)
        flight.published = now
        if lost or wait < self.republish_after:
            flight.wait = self.republish_after
        else:  # no sign it was lost: it may wait behind others, and copies would lengthen the queue
            flight.wait = min(wait * 2, self.republish_after * MAX_REPUBLISH_FACTOR)
