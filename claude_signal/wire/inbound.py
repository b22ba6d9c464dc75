"""The one message the listener hands to the workers.

The listener builds an :class:`InboundMessage` from a Signal envelope and publishes it by task name
(``command.handle``); the worker validates it again on arrival. It is the whole contract between the two
sides, so it lives apart from both and imports neither the database nor pexpect.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

COMMAND_TASK = "command.handle"

MessageKind = Literal["message", "edit", "reaction"]


def idempotency_key(sender: str, timestamp: int) -> str:
    """Signal gives every message a sender and a millisecond timestamp; together they name it uniquely."""
    return f"{sender}:{timestamp}"


def repair_text(text: str) -> str:
    """``text`` with each lone UTF-16 surrogate replaced by U+FFFD; well-formed text comes back unchanged.

    JSON may carry a lone surrogate (``"\\ud800"``) that Python decodes but no UTF-8 encoder accepts, so the
    journal, the broker and the database would each fail on it. Pairs that belong together are joined. A NUL
    is replaced too: PostgreSQL text cannot hold one, and no path or prompt needs it.
    """
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace").replace("\x00", "\ufffd")


def needs_repair(text: str | None) -> bool:
    """True when ``text`` holds a NUL or a surrogate code point (which a Python string holds only unpaired or
    split)."""
    if text is None or text.isascii():
        return text is not None and "\x00" in text
    try:
        text.encode("utf-8")  # strict: refuses any surrogate code point
    except UnicodeEncodeError:
        return True
    return "\x00" in text


def task_id_for(key: str) -> str:
    """Celery task id for an inbound message: a re-publish of the same message collapses onto it."""
    return f"in:{key}"


class FileRef(BaseModel):
    """An attachment as Signal announced it; the bytes stay with signal-cli-rest-api until a turn fetches
    them by id (``GET /v1/attachments/{id}``), so no broker message ever carries a file."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    content_type: str = "application/octet-stream"
    filename: str | None = None
    size: int | None = None


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
    attachments: int = Field(default=0, description="how many attachments came with it")
    files: tuple[FileRef, ...] = Field(default=(), description="the attachments, by signal-cli-rest-api id")
    note_to_self: bool = Field(default=False, description="the account's owner writing to their own number")
    after: str | None = Field(default=None, description="key of the message read just before it in the same "
                                                        "conversation: handled first, so order holds")

    @field_validator("*", mode="after")
    @classmethod
    def _encodable(cls, value: object) -> object:
        """Every string in the contract can be written as UTF-8, whatever the frame held."""
        return repair_text(value) if isinstance(value, str) and needs_repair(value) else value

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
