"""What a received Signal event means for us: an :class:`InboundMessage` to publish, or a reason to drop it.

Pure logic over signalbot's parsed models, so every rule (who is authorized, what Note to Self looks like,
which conversation a reply goes to, what the idempotency key is) is tested without a network.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from claude_signal.wire import senders
from claude_signal.wire.inbound import FileRef, InboundMessage, idempotency_key


@dataclass(frozen=True)
class Ignored:
    """A received event we do not act on, and why (for one log line; a warning when ``notable``)."""

    reason: str
    notable: bool = False


@dataclass(frozen=True)
class Access:
    """Who the bot is and who may use it (not to be confused with a worker's ``workers.Identity``)."""

    account: str
    authorized: frozenset[str]

    def allows(self, number: str | None, uuid: str | None) -> bool:
        return senders.authorized(self.authorized, number, uuid)


def group_recipient(internal_id: str) -> str:
    """Envelopes name a group by its internal id; ``/v2/send`` wants ``group.`` + base64 of that id."""
    return "group." + base64.b64encode(internal_id.encode()).decode()


def _conversation(message: Any, sender: str, access: Access) -> str:
    group = getattr(message, "group_info", None)
    if group is not None and group.group_id:
        return group_recipient(group.group_id)
    if message.source_number == access.account:
        return access.account  # Note to Self: the owner writing to their own number
    return sender


def to_inbound(message: Any, access: Access) -> InboundMessage | Ignored:
    """Map a signalbot ``DataMessage``, ``EditMessage`` or ``Reaction`` to the message workers handle.

    signalbot parses a sync transcript (sent by the account's owner from another device) as if it came from
    its destination. So the owner writing in Note to Self arrives "from" the account itself, and counts as
    the owner when the account's number is authorized; the owner writing to anyone else arrives "from" that
    person and only passes if that person is authorized to use the bot in their own right.
    """
    sender = message.source_uuid or message.source_number
    if not sender:
        return Ignored("no sender")
    if not access.allows(message.source_number, message.source_uuid):
        who = f"{message.source_number or ''} {message.source_uuid or ''}".strip()
        return Ignored(f"unauthorized sender {who}", notable=True)
    conversation = _conversation(message, sender, access)
    group = getattr(message, "group_info", None)
    common: dict[str, Any] = {
        "sender": sender,
        "sender_number": message.source_number,
        "conversation": conversation,
        "group_id": group.group_id if group is not None else None,
    }
    kind = type(message).__name__
    if kind == "Reaction":
        if message.is_remove or not message.emoji:
            return Ignored("reaction removed")
        target = message.timestamp  # signalbot gives a reaction the timestamp of the message it targets
        return InboundMessage(
            key=f"{idempotency_key(sender, target)}:reaction:{message.emoji}",
            timestamp=target, kind="reaction", reaction_emoji=message.emoji,
            reaction_target_timestamp=target, **common)
    if kind not in ("DataMessage", "EditMessage"):
        return Ignored(f"{kind} is not a message")
    text = message.text or ""
    attachments = len(message.attachments or [])
    if not text.strip() and not attachments:
        return Ignored("empty message (sticker or view-once)")
    quote = message.quote.id if getattr(message, "quote", None) is not None else None
    return InboundMessage(
        key=idempotency_key(sender, message.timestamp), timestamp=message.timestamp, text=text,
        kind="edit" if kind == "EditMessage" else "message", quote_timestamp=quote,
        attachments=attachments, files=_files(message), note_to_self=conversation == access.account, **common)


def _files(message: Any) -> tuple[FileRef, ...]:
    """signalbot's attachment objects as references (``local_filename`` is signal-cli-rest-api's id)."""
    refs = []
    for item in message.attachments or []:
        ident = getattr(item, "local_filename", None) or getattr(item, "id", None)
        if ident:
            refs.append(FileRef(id=str(ident), content_type=getattr(item, "content_type", None) or
                                "application/octet-stream", filename=getattr(item, "remote_filename", None)
                                or getattr(item, "filename", None), size=getattr(item, "size", None)))
    return tuple(refs)
