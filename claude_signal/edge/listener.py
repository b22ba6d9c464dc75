"""``claude-signal listen``: read Signal through signalbot, keep every message, hand it to the workers.

The listener is thin on purpose. A signalbot handler maps the event (:mod:`claude_signal.edge.envelopes`),
journals it (:mod:`claude_signal.edge.journal`) and returns without awaiting anything, so the websocket loop is
never held up and messages keep the order they were read in. A :class:`Forwarder` thread moves journaled
messages to the broker in that order and keeps each until the inbox has it; while the broker is away they
wait in the journal. Nothing here touches the database or ``claude``.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from signalbot import Config, ConnectionMode, DataMessageHandler, InMemoryConfig, ReactionHandler, SignalBot
from signalbot.context import DataMessageContext, ReactionContext

from claude_signal.config import ConfigError, Settings
from claude_signal.edge.envelopes import Access, Ignored, to_inbound
from claude_signal.edge.forwarder import Forwarder
from claude_signal.edge.frames import install_screen
from claude_signal.edge.journal import Spool
from claude_signal.edge.publisher import InboundPublisher
from claude_signal.edge.signal_client import probe
from claude_signal.edge.signalbot_patches import accept_large_frames, tolerate_bad_frames
from claude_signal.wire.inbound import InboundMessage, needs_repair
from claude_signal.wire.signing import load_key

log = logging.getLogger(__name__)

SPOOL_NAME = "listener-spool.jsonl"

__all__ = ["Forwarder", "Listener", "run"]


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
    publisher = InboundPublisher(settings.resolved_broker_url, key=load_key(settings),
                                 events=settings.task_events)
    forwarder = Forwarder(spool, publisher, republish_after=settings.republish_after).start()
    listener = Listener(Access(settings.account, frozenset(settings.authorized)), forwarder)
    install_screen(settings.account)
    tolerate_bad_frames()  # outermost: whatever a frame makes the screen or signalbot raise, the socket stays
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
        log.info("listener stopped; %d message(s) left in the spool for the next start (kept until the inbox "
                 "has them)", spool_backlog(spool))
    return 0


def spool_backlog(spool: Spool) -> int:
    try:
        return spool.backlog()
    except OSError:
        return 0
