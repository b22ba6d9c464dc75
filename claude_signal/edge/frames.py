"""Checks on the raw signal-cli frame that signalbot's parsed message can no longer make.

signalbot presents a 1:1 sync transcript ("sent from another device of this account") as if its
destination had written it, and keeps no trace of who sent the envelope. So a stranger's envelope wrapping
a ``syncMessage.sentMessage`` to the account would pass as the owner's Note to Self, and the owner's own
message to a friend would pass as the friend's. Both are decided here, on the frame, before parsing.
"""

from __future__ import annotations

import json
import logging
from typing import Any

log = logging.getLogger(__name__)

SYNC_KEY = '"syncMessage"'  # signal-cli writes its keys as they are: a frame without this text has none


def screen(frame: Any, account: str) -> tuple[str, bool] | None:
    """Why a frame must not reach the handlers (reason, notable), or None when it may."""
    envelope = frame.get("envelope") if isinstance(frame, dict) else None
    if not isinstance(envelope, dict):
        return None
    sync = envelope.get("syncMessage")
    sent = sync.get("sentMessage") if isinstance(sync, dict) else None
    if not isinstance(sent, dict):
        return None
    source = envelope.get("sourceNumber") or envelope.get("source")
    if source != account:
        who = f"{envelope.get('sourceNumber') or ''} {envelope.get('sourceUuid') or ''}".strip() or "nobody"
        return f"a sync transcript in an envelope from {who}, not from the account itself", True
    if _in_group(sent):
        return None  # the owner in a group: the worker decides whether that group is its business
    destination = sent.get("destinationNumber") or sent.get("destination")
    to_self = destination == account or (destination is None and sent.get("destinationUuid") is not None
                                         and sent.get("destinationUuid") == envelope.get("sourceUuid"))
    if not to_self:
        return "the owner's own message to someone else", False
    return None


def _in_group(sent: dict[str, Any]) -> bool:
    edit = sent.get("editMessage")
    inner = edit.get("dataMessage") if isinstance(edit, dict) else None
    return any(isinstance(part, dict) and part.get("groupInfo") for part in (sent, inner))


def install_screen(account: str) -> None:
    """Run :func:`screen` on every frame signalbot reads; a screened frame is skipped like an unknown one."""
    from signalbot import _pipeline
    from signalbot.messages.parser import UnknownMessageFormatError

    original = _pipeline.parse

    async def parse(signal: Any, raw: str) -> Any:
        if SYNC_KEY not in raw:  # most frames: no sync transcript, nothing to screen, no second JSON parse
            return await original(signal, raw)
        try:
            verdict = screen(json.loads(raw), account)
        except (ValueError, RecursionError):
            verdict = None  # not JSON (or nested too deep to read): the parser reports it
        if verdict is not None:
            reason, notable = verdict
            log.log(logging.WARNING if notable else logging.DEBUG, "dropped a Signal frame: %s", reason)
            raise UnknownMessageFormatError(reason)
        return await original(signal, raw)

    _pipeline.parse = parse  # type: ignore[assignment]
