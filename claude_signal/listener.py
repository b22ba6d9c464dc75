"""``claude-signal listen``: read Signal through signalbot, keep every message, hand it to the workers.

The listener is thin on purpose. A signalbot handler maps the event (:mod:`claude_signal.envelopes`),
journals it (:mod:`claude_signal.spool`) and returns without awaiting anything, so the websocket loop is
never held up and messages keep the order they were read in. A :class:`Forwarder` thread moves journaled
messages to the broker in that order; while the broker is away they wait in the journal. Nothing here
touches the database or ``claude``.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Any
from urllib.parse import urlsplit

from signalbot import Config, ConnectionMode, DataMessageHandler, InMemoryConfig, ReactionHandler, SignalBot
from signalbot.context import DataMessageContext, ReactionContext

from claude_signal.config import ConfigError, Settings
from claude_signal.enqueue import BrokerUnavailable, InboundPublisher
from claude_signal.envelopes import Access, Ignored, to_inbound
from claude_signal.inbound import InboundMessage, needs_repair
from claude_signal.signal_api import probe
from claude_signal.signalbot_fixes import accept_large_frames, tolerate_bad_frames
from claude_signal.spool import Spool

log = logging.getLogger(__name__)

SPOOL_NAME = "listener-spool.jsonl"
RECENT_KEYS = 2048


class Forwarder:
    """Journal first, then publish in order from a thread of its own; an outage only delays."""

    def __init__(self, spool: Spool, publisher: InboundPublisher, *, max_backoff: float = 5.0) -> None:
        self.spool = spool
        self.publisher = publisher
        self.max_backoff = max_backoff
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="forwarder", daemon=True)
        self._last_in_conversation: dict[str, str] = {}
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._unjournaled: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def start(self) -> Forwarder:
        self._thread.start()
        self._wake.set()  # replay what a previous run left
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after one last attempt to hand over what is spooled; the rest waits for the next start."""
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout)

    def submit(self, msg: InboundMessage) -> bool:
        """Keep ``msg`` (durably, in order); False when it is a frame already seen or cannot be kept.

        The record is built and encoded before any bookkeeping moves: a message that cannot be journaled
        must not become the predecessor its successors in the conversation wait for.
        """
        if msg.key in self._recent:
            return False
        after = self._last_in_conversation.get(msg.conversation) if msg.kind != "reaction" else None
        record = msg.model_copy(update={"after": after}).model_dump(mode="json")
        try:
            line = self.spool.encode(record)
        except ValueError as error:  # the model repairs text, so this is a bug: say so, keep the chain intact
            log.error("refused %s from %s: it cannot be journaled (%s)", msg.key, msg.sender, error)
            return False
        self._recent[msg.key] = None
        if len(self._recent) > RECENT_KEYS:
            self._recent.popitem(last=False)
        if msg.kind != "reaction":
            self._last_in_conversation[msg.conversation] = msg.key
        try:
            self.spool.append(line)
        except OSError as error:  # a full or broken disk: keep it in memory rather than drop it
            log.error("cannot journal %s (%s); holding it in memory until it is published", msg.key, error)
            with self._lock:
                self._unjournaled.append(record)
        self._wake.set()
        return True

    def _run(self) -> None:
        while True:
            self._wake.wait()  # set by submit, start and stop: nothing to do in between
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
                count = self._publish_pending()
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

    def _publish_pending(self) -> int:
        count = 0
        done: int | None = None
        try:
            for offset, record in self.spool.pending():
                if record:  # an unreadable record is logged by the spool and skipped
                    self.publisher.publish(record)
                    count += 1
                done = offset
        finally:  # one cursor write per pass, also when the broker fails halfway
            if done is not None:
                self.spool.commit(done)
        with self._lock:
            held = list(self._unjournaled)
        for record in held:  # read after the journaled ones, when the disk failed
            self.publisher.publish(record)
            count += 1
            with self._lock:
                self._unjournaled.remove(record)
        return count


class Listener:
    """Decides what to do with each Signal event; signalbot calls it from its handlers."""

    def __init__(self, access: Access, forwarder: Forwarder) -> None:
        self.access = access
        self.forwarder = forwarder

    def accept(self, event: Any) -> InboundMessage | None:
        result = to_inbound(event, self.access)
        if not isinstance(result, Ignored) and needs_repair(getattr(event, "text", None)):
            log.warning("repaired the text of %s: lone UTF-16 surrogates replaced by U+FFFD", result.key)
        if isinstance(result, Ignored):
            log.log(logging.WARNING if result.notable else logging.DEBUG, "dropped Signal message at %s: %s",
                    getattr(event, "timestamp", "?"), result.reason)
            return None
        if self.forwarder.submit(result):
            log.info("queued %s from %s (%s)", result.key, result.sender, result.kind)
        return result


class _Messages(DataMessageHandler):
    def __init__(self, listener: Listener) -> None:
        self.listener = listener

    async def handle_data_message(self, context: DataMessageContext) -> None:
        self.listener.accept(context.message)  # no await before this: order is kept


class _Reactions(ReactionHandler):
    def __init__(self, listener: Listener) -> None:
        self.listener = listener

    async def handle_reaction(self, context: ReactionContext) -> None:
        self.listener.accept(context.message)


def bot_config(settings: Settings) -> Config:
    """signalbot wants ``host:port`` and a connection mode instead of a URL."""
    parts = urlsplit(settings.signal_api)
    service = parts.netloc + parts.path.rstrip("/")
    mode = ConnectionMode.HTTPS_ONLY if parts.scheme == "https" else ConnectionMode.HTTP_ONLY
    return Config(phone_number=settings.account or "", signal_service=service, connection_mode=mode,
                  storage=InMemoryConfig(), download_attachments=False, retry_interval=1,
                  logging_level=logging.WARNING)


def run(settings: Settings) -> int:
    """Listen until SIGINT or SIGTERM; what is read but not yet published stays in the spool."""
    if not settings.account:
        raise ConfigError("CLAUDE_SIGNAL_ACCOUNT: the bot's Signal number is required to listen")
    if not settings.authorized:
        log.warning("CLAUDE_SIGNAL_AUTHORIZED is empty: every message will be dropped")
    settings.home.mkdir(parents=True, exist_ok=True)
    spool = Spool(settings.home / SPOOL_NAME)
    publisher = InboundPublisher(settings.resolved_broker_url)
    forwarder = Forwarder(spool, publisher).start()
    listener = Listener(Access(settings.account, frozenset(settings.authorized)), forwarder)
    tolerate_bad_frames()
    accept_large_frames(settings.max_frame_bytes or None)
    bot = SignalBot(bot_config(settings))
    bot.register(_Messages(listener))
    bot.register(_Reactions(listener))
    log.info("listening to %s for %s; journal %s", settings.signal_api, settings.account, spool.path)
    problem = probe(settings.signal_api)
    if problem:
        log.warning("%s; signalbot keeps retrying", problem)
    try:
        bot.start()  # blocks; SIGINT or SIGTERM stop it gracefully
    finally:
        forwarder.stop()
        publisher.close()
        spool.close()
        log.info("listener stopped; %d message(s) left in the spool for the next start", spool_backlog(spool))
    return 0


def spool_backlog(spool: Spool) -> int:
    try:
        return spool.backlog()
    except OSError:
        return 0
