"""The one message the listener hands to the workers.

The listener builds an :class:`InboundMessage` from a Signal envelope and publishes it by task name
(``command.handle``); the worker validates it again on arrival. It is the whole contract between the two
sides, so it lives apart from both and imports neither the database nor pexpect.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

COMMAND_TASK = "command.handle"

MessageKind = Literal["message", "edit", "reaction"]


def idempotency_key(sender: str, timestamp: int) -> str:
    """Signal gives every message a sender and a millisecond timestamp; together they name it uniquely."""
    return f"{sender}:{timestamp}"


def task_id_for(key: str) -> str:
    """Celery task id for an inbound message: a re-publish of the same message collapses onto it."""
    return f"in:{key}"


class InboundMessage(BaseModel):
    """A message from an authorized person, as the worker needs it and nothing more."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    key: str = Field(description="idempotency key: sender plus envelope timestamp")
    sender: str = Field(description="the person: Signal uuid when known, else number")
    sender_number: str | None = None
    conversation: str = Field(description="where replies go: a uuid or number, or group.<base64 id>")
    group_id: str | None = Field(default=None, description="internal group id when sent in a group")
    timestamp: int = Field(description="envelope timestamp, milliseconds")
    text: str = ""
    kind: MessageKind = "message"
    quote_timestamp: int | None = Field(default=None, description="timestamp of the message replied to")
    reaction_emoji: str | None = None
    reaction_target_timestamp: int | None = None
    attachments: int = Field(default=0, description="how many attachments came with it (not forwarded)")
    note_to_self: bool = Field(default=False, description="the account's owner writing to their own number")
    after: str | None = Field(default=None, description="key of the message read just before it in the same "
                                                        "conversation: handled first, so order holds")

    @classmethod
    def build(cls, *, sender: str, conversation: str, timestamp: int, text: str = "", **extra) -> InboundMessage:
        return cls(
            key=idempotency_key(sender, timestamp),
            sender=sender,
            conversation=conversation,
            timestamp=timestamp,
            text=text,
            **extra,
        )
